"""Numba kernels of a projected year (`dipsim.projection.years`, `dipsim.project.year_grouping`): a year is its base
year's cases taken by rows, and numpy takes each column in several passes (the take, then the growth, the rounding
to the fen, the sign, the date shift), each allocating a million-case array. Each kernel here does one column in one
pass. The same numbers as the numpy they replace, bit for bit (the same float operations in the same order; tested
against it): money to the fen half away from zero as `money.to_fen_array`."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def take_grown(yuan, rows, factor):
    """yuan[rows] x factor to the fen, half away from zero, in yuan: `to_fen_array(yuan[rows] * factor) / 100`."""
    out = np.empty(rows.shape[0], np.float64)
    for i in range(rows.shape[0]):
        x = yuan[rows[i]] * factor
        fen = np.int64(np.floor(np.abs(x) * 100.0 + 0.5))
        out[i] = (-fen if x < 0 else fen) / 100.0
    return out


@njit(cache=True)
def take_scaled_where(values, rows, scaled, factor):
    """values[rows] x factor where scaled (per taken case), else values[rows]."""
    out = np.empty(rows.shape[0], np.float64)
    for i in range(rows.shape[0]):
        out[i] = values[rows[i]] * factor if scaled[i] else values[rows[i]]
    return out


@njit(cache=True)
def take_looked_up(values, rows, table, low, missing):
    """table[values[rows] - low], `missing` where the taken value is `missing` (a day moved on by a table of the
    days' range: `projection.years.shift_days`; -1 without a date)."""
    out = np.empty(rows.shape[0], np.int64)
    for i in range(rows.shape[0]):
        v = values[rows[i]]
        out[i] = missing if v == missing else table[v - low]
    return out


# splitmix64 (Steele, Lea, Flood 2014; the constants of Vigna's public-domain splitmix64.c): a copy's number is
# mixed into its base case's hash so that copies of one case get unrelated ranks (`projection.years.copy_ranks`)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def take_copy_ranks(ranks, rows, copy):
    """`copy_ranks(ranks[rows], copy)`: a base case's rank as it is, its k-th copy's mixed with k (uint64, wrapping
    modulo 2^64 as numpy's)."""
    out = np.empty(rows.shape[0], np.uint64)
    for i in range(rows.shape[0]):
        x = ranks[rows[i]]
        if copy[i] > 0:
            x = x + np.uint64(copy[i]) * GOLDEN
            x = (x ^ (x >> np.uint64(30))) * MIX_1
            x = (x ^ (x >> np.uint64(27))) * MIX_2
            x = x ^ (x >> np.uint64(31))
        out[i] = x
    return out


@njit(cache=True)
def kth_smallest(values, k):
    """The k-th smallest of `values` (0-based: `np.partition(values, k)[k]`), by quickselect (Hoare's partition,
    the median of three as pivot) on a copy. Written out because Numba's own np.partition takes about 12 s to
    compile (a cold start of every new install), this about 1 s."""
    a = values.copy()
    lo, hi = 0, a.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) // 2
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]
    return a[k]


@njit(cache=True, parallel=True)
def lowest_ranks(ranks, bounds, count):
    """Per hospital h, whose cases are bounds[h]:bounds[h + 1] of `ranks`: its count[h] cases with the lowest ranks,
    equal ranks the earlier case first (`projection.years.drifted_by_rank`: the k-th lowest rank found by partition,
    the cases below it, then as many as needed of those equal to it in order)."""
    out = np.zeros(ranks.shape[0], np.bool_)
    for h in prange(count.shape[0]):
        k = count[h]
        if k <= 0:
            continue
        start, end = bounds[h], bounds[h + 1]
        kth = kth_smallest(ranks[start:end], k - 1)
        below = 0
        for i in range(start, end):
            if ranks[i] < kth:
                out[i] = True
                below += 1
        needed = k - below
        for i in range(start, end):
            if needed == 0:
                break
            if ranks[i] == kth:
                out[i] = True
                needed -= 1
    return out
