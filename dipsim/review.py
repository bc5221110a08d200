"""Special-case review (特例单议, docs/domain.md §11): hospitals apply for their worst-paid cases, a share is approved and
those cases are paid again.

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

RULES = ("extreme", "long_stay", "ventilation", "ungroupable", "small_group")


@dataclass
class Review:
    """Per case: `applied` (bool), `approval` (expected share approved, 0-1); per hospital: a summary table."""

    applied: np.ndarray
    approval: np.ndarray
    hospitals: pd.DataFrame  # hospital_id, candidates, applied, approved, rate, amount (the expected extra paid)


def candidates(policy, r, los_days, ventilation_hours, group_points, group, on=None) -> np.ndarray:
    rules = [x.strip() for x in policy.get("review.rules", on).split(",") if x.strip()]
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"review.rules: unknown rule(s) {sorted(unknown)}; known: {list(RULES)}")
    n = len(r)
    out = np.zeros(n, dtype=bool)
    if "extreme" in rules:
        out |= np.nan_to_num(r, nan=0.0) > policy.get("outlier.extreme_ratio", on)
    if "long_stay" in rules and los_days is not None:
        out |= np.nan_to_num(np.asarray(los_days, dtype=float), nan=0.0) > policy.get("review.long_stay_days", on)
    if "ventilation" in rules and ventilation_hours is not None:
        hours = np.nan_to_num(np.asarray(ventilation_hours, dtype=float), nan=0.0)
        out |= hours >= policy.get("review.ventilation_hours", on)
    if "ungroupable" in rules:
        out |= ~(np.nan_to_num(np.asarray(group_points, dtype=float), nan=0.0) > 0)
    if "small_group" in rules and group is not None:
        codes, _ = pd.factorize(np.asarray(group, dtype=object))
        sizes = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, int)
        small = np.zeros(n, dtype=bool)
        small[codes >= 0] = sizes[codes[codes >= 0]] < policy.get("review.small_group_cases", on)
        out |= small
    return out


def review_cases(hospital_id, cost, case_points, budget_point_value, candidate, policy, on=None) -> Review:
    """Applications by quota, biggest loss first, approved in expected value at `review.approval_rate`."""
    hospital_id = np.asarray(hospital_id, dtype=object)
    cost = np.asarray(cost, dtype=float)
    loss = cost - np.asarray(case_points, dtype=float) * np.asarray(budget_point_value, dtype=float)
    rate = policy.get("review.approval_rate", on)
    per_mille = policy.get("review.quota_per_mille", on)
    frame = pd.DataFrame({"hospital_id": hospital_id, "loss": loss, "candidate": candidate,
                          "row": np.arange(len(cost))})
    counts = frame.groupby("hospital_id")["row"].size()
    quota = np.maximum((counts * per_mille / 1000).astype(int), 1)
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
    return Review(applied=applied, approval=approval, hospitals=summary)


def simulate(review: Review, hospital_id, loss, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Monte Carlo: `draws` seeded rounds of approving each application with its probability; per hospital the
    mean and the 5% / 95% quantiles of the approved count and amount."""
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


def apply_review(priced: dict, cases, grouped: dict, frame, policy, on=None) -> tuple[np.ndarray, np.ndarray, dict,
                                                                                    Review]:
    """The review on a priced case set (`pricing.case_points`) in expected value: (case points, item weights
    (0-1: the share of a case paid by item), extra budget per pool (reserve funding), Review)."""
    import pyarrow.compute as pc

    from dipsim.budget import budget_point_values

    cost = frame.cost
    values = budget_point_values(frame, priced["case_points"], policy, on, priced.get("paid_by_item"))
    pool_of_case = frame.pools[frame.codes]
    v_case = np.array([values[p] for p in frame.pools], dtype=float)[frame.codes]

    def column(name):
        if name not in cases.column_names:
            return None
        return pc.fill_null(pc.cast(cases[name], "float64"), np.nan).to_numpy(zero_copy_only=False)

    candidate = candidates(policy, priced["r"], column("los_days"), column("ventilation_hours"),
                           grouped["group_points"], grouped.get("group"), on)
    hospital_id = frame.hospitals[frame.codes]
    review = review_cases(hospital_id, cost, priced["case_points"], v_case, candidate, policy, on)
    a = review.approval
    points = priced["case_points"].copy()
    weight = np.asarray(priced.get("paid_by_item", np.zeros(len(cost))), dtype=float)
    extra_paid = np.maximum(cost - points * v_case, 0.0) * a
    if policy.get("review.payment", on) == "by_item":
        points = points * (1 - a)
        weight = np.maximum(weight, a)
    else:  # points reset to cost at the budget point value
        reset = np.where(v_case > 0, cost / np.where(v_case > 0, v_case, 1), points)
        points = points * (1 - a) + reset * a
    extra = {}
    if policy.get("review.funding", on) == "reserve":
        extra = pd.Series(extra_paid).groupby(pool_of_case).sum().round(2).to_dict()
    return points, weight, extra, review
