"""CHS-DRG versions side by side: the version in force on each case's discharge date (`--scheme auto`), and the
transition between two versions for one case set (`--compare-schemes`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.io.errors import InputError
from dipsim.io.toml_files import read_toml
from dipsim.paths import tables_dir


def load_scheme_dates(path: str | Path | None = None) -> list[tuple[dt.date, str]]:
    """(from date, scheme) in date order, from `grouper_tables/scheme_dates.toml` or a city's own file."""
    path = Path(path) if path else tables_dir() / "scheme_dates.toml"
    versions = read_toml(path, "scheme-dates").get("version", [])
    try:
        table = sorted((dt.date.fromisoformat(str(v["from"])), str(v["scheme"])) for v in versions)
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a scheme-dates file ([[version]] scheme = ..., from = YYYY-MM-DD): "
                         f"{exc}") from exc
    if not table:
        raise InputError(f"{path}: no [[version]]")
    return table


NO_DATE_REASON = "no discharge date: --scheme auto cannot pick the CHS-DRG version"


def scheme_of_each(discharge_date, dates: list[tuple[dt.date, str]]) -> np.ndarray:
    """The scheme in force on each discharge date (the oldest before the first date); None where the date is
    missing: which version applies is not known, and taking the newest would silently price the case under rules
    that may not have been in force."""
    days = pc.cast(pc.cast(discharge_date, pa.date32()), pa.int32()).to_numpy(zero_copy_only=False)
    days = np.asarray(days, dtype=np.float64)
    starts = np.array([(d - dt.date(1970, 1, 1)).days for d, _ in dates], dtype=np.float64)
    names = np.array([s for _, s in dates] + [None], dtype=object)
    at = np.maximum(np.searchsorted(starts, np.nan_to_num(days, nan=0), side="right") - 1, 0)
    return names[np.where(np.isnan(days), len(dates), at)]


def group_by_date(cases: pa.Table, dates: list[tuple[dt.date, str]], compiled: dict | None = None) -> pa.Table:
    """Group each case under the version in force on its discharge date; the output of `group_table` in the cases'
    order with a `scheme` column. `compiled`: scheme name -> compiled scheme (loaded once by the caller).

    A case without a discharge date is not grouped: drg ``0000``, reason `NO_DATE_REASON`, scheme null. Cases none
    of which has a date (the input has no 出院日期 column) are an `InputError`: a fixed --scheme is what fits them.
    """
    from dipsim.grouping.drg import OUTPUT_SCHEMA, group_table

    no_dates = ("discharge_date" not in cases.column_names
                or (cases.num_rows and cases["discharge_date"].null_count == cases.num_rows))
    if no_dates:
        raise InputError("--scheme auto needs discharge dates (出院日期) and the cases have none; choose "
                         + " or ".join(f"--scheme {name}" for name in dict.fromkeys(s for _, s in dates)))
    which = scheme_of_each(cases["discharge_date"], dates)
    parts, order = [], []
    for name in dict.fromkeys(s for _, s in dates):
        rows = np.flatnonzero(which == name)
        if len(rows):
            grouped = group_table(cases.take(pa.array(rows)), (compiled or {}).get(name, name))
            parts.append(grouped.append_column("scheme", pa.array([name] * len(rows), pa.string())))
            order.append(rows)
    schema = OUTPUT_SCHEMA.append(pa.field("scheme", pa.string()))
    undated = np.flatnonzero(pd.isna(which))
    if len(undated):  # ungroupable as the kernel writes it: drg 0000, empty adrg and mdc, and no scheme
        n = len(undated)
        parts.append(pa.table({
            "case_id": pc.cast(cases["case_id"].take(pa.array(undated)), pa.string()), "drg": ["0000"] * n,
            "adrg": [""] * n, "mdc": [""] * n, "cc_level": np.zeros(n, np.int8), "reason": [NO_DATE_REASON] * n,
            "scheme": pa.nulls(n, pa.string())}, schema=schema))
        order.append(undated)
    if not parts:
        return schema.empty_table()
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
