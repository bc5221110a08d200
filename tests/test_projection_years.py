"""A projected year's cases as index arrays into the base year (`dipsim.projection.years`, issue 20): the same arrays
as the year's table read by `CaseSet.of`, the table made only when read, dates moved by whole years, the drift ranks
of copies. Expected values are worked by hand (dates, ranks picked) or come from the year's table made as before
(`year_table`, then `CaseSet.of`), or from a plain-Python splitmix64."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from dipsim.payment.chain import CaseSet, months_of_days, run_chain
from dipsim.policy import Policy
from dipsim.project import YearCases, project, projection_of, volume_orders, year_grouping, year_rows, year_table
from dipsim.projection.years import DriftRanks, case_ranks, copy_ranks, drifted_by_rank, shift_days, year_case_set
from tests.test_project import region as region  # a fixture (module scope)

EPOCH = dt.date(1970, 1, 1)


def days(*dates: dt.date) -> np.ndarray:
    return np.array([(d - EPOCH).days for d in dates], np.int64)


def test_days_move_by_whole_years_29_february_to_28_february():
    """2024-02-29 + 1 year: 2025 has no 29 February -> 2025-02-28; + 4 years: 2028-02-29. 2025-03-01 -> 2026-03-01,
    2025-12-31 -> 2026-12-31, 2023-01-31 + 1 -> 2024-01-31. Many cases on few days (looked up per day) or a few
    (each computed) give the same."""
    given = days(dt.date(2024, 2, 29), dt.date(2025, 3, 1), dt.date(2025, 12, 31), dt.date(2023, 1, 31))
    one = days(dt.date(2025, 2, 28), dt.date(2026, 3, 1), dt.date(2026, 12, 31), dt.date(2024, 1, 31))
    four = days(dt.date(2028, 2, 29), dt.date(2029, 3, 1), dt.date(2029, 12, 31), dt.date(2027, 1, 31))
    assert shift_days(given, 1).tolist() == one.tolist()
    assert shift_days(given, 4).tolist() == four.tolist()
    many = np.tile(given, 2_000)  # 8,000 cases on a range of 1,066 days: the lookup
    assert shift_days(many, 1).tolist() == np.tile(one, 2_000).tolist()
    assert shift_days(given, 0).tolist() == given.tolist()


def test_months_of_days_by_hand():
    """2024-02-29: 2024 x 12 + 2 = 24,290; 2025-03-01: 24,303; no date (-1): 0."""
    assert months_of_days(np.array([*days(dt.date(2024, 2, 29), dt.date(2025, 3, 1)), -1])).tolist() == [
        24_290, 24_303, 0]
    assert months_of_days(np.tile(days(dt.date(2024, 2, 29), dt.date(2025, 3, 1)), 500)).tolist()[:2] == [
        24_290, 24_303]


def hand_cases() -> pa.Table:
    """Two hospitals, a 29 February discharge, money with fen to round, a missing patient payment and stay."""
    return pa.table({
        "case_id": ["a0", "a1", "a2", "b0", "b1"], "patient_id": ["p0", "p1", None, "q0", "q1"],
        "hospital_id": ["H1", "H1", "H1", "H2", "H2"], "pool": ["P"] * 5, "insurance_type": ["employee"] * 5,
        "total_cost": [1_000.05, 333.33, 10.01, 2_500.0, 0.03],
        "patient_paid": pa.array([100.05, None, 1.0, 250.0, 0.01], pa.float64()),
        "fund_paid": [900.0, 333.33, 9.01, 2_250.0, 0.02],
        "admission_date": pa.array([dt.date(2024, 2, 20), dt.date(2024, 3, 1), dt.date(2024, 12, 1),
                                    dt.date(2024, 6, 1), dt.date(2024, 7, 1)], pa.date32()),
        "discharge_date": pa.array([dt.date(2024, 2, 29), dt.date(2024, 3, 10), dt.date(2024, 12, 31),
                                    dt.date(2024, 6, 5), dt.date(2024, 7, 2)], pa.date32()),
        "los_days": pa.array([9.0, 9.0, 30.0, None, 1.0], pa.float64()),
        "ventilation_hours": [0.0, 12.0, 0.0, 0.0, 0.0]})


def assert_same_case_sets(got: CaseSet, expected: CaseSet) -> None:
    assert len(got) == len(expected)
    assert (got.hospitals.ids[got.hospitals.codes] == expected.hospitals.ids[expected.hospitals.codes]).all()
    assert got.pool.tolist() == expected.pool.tolist() and got.pools == expected.pools
    for name in ("cost", "patient_paid", "discharge_days", "month", "los_days", "ventilation_hours"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert got.last_day == expected.last_day
    assert got.cost.flags.writeable
    assert_same_frames(got.frame, expected.frame)


def assert_same_frames(got, expected) -> None:
    """The same (pool, hospital) rows with the same cases, cost and patient payments, and the same patient
    payments in each month (the month columns may come in another order)."""
    assert got.pools.tolist() == expected.pools.tolist() and got.hospitals.tolist() == expected.hospitals.tolist()
    np.testing.assert_array_equal(got.cases, expected.cases)
    np.testing.assert_array_equal(got.row_cost, expected.row_cost)  # the same sums, bit for bit
    np.testing.assert_array_equal(got.row_patient_paid, expected.row_patient_paid)

    def by_month(frame) -> dict:
        months = frame.month_values if frame.month_values is not None else [None]
        return {m: frame.monthly_patient_paid[:, i] for i, m in enumerate(months)}

    got_months, expected_months = by_month(got), by_month(expected)
    assert set(expected_months) <= set(got_months)
    for month, column in got_months.items():  # a month column without a case stays, empty
        np.testing.assert_array_equal(column, expected_months.get(month, np.zeros(len(column))))


@pytest.mark.parametrize("year, factor", [(1, 1.0), (1, 1.037), (4, 1.5), (3, 0.97)])
def test_a_year_case_set_reads_as_its_table(year, factor):
    """H1's 3 cases, a1 copied twice and a0 once; H2 only b1: the case set taken from the base arrays equals
    `CaseSet.of` of the year's table (the copies' ids, the dates moved, the money grown to the fen); the table is
    made only when read, once."""
    cases = hand_cases()
    base = CaseSet.of(cases)
    made = YearCases(rows=np.array([0, 1, 2, 1, 0, 1, 4]), copy=np.array([0, 0, 0, 1, 1, 2, 0]))
    made_tables = []

    def table():
        made_tables.append(year_table(cases, made, year, factor))
        return made_tables[-1]

    taken = year_case_set(base, made.rows, year, factor, table)
    expected = CaseSet.of(year_table(cases, made, year, factor))
    assert not made_tables
    assert_same_case_sets(taken, expected)
    assert taken.table.equals(expected.table) and taken.table is taken.table and len(made_tables) == 1
    if year == 1 and factor == 1.037:  # by hand: 1,000.05 x 1.037 = 1,037.05185 -> 1,037.05; 333.33 -> 345.66321
        assert taken.cost[:2].tolist() == [1_037.05, 345.66]  # -> 345.66; a missing payment: 0
        assert taken.patient_paid[:2].tolist() == [103.75, 0.0]  # 100.05 x 1.037 = 103.75185
        assert taken.discharge_days[0] == (dt.date(2025, 2, 28) - EPOCH).days


def test_a_year_without_one_hospitals_cases_has_its_frame_made_afresh():
    """H2 keeps no case: the frame taken from the base's would keep H2's row (0 cases), so the year's frame is made
    from its own cases (H1's row only), as `settle` would make it."""
    cases = hand_cases()
    base = CaseSet.of(cases)
    made = YearCases(rows=np.array([0, 1, 2, 2]), copy=np.array([0, 0, 0, 1]))
    taken = year_case_set(base, made.rows, 2, 1.1, lambda: year_table(cases, made, 2, 1.1))
    assert taken.frame.hospitals.tolist() == ["H1"] and taken.frame.cases.tolist() == [4]
    assert_same_case_sets(taken, CaseSet.of(year_table(cases, made, 2, 1.1)))


def test_the_regions_year_case_set_reads_as_its_table(region):
    _, cases, *_ = region
    base = CaseSet.of(cases)
    spec = projection_of({"projection": {"years": 2, "seed": 9}, "demand": {"volume_growth": 0.3}})
    made = year_rows(base.hospitals.codes, base.hospitals.ids, {}, spec, 2)
    assert made.copy.max() == 1 and (made.copy == 1).sum() == len(made.rows) - len(cases)
    assert_same_case_sets(year_case_set(base, made.rows, 2, 1.0609, lambda: None),
                          CaseSet.of(year_table(cases, made, 2, 1.0609)))


def test_volume_orders_given_or_made_give_the_same_year():
    cases = hand_cases()
    base = CaseSet.of(cases)
    spec = projection_of({"projection": {"years": 1, "seed": 3}, "demand": {"volume_growth": 0.7}})
    codes, ids = base.hospitals.codes, base.hospitals.ids
    made = year_rows(codes, ids, {}, spec, 1)
    again = year_rows(codes, ids, {}, spec, 1, volume_orders(codes, ids, 3))
    assert made.rows.tolist() == again.rows.tolist() and made.copy.tolist() == again.copy.tolist()


def splitmix64(x: int) -> int:
    """Vigna's splitmix64 finaliser, in plain Python."""
    mask = (1 << 64) - 1
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & mask
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & mask
    return x ^ (x >> 31)


def test_a_copys_rank_mixes_its_base_rank_with_its_copy_number():
    """Copy 0 (the base case): its id's hash as it is (the old rank of the base cases); copy k: splitmix64 of the
    base rank + k x 0x9E3779B97F4A7C15 (mod 2^64), the same in every year."""
    ranks = case_ranks(np.array(["a0", "a1"], object), 7)
    assert ranks.tolist() == case_ranks(np.array(["a0", "a1"], object), 7).tolist()
    assert ranks.tolist() != case_ranks(np.array(["a0", "a1"], object), 8).tolist()
    got = copy_ranks(ranks[[0, 1, 0, 0]], np.array([0, 0, 1, 2]))
    golden, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    a0 = int(ranks[0])
    assert got.tolist() == [a0, int(ranks[1]), splitmix64((a0 + golden) & mask), splitmix64((a0 + 2 * golden) & mask)]


def test_the_drifted_cases_are_each_hospitals_lowest_ranks_ties_to_the_earlier():
    """H0: ranks 50 10 30 20 40, share 0.4: round(2.0) = 2 cases, ranks 10 and 20 (cases 1 and 3). H1: ranks 7 7 3,
    share 0.5: round_half_even(1.5) = 2, rank 3 (case 7) and of the two 7s the earlier (case 5). H2: share 0.1 of 3
    cases: round(0.3) = 0."""
    ranks = np.array([50, 10, 30, 20, 40, 7, 7, 3, 1, 2, 3], np.uint64)
    codes = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    share = np.array([0.4, 0.5, 0.1])
    expected = [False, True, False, True, False, True, False, True, False, False, False]
    assert drifted_by_rank(ranks, codes, share).tolist() == expected
    order = np.array([8, 5, 0, 9, 1, 6, 2, 10, 3, 7, 4])  # the same cases, not by hospital
    assert drifted_by_rank(ranks[order], codes[order], share).tolist() == [expected[i] for i in order]
    assert not drifted_by_rank(ranks, codes, np.zeros(3)).any()
    assert drifted_by_rank(ranks, codes, np.array([1.0, 1.0, 1.0])).all()


def test_the_base_years_drift_is_the_old_hash_order():
    """Without copies a year's drifted cases are those first in the seeded hash of their ids (ties: the earlier),
    as before copies were ranked by numbers: sorted here in plain Python."""
    ids = np.array([f"c{i}" for i in range(40)], object)
    codes = np.repeat([0, 1], 20)
    ranks = case_ranks(ids, 11)
    got = drifted_by_rank(copy_ranks(ranks, np.zeros(40, np.int64)), codes, np.array([0.25, 0.1]))
    first = sorted(range(20), key=lambda i: (int(ranks[i]), i))[:5] + \
        sorted(range(20, 40), key=lambda i: (int(ranks[i]), i))[:2]
    assert sorted(np.flatnonzero(got).tolist()) == sorted(first)


def test_a_year_table_is_made_only_for_the_screens(region, monkeypatch):
    """Volume +20% and cost +3%: without supervision cuts no year's table is made (the chain reads the arrays); with
    them (the screens read the cases) each projected year's table is made once, and year 1 is paid as the chain pays
    the year's table made as before (`CaseSet.of(year_table(...))`)."""
    import dipsim.project as projection

    _, cases, hospitals, grouped, budgets = region
    made_tables = []

    def counted(*args):
        made_tables.append(args[2])
        return year_table(*args)

    monkeypatch.setattr(projection, "year_table", counted)
    spec = projection_of({"projection": {"years": 2, "seed": 4},
                          "demand": {"volume_growth": 0.2, "cost_growth": 0.03}})
    plain = Policy(values={}).overlay({"payment.mode": "dip", "budget.total": budgets})
    project(cases, hospitals, plain, spec, grouped)
    assert made_tables == []
    cuts = plain.overlay({"supervision.low_standard_factor": 0.5, "supervision.split_readmission_factor": 0.5})
    results = project(cases, hospitals, cuts, spec, grouped)
    assert made_tables == [1, 2]
    base = CaseSet.of(cases)
    made = year_rows(base.hospitals.codes, base.hospitals.ids, {}, spec, 1)
    grouping = year_grouping(grouped, made.rows, np.zeros(len(made.rows), bool), 1.0, 1.03)
    run = run_chain(CaseSet.of(year_table(cases, made, 1, 1.03)), grouping, hospitals, cuts)
    assert (run.columns["supervision_factor"] < 1).any()  # the screens cut some cases
    paid = run.hospitals.to_pandas().astype({"fund_payout": float}).groupby("hospital_id")["fund_payout"].sum()
    paid = paid.round(2)
    year1 = results.hospitals[results.hospitals["year"] == 1].set_index("hospital_id")["fund_payout"]
    assert year1.to_dict() == paid.to_dict()


def test_the_drifted_cases_with_many_ties_match_a_plain_sort():
    """500 cases of 5 hospitals in no order, ranks 0-19 (many equal): per hospital the round(share x n) cases first
    by (rank, position), sorted in plain Python."""
    rng = np.random.default_rng(3)
    ranks = rng.integers(0, 20, 500).astype(np.uint64)
    codes = rng.integers(0, 5, 500)
    share = np.array([0.0, 0.13, 0.5, 0.77, 1.0])
    expected = set()
    for code in range(5):
        own = [i for i in range(500) if codes[i] == code]
        expected |= set(sorted(own, key=lambda i: (int(ranks[i]), i))[:round(share[code] * len(own))])
    assert set(np.flatnonzero(drifted_by_rank(ranks, codes, share)).tolist()) == expected
    again = DriftRanks(0, ranks, codes)  # a cached year: selected by partition once, then from its sorted order
    assert [set(np.flatnonzero(again.drifted(share)).tolist()) for _ in range(3)] == [expected] * 3
    assert again.order is not None
