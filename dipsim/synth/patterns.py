"""The shipped pattern library (real code combinations with their age, LOS, death and cost distributions, see
``dipsim/data/PATTERNS.md``), the MCC/CC severity codes, and the case mix of each kind of hospital."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PATTERNS_FILE = DATA_DIR / "patterns.parquet"
SEVERITY_FILE = DATA_DIR / "severity_codes.parquet"


@dataclass
class Patterns:
    n: int
    weight: np.ndarray  # n_cases
    dx_offsets: np.ndarray
    dx_ids: np.ndarray
    dx_vocab: pa.Array
    px_offsets: np.ndarray
    px_ids: np.ndarray
    px_vocab: pa.Array
    dept_ids: np.ndarray
    dept_vocab: pa.Array
    n_procedures: np.ndarray
    principal: np.ndarray  # principal diagnosis strings (numpy object), for case-mix rules
    male_share: np.ndarray
    age_mean: np.ndarray
    age_sd: np.ndarray
    age_lo: np.ndarray
    age_hi: np.ndarray
    infant: np.ndarray
    newborn: np.ndarray
    age_days_mean: np.ndarray
    age_days_sd: np.ndarray
    bw_mean: np.ndarray
    bw_sd: np.ndarray
    los_mu: np.ndarray
    los_sd: np.ndarray
    death_share: np.ndarray
    cost_mu: np.ndarray
    cost_sd: np.ndarray
    severity_mask: np.ndarray  # bit j: severity code j may be added (absent, not excluded by the principal)
    severity_weight: np.ndarray
    severity_dx_ids: np.ndarray  # id of each severity code in dx_vocab
    severity_codes: list[str]
    los_elasticity: float


@lru_cache(maxsize=1)
def load_patterns() -> Patterns:
    """Load the shipped pattern library (``dipsim/data/patterns.parquet``) into arrays."""
    t = pq.read_table(PATTERNS_FILE)
    meta = json.loads(t.schema.metadata[b"dipsim.patterns"])
    sev = pq.read_table(SEVERITY_FILE).to_pandas()
    if sev["code"].tolist() != meta["severity_codes"]:
        raise ValueError("severity_codes.parquet does not match patterns.parquet; rebuild with tools/build_patterns.py")
    principal = pc.list_element(t["diagnoses"], 0).to_numpy(zero_copy_only=False).astype(str)
    return Patterns(n=t.num_rows, weight=_column(t, "n_cases"), principal=principal, **_code_fields(t, sev),
                    **_person_fields(t, principal),
                    los_mu=_column(t, "los_mu"), los_sd=_column(t, "los_sd"),
                    death_share=_column(t, "death_share"), cost_mu=_column(t, "cost_mu"),
                    cost_sd=_column(t, "cost_sd"), los_elasticity=float(meta["los_cost_elasticity"]))


def _column(t: pa.Table, name: str, dtype=np.float64) -> np.ndarray:
    return t[name].to_numpy().astype(dtype)


def _nullable(t: pa.Table, name: str, default: float) -> np.ndarray:
    return np.nan_to_num(t[name].to_numpy(zero_copy_only=False).astype(np.float64), nan=default)


def _encode_lists(col: pa.ChunkedArray, extra: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """CSR form of a list<string> column: offsets, int32 ids and the vocabulary (``extra`` values appended)."""
    arr = col.combine_chunks()
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values
    if extra:
        values = pa.concat_arrays([values, pa.array(extra, pa.string())])
    enc = pc.dictionary_encode(values)
    ids = enc.indices.to_numpy().astype(np.int32)
    return offsets, ids, enc.dictionary


def _code_fields(t: pa.Table, sev: pd.DataFrame) -> dict:
    """Diagnoses, procedures, department and the severity codes, which share the diagnosis vocabulary."""
    sev_codes = sev["code"].tolist()
    dx_off, dx_ids_all, dx_vocab = _encode_lists(t["diagnoses"], sev_codes)
    n_dx_values = int(dx_off[-1])
    px_off, px_ids, px_vocab = _encode_lists(t["procedures"])
    dept = pc.dictionary_encode(t["department"].combine_chunks())
    return {
        "dx_offsets": dx_off, "dx_ids": dx_ids_all[:n_dx_values], "dx_vocab": dx_vocab,
        "px_offsets": px_off, "px_ids": px_ids, "px_vocab": px_vocab, "n_procedures": np.diff(px_off),
        "dept_ids": dept.indices.to_numpy().astype(np.int32), "dept_vocab": dept.dictionary,
        "severity_mask": t["severity_mask"].to_numpy().astype(np.uint64),
        "severity_weight": sev["frequency"].to_numpy(np.float64) / sev["frequency"].sum(),
        "severity_dx_ids": dx_ids_all[n_dx_values:], "severity_codes": sev_codes,
    }


def _person_fields(t: pa.Table, principal: np.ndarray) -> dict:
    """Sex, age bounds, infant age in days and newborn birth weight."""
    age_min, age_max = _column(t, "age_min", np.int64), _column(t, "age_max", np.int64)
    lo, hi = _age_bounds(age_min, age_max, np.char.startswith(principal, "O"))
    infant = age_max < 1
    days_mean = _nullable(t, "age_days_mean", 180.0)
    newborn = infant & (days_mean <= 28)
    return {
        "male_share": _column(t, "male_share"), "age_mean": _column(t, "age_mean"), "age_sd": _column(t, "age_sd"),
        "age_lo": lo, "age_hi": np.maximum(hi, lo), "infant": infant, "newborn": newborn, "age_days_mean": days_mean,
        "age_days_sd": np.maximum(_nullable(t, "age_days_sd", 0.0), np.where(newborn, 3.0, 30.0)),
        "bw_mean": _nullable(t, "birth_weight_mean", 3200.0),
        "bw_sd": np.maximum(_nullable(t, "birth_weight_sd", 0.0), 300.0),
    }


def _age_bounds(age_min: np.ndarray, age_max: np.ndarray, obstetric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plausible ages around the pattern's observed ones: children stay children, adults adults, and pregnancies
    within child-bearing ages (a few source rows have impossible ages)."""
    lo = np.maximum(age_min - 5, 0)
    hi = np.minimum(age_max + 5, 100)
    lo = np.where(age_min >= 1, np.maximum(lo, 1), lo)
    lo = np.where(age_min >= 18, np.maximum(lo, 18), lo)
    hi = np.where(age_max < 18, np.minimum(hi, 17), hi)
    lo = np.where(obstetric, np.clip(lo, 15, 50), lo)
    hi = np.where(obstetric, np.clip(hi, 15, 50), hi)
    return lo, hi
