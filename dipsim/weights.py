"""DRG relative weights (相对权重, RW): read a city's published table, or calibrate them from cost data.

Cities publish one row per DRG with its RW and, column by column, whatever else their rules use: level
coefficients (二级医院系数, 等级系数（三甲）), payment standards (支付标准（三级职工）), rates (费率), and flags
(单议病组, 基础病组, 中医优势病组). `load_published_weights` keeps the RW and flags in `groups` and every other
column in a long `attributes` table with the kind, hospital level and insurance type read from its header, so
pricing can ask for "the 三级 employee payment standard of GB29" whatever the city's layout.

Calibration follows docs/domain.md §5: RW_g = trimmed mean cost of group g / trimmed mean cost of all cases.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from dipsim.io.errors import InputError
from dipsim.io.headers import header_key
from dipsim.io.readers import decode_text

# Header aliases of the three core columns, compared with io.headers.header_key.
_CORE = {
    "drg": ("drg编码", "drg", "drg组编码", "分组编码", "drg代码", "病组编码"),
    "drg_name": ("drg名称", "drg组名称", "分组名称", "病组名称"),
    "rw": ("rw", "权重", "相对权重", "初始权重", "基准权重"),
}
# Yes/no columns (是/否, 1/0, √): what they flag for pricing and review.
_FLAGS = {
    "special_review": ("单议病组",),  # 特例单议 group: paid case by case
    "base_group": ("基础病组", "同等费率病组"),  # 基础病组: the same payment at every hospital level
    "tcm_advantage": ("中医优势病组",),  # 中医优势病种 group (TCM weighting)
}
_YES = {"是", "1", "y", "yes", "true", "√", "✓", "t"}
_KINDS = (("coefficient", ("系数",)), ("payment_standard", ("支付标准",)), ("rate", ("费率",)),
          ("threshold", ("临界值",)))
_LEVEL = re.compile(r"(省三甲|三甲|三乙|一级及基层|[一二三]级)")
_INSURANCE = (("employee", "职工"), ("resident", "居民"))


@dataclass
class PublishedWeights:
    """A city's table: `groups` (drg, drg_name, rw, flags) and `attributes` (long: drg, column, kind, level,
    insurance_type, value). RW is NaN where the city publishes none (groups paid by item or reviewed)."""

    source: str
    groups: pd.DataFrame
    attributes: pd.DataFrame

    def rw(self) -> pd.Series:
        return self.groups.set_index("drg")["rw"]


def _match(header: str, aliases: tuple[str, ...]) -> bool:
    return header_key(header) in {header_key(a) for a in aliases}


def _classify(header: str) -> tuple[str, str | None, str | None]:
    """(kind, level, insurance_type) read from a column header such as 支付标准（三级职工）."""
    kind = next((k for k, words in _KINDS if any(w in header for w in words)), "other")
    level = _LEVEL.search(header)
    insurance = next((name for name, word in _INSURANCE if word in header), None)
    return kind, level.group(1) if level else None, insurance


def load_published_weights(path: str | Path, encoding: str | None = None,
                           rw_column: str | None = None) -> PublishedWeights:
    """Read a published weight table (CSV in UTF-8 or GB18030, or .xlsx).

    `rw_column` names the weight column when it is none of RW / 权重 / 初始权重 (e.g. a city's 标准分值).
    A weight cell holding text instead of a number (按项目据实支付, 无) gives RW NaN and the text in `rw_note`."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            raw = pd.read_excel(path, dtype=str, keep_default_na=False)
        else:
            text, _ = decode_text(path.read_bytes(), encoding)
            raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read weight table: {exc}") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    aliases = {**_CORE, "rw": (rw_column,) if rw_column else _CORE["rw"]}
    core = {name: next((c for c in raw.columns if _match(c, names)), None) for name, names in aliases.items()}
    if core["drg"] is None or core["rw"] is None:
        raise InputError(f"{path}: no DRG code or RW column (headers: {', '.join(raw.columns)})")
    groups = pd.DataFrame({"drg": raw[core["drg"]].str.strip().str.upper()})
    groups["drg_name"] = raw[core["drg_name"]].str.strip() if core["drg_name"] else ""
    groups["rw"], groups["rw_note"] = _weights(raw[core["rw"]])
    flag_columns = {}
    for flag, aliases in _FLAGS.items():
        column = next((c for c in raw.columns if _match(c, aliases)), None)
        groups[flag] = raw[column].str.strip().str.lower().isin(_YES) if column else False
        flag_columns[flag] = column
    repeated = groups["drg"].duplicated(keep=False)
    if repeated.any():  # a code listed twice with different content is a defect of the table: say where
        rows = [f"{code} (rows {', '.join(str(i + 1) for i in np.flatnonzero(groups['drg'] == code))})"
                for code in groups.loc[repeated, "drg"].unique()[:10]]
        raise InputError(f"{path}: DRG codes listed more than once: {'; '.join(rows)}")
    used = set(core.values()) | set(flag_columns.values())
    return PublishedWeights(str(path), groups, _attributes(raw, groups["drg"], [c for c in raw.columns
                                                                               if c not in used]))


def _weights(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """RW as float64, and the cell's text where it is not a number (the city's reason for no weight)."""
    cleaned = column.str.strip().str.replace(",", "", regex=False)
    values = pd.to_numeric(cleaned.where(cleaned != ""), errors="coerce").astype("float64")
    return values, cleaned.where(values.isna() & (cleaned != ""), "")


def _attributes(raw: pd.DataFrame, drg: pd.Series, columns: list[str]) -> pd.DataFrame:
    frames = []
    for column in columns:
        kind, level, insurance = _classify(column)
        value = raw[column].str.strip()
        frames.append(pd.DataFrame({"drg": drg, "column": column, "kind": kind, "level": level,
                                    "insurance_type": insurance, "value": value})[value != ""])
    if not frames:
        return pd.DataFrame(columns=["drg", "column", "kind", "level", "insurance_type", "value"])
    return pd.concat(frames, ignore_index=True)


def calibrate_weights(
    drg: np.ndarray | pd.Series,
    cost: np.ndarray | pd.Series,
    trim: Literal["iqr", "percentile", "none"] = "iqr",
    iqr_k: float = 1.5,
    percentiles: tuple[float, float] = (2.5, 97.5),
    min_cases: int = 1,
) -> pd.DataFrame:
    """RW per group from case costs: trimmed group mean / trimmed mean of all cases (docs/domain.md §5).

    Trimming is within each group: `iqr` drops costs outside [Q1 - k*IQR, Q3 + k*IQR] (四分位间距法, k=1.5),
    `percentile` outside the given percentiles. Ungroupable cases (`0000...`) and missing costs are left out.
    Returns drg, cases, cases_used, mean_cost, rw; groups with fewer than `min_cases` used cases get RW NaN.
    """
    frame = pd.DataFrame({"drg": np.asarray(drg, dtype=object), "cost": np.asarray(cost, dtype=float)})
    frame = frame[frame["cost"].notna() & ~frame["drg"].astype(str).str.startswith("0000")]
    grouped = frame.groupby("drg")["cost"]
    if trim == "iqr":
        q1, q3 = grouped.transform("quantile", 0.25), grouped.transform("quantile", 0.75)
        low, high = q1 - iqr_k * (q3 - q1), q3 + iqr_k * (q3 - q1)
    elif trim == "percentile":
        low = grouped.transform("quantile", percentiles[0] / 100)
        high = grouped.transform("quantile", percentiles[1] / 100)
    elif trim == "none":
        low, high = -np.inf, np.inf
    else:
        raise ValueError(f"trim must be 'iqr', 'percentile' or 'none', not {trim!r}")
    kept = frame[(frame["cost"] >= low) & (frame["cost"] <= high)]
    overall_mean = kept["cost"].mean()
    result = pd.DataFrame({
        "cases": frame.groupby("drg").size(),
        "cases_used": kept.groupby("drg").size(),
        "mean_cost": kept.groupby("drg")["cost"].mean(),
    }).fillna({"cases_used": 0}).astype({"cases_used": "int64"})
    result["rw"] = (result["mean_cost"] / overall_mean).where(result["cases_used"] >= min_cases)
    return result.reset_index().rename(columns={"index": "drg"})
