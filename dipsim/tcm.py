"""The TCM catalogue (中医优势病种目录) of DIP: which diseases are TCM advantage diseases and when a case counts as
TCM-treated (docs/domain.md §9, 同病同效同价).

A TCM-treated case of a listed disease is grouped in the disease's TCM group (`TCM/<subcategory>`), which carries
the points of the disease's Western group (`<subcategory>/`, the conservative core group, else the comprehensive
group `<category>/保守治疗`) although it usually costs less; those cases are left out of the Western groups'
calibration so that they do not lower the Western points. Pricing (TCM weighting, bonuses) reads the flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.io.errors import InputError
from dipsim.io.toml_files import read_toml
from dipsim.schema import float_column

CRITERIA = ("flag", "share", "diagnosis")
TCM_PREFIX = "TCM/"


@dataclass(frozen=True)
class TcmRule:
    """`diseases`: principal-diagnosis subcategories (DIP key level, e.g. "M54.5"); a case is TCM-treated when any
    of `treated_by` holds: "flag" (the tcm_treated column), "share" (tcm_cost / total_cost >= `min_share`),
    "diagnosis" (a TCM diagnosis code is given)."""

    diseases: tuple[str, ...]
    treated_by: tuple[str, ...] = ("flag",)
    min_share: float | None = None

    def __post_init__(self):
        unknown = set(self.treated_by) - set(CRITERIA)
        if unknown or not self.treated_by:
            raise ValueError(f"treated_by must be some of {CRITERIA}, not {self.treated_by}")
        if "share" in self.treated_by and not (self.min_share is not None and 0 < self.min_share <= 1):
            raise ValueError("treated_by 'share' needs min_share in (0, 1]")
        if not self.diseases:
            raise ValueError("a TCM catalogue needs at least one disease")


def load_tcm(path) -> TcmRule:
    """A TCM catalogue from TOML: diseases = [...], treated_by = [...], min_share = x."""
    path = Path(path)
    data = read_toml(path, "TCM catalogue")
    try:
        return TcmRule(diseases=tuple(data.get("diseases", ())), treated_by=tuple(data.get("treated_by", ("flag",))),
                       min_share=data.get("min_share"))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: TCM catalogue: {exc}") from exc


def rule_from_dict(data: dict | None) -> TcmRule | None:
    """The rule as `dataclasses.asdict` wrote it in a catalogue manifest."""
    if not data:
        return None
    return TcmRule(diseases=tuple(data["diseases"]), treated_by=tuple(data["treated_by"]),
                   min_share=data.get("min_share"))


def tcm_flag(cases: pa.Table) -> np.ndarray:
    """Per case: the tcm_treated column (False where null or absent)."""
    if "tcm_treated" not in cases.column_names:
        return np.zeros(cases.num_rows, dtype=bool)
    return pc.fill_null(cases["tcm_treated"], False).to_numpy(zero_copy_only=False)


def tcm_treated(cases: pa.Table, rule: TcmRule) -> np.ndarray:
    """Per case: TCM-treated under the rule (whatever its disease)."""
    out = np.zeros(cases.num_rows, dtype=bool)
    if "flag" in rule.treated_by:
        out |= tcm_flag(cases)
    if "share" in rule.treated_by:
        cost, tcm = float_column(cases, "total_cost"), float_column(cases, "tcm_cost")
        with np.errstate(invalid="ignore", divide="ignore"):
            out |= (cost > 0) & (tcm / cost >= rule.min_share)
    if "diagnosis" in rule.treated_by and "tcm_diagnosis" in cases.column_names:
        code = pc.fill_null(pc.utf8_trim_whitespace(pc.cast(cases["tcm_diagnosis"], pa.string())), "")
        out |= pc.not_equal(code, "").to_numpy(zero_copy_only=False)
    return out


def tcm_groups(diagnosis: pa.Array, treated: np.ndarray, rule: TcmRule | None) -> np.ndarray:
    """Per case: its TCM group id (`TCM/<subcategory>`) when it is TCM-treated and its disease is listed, else ""."""
    if rule is None:
        return np.full(len(diagnosis), "", dtype=object)
    listed = pc.is_in(diagnosis, value_set=pa.array(rule.diseases, pa.string())).to_numpy(zero_copy_only=False)
    codes = diagnosis.to_numpy(zero_copy_only=False).astype(object)
    return np.where(listed & treated, TCM_PREFIX + codes, "")
