"""Explain one case's grouping in words: its codes with their Chinese names, then every rule that decided it."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from dipsim.codes import load_icd9, load_icd10
from dipsim.io.errors import InputError
from dipsim.io.readers import RawCases, read_cases_raw
from dipsim.io.validate import validate_cases
from dipsim.schema import SEXES

from .reference import CC_LABELS, Case, Grouping, group_case
from .tables import DrgScheme, load_scheme


def case_from_row(row: dict) -> Case:
    """A grouping Case from one accepted row (CASE_SCHEMA names)."""
    return Case(row["diagnoses"] or [], row["procedures"] or [], row["sex"] or 0, row["age_years"],
                row["age_days"], row["birth_weight_g"], row["ventilation_hours"], row.get("los_days"))


def find_case(path, case_id: str, **read_options) -> dict:
    """Read `path` and validate only the rows of `case_id` (a large file is not validated whole)."""
    raw = read_cases_raw(path, **read_options)
    if "case_id" not in raw.table.column_names:
        raise InputError(f"{path}: no case id column to look {case_id!r} up in")
    ids = pc.utf8_trim_whitespace(pc.cast(raw.table["case_id"], pa.string()))
    mask = pc.fill_null(pc.equal(ids, case_id), False)
    subset = RawCases(raw.table.filter(mask), raw.rows[mask.to_numpy(zero_copy_only=False)], raw.source,
                      raw.encoding, raw.header_map, raw.unmapped)
    if subset.table.num_rows == 0:
        raise InputError(f"{path}: no case with id {case_id!r}")
    result = validate_cases(subset)
    if result.n_accepted == 0:
        reasons = "; ".join(f"{r['field']}: {r['reason']}" for r in result.rejects.to_pylist())
        raise InputError(f"{path}: case {case_id!r} is rejected by validation ({reasons})")
    return result.accepted.slice(0, 1).to_pylist()[0]


def explain_case(row: dict, scheme: str | DrgScheme = "chs-drg-1.1") -> tuple[Grouping, str]:
    """Group one row with the reference grouper and describe each step."""
    scheme = load_scheme(scheme) if isinstance(scheme, str) else scheme
    scheme_name = scheme.name
    grouping = group_case(case_from_row(row), scheme)
    icd10, icd9 = load_icd10(), load_icd9()
    lines = [f"case {row['case_id']} under {scheme_name}",
             f"  sex {row['sex']} ({SEXES.get(row['sex'] or 0, '?')}), age {row['age_years']} y / "
             f"{row['age_days']} d, birth weight {row['birth_weight_g']} g, LOS {row['los_days']} d, ventilation {row['ventilation_hours']} h"]
    for label, codes, dictionary in (("diagnoses", row["diagnoses"], icd10), ("procedures", row["procedures"], icd9)):
        lines.append(f"  {label} (principal first):")
        for code in codes or []:
            lines.append(f"    {code}  {dictionary.name(code) or '(not in 医保版 2.0)'}")
    lines.append("steps:")
    lines += [f"  {step}" for step in grouping.trace]
    if grouping.drg.startswith("0000"):
        lines.append(f"result: ungroupable (0000): {grouping.reason}")
    else:
        lines.append(f"result: DRG {grouping.drg} {scheme.drg_names.get(grouping.drg, '')} (ADRG {grouping.adrg}, "
                     f"MDC{grouping.mdc}, CC level {CC_LABELS[grouping.cc_level]})")
    return grouping, "\n".join(lines)
