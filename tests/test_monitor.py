"""Fund monitoring by hand: budget execution against the pro-rata budget, warning levels, projections."""

from __future__ import annotations

import pytest

from dipsim.monitor import fund_monitor
from dipsim.policy import Policy

JAN, FEB, MAR = 2025 * 12 + 1, 2025 * 12 + 2, 2025 * 12 + 3


def test_execution_levels_and_projections_by_hand():
    policy = Policy(values={}).overlay({"budget.total": {"A": 1200.0, "B": 1200.0}})
    # pool A: claims 100, 110, 140 in three months (two stays each), 10 points a month; pool B: 106 in January
    pool = ["A"] * 6 + ["B"]
    month = [JAN, JAN, FEB, FEB, MAR, MAR, JAN]
    claims = [50, 50, 55, 55, 70, 70, 106]
    table = fund_monitor(pool, month, claims, [5.0] * 6 + [10.0], [0.0] * 7, policy).set_index(["pool", "month"])
    a = table.loc["A"]
    assert a["budget_to_date"].tolist() == [100.0, 200.0, 300.0]
    assert a["claims_to_date"].tolist() == [100.0, 210.0, 350.0]
    assert a["execution"].tolist() == [1.0, 1.05, pytest.approx(350 / 300, abs=1e-4)]
    assert a["level"].tolist() == ["正常", "正常", "警报"]  # 5% ahead is still normal; 16.7% is an alert
    assert table.loc[("B", "2025-01"), "level"] == "预警"  # 6% ahead
    assert a.loc["2025-01", "projected_point_value"] == pytest.approx(1200 / 120)  # 10 points a month x 12
    assert a.loc["2025-03", "projected_balance"] == pytest.approx(1200 - 350 * 4)  # overspent by 200 at year end
    assert a.loc["2025-03", "months_of_capacity"] == pytest.approx((1200 - 350) / (350 / 3), abs=0.01)


def test_seasonality_sets_the_budget_to_date_and_a_pool_without_a_budget_stops():
    policy = Policy(values={}).overlay({"budget.total": {"A": 1300.0}})
    season = {m: (2.0 if m == 1 else 1.0) for m in range(1, 13)}  # January is twice a normal month: 2 / 13
    table = fund_monitor(["A"], [JAN], [200.0], [1.0], [0.0], policy, seasonality=season)
    assert table.loc[0, "budget_to_date"] == pytest.approx(200.0) and table.loc[0, "execution"] == 1.0
    with pytest.raises(ValueError, match="no budget for the pool 'Z'"):
        fund_monitor(["Z"], [JAN], [1.0], [1.0], [0.0], policy)
