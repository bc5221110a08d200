"""Step 8 of the payment chain: per-hospital growth caps, with lower weights for the points above them
(docs/domain.md §12).

The rule (Taiwan's per-hospital global budget, 個別醫院總額, 2025:
中央健康保險署《個別醫院前瞻式預算分區共管試辦計畫》): each hospital has a cap on its points, set from its
volume of a year before; its points within the cap are paid at one value, the points above it in stages at lower
values (0.95, then 0.75 / 0.5 / 0.25 NT$ a point; nothing beyond the fourth stage). Here, hospital h with
reference points R_h (the hospitals table's `reference_points`, usually its settled points of the year before,
上年度结算分值) has the cap C_h = R_h x (1 + g), g = `budget.hospital_cap_growth`. Its points P_h (after
special-case review, step 7) count as

    E_h = sum_k w_k x clip(P_h - b_k C_h, 0, (b_{k+1} - b_k) C_h)        (b_0 = 0, b_{K+1} = infinity)

with the rows [b_k, w_k] of `budget.hospital_cap_tiers` (b_k a multiple of the cap, w_k the weight of a point from
there on). Each of its cases' points are multiplied by the hospital's factor E_h / P_h (the case table's
`cap_factor`), so the case table still sums to the hospital's points, and the pools settle the effective points
(the point value, step 9 on): a point above the cap is paid w_k x the pool's point value.

Per hospital over all its pools: the reference is one number per hospital (a row of the hospitals table), so a
hospital's points in every pool it is paid in are added against it, and the one factor applies to all its cases.
A hospital without a reference (no column, or an empty cell) is not capped: `CapWarning` names it. The cap needs
the hospital's points of the whole period, so it runs where the pools are settled (`chain.settle_pools`), on the
sums of a chunked year as on the cases of an in-memory one.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

REFERENCE_COLUMN = "reference_points"  # the hospitals table's column: a hospital's reference points (>= 0)
SHOWN = 10  # hospitals named in a warning


class CapWarning(UserWarning):
    """A capped policy settles hospitals without a reference: they are not capped."""


def tier_problems(growth: float, tiers) -> list[str]:
    """Why `budget.hospital_cap_growth` and `budget.hospital_cap_tiers` cannot be meant together (a rule of
    `policy.RULES`): tiers must start from 0, ascend, weigh in [0, 1] and not increase; a growth without tiers caps
    nothing."""
    if not tiers:
        return (
            [f"a growth of {growth} without tiers caps nothing (set the tiers, or leave the growth 0)"]
            if growth
            else []
        )
    starts = [float(row[0]) for row in tiers]
    weights = [float(row[1]) for row in tiers]
    problems = []
    if starts[0] != 0:
        problems.append(f"the first row starts from {starts[0]:g}, not 0 (its weight is a point's within the cap)")
    if any(b <= a for a, b in itertools.pairwise(starts)):
        problems.append(f"the froms {starts} do not ascend")
    if any(not 0 <= w <= 1 for w in weights):
        problems.append(f"the weights {weights} are not all in [0, 1]")
    if any(b > a for a, b in itertools.pairwise(weights)):
        problems.append(f"the weights {weights} increase (a point above the cap may not count more than one below)")
    return problems


def effective_points(points: np.ndarray, cap: np.ndarray, tiers) -> np.ndarray:
    """E = sum_k w_k x clip(P - b_k C, 0, (b_{k+1} - b_k) C) per hospital (the module's docstring)."""
    p, c = np.asarray(points, dtype=np.float64), np.asarray(cap, dtype=np.float64)
    starts = np.array([float(row[0]) for row in tiers])
    weights = np.array([float(row[1]) for row in tiers])
    widths = np.append(np.diff(starts), math.inf)
    with np.errstate(invalid="ignore"):  # inf x 0: a hospital with cap 0 has the last tier from its first point
        lengths = np.where(np.isinf(widths)[:, None], math.inf, widths[:, None] * c[None, :])
    inside = np.clip(p[None, :] - starts[:, None] * c[None, :], 0.0, lengths)
    return (weights[:, None] * inside).sum(axis=0)


def hospital_references(hospitals: pa.Table, ids) -> np.ndarray:
    """Per hospital of `ids` its reference points from the hospitals table (nan without one)."""
    ids = np.asarray(ids, dtype=object)
    if REFERENCE_COLUMN not in hospitals.column_names:
        return np.full(len(ids), np.nan)
    known = pc.fill_null(pc.cast(hospitals[REFERENCE_COLUMN], pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    at = pd.Index(hospitals["hospital_id"].to_pylist()).get_indexer(ids)
    return np.where(at >= 0, known[np.maximum(at, 0)], np.nan)


def hospital_factors(row_hospitals, row_points, hospitals: pa.Table, growth: float, tiers) -> np.ndarray:
    """Per (pool, hospital) row its hospital's factor E / P (1 for a hospital without points or without a
    reference), the hospital's points P summed over its rows (all its pools). Warns (`CapWarning`) naming the
    hospitals with points but no reference."""
    code, ids = pd.factorize(np.asarray(row_hospitals, dtype=object))
    points = np.bincount(code, weights=np.asarray(row_points, dtype=np.float64), minlength=len(ids))
    reference = hospital_references(hospitals, ids)
    missing = np.isnan(reference) & (points > 0)
    if missing.any():
        names = sorted(str(h) for h in np.asarray(ids, dtype=object)[missing])
        more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
        warnings.warn(
            f"budget.hospital_cap_tiers is in force but {len(names)} hospital(s) have no {REFERENCE_COLUMN} in the "
            f"hospitals table: not capped ({', '.join(names[:SHOWN])}{more})",
            CapWarning,
            stacklevel=3,
        )
    capped = ~np.isnan(reference) & (points > 0)
    factor = np.ones(len(ids))
    factor[capped] = effective_points(points[capped], reference[capped] * (1.0 + growth), tiers) / points[capped]
    return factor[code]


def settled_points(settlement) -> dict[str, float]:
    """Hospital id -> the points it was paid on (after the cap), summed over its pools: a `RegionSettlement`'s rows,
    unrounded. The reference of the next year in a projection."""
    by = pd.Series(np.asarray(settlement.points, dtype=np.float64)).groupby(
        np.asarray(settlement.frame.hospitals, dtype=object)
    )
    return {str(h): float(v) for h, v in by.sum().items()}


def with_references(hospitals: pa.Table, references: dict[str, float]) -> pa.Table:
    """The hospitals table with `reference_points` set from `references` (hospital id -> points; a hospital not in
    it gets an empty cell)."""
    ids = hospitals["hospital_id"].to_pylist()
    column = pa.array([references.get(str(h)) for h in ids], pa.float64())
    if REFERENCE_COLUMN in hospitals.column_names:
        return hospitals.set_column(hospitals.column_names.index(REFERENCE_COLUMN), REFERENCE_COLUMN, column)
    return hospitals.append_column(REFERENCE_COLUMN, column)


def scaled_references(hospitals: pa.Table, share: float) -> pa.Table:
    """The hospitals table with its `reference_points` (where it has them) x `share`: a year-to-date settlement
    (nightly) caps the points so far against the same share of the year's reference as its budget's."""
    if REFERENCE_COLUMN not in hospitals.column_names or share == 1:
        return hospitals
    at = hospitals.column_names.index(REFERENCE_COLUMN)
    return hospitals.set_column(at, REFERENCE_COLUMN, pc.multiply(pc.cast(hospitals[at], pa.float64()), share))
