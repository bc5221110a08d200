"""Case ids (running numbers) and pseudonymous patient ids, built as Arrow strings without Python objects."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

CASE_ID_PREFIX = "S"
PATIENT_ID_PREFIX = "P"

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_PAIRS = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1)  # (256, 2)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def patient_hashes(key: np.uint64, first: int, n: int) -> np.ndarray:
    """Pseudonyms of patients ``first .. first + n - 1``: a keyed hash, so ids do not reveal the running number."""
    return _splitmix64(np.arange(first, first + n, dtype=np.uint64) ^ key)


def _fixed_width_strings(chars: np.ndarray) -> pa.Array:
    """(n, w) uint8 ASCII matrix -> Arrow string array of n strings of width w."""
    n, w = chars.shape
    offsets = (np.arange(n + 1, dtype=np.int64) * w).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), n,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars))])


def _prefixed(prefix: str, body: np.ndarray) -> pa.Array:
    n = body.shape[0]
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    return _fixed_width_strings(np.concatenate([np.broadcast_to(head, (n, len(head))), body], axis=1))


def patient_ids(hashes: np.ndarray) -> pa.Array:
    """'P' + 16 lowercase hex digits of a 64-bit pseudonymous hash."""
    b = hashes.astype(">u8").view(np.uint8).reshape(-1, 8)
    return _prefixed(PATIENT_ID_PREFIX, _HEX_PAIRS[b].reshape(-1, 16))


def case_ids(year: int, first: int, n: int, width: int) -> pa.Array:
    """'S' + year + zero-padded running number, e.g. S202500000001."""
    numbers = np.arange(first, first + n, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((numbers[:, None] // powers) % 10 + 48).astype(np.uint8)
    return _prefixed(f"{CASE_ID_PREFIX}{year}", digits)
