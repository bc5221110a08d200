"""The DIP auxiliary catalogue (辅助目录): per-case categories and the factor that adjusts a case's points
(docs/domain.md §6). Every factor defaults to 1.0; a city's TOML file sets its own (`load_auxiliary`).

Dimensions:
* **age** (年龄): bands in days under one year (0-28 天, 29 天-1 岁), in years above (1-6, 7-17, 18-65, >= 66);
* **severity** (疾病严重程度): I no CC, II CC, III MCC, from the secondary diagnoses and the CHS-DRG MCC / CC lists
  with their exclusion tables (`scheme`, default chs-drg-1.1); IV death, split by length of stay <= 3 / > 3 days;
* **CCI** (Charlson 合并症指数) of the secondary diagnoses (grouper_tables/dip/charlson_icd10.csv), in bands
  0 / 1-2 / 3-4 / >= 5;
* **tumour** (肿瘤严重程度), where the codes say it: a metastasis code (C77-C80) anywhere, else a malignant
  principal diagnosis (C00-C97), else none.
The case's factor is the product of its dimensions' factors (`combine = "product"`), or the largest (`"max"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from dipsim.catalog import principal_codes
from dipsim.io.errors import InputError
from dipsim.io.toml_files import read_toml
from dipsim.paths import tables_dir
from dipsim.schema import DISCHARGE_DEATH, float_column

SEVERITY_CLASSES = ("I", "II", "III", "IV-短", "IV-长")  # IV-短: death with LOS <= death_los_days


@dataclass(frozen=True)
class Band:
    label: str
    factor: float = 1.0
    max_days: int | None = None  # an age band under one year: age in days <= max_days
    max_years: int | None = None  # a band in years: age <= max_years (None: open)
    max_cci: int | None = None  # a CCI band: CCI <= max_cci (None: open)


DEFAULT_AGE = (Band("0-28天", max_days=28), Band("29天-1岁", max_days=364), Band("1-6岁", max_years=6),
               Band("7-17岁", max_years=17), Band("18-65岁", max_years=65), Band("66岁及以上"))
DEFAULT_CCI = (Band("0", max_cci=0), Band("1-2", max_cci=2), Band("3-4", max_cci=4), Band(">=5"))


@dataclass(frozen=True)
class AuxiliaryCatalog:
    age: tuple[Band, ...] = DEFAULT_AGE
    severity: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SEVERITY_CLASSES, 1.0))
    death_los_days: int = 3
    cci: tuple[Band, ...] = DEFAULT_CCI
    tumour: dict[str, float] = field(default_factory=lambda: {"无": 1.0, "恶性肿瘤": 1.0, "转移": 1.0})
    combine: str = "product"  # product | max
    scheme: str = "chs-drg-1.1"  # the MCC / CC lists for severity


def load_auxiliary(path) -> AuxiliaryCatalog:
    """An auxiliary catalogue from TOML ([age] bands, [severity] factors, [cci] bands, [tumour] factors, combine);
    anything absent keeps its default (factor 1.0)."""
    path = Path(path)
    data = read_toml(path, "auxiliary catalogue")
    base = AuxiliaryCatalog()

    def bands(section: str, default: tuple[Band, ...]) -> tuple[Band, ...]:
        rows = data.get(section, {}).get("bands")
        if rows is None:
            return default
        try:
            return tuple(Band(**row) for row in rows)
        except TypeError as exc:
            raise InputError(f"{path}: [{section}] bands: {exc}") from exc

    def factors(section: str, default: dict[str, float]) -> dict[str, float]:
        given = {k: float(v) for k, v in data.get(section, {}).items() if k != "death_los_days"}
        unknown = set(given) - set(default)
        if unknown:
            raise InputError(f"{path}: [{section}] has unknown classes {sorted(unknown)}; expected {list(default)}")
        return {**default, **given}

    combine = data.get("combine", base.combine)
    if combine not in ("product", "max"):
        raise InputError(f"{path}: combine must be 'product' or 'max', not {combine!r}")
    return AuxiliaryCatalog(age=bands("age", base.age), severity=factors("severity", base.severity),
                            death_los_days=int(data.get("severity", {}).get("death_los_days", base.death_los_days)),
                            cci=bands("cci", base.cci), tumour=factors("tumour", base.tumour), combine=combine,
                            scheme=data.get("scheme", base.scheme))


# ---------------------------------------------------------------------------------------------------------------
# Charlson comorbidity index


@dataclass(frozen=True)
class _Charlson:
    names: tuple[str, ...]
    weights: np.ndarray
    prefixes: tuple[tuple[str, ...], ...]


def _charlson() -> _Charlson:
    table = pacsv.read_csv(tables_dir() / "dip" / "charlson_icd10.csv")
    return _Charlson(tuple(table["condition"].to_pylist()), np.array(table["weight"].to_pylist(), dtype=np.int64),
                     tuple(tuple(c.split()) for c in table["codes"].to_pylist()))


# a mild form does not count beside its severe form
_SUPERSEDED = {"mild_liver": "severe_liver", "diabetes": "diabetes_complicated", "cancer": "metastatic"}


def charlson_index(diagnoses: pa.ChunkedArray | pa.Array, include_principal: bool = False) -> np.ndarray:
    """The Charlson comorbidity index of each case from its secondary diagnoses (all with `include_principal`):
    each condition once, its weight; a mild form dropped beside its severe form."""
    lists = diagnoses.combine_chunks() if isinstance(diagnoses, pa.ChunkedArray) else diagnoses
    if not include_principal:
        lists = pc.list_slice(lists, 1, None)
    values = pc.fill_null(pc.list_flatten(lists).cast(pa.string()), "")
    row = pc.list_parent_indices(lists).to_numpy()
    encoded = pc.dictionary_encode(values)
    ch = _charlson()
    masks = np.array([sum(1 << k for k, p in enumerate(ch.prefixes) if code.startswith(p))
                      for code in encoded.dictionary.to_pylist()], dtype=np.int64)
    case_mask = np.zeros(len(lists), dtype=np.int64)
    np.bitwise_or.at(case_mask, row, masks[encoded.indices.to_numpy()] if len(masks) else np.zeros(0, np.int64))
    for mild, severe in _SUPERSEDED.items():
        m, s = ch.names.index(mild), ch.names.index(severe)
        case_mask = np.where(case_mask & (1 << s), case_mask & ~(1 << m), case_mask)
    bits = (case_mask[:, None] >> np.arange(len(ch.names))) & 1
    return (bits * ch.weights).sum(axis=1)


# ---------------------------------------------------------------------------------------------------------------
# Per case


def _age_band(cases: pa.Table, bands: tuple[Band, ...]) -> np.ndarray:
    years = float_column(cases, "age_years", np.nan)
    days = float_column(cases, "age_days", np.nan)
    under_one = np.where(np.isnan(years), days <= 364, years < 1)
    out = np.full(cases.num_rows, -1, dtype=np.int64)
    for k in range(len(bands) - 1, -1, -1):  # the first band that holds wins: assign from the last
        b = bands[k]
        if b.max_days is not None:
            hold = under_one & (days <= b.max_days)
        elif b.max_years is not None:
            hold = ~under_one & (years <= b.max_years)
        else:
            hold = ~under_one & ~np.isnan(years)
        out[hold] = k
    return out  # -1: no age


def _cci_band(cci: np.ndarray, bands: tuple[Band, ...]) -> np.ndarray:
    out = np.full(len(cci), len(bands) - 1, dtype=np.int64)
    for k in range(len(bands) - 1, -1, -1):
        if bands[k].max_cci is not None:
            out[cci <= bands[k].max_cci] = k
    return out


def _severity(cases: pa.Table, aux: AuxiliaryCatalog) -> np.ndarray:
    from dipsim.grouping import kernels
    from dipsim.grouping.drg import encode_codes
    from dipsim.grouping.scheme_cache import load_compiled

    compiled = load_compiled(aux.scheme)
    dx, offsets = encode_codes(cases["diagnoses"], compiled.dx_codes)
    level = np.zeros(cases.num_rows, dtype=np.int8)
    kernels.cc_levels(dx, offsets, compiled.dx_secondary, compiled.excl_offsets, compiled.excl_tables, level)
    died = float_column(cases, "discharge_mode", 0) == DISCHARGE_DEATH
    los = float_column(cases, "los_days", np.nan)
    return np.where(died, np.where(los <= aux.death_los_days, 3, 4), level.astype(np.int64))


def _tumour(cases: pa.Table) -> np.ndarray:
    lists = cases["diagnoses"].combine_chunks() if isinstance(cases["diagnoses"], pa.ChunkedArray) \
        else cases["diagnoses"]
    values = pc.fill_null(pc.list_flatten(lists).cast(pa.string()), "")
    row = pc.list_parent_indices(lists).to_numpy()
    metastasis = np.zeros(len(lists), dtype=bool)
    hit = pc.match_substring_regex(values, r"^C(7[7-9]|80)").to_numpy(zero_copy_only=False)
    metastasis[row[hit]] = True
    malignant = pc.match_substring_regex(principal_codes(lists), r"^C[0-9]").to_numpy(zero_copy_only=False)
    return np.where(metastasis, 2, np.where(malignant, 1, 0))


def auxiliary_table(cases: pa.Table, aux: AuxiliaryCatalog | None = None) -> pa.Table:
    """Per case: case_id, age_band, severity (I-IV), cci, cci_band, tumour, and aux_factor."""
    aux = aux or AuxiliaryCatalog()
    age = _age_band(cases, aux.age)
    severity = _severity(cases, aux)
    cci = charlson_index(cases["diagnoses"])
    cci_band = _cci_band(cci, aux.cci)
    tumour = _tumour(cases)
    tumour_names = list(aux.tumour)
    factors = np.stack([
        np.where(age >= 0, np.array([b.factor for b in aux.age])[np.maximum(age, 0)], 1.0),
        np.array([aux.severity[s] for s in SEVERITY_CLASSES])[severity],
        np.array([b.factor for b in aux.cci])[cci_band],
        np.array([aux.tumour[t] for t in tumour_names])[tumour],
    ])
    factor = factors.prod(axis=0) if aux.combine == "product" else factors.max(axis=0)
    labels = np.array([b.label for b in aux.age] + [""], dtype=object)
    return pa.table({
        "case_id": cases["case_id"] if "case_id" in cases.column_names else pa.array(
            [str(i) for i in range(cases.num_rows)]),
        "age_band": pa.array(labels[age], pa.string()),
        "severity": pa.array(np.array(SEVERITY_CLASSES, dtype=object)[severity], pa.string()),
        "cci": pa.array(cci, pa.int16()),
        "cci_band": pa.array(np.array([b.label for b in aux.cci], dtype=object)[cci_band], pa.string()),
        "tumour": pa.array(np.array(tumour_names, dtype=object)[tumour], pa.string()),
        "aux_factor": pa.array(factor, pa.float64()),
    })
