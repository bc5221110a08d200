"""The year's catalogue re-weighted on the last three years, 1:2:7 (issue 20; `dipsim.projection.reweight`). Every
expected value is worked by hand in the test's docstring."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

import dipsim.project
from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.payment.chain import CaseSet
from dipsim.policy import Policy
from dipsim.project import project, projection_of
from dipsim.projection.reweight import CatalogueRule, Reweighting
from tests.test_project import region as region  # a fixture (module scope): 3,000 cases, the builder's catalogue

HOSPITALS = pa.table({"hospital_id": ["H1", "H2"], "level": ["三级甲等", "二级甲等"], "type": ["综合", "综合"],
                      "coefficient_override": [1.0, 1.0]})  # coefficient 1: a case's points are its group's
POINTS = {"A": 50.0, "B": 200.0}
STANDARD = {"A": 500.0, "B": 2_000.0}


def grouping(groups, points=None, codes=False) -> GroupedCases:
    """Cases of `groups` at the catalogue's POINTS (or `points`) and STANDARD costs; `codes`: as grouping makes it
    (an index per case into the distinct groups)."""
    points = {**POINTS, **(points or {})}
    n = len(groups)
    names = sorted(set(groups))
    return GroupedCases(group=np.array(groups, dtype=object), group_points=np.array([points[g] for g in groups]),
                        standard_cost=np.array([STANDARD.get(g, 800.0) for g in groups]),
                        tcm_group_case=np.zeros(n, bool), tcm_treated=np.zeros(n, bool),
                        codes=(np.array([names.index(g) for g in groups], np.int32), pa.array(names)) if codes
                        else None)


def costs(values) -> np.ndarray:
    return np.array(values, np.float64)


# ------------------------------------------------------------------ the formula by hand


def test_three_years_weighted_1_2_7_by_hand():
    """Catalogue A 50 points, B 200. Settled cases (cost by group):
      year 0: A 400, 600 (mean 500); B 2,000, 2,000 (mean 2,000); every case's mean M0 = 5,000 / 4 = 1,250
      year 1: A 550, 550 (mean 550); no B;                          M1 = 550
      year 2: A 600 (mean 600); B 2,400 x 3 (mean 2,400);           M2 = 7,800 / 4 = 1,950
    The scale S keeps the base year's points of the whole: 2 x 50 + 2 x 200 = 500 points over
    2 x 500 / 1,250 + 2 x 2,000 / 1,250 = 4 -> S = 125.
    Year 1 (the base year alone): points 500 / 1,250 x 125 = 50 and 2,000 / 1,250 x 125 = 200: the catalogue back.
    Year 2 (years 0, 1 at 2:7, sum 9): m_A = (2 x 500 + 7 x 550) / 9 = 4,850 / 9 = 538.888..; B has no case in year
    1, so m_B = 2,000 (its weight 2 alone); M = (2 x 1,250 + 7 x 550) / 9 = 6,350 / 9;
    points A = 4,850 / 6,350 x 125 = 95.47244.. -> 95.4724, B = 18,000 / 6,350 x 125 = 354.33070.. -> 354.3307.
    Year 3 (years 0, 1, 2 at 1:2:7, sum 10): m_A = (500 + 2 x 550 + 7 x 600) / 10 = 580;
    m_B = (1 x 2,000 + 7 x 2,400) / (1 + 7) = 2,350 (renormalised over the years B has);
    M = (1,250 + 2 x 550 + 7 x 1,950) / 10 = 1,600; points A = 580 / 1,600 x 125 = 45.3125,
    B = 2,350 / 1,600 x 125 = 183.59375 -> 183.5938 (4 decimals, the builder's). Standard costs: m_A, m_B.
    A group C first seen in year 3 (no case in the window) keeps its points (80) and standard cost (800)."""
    state = Reweighting(CatalogueRule(rule="reweight"))
    state.settled(0, grouping(["A", "A", "B", "B"]), costs([400, 600, 2_000, 2_000]))
    assert state.scale == pytest.approx(125.0, abs=1e-12)
    state.settled(1, grouping(["A", "A"]), costs([550, 550]))
    state.settled(2, grouping(["A", "B", "B", "B"], codes=True), costs([600, 2_400, 2_400, 2_400]))

    one = state.grouping(1, grouping(["A", "B"]))
    assert list(one.group_points) == [50.0, 200.0] and list(one.standard_cost) == [500.0, 2_000.0]
    two = state.grouping(2, grouping(["A", "B"]))
    assert list(two.group_points) == [95.4724, 354.3307]
    assert two.standard_cost == pytest.approx([4_850 / 9, 2_000.0], abs=1e-9)
    three = state.grouping(3, grouping(["B", "A", "C"], points={"C": 80.0}, codes=True))
    assert list(three.group_points) == [183.5938, 45.3125, 80.0]
    assert three.standard_cost == pytest.approx([2_350.0, 580.0, 800.0], abs=1e-9)


def test_a_drifted_case_keeps_its_multiple_and_the_ungroupable_are_left_alone():
    """Year 1 under the base year alone: A's points 50 -> 50 x 1.2 = 60 for a drifted case (points 60 in the year's
    grouping, the catalogue's 50 x 1.2) stay 60; the ungroupable group "" (0 points) counts in no mean and keeps 0.
    With base A at 60 points instead of its cost share: S = (2 x 60 + 2 x 200) / 4 = 130, A = 0.4 x 130 = 52,
    B = 1.6 x 130 = 208; a drifted A case 60 x 1.2 = 72 -> 72 x 52 / 60 = 62.4."""
    state = Reweighting(CatalogueRule(rule="reweight"))
    state.settled(0, grouping(["A", "A", "B", "B", ""], points={"A": 60.0, "": 0.0}),
                  costs([400, 600, 2_000, 2_000, 99_999]))
    year = grouping(["A", "A", "B", ""], points={"A": 60.0, "": 0.0})
    year = GroupedCases(group=year.group, group_points=year.group_points * np.array([1, 1.2, 1, 1]),
                        standard_cost=year.standard_cost, tcm_group_case=year.tcm_group_case,
                        tcm_treated=year.tcm_treated)
    out = state.grouping(1, year)
    assert out.group_points == pytest.approx([52.0, 62.4, 208.0, 0.0], abs=1e-9)
    assert out.standard_cost[3] == 800.0  # the ungroupable's as given


# ------------------------------------------------------------------ through the projection


def two_groups():
    """One pool P-employee, budget 10,000 (the policy's). H1: case a1 in group A (cost 400); H2: b1 in A (600) and
    b2 in B (2,000). Catalogue A 50 points (standard cost 500), B 200 (2,000). Patients paid nothing."""
    cases = pa.table({"case_id": ["a1", "b1", "b2"], "hospital_id": ["H1", "H2", "H2"], "pool": ["P"] * 3,
                      "insurance_type": ["employee"] * 3, "total_cost": [400.0, 600.0, 2_000.0],
                      "patient_paid": [0.0] * 3,
                      "discharge_date": pa.array([dt.date(2025, 3, 1), dt.date(2025, 6, 1), dt.date(2025, 12, 1)],
                                                 pa.date32())})
    return cases, grouping(["A", "A", "B"], codes=True)


def policy(budget=10_000.0) -> Policy:
    return Policy(values={}).overlay({"budget.total": {"P-employee": budget}})


def by(results, year):
    h = results.hospitals
    return {r["hospital_id"]: r for r in h[h["year"] == year].to_dict("records")}


def spec(years, catalogue=None, **tables):
    return projection_of({"projection": {"years": years, "seed": 3}, **tables,
                          **({"catalogue": catalogue} if catalogue is not None else {})})


def test_two_years_money_by_hand():
    """H1 +100% cases a year (its one A case copied, cost 400); no cost growth. Base year: A 400, 600 (mean 500),
    B 2,000; M0 = 3,000 / 3 = 1,000; S = (50 + 50 + 200) / (0.5 + 0.5 + 2) = 100.
    Year 1 (base year alone): A 50, B 200 (as frozen). H1 2 x 50 = 100 points, H2 50 + 200 = 250; V = 10,000 / 350;
    H1 285,714.29 fen, H2 714,285.71: floors 285,714 + 714,285 = 999,999, the fen to the larger remainder (H2)
    -> H1 2,857.14, H2 7,142.86.
    Year 1 settled: A 400, 400, 600 (mean 1,400 / 3), B 2,000; M1 = 3,400 / 4 = 850.
    Year 2 (years 0, 1 at 2:7): m_A = (2 x 500 + 7 x 1,400 / 3) / 9 = 12,800 / 27; m_B = 2,000;
    M = (2 x 1,000 + 7 x 850) / 9 = 7,950 / 9; A = 12,800 / 27 x 9 / 7,950 x 100 = 53.66876.. -> 53.6688,
    B = 18,000 / 7,950 x 100 = 226.41509.. -> 226.4151. Year 2's cases: H1 4 x A (4 x 53.6688 = 214.6752),
    H2 A + B = 280.0839; total 494.7591; H1 10,000 x 214.6752 / 494.7591 = 433,898.44 fen, H2 566,101.56:
    floors 999,999, the fen to H2 (.56) -> H1 4,338.98, H2 5,661.02 (frozen: 200 / 450 -> 4,444.44 and 5,555.56):
    H1's cheap A cases lower A's weight relative to B. Standard cost of A 12,800 / 27 = 474.07: every case
    normal (400 / 474.07 = 0.84, 600 / 474.07 = 1.27)."""
    cases, grouped = two_groups()
    demand = {"demand": {"volume_growth_by_hospital": {"H1": 1.0}}}
    results = project(cases, HOSPITALS, policy(), spec(2, {"rule": "reweight"}, **demand), grouped)
    one, two = by(results, 1), by(results, 2)
    assert (one["H1"]["fund_payout"], one["H2"]["fund_payout"]) == (2_857.14, 7_142.86)
    assert (two["H1"]["cases"], two["H2"]["cases"]) == (4, 2)
    assert two["H1"]["points"] == pytest.approx(214.6752, abs=1e-9)
    assert two["H2"]["points"] == pytest.approx(280.0839, abs=1e-9)
    assert (two["H1"]["fund_payout"], two["H2"]["fund_payout"]) == (4_338.98, 5_661.02)
    frozen = by(project(cases, HOSPITALS, policy(), spec(2, **demand), grouped), 2)
    assert (frozen["H1"]["fund_payout"], frozen["H2"]["fund_payout"]) == (4_444.44, 5_555.56)


def test_zero_growth_every_year_is_the_base_year_to_the_fen():
    """No growth, rule reweight: each window holds the base year's cases again, so m_g and M are the base year's
    (500, 2,000; 1,000) and the points 0.5 x 100 = 50 and 2 x 100 = 200: the catalogue back, every year, every fen.
    With from_year 2 the same."""
    cases, grouped = two_groups()
    base = project(cases, HOSPITALS, policy(), spec(4), grouped)
    for catalogue in ({"rule": "reweight"}, {"rule": "reweight", "from_year": 2, "weights": [1, 2, 7]}):
        results = project(cases, HOSPITALS, policy(), spec(4, catalogue), grouped)
        assert results.hospitals.drop(columns="year").equals(base.hospitals.drop(columns="year"))
        money = results.hospitals[["year", "hospital_id", "points", "payment", "fund_payout"]]
        for year in range(1, 5):
            same = money[money["year"] == year].drop(columns="year").reset_index(drop=True)
            assert same.equals(money[money["year"] == 0].drop(columns="year").reset_index(drop=True))
        assert results.years["point_value"].tolist() == [base.years["point_value"][0]] * 5


def test_zero_growth_with_the_builders_catalogue_of_the_base_year_gives_it_back_to_the_fen(region):
    """The catalogue `dipsim catalog build` made from the base year's 3,000 cases (trimmed, points m_g / M x 1000
    rounded to 4 decimals): re-weighting the unchanged years gives back every case's points and standard cost, and
    every hospital's money to the fen. The scale S comes out 1000 to 4 decimals (the noise of the catalogue's
    rounding, about 1e-9 relative, is below the points' precision)."""
    _, cases, hospitals, grouped, budgets = region
    region_policy = Policy(values={}).overlay({"payment.mode": "dip", "budget.total": budgets})
    state = Reweighting(CatalogueRule(rule="reweight"))
    state.settled(0, grouped, CaseSet.of(cases).cost)
    assert state.scale == 1000.0
    again = state.grouping(1, grouped)
    assert np.array_equal(again.group_points, grouped.group_points)
    assert np.array_equal(again.standard_cost, grouped.standard_cost, equal_nan=True)
    results = project(cases, hospitals, region_policy, spec(3, {"rule": "reweight"}), grouped)
    h = results.hospitals
    base = h[h["year"] == 0].drop(columns="year").reset_index(drop=True)
    for year in (1, 2, 3):
        assert h[h["year"] == year].drop(columns="year").reset_index(drop=True).equals(base)
    assert results.years["point_value"].nunique() == len(budgets)


def test_zero_growth_with_a_catalogue_off_its_costs_is_a_fixed_point_from_year_one():
    """A at 65 points, not its cost share (the base year's means: A 500, B 2,000, M 1,000; 0.5 and 2 x M):
    S = (65 + 65 + 200) / (0.5 + 0.5 + 2) = 110; year 1: A = 0.5 x 110 = 55, B = 2 x 110 = 220 (the base year's
    points of the whole kept: 55 + 55 + 220 = 330); years 2..3 the same window again: equal to year 1 to the fen.
    H1's cmi (its one A case) 65 in the base year, 55 after; the point value 10,000 / 330 every year, the money
    moves from H1 to H2: year 0 H1 65 / 330 of 10,000 = 196,969.70 fen (H2 803,030.30: the fen left to H1, .70)
    -> 1,969.70; year 1 55 / 330 -> 166,666.67 fen (H2 833,333.33: the fen to H1) -> 1,666.67."""
    cases, grouped = two_groups()
    grouped = grouping(["A", "A", "B"], points={"A": 65.0}, codes=True)
    results = project(cases, HOSPITALS, policy(), spec(3, {"rule": "reweight"}), grouped)
    h = results.hospitals
    assert h.loc[h["hospital_id"] == "H1", "cmi"].tolist() == [65.0, 55.0, 55.0, 55.0]
    assert h.loc[h["hospital_id"] == "H1", "fund_payout"].tolist() == [1_969.70] + [1_666.67] * 3
    one = h[h["year"] == 1].drop(columns="year").reset_index(drop=True)
    for year in (2, 3):
        assert h[h["year"] == year].drop(columns="year").reset_index(drop=True).equals(one)
    assert results.years["point_value"].tolist() == pytest.approx([10_000 / 330] * 4, abs=1e-9)  # 9 decimals


def test_cost_growth_alone_keeps_the_points_and_the_standard_costs_lag(monkeypatch):
    """Costs x 1.1 a year: a1 400 -> 440, 484, 532.40; b1 600 -> 660, 726, 798.60; b2 2,000 -> 2,200, 2,420, 2,662.
    Every year A's mean is half of M (500 / 1,000, 550 / 1,100, 605 / 1,210), so A = 0.5 x 100 = 50 and B 200 every
    year. Standard costs (the weighted past means):
      A: year 1 500 (the base year's; frozen would be 550), year 2 (2 x 500 + 7 x 550) / 9 = 4,850 / 9 = 538.89,
         year 3 (500 + 2 x 550 + 7 x 605) / 10 = 583.50 (the year's own mean 665.50: 12.3% below);
      B: 2,000, (2 x 2,000 + 7 x 2,200) / 9 = 19,400 / 9 = 2,155.56, (2,000 + 2 x 2,200 + 7 x 2,420) / 10 = 2,334.
    With from_year 2, year 1 is the frozen one: standard costs x 1.1 (550, 2,200)."""
    seen = []
    chain = dipsim.project.run_chain

    def recording(case_set, grouped, *args):
        seen.append((grouped.group_points.copy(), grouped.standard_cost.copy()))
        return chain(case_set, grouped, *args)

    monkeypatch.setattr(dipsim.project, "run_chain", recording)
    cases, grouped = two_groups()
    project(cases, HOSPITALS, policy(), spec(3, {"rule": "reweight"}, demand={"cost_growth": 0.1}), grouped)
    assert [list(points) for points, _ in seen] == [[50.0, 50.0, 200.0]] * 4
    assert seen[1][1] == pytest.approx([500.0, 500.0, 2_000.0], abs=1e-9)
    assert seen[2][1] == pytest.approx([4_850 / 9, 4_850 / 9, 19_400 / 9], abs=1e-9)
    assert seen[3][1] == pytest.approx([583.5, 583.5, 2_334.0], abs=1e-9)
    seen.clear()
    project(cases, HOSPITALS, policy(), spec(3, {"rule": "reweight", "from_year": 2}, demand={"cost_growth": 0.1}),
            grouped)
    assert seen[1][1] == pytest.approx([550.0, 550.0, 2_200.0], abs=1e-9)
    assert seen[2][1] == pytest.approx([4_850 / 9, 4_850 / 9, 19_400 / 9], abs=1e-9)


# ------------------------------------------------------------------ the file


def test_the_catalogue_table_is_checked():
    assert spec(2).catalogue == CatalogueRule()  # frozen by default
    assert spec(2, {"rule": "reweight", "weights": [3, 7], "from_year": 2}).catalogue == CatalogueRule(
        "reweight", (3.0, 7.0), 2)
    bad = {"rule": "recalibrate", "weights": [1, -2, 7], "from_year": 3, "window": 3}
    with pytest.raises(InputError) as err:
        spec(2, bad)
    text = str(err.value)
    assert "4 problem(s)" in text and "'recalibrate'" in text and "[1, -2, 7]" in text
    assert "[catalogue] from_year" in text and "unknown key" in text
    with pytest.raises(InputError, match="sum above 0"):
        spec(2, {"weights": [0, 0]})
    with pytest.raises(InputError, match="must be a table"):
        spec(2, "reweight")


def test_a_file_names_the_line_of_a_wrong_catalogue_key(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[projection]\nyears = 2\n\n[catalogue]\nrule = "reweight"\nweights = [1, 2, "7"]\n',
                    encoding="utf-8")
    with pytest.raises(InputError, match=r"\[catalogue\] weights \(line 6\)"):
        dipsim.project.load_projection(path)


def test_draws_reuse_the_years_statistics_and_get_the_same_answer():
    """`project`'s cache (kept between Monte Carlo draws) keeps each year's statistics by its cases' costs and groups:
    a second projection through it reads them back and settles the same years, to the fen, as one without it."""
    cases, grouped = two_groups()
    years = spec(3, {"rule": "reweight"}, demand={"volume_growth_by_hospital": {"H1": 1.0}, "cost_growth": 0.05})
    alone = project(cases, HOSPITALS, policy(), years, grouped)
    cache: dict = {}
    first = project(cases, HOSPITALS, policy(), years, grouped, cache=cache)
    kept = dict(cache["reweight statistics"])
    again = project(cases, HOSPITALS, policy(), years, grouped, cache=cache)
    assert len(kept) == 4 and set(cache["reweight statistics"]) == set(kept)  # read back, nothing new
    for results in (first, again):
        assert results.hospitals.equals(alone.hospitals) and results.years.equals(alone.years)
    assert by(alone, 3)["H1"]["cmi"] != 50.0  # re-weighted: H1's cheap copies lower A's weight
