"""The Numba DIP matching kernel (Numba only; `dipsim.grouping.dip` prepares the arrays and decodes the result).

A case with a new key (neither a core key nor one the build saw) gets the core group of its diagnosis that shares
the most procedures with it (at least one); ties: group mean cost nearest the case's cost (skipped when the cost is
unknown), then the higher points, then the lower group index (the catalogue's order). Mirrors `dip.match_case`, the
plain-Python reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MATCH_NONE, MATCH_EXACT, MATCH_BEST, MATCH_COMPREHENSIVE = 0, 1, 2, 3


@njit(cache=True, inline="always")
def _shared(a, a0, a1, b, b0, b1):
    """How many ids two sorted, distinct slices have in common."""
    n = 0
    while a0 < a1 and b0 < b1:
        if a[a0] < b[b0]:
            a0 += 1
        elif a[a0] > b[b0]:
            b0 += 1
        else:
            n += 1
            a0 += 1
            b0 += 1
    return n


@njit(cache=True, parallel=True)
def match_cases(exact, comprehensive, seen, diagnosis, px, px_offsets, cost,
                diag_offsets, diag_groups, group_px, group_px_offsets, group_mean, group_points,
                out_group, out_match):
    """Per case: the group index (-1 none) and how it was found (MATCH_*). `exact` / `comprehensive`: the index
    of the case's exact core key / comprehensive group (-1 none); `seen`: its key was in the building cases
    under the core threshold (it keeps its comprehensive group, no best match); `diagnosis`: its subcategory's index
    among the core groups' diagnoses (-1 none); `px`: CSR of its procedures' ids (sorted; unknown codes left out)."""
    for i in prange(exact.shape[0]):
        if exact[i] >= 0:
            out_group[i] = exact[i]
            out_match[i] = MATCH_EXACT
            continue
        best = -1
        best_shared = 0
        best_gap = np.inf
        best_points = -np.inf
        d = diagnosis[i]
        if d >= 0 and px_offsets[i + 1] > px_offsets[i] and not seen[i]:
            for k in range(diag_offsets[d], diag_offsets[d + 1]):
                g = diag_groups[k]
                n = _shared(px, px_offsets[i], px_offsets[i + 1], group_px, group_px_offsets[g],
                            group_px_offsets[g + 1])
                if n == 0 or n < best_shared:
                    continue
                gap = 0.0 if np.isnan(cost[i]) else abs(group_mean[g] - cost[i])
                if np.isnan(gap):  # a group without a mean (no case in a weighted year) loses every tie
                    gap = np.inf
                points = group_points[g] if not np.isnan(group_points[g]) else -np.inf
                if n == best_shared:
                    if gap > best_gap:
                        continue
                    if gap == best_gap:
                        if points < best_points:
                            continue
                        if points == best_points and g > best:
                            continue
                best, best_shared, best_gap, best_points = g, n, gap, points
        if best >= 0:
            out_group[i] = best
            out_match[i] = MATCH_BEST
        elif comprehensive[i] >= 0:
            out_group[i] = comprehensive[i]
            out_match[i] = MATCH_COMPREHENSIVE
        else:
            out_group[i] = -1
            out_match[i] = MATCH_NONE
