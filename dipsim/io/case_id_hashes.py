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


@njit(cache=True)
def _merge_from_the_back(hashes, places, n_old, new_hashes, new_places):
    """Merge the sorted run (new_hashes, new_places) into the sorted run held by the first `n_old` entries of
    (hashes, places), whose arrays have room for both: from the back, so that no entry is overwritten before it is
    moved. Of equal hashes the older run's entries stay first."""
    i = n_old - 1
    j = new_hashes.shape[0] - 1
    k = n_old + j
    while j >= 0:
        if i >= 0 and hashes[i] > new_hashes[j]:
            hashes[k] = hashes[i]
            places[k] = places[i]
            i -= 1
        else:
            hashes[k] = new_hashes[j]
            places[k] = new_places[j]
            j -= 1
        k -= 1


def _place_type(largest: int) -> np.dtype:
    return np.dtype(np.uint32) if largest <= np.iinfo(np.uint32).max else np.dtype(np.uint64)


class HashRuns:
    """Case id hashes, each with a place (a number >= 0 the caller gives: where the id was met), to be looked up by
    hash: 12 bytes an id while places fit in 32 bits (the ids themselves, as Arrow strings with 64-bit rows, took
    about 30). Kept in a few runs sorted by hash, a run no longer than the one after it merged with it (so about
    log2 n runs and each entry merged about log2 n times); the older run's arrays grow in place (realloc) and the
    newer is merged into them from the back, so that a merge needs no more memory than the newer run.

    A hash found is only a candidate: two different ids share one with a chance of about n^2 / 2^65, and the
    caller compares the ids themselves."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes, places), oldest first

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self._runs)

    def add(self, hashes: np.ndarray, places: np.ndarray) -> None:
        """Keep `hashes` (uint64) with their `places`."""
        if not len(hashes):
            return
        places = np.asarray(places)
        places = places.astype(_place_type(int(places.max())), copy=False)
        order = np.argsort(hashes)
        run = (hashes[order], places[order])
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= len(self._runs[-1][0]):
            newer = self._runs.pop()
            older = self._runs.pop()
            self._runs.append(_merged(older, newer))

    def find(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (position in `hashes`, place) whose kept hash is that position's hash, ordered by position and
        place."""
        if not self._runs or not len(hashes):
            return np.zeros(0, np.int64), np.zeros(0, np.uint64)
        order = np.argsort(hashes)  # looked up in hash order: the runs are walked, not jumped about in
        wanted = hashes[order]
        positions, places = [], []
        for run_hashes, run_places in self._runs:
            at = np.searchsorted(run_hashes, wanted)
            hit = np.flatnonzero(at < len(run_hashes))
            hit = hit[run_hashes[at[hit]] == wanted[hit]]
            at = at[hit]
            while len(hit):  # each entry of the hash (nearly always one)
                positions.append(order[hit])
                places.append(run_places[at].astype(np.uint64))
                at = at + 1
                more = at < len(run_hashes)
                hit, at = hit[more], at[more]
                more = run_hashes[at] == wanted[hit]
                hit, at = hit[more], at[more]
        if not positions:
            return np.zeros(0, np.int64), np.zeros(0, np.uint64)
        position, place = np.concatenate(positions), np.concatenate(places)
        by = np.lexsort((place, position))
        return position[by], place[by]


def _merged(older: tuple[np.ndarray, np.ndarray], newer: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Two runs as one, the older's arrays grown in place to hold both (a fresh copy where they cannot be)."""
    hashes, places = older
    n_old = len(hashes)
    kind = np.promote_types(places.dtype, newer[1].dtype)
    if places.dtype != kind:
        places = places.astype(kind)
    new_places = newer[1].astype(kind, copy=False)
    total = n_old + len(newer[0])
    if hashes.base is not None or not hashes.flags.owndata:
        hashes = hashes.copy()
    if places.base is not None or not places.flags.owndata:
        places = places.copy()
    hashes.resize(total, refcheck=False)  # realloc: a large array is remapped, not copied
    places.resize(total, refcheck=False)
    _merge_from_the_back(hashes, places, n_old, newer[0], new_places)
    return hashes, places
