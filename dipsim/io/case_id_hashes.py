"""64-bit hashes of case ids, so that the nightly job can find a case id repeated across a year of partitions
(cached on earlier nights too) from sorted hash arrays, without holding the ids themselves (`nightly._shared_hashes`).
A Numba kernel over the Arrow string buffers: equal ids, equal hashes; a shared hash is then checked on the ids."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit


@njit(cache=True)
def _fnv1a_mixed(data, offsets, out):
    """64-bit FNV-1a of each string (bytes data[offsets[i]:offsets[i + 1]]), then the splitmix64 finaliser so that
    the high bits are as uniform as the low ones (`nightly._shared_hashes` buckets the hashes by range)."""
    for i in range(out.shape[0]):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
        out[i] = h


def case_id_hashes(ids) -> np.ndarray:
    """A 64-bit hash (uint64) of each case id (non-null strings): equal ids, equal hashes; two different ids share
    one with a chance of about n^2 / 2^65 (1 in 300,000 for 10M cases), which the exact check in
    `nightly._repeated_case_ids` then tells apart."""
    ids = pc.cast(ids, pa.large_string())
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    _, offsets, data = ids.buffers()
    offsets = np.frombuffer(offsets, np.int64)[ids.offset:ids.offset + len(ids) + 1]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    out = np.empty(len(ids), np.uint64)
    _fnv1a_mixed(data, offsets, out)
    return out
