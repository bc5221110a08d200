"""Diagnosis and procedure list columns built from the pattern library's CSR arrays, with added codes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def build_code_lists(offsets: np.ndarray, ids: np.ndarray, vocab: pa.Array, pidx: np.ndarray,
                     added: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> pa.Array:
    """list<string> column: each row the pattern's codes (by pattern index) plus up to two added code ids.

    ``added`` = (rows, first code id, second code id or -1), rows ascending.
    """
    lens = offsets[pidx + 1] - offsets[pidx]
    new_lens = lens.copy()
    if added is not None:
        rows, code1, code2 = added
        new_lens[rows] += 1 + (code2 >= 0)
    out_off = np.zeros(len(pidx) + 1, dtype=np.int64)
    np.cumsum(new_lens, out=out_off[1:])
    within = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    src = np.repeat(offsets[pidx], lens) + within
    if added is None:
        out_ids = ids[src]
    else:
        out_ids = np.empty(int(out_off[-1]), dtype=np.int32)
        out_ids[np.repeat(out_off[:-1], lens) + within] = ids[src]
        end = out_off[rows] + lens[rows]
        out_ids[end] = code1
        two = code2 >= 0
        out_ids[end[two] + 1] = code2[two]
    values = vocab.take(pa.array(out_ids))
    return pa.ListArray.from_arrays(pa.array(out_off.astype(np.int32)), values)
