"""Small hand-made case tables for the DIP and CHS-DRG tests."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from dipsim.schema import CASE_FIELD_BY_NAME

GROUPING_FIELDS = ("diagnoses", "procedures", "sex", "age_years", "age_days", "birth_weight_g", "ventilation_hours",
                   "los_days")


def case_table(rows: list[tuple]) -> pa.Table:
    """rows: (diagnoses, procedures, cost[, discharge year, default 2025])."""
    return pa.table({
        "case_id": [str(i) for i in range(len(rows))],
        "diagnoses": pa.array([r[0] for r in rows], pa.list_(pa.string())),
        "procedures": pa.array([r[1] for r in rows], pa.list_(pa.string())),
        "total_cost": pa.array([r[2] for r in rows], pa.float64()),
        "discharge_date": pa.array([dt.date(r[3] if len(r) > 3 else 2025, 6, 1) for r in rows], pa.date32()),
    })


def grouping_table(cases, case_ids=None) -> pa.Table:
    """Reference-grouper cases (`dipsim.grouping.reference.Case`) as a case table of the schema's types, for the
    kernel (`group_table`); case_id: `case_ids`, else "0", "1", ..."""
    cases = list(cases)
    ids = [str(i) for i in range(len(cases))] if case_ids is None else list(case_ids)
    return pa.table({"case_id": pa.array(ids, pa.string()),
                     **{n: pa.array([getattr(c, n) for c in cases],
                                    CASE_FIELD_BY_NAME[n].type) for n in GROUPING_FIELDS}})
