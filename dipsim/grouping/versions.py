"""CHS-DRG versions side by side: the version in force on each case's discharge date (`--scheme auto`), and the
transition between two versions for one case set (`--compare-schemes`).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.io.errors import InputError
from dipsim.paths import tables_dir


def load_scheme_dates(path: str | Path | None = None) -> list[tuple[dt.date, str]]:
    """(from date, scheme) in date order, from `grouper_tables/scheme_dates.toml` or a city's own file."""
    path = Path(path) if path else tables_dir() / "scheme_dates.toml"
    try:
        versions = tomllib.loads(path.read_text(encoding="utf-8")).get("version", [])
        table = sorted((dt.date.fromisoformat(str(v["from"])), str(v["scheme"])) for v in versions)
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a scheme-dates file ([[version]] scheme = ..., from = YYYY-MM-DD): {exc}")
    if not table:
        raise InputError(f"{path}: no [[version]]")
    return table


def scheme_of_each(discharge_date, dates: list[tuple[dt.date, str]]) -> np.ndarray:
    """The scheme in force on each discharge date: the newest where the date is missing, the oldest before the
    first date."""
    days = pc.cast(pc.cast(discharge_date, pa.date32()), pa.int32()).to_numpy(zero_copy_only=False)
    starts = np.array([(d - dt.date(1970, 1, 1)).days for d, _ in dates], dtype=np.float64)
    names = np.array([s for _, s in dates], dtype=object)
    at = np.searchsorted(starts, np.nan_to_num(np.asarray(days, dtype=np.float64), nan=np.inf), side="right") - 1
    return names[np.maximum(at, 0)]


def group_by_date(cases: pa.Table, dates: list[tuple[dt.date, str]], compiled: dict | None = None) -> pa.Table:
    """Group each case under the version in force on its discharge date; the output of `group_table` in the cases'
    order with a `scheme` column. `compiled`: scheme name -> compiled scheme (loaded once by the caller)."""
    from dipsim.grouping.drg import group_table

    if "discharge_date" not in cases.column_names:
        raise InputError("--scheme auto needs the cases' discharge dates (出院日期)")
    which = scheme_of_each(cases["discharge_date"], dates)
    parts, order = [], []
    for name in dict.fromkeys(s for _, s in dates):
        rows = np.flatnonzero(which == name)
        if len(rows):
            grouped = group_table(cases.take(pa.array(rows)), (compiled or {}).get(name, name))
            parts.append(grouped.append_column("scheme", pa.array([name] * len(rows), pa.string())))
            order.append(rows)
    table = pa.concat_tables(parts)
    return table.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))


def transition(first: pa.Table, second: pa.Table) -> pd.DataFrame:
    """For one case set grouped under two versions: each (first DRG, second DRG) pair with its case count and its
    share of the first DRG's cases, most frequent first within each first DRG."""
    frame = pd.DataFrame({"from_drg": first["drg"].to_numpy(zero_copy_only=False),
                          "to_drg": second["drg"].to_numpy(zero_copy_only=False)})
    table = frame.value_counts(["from_drg", "to_drg"]).rename("cases").reset_index()
    table["share_of_from"] = (table["cases"] / table.groupby("from_drg")["cases"].transform("sum")).round(4)
    return table.sort_values(["from_drg", "cases", "to_drg"], ascending=[True, False, True], ignore_index=True)
