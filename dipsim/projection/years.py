"""A projected year's cases as index arrays into the base year (`dipsim.project`, issue 20): the chain's case set of
a year is made from the base year's case set taken by rows (each hospital's kept and copied cases, `year_rows`),
its money grown by a factor to the fen, its discharge days moved whole years on; no table of a million copied
strings is made unless something reads it (the supervision screens, a case table: `CaseSet.table`).

Which cases drift follows a seeded number per case (`case_ranks`): the hash of its case id for a base case, that
hash mixed with the copy's number k for its k-th copy (`copy_ranks`), the same number in every year the copy is
made; per hospital the round_half_even(share x n) cases with the lowest numbers drift (`drifted_by_rank`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from dipsim.money import to_fen_array
from dipsim.payment.chain import CaseSet, by_day

# splitmix64 (Steele, Lea, Flood 2014; the constants of Vigna's public-domain splitmix64.c): a copy's number is
# mixed into its base case's hash so that copies of one case get unrelated ranks
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)


def grown(yuan: np.ndarray, factor: float) -> np.ndarray:
    """Amounts x `factor`, to the fen, half away from zero (`money.to_fen_array`, the rounding of every other
    amount)."""
    return to_fen_array(np.asarray(yuan, dtype=np.float64) * factor) / 100


def shift_days(days: np.ndarray, years: int) -> np.ndarray:
    """Days since 1970-01-01 moved `years` whole years on: the same month and day, 29 February to 28 February in a
    year without one (as pandas' DateOffset(years=...) moves a date)."""
    days = np.asarray(days, dtype=np.int64)
    if years == 0:
        return days

    def moved(day: np.ndarray) -> np.ndarray:
        month_start = day.astype("datetime64[D]").astype("datetime64[M]")
        within = day - month_start.astype("datetime64[D]").astype(np.int64)  # 0 on the 1st
        months = month_start.astype(np.int64) + 12 * years
        start = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        length = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - start
        return start + np.minimum(within, length - 1)

    return by_day(days, moved)


def year_case_set(base: CaseSet, rows: np.ndarray, year: int, cost_factor: float,
                  table: Callable[[], pa.Table]) -> CaseSet:
    """Year `year`'s case set: the base case set's cases at `rows`, cost and patient payments x `cost_factor` to
    the fen (`grown`), discharge days moved `year` years on (`shift_days`), the year's table made by `table()`
    when first read. The same arrays as `CaseSet.of(table())` (tested), without making the table."""
    days = None
    if base.discharge_days is not None and year:
        taken = base.discharge_days[rows]
        days = np.where(taken == -1, -1, shift_days(taken, year))  # -1: no discharge date
    cost = paid = None
    if cost_factor != 1.0:
        cost, paid = grown(base.cost[rows], cost_factor), grown(base.patient_paid[rows], cost_factor)
    return base.taken(rows, table, cost, paid, days)


def case_ranks(ids: np.ndarray, seed: int) -> np.ndarray:
    """A number (uint64) per case id, the same for the same (seed, id) in any year and on any machine."""
    key = hashlib.sha256(f"{seed}".encode()).hexdigest()[:16]
    return pd.util.hash_array(np.asarray(ids, dtype=object), hash_key=key, categorize=False)


def copy_ranks(ranks: np.ndarray, copy: np.ndarray) -> np.ndarray:
    """The ranks of a year's cases from their base cases' `ranks` (taken by the year's rows) and their copy
    numbers (0: the base case itself, its rank as it is; k: the k-th copy, its base rank mixed with k by
    splitmix64's finaliser: numbers, no copied id is hashed)."""
    out = np.array(ranks, dtype=np.uint64)
    at = np.flatnonzero(copy > 0)
    if len(at):
        x = out[at] + np.asarray(copy[at], dtype=np.uint64) * GOLDEN  # wraps modulo 2^64
        x = (x ^ (x >> np.uint64(30))) * MIX_1
        x = (x ^ (x >> np.uint64(27))) * MIX_2
        out[at] = x ^ (x >> np.uint64(31))
    return out


def drifted_by_rank(ranks: np.ndarray, hospital_codes: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Per case whether it drifts: per hospital code c the round_half_even(share[c] x n_c) of its n_c cases with
    the lowest ranks (equal ranks: the earlier case first). Each hospital's k-th lowest rank is found by partition
    (not by sorting its cases); the cases below it, and as many as needed of those equal to it, drift."""
    codes = np.asarray(hospital_codes)
    by = np.argsort(codes, kind="stable") if np.any(codes[1:] < codes[:-1]) else None  # a year's are by hospital
    sorted_ranks = ranks if by is None else ranks[by]
    bounds = np.searchsorted(codes if by is None else codes[by], np.arange(len(share) + 1))
    count = np.round(share * np.diff(bounds)).astype(np.int64)
    kth = np.zeros(len(share), np.uint64)  # no case is below 0, none is needed at it
    for code in np.flatnonzero(count):
        k = count[code]
        kth[code] = np.partition(sorted_ranks[bounds[code]:bounds[code + 1]], k - 1)[k - 1]
    case_kth = kth[codes]
    out = ranks < case_kth
    tied = np.flatnonzero((ranks == case_kth) & (count[codes] > 0))
    if len(tied):  # as many as still needed of the cases at the k-th rank, the earlier first
        needed = count - np.bincount(codes[out], minlength=len(share))
        tied_codes = codes[tied]
        order = np.argsort(tied_codes, kind="stable")
        starts = np.searchsorted(tied_codes[order], tied_codes[order])
        out[tied[order][np.arange(len(order)) - starts < needed[tied_codes[order]]]] = True
    return out


def drift_order(ranks: np.ndarray, hospital_codes: np.ndarray, hospitals: int) -> tuple[np.ndarray, np.ndarray]:
    """The cases by hospital code, then rank, then position (a stable sort), and each code's bounds in that order:
    what `drifted_in` takes each hospital's first cases from."""
    order = np.lexsort((ranks, hospital_codes))
    return order, np.searchsorted(hospital_codes[order], np.arange(hospitals + 1))


def drifted_in(ordered: tuple[np.ndarray, np.ndarray], share: np.ndarray) -> np.ndarray:
    """`drifted_by_rank` on the cases' `drift_order`: per hospital code its first round_half_even(share x n)."""
    order, bounds = ordered
    out = np.zeros(len(order), bool)
    for code in np.flatnonzero(share > 0):
        k = int(np.round(share[code] * (bounds[code + 1] - bounds[code])))
        out[order[bounds[code]:bounds[code] + k]] = True
    return out


@dataclass
class DriftRanks:
    """A year's cases' drift ranks (`copy_ranks` under a seed) and hospital codes. A year drifted once (a draw's
    own year) is selected by partition (`drifted_by_rank`); a year drifted again (kept in `project`'s cache for the
    next draw) is sorted once (`drift_order`), then each draw takes each hospital's first cases. The same cases."""

    seed: int
    ranks: np.ndarray
    hospital_codes: np.ndarray
    uses: int = 0
    order: tuple[np.ndarray, np.ndarray] | None = None

    def drifted(self, share: np.ndarray) -> np.ndarray:
        self.uses += 1
        if self.uses == 1:
            return drifted_by_rank(self.ranks, self.hospital_codes, share)
        if self.order is None:
            self.order = drift_order(self.ranks, self.hospital_codes, len(share))
        return drifted_in(self.order, share)
