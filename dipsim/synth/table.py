"""A month's stays as an Arrow table in CASE_SCHEMA, rows ordered by discharge day then hospital."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dipsim.schema import CASE_SCHEMA
from dipsim.synth.code_lists import build_code_lists
from dipsim.synth.ids import patient_ids
from dipsim.synth.patterns import Patterns
from dipsim.synth.people import INSURANCE_TYPES
from dipsim.synth.region import POOL_CODE, Region


@dataclass
class Claims:
    """One month's final columns, one row per stay in draw order (money in fen)."""

    hospital: np.ndarray
    pattern: np.ndarray
    patient: np.ndarray
    sex: np.ndarray
    age: np.ndarray
    insurance: np.ndarray
    admission: np.ndarray  # day numbers
    discharge: np.ndarray
    los: np.ndarray
    age_days: np.ndarray  # -1: not an infant
    birth_weight: np.ndarray  # -1: not a newborn
    mode: np.ndarray
    ventilation: np.ndarray  # hours, NaN: none
    tcm: np.ndarray
    cost_fen: np.ndarray
    tcm_fen: np.ndarray
    fund_fen: np.ndarray


def row_order(c: Claims) -> tuple[np.ndarray, np.ndarray]:
    """(order, position): rows sorted by discharge day then hospital, and each draw-order row's sorted position."""
    order = np.lexsort((c.hospital, c.discharge))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return order, position


def case_table(p: Patterns, region: Region, c: Claims, order: np.ndarray, ids: pa.Array,
               added: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> pa.Table:
    """The sorted rows in CASE_SCHEMA; ``added`` are the upcoded codes by sorted row (see ``build_code_lists``)."""
    n = len(order)
    s = {name: getattr(c, name)[order] for name in Claims.__dataclass_fields__}
    hospital_ids = pa.array(region.table["hospital_id"].tolist(), pa.string())
    arrays = {
        "case_id": ids,
        "patient_id": patient_ids(s["patient"]),
        "hospital_id": hospital_ids.take(pa.array(s["hospital"])),
        "pool": pa.repeat(POOL_CODE, n),
        "insurance_type": pa.array(list(INSURANCE_TYPES)).take(pa.array(s["insurance"])),
        "admission_date": pa.array(s["admission"], pa.int32()).view(pa.date32()),
        "discharge_date": pa.array(s["discharge"], pa.int32()).view(pa.date32()),
        "los_days": pa.array(s["los"].astype(np.int32)),
        "age_years": pa.array(s["age"].astype(np.int16)),
        "age_days": pa.array(s["age_days"], mask=s["age_days"] < 0),
        "birth_weight_g": pa.array(s["birth_weight"], mask=s["birth_weight"] < 0),
        "sex": pa.array(s["sex"]),
        "discharge_mode": pa.array(s["mode"]),
        "diagnoses": build_code_lists(p.dx_offsets, p.dx_ids, p.dx_vocab, s["pattern"], added),
        "procedures": build_code_lists(p.px_offsets, p.px_ids, p.px_vocab, s["pattern"]),
        "ventilation_hours": pa.array(s["ventilation"], from_pandas=True),
        "total_cost": pa.array(s["cost_fen"] / 100.0),
        "fund_paid": pa.array(s["fund_fen"] / 100.0),
        "patient_paid": pa.array((s["cost_fen"] - s["fund_fen"]) / 100.0),
        "tcm_diagnosis": pa.nulls(n, pa.string()),
        "tcm_cost": pa.array(s["tcm_fen"] / 100.0),
        "tcm_treated": pa.array(s["tcm"]),
        "department": p.dept_vocab.take(pa.array(p.dept_ids[s["pattern"]])),
        "insurer_drg": pa.nulls(n, pa.string()),
    }
    return pa.Table.from_arrays([arrays[f.name] for f in CASE_SCHEMA], schema=CASE_SCHEMA)
