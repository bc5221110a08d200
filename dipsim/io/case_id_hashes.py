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
    moved."""
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


@njit(cache=True)
def _lower_bounds(run, queries, out):
    """For each of the ascending `queries`, the first position of the ascending `run` whose value is not below it
    (`np.searchsorted`, side left), found by galloping on from the previous query's position: about
    log2(len(run) / len(queries)) steps a query, near the last, rather than log2(len(run)) jumps across the run."""
    n = run.shape[0]
    lo = 0
    for i in range(queries.shape[0]):
        x = queries[i]
        hi = lo
        step = 1
        while hi < n and run[hi] < x:  # run[lo - 1] < x <= run[hi]: the answer is in [lo, hi]
            lo = hi + 1
            hi = lo + step
            step *= 2
        if hi > n:
            hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            if run[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        out[i] = lo


def _place_type(largest: int) -> np.dtype:
    return np.dtype(np.uint32) if largest <= np.iinfo(np.uint32).max else np.dtype(np.uint64)


class HashRuns:
    """Case id hashes, each with a place (a number >= 0 the caller gives: where the id was met), to be looked up by
    hash: 12 bytes an id while places fit in 32 bits (the ids themselves, as Arrow strings, with int64 rows, took
    about 30). Entries added go into an open run, sorted by hash, found only once it is sealed (a file's pieces: not
    looked up by the same file). Sealed runs are searched one by one (galloping over each, `_lower_bounds`); past
    `MAX_RUNS`, the two shortest are merged. A merge grows the longer run's arrays in place (realloc: a large array
    is remapped, not copied) and merges the shorter into them from the back, so that it needs no more memory than
    the shorter run: a folder of 12 monthly files of 8M cases never merges and peaks at the ids kept plus a piece.

    A hash found is only a candidate: two different ids share one with a chance of about n^2 / 2^65, and the
    caller compares the ids themselves."""

    MAX_RUNS = 32

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # sealed: (sorted hashes, places)
        self._open: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self._runs) + (len(self._open[0]) if self._open is not None else 0)

    def add(self, hashes: np.ndarray, places: np.ndarray) -> None:
        """Keep `hashes` (uint64) with their `places` in the open run."""
        if not len(hashes):
            return
        places = np.asarray(places)
        places = places.astype(_place_type(int(places.max())), copy=False)
        order = np.argsort(hashes)
        run = (hashes[order], places[order])
        self._open = run if self._open is None else _merged(self._open, run)

    def seal(self) -> None:
        """What was added since the last seal is found from now on."""
        if self._open is not None:
            self._runs.append(self._open)
            self._open = None
        while len(self._runs) > self.MAX_RUNS:
            shortest = sorted(range(len(self._runs)), key=lambda i: len(self._runs[i][0]))[:2]
            a, b = (self._runs[i] for i in shortest)
            for i in sorted(shortest, reverse=True):
                del self._runs[i]
            self._runs.append(_merged(a, b))
            del a, b

    def find(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (position in `hashes`, place) of the sealed entries whose hash is that position's hash, ordered by
        position and then place."""
        if not self._runs or not len(hashes):
            return np.zeros(0, np.int64), np.zeros(0, np.uint64)
        order = np.argsort(hashes)  # looked up in hash order: each run is walked once, not jumped about in
        wanted = hashes[order]
        at = np.empty(len(wanted), np.int64)
        positions, places = [], []
        for run_hashes, run_places in self._runs:
            _lower_bounds(run_hashes, wanted, at)
            hit = np.flatnonzero(at < len(run_hashes))
            hit = hit[run_hashes[at[hit]] == wanted[hit]]
            found = at[hit]
            while len(hit):  # each entry of the hash (nearly always one)
                positions.append(order[hit])
                places.append(run_places[found].astype(np.uint64))
                found = found + 1
                more = found < len(run_hashes)
                hit, found = hit[more], found[more]
                more = run_hashes[found] == wanted[hit]
                hit, found = hit[more], found[more]
        if not positions:
            return np.zeros(0, np.int64), np.zeros(0, np.uint64)
        position, place = np.concatenate(positions), np.concatenate(places)
        by = np.lexsort((place, position))
        return position[by], place[by]


def _merged(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two runs as one: the longer one's arrays grown in place to hold both (copied first if they are not their
    own), the shorter merged into them from the back."""
    (hashes, places), (new_hashes, new_places) = (a, b) if len(a[0]) >= len(b[0]) else (b, a)
    kind = np.promote_types(places.dtype, new_places.dtype)
    if places.dtype != kind or places.base is not None or not places.flags.owndata:
        places = places.astype(kind)
    if hashes.base is not None or not hashes.flags.owndata:
        hashes = hashes.copy()
    n_old = len(hashes)
    total = n_old + len(new_hashes)
    hashes.resize(total, refcheck=False)
    places.resize(total, refcheck=False)
    _merge_from_the_back(hashes, places, n_old, new_hashes, new_places.astype(kind, copy=False))
    return hashes, places
