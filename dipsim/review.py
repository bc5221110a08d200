"""Special-case review (特例单议, docs/domain.md §11), step 7 of the payment chain: hospitals apply for their
worst-paid cases, a share is approved and those cases are paid again.

1. **Candidates** (`review.rules`): r above `outlier.extreme_ratio`, a stay over `review.long_stay_days`, invasive
   ventilation from `review.ventilation_hours`, an ungroupable case (no group points), a case of a group with fewer
   than `review.small_group_cases` cases.
2. **Applications**: each hospital applies for its candidates with the biggest losses first (loss = cost - the case's
   points x the budget point value), up to its quota, `review.quota_per_mille` of its cases (at least one).
3. **Approval** at `review.approval_rate`: in expected-value mode each application counts as that share of an
   approval; with Monte Carlo (`simulate`), N seeded draws give intervals.
4. **Payment**: by item (the case is paid its cost, outside the points) or points reset to cost at the budget point
   value; **funding** inside the budget (the pool's other points share less) or from the reserve (added to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dipsim.payment.terms import ReviewTerms
from dipsim.pricing import OUTLIER_CLASSES, OUTLIER_EXTREME

RULES = ("extreme", "long_stay", "ventilation", "ungroupable", "small_group")


@dataclass
class Review:
    """Per case: `applied` (bool), `approval` (expected share approved, 0-1); per hospital: a summary table."""

    applied: np.ndarray
    approval: np.ndarray
    hospitals: pd.DataFrame  # hospital_id, candidates, applied, approved, rate, amount (the expected extra paid)
    loss: np.ndarray | None = None  # per case: cost - points x the budget point value


def candidates(terms: ReviewTerms, outlier_code, los_days, ventilation_hours, group_points, group) -> np.ndarray:
    """The cases a hospital may apply for, by `review.rules`; `outlier_code` is the pricing's class per case
    (`pricing.OUTLIER_CLASSES`: extreme when r > `outlier.extreme_ratio` in force on the case's discharge date)."""
    unknown = set(terms.rules) - set(RULES)
    if unknown:
        raise ValueError(f"review.rules: unknown rule(s) {sorted(unknown)}; known: {list(RULES)}")
    n = len(outlier_code)
    out = np.zeros(n, dtype=bool)
    if "extreme" in terms.rules:
        out |= np.asarray(outlier_code) == OUTLIER_CLASSES.index(OUTLIER_EXTREME)
    if "long_stay" in terms.rules and los_days is not None:
        out |= np.nan_to_num(np.asarray(los_days, dtype=float), nan=0.0) > terms.long_stay_days
    if "ventilation" in terms.rules and ventilation_hours is not None:
        out |= np.nan_to_num(np.asarray(ventilation_hours, dtype=float), nan=0.0) >= terms.ventilation_hours
    if "ungroupable" in terms.rules:
        out |= ~(np.nan_to_num(np.asarray(group_points, dtype=float), nan=0.0) > 0)
    if "small_group" in terms.rules and group is not None:
        codes, _ = pd.factorize(np.asarray(group, dtype=object))
        sizes = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, int)
        small = np.zeros(n, dtype=bool)
        small[codes >= 0] = sizes[codes[codes >= 0]] < terms.small_group_cases
        out |= small
    return out


def review_cases(hospital_id, cost, case_points, budget_point_value, candidate, terms: ReviewTerms) -> Review:
    """Applications by quota, biggest loss first, approved in expected value at `review.approval_rate`."""
    hospital_id = np.asarray(hospital_id, dtype=object)
    cost = np.asarray(cost, dtype=float)
    loss = cost - np.asarray(case_points, dtype=float) * np.asarray(budget_point_value, dtype=float)
    rate = terms.approval_rate
    frame = pd.DataFrame({"hospital_id": hospital_id, "loss": loss, "candidate": candidate,
                          "row": np.arange(len(cost))})
    counts = frame.groupby("hospital_id")["row"].size()
    quota = np.maximum((counts * terms.quota_per_mille / 1000).astype(int), 1)
    picks = frame[frame["candidate"] & (frame["loss"] > 0)].sort_values(["hospital_id", "loss", "row"],
                                                                          ascending=[True, False, True])
    picks = picks[picks.groupby("hospital_id").cumcount() < picks["hospital_id"].map(quota)]
    applied = np.zeros(len(cost), dtype=bool)
    applied[picks["row"].to_numpy()] = True
    approval = np.where(applied, rate, 0.0)
    summary = pd.DataFrame({
        "candidates": frame.groupby("hospital_id")["candidate"].sum().astype(int),
        "applied": pd.Series(applied, index=hospital_id).groupby(level=0).sum().astype(int),
        "approved": pd.Series(approval, index=hospital_id).groupby(level=0).sum(),
        "amount": pd.Series(np.where(applied, np.maximum(loss, 0) * rate, 0.0), index=hospital_id)
        .groupby(level=0).sum().round(2)}).reset_index(names="hospital_id")
    summary["rate"] = np.where(summary["applied"] > 0, summary["approved"] / summary["applied"].clip(lower=1),
                               np.nan)
    return Review(applied=applied, approval=approval, hospitals=summary, loss=loss)


