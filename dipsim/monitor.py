"""Fund monitoring (基金运行监测与预警): each pool's budget execution month by month against its share of the year's
budget, a warning level, the projected year-end point value and fund balance, and months of payment capacity.

For a pool with annual budget B and the months 1..m of the year seen:

* budget to date = B x share(m): m / 12 pro rata, or last year's seasonality (the share of the year's cost in each
  month, as `dipsim nightly --seasonality` reads it);
* claims = what the fund owes for the month's stays: 统筹基金支付 (`fund_paid`) where the cases have it, else
  total cost - patient paid; execution = claims to date / budget to date;
* level: 正常 (normal), 预警 (warning) when execution exceeds `monitor.warning_excess`, 警报 (alert) beyond
  `monitor.alert_excess`;
* projected point value = (B x scale x (1 - reserve) + U / share - I / share) / (P / share): the budget point value
  of the year if the rest of it is like the months seen (U patient paid, I costs paid by item, P case points);
* projected balance = B - claims to date / share; months of capacity = (B - claims to date) / (claims to date / m).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVELS = ("正常", "预警", "警报")  # normal, warning, alert


def budget_share(months: list[int], seasonality: dict[int, float] | None) -> float:
    """The share of the year's budget for the months seen (calendar months 1-12, or year x 12 + month): m / 12, or
    the sum of last year's monthly shares."""
    calendar = sorted({(m - 1) % 12 + 1 for m in months})
    if not seasonality:
        return len(calendar) / 12
    total = sum(seasonality.values())
    return sum(seasonality.get(m, 0.0) for m in calendar) / total


def fund_monitor(pool, month, claims, points, patient_paid, policy, item_cost=None,
                 seasonality: dict[int, float] | None = None, on=None) -> pd.DataFrame:
    """One row per pool and month seen (month = year x 12 + calendar month; 0, no discharge date, is left out):
    pool, month (YYYY-MM), cases, claims, claims_to_date, budget_to_date, execution, level (with the execution
    lines warning_at and alert_at), projected_point_value, projected_balance, months_of_capacity. Budgets, scale
    and reserve come from the policy (`budget.*`)."""
    month = np.asarray(month, dtype=np.int64)
    frame = pd.DataFrame({"pool": np.asarray(pool, dtype=object), "month": month,
                          "claims": np.asarray(claims, dtype=np.float64),
                          "points": np.asarray(points, dtype=np.float64),
                          "patient_paid": np.asarray(patient_paid, dtype=np.float64),
                          "item": np.zeros(len(month)) if item_cost is None else np.asarray(item_cost, np.float64)})
    frame = frame[frame["month"] > 0]
    monthly = frame.groupby(["pool", "month"], sort=True).agg(
        cases=("claims", "size"), claims=("claims", "sum"), points=("points", "sum"),
        patient_paid=("patient_paid", "sum"), item=("item", "sum")).reset_index()
    from dipsim.payment.terms import PoolTerms

    terms = PoolTerms.of(policy, on)  # the available budget as settlement computes it (`PoolTerms.available`)
    budgets = terms.budget_total
    warning, alert = policy.get("monitor.warning_excess", on), policy.get("monitor.alert_excess", on)
    rows = []
    for pool_id, part in monthly.groupby("pool", sort=True):
        budget = budgets.get(pool_id)
        if budget is None:
            raise ValueError(f"budget.total has no budget for the pool {pool_id!r}")
        seen: list[int] = []
        to_date = part[["claims", "points", "patient_paid", "item"]].cumsum()
        for (_, r), (_, c) in zip(part.iterrows(), to_date.iterrows()):
            seen.append(int(r["month"]))
            share = budget_share(seen, seasonality)
            budget_to_date = budget * share
            execution = c["claims"] / budget_to_date if budget_to_date > 0 else np.nan
            level = LEVELS[2] if execution > 1 + alert else LEVELS[1] if execution > 1 + warning else LEVELS[0]
            projected_points = c["points"] / share
            value = ((terms.available(pool_id) + (c["patient_paid"] - c["item"]) / share) / projected_points
                     if projected_points > 0 else np.nan)
            per_month = c["claims"] / len(seen)
            year, calendar = divmod(int(r["month"]) - 1, 12)
            rows.append({"pool": pool_id, "month": f"{year}-{calendar + 1:02d}", "cases": int(r["cases"]),
                         "claims": round(r["claims"], 2), "claims_to_date": round(c["claims"], 2),
                         "budget_to_date": round(budget_to_date, 2), "execution": round(execution, 4),
                         "level": level, "warning_at": 1 + warning, "alert_at": 1 + alert,
                         "projected_point_value": round(value, 6),
                         "projected_balance": round(budget - c["claims"] / share, 2),
                         "months_of_capacity": round((budget - c["claims"]) / per_month, 2) if per_month > 0
                         else np.nan})
    return pd.DataFrame(rows)
