"""Ground truth for the supervision screens: the exact upcoded cases (高套编码) and split-stay pairs (分解住院)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dipsim.synth.patterns import Patterns
from dipsim.synth.splits import SplitPairs

EMPTY_UPCODED = pa.table({"case_id": pa.array([], pa.string()), "hospital_id": pa.array([], pa.string()),
                          "added_codes": pa.array([], pa.list_(pa.string()))})
EMPTY_SPLITS = pa.table({c: pa.array([], pa.string())
                         for c in ("first_case_id", "second_case_id", "hospital_id", "patient_id")})


def upcoded_cases(p: Patterns, cases: pa.Table, added: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> pa.Table:
    """case_id, hospital_id, added_codes of the upcoded rows of the sorted month ``cases``."""
    if added is None:
        return EMPTY_UPCODED
    rows, code1, code2 = added
    codes = np.stack([code1, code2], axis=1).ravel()
    codes = codes[codes >= 0]
    off = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(1 + (code2 >= 0), out=off[1:])
    at = pa.array(rows)
    return pa.table({"case_id": cases.column("case_id").take(at),
                     "hospital_id": cases.column("hospital_id").take(at),
                     "added_codes": pa.ListArray.from_arrays(pa.array(off), p.dx_vocab.take(pa.array(codes)))})


def split_stays(cases: pa.Table, pairs: SplitPairs, position: np.ndarray) -> pa.Table:
    """first_case_id, second_case_id, hospital_id, patient_id of each pair; ``position`` maps rows to sorted rows."""
    if not len(pairs):
        return EMPTY_SPLITS
    first, second = pa.array(position[pairs.first]), pa.array(position[pairs.second])
    return pa.table({
        "first_case_id": cases.column("case_id").take(first),
        "second_case_id": cases.column("case_id").take(second),
        "hospital_id": cases.column("hospital_id").take(first),
        "patient_id": cases.column("patient_id").take(first),
    })