def simulate(review: Review, hospital_id, loss=None, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Monte Carlo: `draws` seeded rounds of approving each application with its probability; per hospital the
    mean and the 5% / 95% quantiles of the approved count and amount (the gain of an approved case: its `loss`,
    by default the review's own)."""
    loss = review.loss if loss is None else loss
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(review.applied)
    if len(rows) == 0:
        return pd.DataFrame(columns=["hospital_id", "approved_mean", "approved_p5", "approved_p95", "amount_mean",
                                     "amount_p5", "amount_p95"])
    hospitals = np.asarray(hospital_id, dtype=object)[rows]
    codes, names = pd.factorize(hospitals)
    gain = np.maximum(np.asarray(loss, dtype=float)[rows], 0.0)
    approved = rng.random((draws, len(rows))) < review.approval[rows]
    counts = np.stack([np.bincount(codes, weights=a, minlength=len(names)) for a in approved])
    amounts = np.stack([np.bincount(codes, weights=a * gain, minlength=len(names)) for a in approved])
    q = lambda x, p: np.quantile(x, p, axis=0)  # noqa: E731
    return pd.DataFrame({"hospital_id": names, "approved_mean": counts.mean(axis=0),
                         "approved_p5": q(counts, 0.05), "approved_p95": q(counts, 0.95),
                         "amount_mean": amounts.mean(axis=0).round(2), "amount_p5": q(amounts, 0.05).round(2),
                         "amount_p95": q(amounts, 0.95).round(2)})


@dataclass
class ReviewOutcome:
    """What the review changes, per case: the points after it, the share paid by item (0-1), the expected extra
    paid (yuan); per pool the money funded from the reserve (yuan); and the Review."""

    case_points: np.ndarray
    item_share: np.ndarray
    extra_paid: np.ndarray
    reserve_funding: dict
    review: Review


def apply_review(case_points: np.ndarray, item_share: np.ndarray, outlier_code, group_points, group, los_days,
                 ventilation_hours, frame, terms: ReviewTerms, pool_terms) -> ReviewOutcome:
    """Step 7 of the payment chain, in expected value: candidates, applications by quota (loss at the budget point
    value, `budget.budget_point_values`), approval at the rate, and the approved share of each case paid by item
    (`review.payment = "by_item"`) or its points reset to its cost at the budget point value (`"points"`); funded
    inside the budget, or from the reserve (`review.funding = "reserve"`: added to the pool's available budget)."""
    from dipsim.budget import budget_point_values

    cost = frame.cost
    values = budget_point_values(frame, case_points, pool_terms, item_share)
    v_case = np.array([values[p] for p in frame.pools], dtype=float)[frame.codes]
    candidate = candidates(terms, outlier_code, los_days, ventilation_hours, group_points, group)
    review = review_cases(frame.hospitals[frame.codes], cost, case_points, v_case, candidate, terms)
    a = review.approval
    points = np.asarray(case_points, dtype=float).copy()
    weight = np.asarray(item_share, dtype=float).copy()
    extra_paid = np.maximum(cost - points * v_case, 0.0) * a
    if terms.payment == "by_item":
        points = points * (1 - a)
        weight = np.maximum(weight, a)
    else:  # points reset to cost at the budget point value
        reset = np.where(v_case > 0, cost / np.where(v_case > 0, v_case, 1), points)
        points = points * (1 - a) + reset * a
    funding = {}
    if terms.funding == "reserve":
        funding = pd.Series(extra_paid).groupby(frame.pools[frame.codes]).sum().round(2).to_dict()
    return ReviewOutcome(points, weight, extra_paid, funding, review)
