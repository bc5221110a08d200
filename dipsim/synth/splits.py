"""Split stays (分解住院): one stay billed as two, the second admitted 1-10 days after the first's discharge.

Pairs are drawn among the new stays of the split-stay hospitals; the two LOS add up to about the original and cost
1.05-1.15x the original in total, which is what makes the behaviour pay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dipsim.synth.parameters import (
    SPLIT_COST_FACTOR,
    SPLIT_FIRST_SHARE,
    SPLIT_GAP_DAYS,
    SPLIT_SHARE,
)
from dipsim.synth.region import Region


@dataclass
class SplitPairs:
    first: np.ndarray  # row of the first stay of each pair
    second: np.ndarray  # row of the second stay, same hospital

    def __len__(self) -> int:
        return len(self.first)


def draw_split_pairs(rng: np.random.Generator, region: Region, fresh: np.ndarray, hospital: np.ndarray) -> SplitPairs:
    """Pair up consecutive ``fresh`` rows (of these hospitals) in each split-stay hospital."""
    if not len(region.split):
        return SplitPairs(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    in_split = np.isin(hospital, region.split)
    by_hospital = np.argsort(hospital[in_split], kind="stable")
    order = fresh[in_split][by_hospital]
    h_sorted = hospital[in_split][by_hospital]
    rank = np.arange(len(order)) - np.searchsorted(h_sorted, h_sorted, side="left")
    counts = np.bincount(h_sorted, minlength=len(region.table))
    # A stay split in two uses two rows: pairs = share x stays, rows = stays + pairs.
    n_pairs = rng.binomial(counts // 2, min(1.0, 2 * SPLIT_SHARE / (1 + SPLIT_SHARE)))
    in_pair = rank < 2 * n_pairs[h_sorted]
    return SplitPairs(order[in_pair & (rank % 2 == 0)], order[in_pair & (rank % 2 == 1)])


def split_stay_dates(rng: np.random.Generator, pairs: SplitPairs, los: np.ndarray, discharge: np.ndarray,
                     month_end: int, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """LOS and discharge days with each pair's original stay cut in two around a gap, both within the month."""
    los, discharge = los.copy(), discharge.copy()
    if not len(pairs):
        return los, discharge
    original = los[pairs.first]
    l1 = np.rint(original * rng.uniform(*SPLIT_FIRST_SHARE, len(pairs))).astype(np.int64)
    l2 = np.maximum(original - l1, 1)
    gap = rng.integers(SPLIT_GAP_DAYS[0], SPLIT_GAP_DAYS[1] + 1, len(pairs))
    l2 = np.minimum(l2, n_days - 1 - gap)
    d1 = discharge[pairs.first].astype(np.int64)
    d2 = d1 + gap + l2
    shift = np.maximum(d2 - month_end, 0)
    los[pairs.first], los[pairs.second] = l1, l2
    discharge[pairs.first], discharge[pairs.second] = d1 - shift, d2 - shift
    return los, discharge


def split_stay_costs(rng: np.random.Generator, pairs: SplitPairs, cost_fen: np.ndarray, tcm: np.ndarray,
                     los: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Costs with each pair's original cost, inflated, shared by LOS; the second stay repeats the first's TCM."""
    cost_fen, tcm = cost_fen.copy(), tcm.copy()
    if not len(pairs):
        return cost_fen, tcm
    total = np.rint(cost_fen[pairs.first] * rng.uniform(*SPLIT_COST_FACTOR, len(pairs))).astype(np.int64)
    l1, l2 = los[pairs.first], los[pairs.second]
    c1 = np.rint(total * ((l1 + 1) / (l1 + l2 + 2))).astype(np.int64)
    cost_fen[pairs.first], cost_fen[pairs.second] = c1, total - c1
    tcm[pairs.second] = tcm[pairs.first]
    return cost_fen, tcm
