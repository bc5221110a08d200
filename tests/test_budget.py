"""The settlement point value and hospital payouts, to the fen. Every expected figure is worked out in the test.

Three hospitals with points P = 1,000 / 2,000 / 3,000, costs billed by item C = 15,000 / 18,000 / 20,000 yuan and
patient payments U = 1,000 / 2,000 / 3,000 yuan, unless a test says otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dipsim.budget import SettlementBands, SettlementError, hospital_payment, settle_pool
from dipsim.money import largest_remainder, to_fen

P = [1000, 2000, 3000]
C = [15_000, 18_000, 20_000]
U = [1_000, 2_000, 3_000]
BANDS = SettlementBands(surplus_keep_ratio=1.1, surplus_share_above=0.5, deficit_lower_ratio=0.9,
                        deficit_fund_share=0.5)


def test_without_bands_the_point_value_is_budget_plus_patient_payments_over_points():
    # V = (54,000 + 6,000) / 6,000 = 10 yuan a point; the fund pays 10 P - U
    s = settle_pool(P, C, U, 54_000)
    assert s.point_value == 10.0 and s.status == "balanced"
    assert s.fund_payout_fen.tolist() == [900_000, 1_800_000, 2_700_000]
    assert s.band_adjustment_fen.tolist() == [0, 0, 0]


def test_bands_each_zone_by_hand():
    # Budget 50,000, so payments sum to 56,000. At V = 59/6 (9.8333...): G = 9,833.33 / 19,666.67 / 29,500.
    # H1: q = 0.66 < 0.9: A = G + 0.5 x (15,000 - 13,500) = 10,583.33
    # H2: q = 1.093 <= 1.1: keeps the surplus, A = G = 19,666.67
    # H3: q = 1.475 > 1.1: A = 22,000 + 0.5 x (29,500 - 22,000) = 25,750. Sum 56,000.
    s = settle_pool(P, C, U, 50_000, BANDS)
    assert s.point_value == pytest.approx(59 / 6, rel=1e-12)
    assert s.payment_fen.tolist() == [1_058_333, 1_966_667, 2_575_000]
    assert s.fund_payout_fen.tolist() == [958_333, 1_766_667, 2_275_000]
    assert s.fund_payout_fen.sum() == 5_000_000
    assert s.band_adjustment_fen.tolist() == [1_058_333 - 983_333, 0, 2_575_000 - 2_950_000]


def test_shared_deficit_zone():
    # one hospital, P 1,000, C 10,000, U 0, budget 9,750: at V = 9.5, G = 9,500, q = 0.95 (shared zone),
    # A = 9,500 + 0.5 x 500 = 9,750
    s = settle_pool([1000], [10_000], [0], 9_750, BANDS)
    assert s.point_value == pytest.approx(9.5, rel=1e-12) and s.payment_fen.tolist() == [975_000]


def test_payment_function_is_continuous_at_every_band_ratio():
    c = np.full(6, 10_000.0)
    g = np.array([9_000 - 1e-9, 9_000, 10_000 - 1e-9, 10_000, 11_000, 11_000 + 1e-9])
    a = hospital_payment(g, c, BANDS)
    assert a[1] - a[0] == pytest.approx(0, abs=1e-6) and a[3] - a[2] == pytest.approx(0, abs=1e-6)
    assert a[5] - a[4] == pytest.approx(0, abs=1e-6)
    assert a[1] == 9_500 and a[3] == 10_000 and a[4] == 11_000


def test_the_cap_leaves_money_in_the_fund_and_the_floor_overruns():
    # without bands V would be 10; capped at 9: payouts 9 P - U = 8,000 / 16,000 / 24,000 = 48,000, 6,000 unspent
    s = settle_pool(P, C, U, 54_000, point_value_cap=9.0)
    assert (s.status, s.point_value, s.unspent_fen) == ("capped", 9.0, 600_000)
    assert s.fund_payout_fen.tolist() == [800_000, 1_600_000, 2_400_000]
    # floored at 11: payouts 60,000, 6,000 over the budget
    s = settle_pool(P, C, U, 54_000, point_value_floor=11.0)
    assert (s.status, s.overrun_fen) == ("floored", 600_000)


def test_fen_rounding_is_exact_and_by_largest_remainder():
    # 100.00 yuan over three equal hospitals: 33.34 + 33.33 + 33.33 (the tie goes to the first)
    s = settle_pool([1, 1, 1], [0, 0, 0], [0, 0, 0], 100.00)
    assert s.fund_payout_fen.tolist() == [3_334, 3_333, 3_333]
    # 11.4 + 12.6 + 76.0 fen: floors 11 + 12 + 76 = 99, the missing fen goes to the largest remainder (0.6)
    assert largest_remainder(np.array([0.114, 0.126, 0.76]), 100).tolist() == [11, 13, 76]
    assert to_fen(2.125) == 213 and to_fen(-2.125) == -213 and to_fen(-1.5) == -150  # half away from zero
    with pytest.raises(ValueError, match="cannot round"):
        largest_remainder(np.array([0.5, 0.5]), 500)


def test_infeasible_inputs_are_said_clearly():
    # at V = 0 the hospitals are still paid 0.5 x 10% of their costs (750 + 900 + 1,000 = 2,650) and patients paid
    # 6,000, so the fund's payout cannot go below 2,650 - 6,000 = -3,350: a budget of -4,000 is infeasible
    with pytest.raises(SettlementError, match="even at point value 0"):
        settle_pool(P, C, U, -4_000, BANDS)
    no_surplus = SettlementBands(1.1, 0.0, 0.9, 0.5)
    # payments stop at 1.1 C = 58,300 in all, so the fund can pay at most 52,300
    with pytest.raises(SettlementError, match="cannot be paid out"):
        settle_pool(P, C, U, 60_000, no_surplus)
    s = settle_pool(P, C, U, 60_000, no_surplus, point_value_cap=50.0)
    assert s.status == "capped" and s.fund_payout_fen.sum() == 5_230_000
    with pytest.raises(SettlementError, match="non-negative"):
        settle_pool([-1, 2, 3], C, U, 1_000)


# ---------------------------------------------------------------------------------------------------------------
# Properties on random pools


@st.composite
def pools(draw):
    n = draw(st.integers(1, 12))
    points = draw(st.lists(st.floats(0, 50_000), min_size=n, max_size=n))
    assume(sum(points) > 1)
    cost = draw(st.lists(st.floats(0, 5e6), min_size=n, max_size=n))
    patient = [draw(st.floats(0, 0.3)) * c for c in cost]
    bands = draw(st.one_of(st.none(), st.builds(
        SettlementBands, st.floats(1, 1.5), st.floats(0.05, 1), st.floats(0.5, 1), st.floats(0, 1))))
    budget = round(draw(st.floats(0, 3e7)), 2)
    return np.array(points), np.array(cost), np.array(patient), bands, budget


def _settle(points, cost, patient, bands, budget):
    try:
        return settle_pool(points, cost, patient, budget, bands)
    except SettlementError:
        return None


SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(pools())
def test_payouts_sum_to_the_budget_to_the_fen_and_the_solver_converges(pool):
    points, cost, patient, bands, budget = pool
    s = _settle(*pool)
    if s is None:  # infeasible only when the fund's floor exceeds the budget
        base = hospital_payment(np.zeros_like(points), cost, bands).sum() - patient.sum()
        assert base > budget - 1e-6
        return
    assert s.fund_payout_fen.sum() == to_fen(budget)
    exact = hospital_payment(s.point_value * points, cost, bands).sum() - patient.sum()
    assert exact == pytest.approx(budget, rel=1e-9, abs=1e-6)
    assert np.all(np.abs(s.fund_payout_fen - (hospital_payment(s.point_value * points, cost, bands) - patient) * 100)
                  < 1 + 1e-6)


@SETTINGS
@given(pools(), st.data())
def test_more_points_never_mean_less_money_and_take_it_only_from_the_others(pool, data):
    points, cost, patient, bands, budget = pool
    before = _settle(*pool)
    assume(before is not None)
    h = data.draw(st.integers(0, len(points) - 1))
    raised = points.copy()
    raised[h] *= data.draw(st.floats(1.0, 1.5))  # a higher hospital coefficient on its points
    after = _settle(raised, cost, patient, bands, budget)
    assert after is not None
    # exact (unrounded) amounts: the hospital gains, every other hospital loses or keeps, the total is the budget
    a0 = hospital_payment(before.point_value * points, cost, bands)
    a1 = hospital_payment(after.point_value * raised, cost, bands)
    assert a1[h] >= a0[h] - 1e-6 * max(1, a0[h])
    others = np.arange(len(points)) != h
    assert np.all(a1[others] <= a0[others] + 1e-6 * np.maximum(1, a0[others]))
    assert after.fund_payout_fen.sum() == before.fund_payout_fen.sum()


def test_a_fixed_point_value_rate_mode_shows_what_is_left_or_overrun():
    # DRG rate mode (费率法): V fixed at 9 -> payouts 9 P - U = 48,000 of a 54,000 budget: 6,000 left in the fund
    s = settle_pool(P, C, U, 54_000, point_value_fixed=9.0)
    assert (s.status, s.point_value, s.unspent_fen, s.overrun_fen) == ("fixed", 9.0, 600_000, 0)
    assert s.fund_payout_fen.tolist() == [800_000, 1_600_000, 2_400_000]
    s = settle_pool(P, C, U, 54_000, point_value_fixed=11.0)
    assert (s.unspent_fen, s.overrun_fen) == (0, 600_000)


def test_budget_point_value_from_weighted_history():
    # costs 100 / 110 / 120 million over 10 / 10.5 / 11 million points, weighted 1:2:7:
    # cost (100 + 220 + 840) / 10 = 116; points (10 + 21 + 77) / 10 = 10.8 -> 116 / 10.8
    from dipsim.budget import weighted_budget_point_value

    value = weighted_budget_point_value([100e6, 110e6, 120e6], [10e6, 10.5e6, 11e6])
    assert value == pytest.approx(116 / 10.8)
    assert weighted_budget_point_value([120e6], [11e6]) == pytest.approx(120 / 11)  # one year: its own ratio


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 60), st.integers(1, 4), st.integers(0, 2**31 - 1), st.booleans())
def test_random_regions_settle_every_pool_to_the_fen(n_cases, n_pools, seed, bands_on):
    from decimal import Decimal

    from dipsim.budget import settle
    from dipsim.policy import Policy

    rng = np.random.default_rng(seed)
    hospital = np.array([f"H{i}" for i in rng.integers(0, 8, n_cases)], dtype=object)
    pool = np.array([f"P{i}" for i in rng.integers(0, n_pools, n_cases)], dtype=object)
    points = rng.uniform(0, 2_000, n_cases)
    cost = rng.uniform(100, 50_000, n_cases)
    paid = cost * rng.uniform(0, 0.3, n_cases)
    budgets = {p: round(float(cost[pool == p].sum()) * rng.uniform(0.4, 0.9), 2) for p in set(pool)}
    policy = Policy(values={}).overlay({"budget.total": budgets, "bands.in_effect": bands_on})
    hospitals, pools = settle(hospital, pool, points, cost, paid, policy)
    assert sum(hospitals["cases"].to_pylist()) == n_cases
    for row in pools.to_pylist():
        payouts = [r["fund_payout"] for r in hospitals.to_pylist() if r["pool"] == row["pool"]]
        assert sum(payouts, Decimal(0)) == row["budget_available"] == Decimal(str(budgets[row["pool"]])).quantize(
            Decimal("0.01"))
        for r in hospitals.to_pylist():  # the identities of each row hold exactly
            assert r["payment"] == r["group_payment"] + r["band_adjustment"]
            assert r["fund_payout"] == r["payment"] - r["patient_paid"]
            assert r["clearing"] == r["fund_payout"] - r["prepaid"] - r["deposit"] + r["deposit_released"]
