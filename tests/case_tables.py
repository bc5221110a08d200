"""Small hand-made case tables for the DIP tests."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa


def case_table(rows: list[tuple]) -> pa.Table:
    """rows: (diagnoses, procedures, cost[, discharge year, default 2025])."""
    return pa.table({
        "case_id": [str(i) for i in range(len(rows))],
        "diagnoses": pa.array([r[0] for r in rows], pa.list_(pa.string())),
        "procedures": pa.array([r[1] for r in rows], pa.list_(pa.string())),
        "total_cost": pa.array([r[2] for r in rows], pa.float64()),
        "discharge_date": pa.array([dt.date(r[3] if len(r) > 3 else 2025, 6, 1) for r in rows], pa.date32()),
    })
