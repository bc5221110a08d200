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

from dipsim.payment.chain import CaseSet, by_day
from dipsim.projection import kernels


def grown(yuan: np.ndarray, factor: float, rows: np.ndarray | None = None) -> np.ndarray:
    """Amounts (taken by `rows`; None: all) x `factor`, to the fen, half away from zero, as `money.to_fen_array`
    rounds every other amount (`kernels.take_grown`: the take, growth and rounding in one pass)."""
    yuan = np.asarray(yuan, dtype=np.float64)
    rows = np.arange(len(yuan), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    return kernels.take_grown(yuan, rows, factor)


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
    rows = np.asarray(rows, dtype=np.int64)
    days = None
    if base.discharge_days is not None and year:
        dated = base.discharge_days[base.discharge_days != -1]  # -1: no discharge date
        low = int(dated.min()) if len(dated) else 0
        moved = shift_days(np.arange(low, int(dated.max()) + 1 if len(dated) else 1), year)
        days = kernels.take_looked_up(base.discharge_days, rows, moved, low, -1)
    cost = paid = None
    if cost_factor != 1.0:
        cost, paid = grown(base.cost, cost_factor, rows), grown(base.patient_paid, cost_factor, rows)
    return base.taken(rows, table, cost, paid, days, years_on=year)


def case_ranks(ids: np.ndarray, seed: int) -> np.ndarray:
    """A number (uint64) per case id, the same for the same (seed, id) in any year and on any machine."""
    key = hashlib.sha256(f"{seed}".encode()).hexdigest()[:16]
    return pd.util.hash_array(np.asarray(ids, dtype=object), hash_key=key, categorize=False)


def copy_ranks(ranks: np.ndarray, copy: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """The ranks of a year's cases from their base cases' `ranks` (taken by the year's `rows`; None: `ranks` are
    already the year's) and their copy numbers (0: the base case itself, its rank as it is; k: the k-th copy, its
    base rank mixed with k by splitmix64's finaliser, `kernels.take_copy_ranks`: numbers, no copied id is hashed)."""
    rows = np.arange(len(copy), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    return kernels.take_copy_ranks(np.asarray(ranks, np.uint64), rows, np.asarray(copy, np.int64))


def drifted_by_rank(ranks: np.ndarray, hospital_codes: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Per case whether it drifts: per hospital code c the round_half_even(share[c] x n_c) of its n_c cases with
    the lowest ranks (equal ranks: the earlier case first). Each hospital's k-th lowest rank is found by partition
    (not by sorting its cases); the cases below it, and as many as needed of those equal to it, drift
    (`kernels.lowest_ranks`, the hospitals in parallel)."""
    codes = np.asarray(hospital_codes)
    by = np.argsort(codes, kind="stable") if np.any(codes[1:] < codes[:-1]) else None  # a year's are by hospital
    bounds = np.searchsorted(codes if by is None else codes[by], np.arange(len(share) + 1))
    count = np.round(share * np.diff(bounds)).astype(np.int64)
    if by is None:
        return kernels.lowest_ranks(np.asarray(ranks, np.uint64), bounds, count)
    out = np.zeros(len(codes), bool)
    out[by] = kernels.lowest_ranks(np.asarray(ranks, np.uint64)[by], bounds, count)
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
