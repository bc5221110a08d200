"""Projections (issue 20, first slice): every year a case set settled by the one payment chain. The expected values
are worked by hand in each test's docstring (a tiny region of two hospitals), or are the base year itself."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.policy import Policy
from dipsim.project import load_projection, project, projection_of

HOSPITALS = pa.table({"hospital_id": ["H1", "H2"], "level": ["三级甲等", "二级甲等"], "type": ["综合", "综合"],
                      "coefficient_override": [1.0, 1.0]})  # coefficient 1 for both: the points are the group's


def tiny(costs=(1_000.0, 1_000.0), n=10):
    """n cases per hospital (H1: a0.., H2: b0..), one pool P-employee, every case group G of 100 points and standard
    cost 1,000, discharged in 2025; H1's cases cost costs[0], H2's costs[1]; patients paid nothing."""
    ids = [f"a{i}" for i in range(n)] + [f"b{i}" for i in range(n)]
    cases = pa.table({"case_id": ids, "hospital_id": ["H1"] * n + ["H2"] * n, "pool": ["P"] * 2 * n,
                      "insurance_type": ["employee"] * 2 * n,
                      "total_cost": [costs[0]] * n + [costs[1]] * n, "patient_paid": [0.0] * 2 * n,
                      "discharge_date": pa.array([dt.date(2025, 1 + i % 12, 10) for i in range(2 * n)], pa.date32())})
    grouped = GroupedCases(group=np.array(["G"] * 2 * n, dtype=object), group_points=np.full(2 * n, 100.0),
                           standard_cost=np.full(2 * n, 1_000.0), tcm_group_case=np.zeros(2 * n, bool),
                           tcm_treated=np.zeros(2 * n, bool))
    return cases, grouped


def policy(budget=10_000.0, **changes) -> Policy:
    return Policy(values={}).overlay({"budget.total": {"P-employee": budget}, **changes})


def by(results, year):
    h = results.hospitals
    return {r["hospital_id"]: r for r in h[h["year"] == year].to_dict("records")}


def pool(results, year):
    y = results.years
    return y[y["year"] == year].to_dict("records")[0]


# ------------------------------------------------------------------ by hand


def test_two_years_by_hand_one_hospital_ten_percent_more_cases():
    """H1 +10% cases a year, H2 unchanged; budget 10,000 (the policy's, rule "policy"); cost +3% a year.
    Year 1: H1 round(10 x 1.1) = 11 cases, 1,100 points; H2 1,000; V = 10,000 / 2,100 = 4.7619047...;
    H1 1,100 V = 5,238.0952 yuan = 523,809.52 fen, H2 476,190.48 fen: floors 523,809 + 476,190 = 999,999, the
    fen left to the larger remainder (H1 .52) -> H1 5,238.10, H2 4,761.90.
    Year 2: H1 round(10 x 1.21) = round(12.1) = 12 cases, 1,200 points; total 2,200; V = 4.545454...; H1 545,454.55
    fen, H2 454,545.45 fen: the fen to H1 -> 5,454.55 and 4,545.45.
    Cost: 1,000 x 1.03 = 1,030.00 a case in year 1, 1,000 x 1.03^2 = 1,060.90 in year 2 (the standard cost too:
    r = 1, normal); H1's cost 11 x 1,030 = 11,330.00 in year 1, 12 x 1,060.90 = 12,730.80 in year 2."""
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 2, "seed": 7},
                          "demand": {"volume_growth_by_hospital": {"H1": 0.10}, "cost_growth": 0.03}})
    results = project(cases, HOSPITALS, policy(), spec, grouped)
    y1, y2 = by(results, 1), by(results, 2)
    assert (y1["H1"]["cases"], y1["H2"]["cases"], y2["H1"]["cases"], y2["H2"]["cases"]) == (11, 10, 12, 10)
    assert (y1["H1"]["fund_payout"], y1["H2"]["fund_payout"]) == (5_238.10, 4_761.90)
    assert (y2["H1"]["fund_payout"], y2["H2"]["fund_payout"]) == (5_454.55, 4_545.45)
    assert pool(results, 1)["point_value"] == pytest.approx(10_000 / 2_100, abs=1e-9)
    assert pool(results, 2)["point_value"] == pytest.approx(10_000 / 2_200, abs=1e-9)
    assert y1["H1"]["cost"] == 11_330.00 and y1["H2"]["cost"] == 10_300.00
    assert y2["H1"]["cost"] == 12_730.80 and y2["H2"]["cost"] == 10_609.00
    assert y1["H1"]["payment_ratio"] == pytest.approx(5_238.10 / 11_330.00, abs=1e-6)
    assert pool(results, 1)["settlement_day"] == dt.date(2026, 12, 10)  # the dates moved one year on


def test_the_copies_are_named_from_their_case_and_grow_year_on_year():
    from dipsim.project import year_rows, year_table

    cases, _ = tiny()
    cases = cases.append_column("patient_id", pa.array([f"p{i}" for i in range(20)]))
    spec = projection_of({"projection": {"years": 2, "seed": 7}, "demand": {"volume_growth_by_hospital": {"H1": 0.1}}})
    codes = np.array([0] * 10 + [1] * 10)
    one = year_table(cases, year_rows(codes, np.array(["H1", "H2"], object), {}, spec, 1), 1, 1.0)
    two = year_table(cases, year_rows(codes, np.array(["H1", "H2"], object), {}, spec, 2), 2, 1.0)
    new1 = [i for i in one["case_id"].to_pylist() if "~" in i]
    new2 = [i for i in two["case_id"].to_pylist() if "~" in i]
    assert len(new1) == 1 and len(new2) == 2 and new1[0].endswith("~y1~1") and new1[0].startswith("a")
    assert new1[0].split("~")[0] == new2[0].split("~")[0]  # the same order every year: year 2 copies year 1's first
    assert len(set(one["case_id"].to_pylist())) == 21
    # a copy is another patient's stay like it (p3~y1~1 for a copy of a3), not a readmission of the same patient
    copy = next(r for r in one.to_pylist() if "~" in r["case_id"])
    assert copy["patient_id"] == "p" + copy["case_id"][1:]


def test_grown_money_keeps_fund_plus_patient_within_the_total():
    """A total of 0.02 split 0.01 / 0.01, grown x 1.5: 0.03 in all, but 0.015 and 0.015 each round (half away from
    zero) to 0.02: the fund's share gives way, 0.01, so fund + patient = total (the validator's rule)."""
    from dipsim.project import YearCases, year_table

    cases = pa.table({"case_id": ["a"], "total_cost": [0.02], "patient_paid": [0.01], "fund_paid": [0.01],
                      "tcm_cost": [0.0]})
    row = year_table(cases, YearCases(rows=np.array([0]), copy=np.array([0])), 1, 1.5).to_pylist()[0]
    assert (row["total_cost"], row["patient_paid"], row["fund_paid"]) == (0.03, 0.02, 0.01)


def test_falling_volume_drops_cases_half_to_even():
    """H2 -25%: 10 x 0.75 = 7.5 -> 8 (half to even); H1 -15%: 8.5 -> 8."""
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 1},
                          "demand": {"volume_growth_by_hospital": {"H1": -0.15, "H2": -0.25}}})
    y1 = by(project(cases, HOSPITALS, policy(), spec, grouped), 1)
    assert (y1["H1"]["cases"], y1["H2"]["cases"]) == (8, 8)


def test_budget_growth_and_the_fund_by_hand():
    """Rule growth 5%: budget 10,500.00 in year 1, 11,025.00 in year 2. H1 +10% as above.
    Year 1: V = 10,500 / 2,100 = 5 exactly: H1 5,500.00, H2 5,000.00.
    Year 2: V = 11,025 / 2,200 = 5.0113636...; H1 1,200 V = 601,363.64 fen, H2 501,136.36: the fen to H1 ->
    6,013.64 and 5,011.36.
    Fund: insured 100 growing 10%, contribution 110: income 11,000.00, 12,100.00, 13,310.00. Balance 5,000.00 ->
    5,000 + 12,100 - 10,500 = 6,600.00 -> 6,600 + 13,310 - 11,025 = 8,885.00. Months of capacity: 5,000 / (10,000 /
    12) = 6; 6,600 / (10,500 / 12) = 7.542857...; 8,885 / (11,025 / 12) = 9.670748..."""
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 2}, "demand": {"volume_growth_by_hospital": {"H1": 0.10}},
                          "budget": {"rule": "growth", "growth": 0.05},
                          "fund": {"P-employee": {"insured": 100, "insured_growth": 0.1, "contribution": 110.0,
                                                  "balance": 5_000.0}}})
    results = project(cases, HOSPITALS, policy(), spec, grouped)
    assert [pool(results, t)["budget"] for t in (0, 1, 2)] == [10_000.00, 10_500.00, 11_025.00]
    assert (by(results, 1)["H1"]["fund_payout"], by(results, 1)["H2"]["fund_payout"]) == (5_500.00, 5_000.00)
    assert (by(results, 2)["H1"]["fund_payout"], by(results, 2)["H2"]["fund_payout"]) == (6_013.64, 5_011.36)
    assert [pool(results, t)["income"] for t in (0, 1, 2)] == [11_000.00, 12_100.00, 13_310.00]
    assert [pool(results, t)["balance"] for t in (0, 1, 2)] == [5_000.00, 6_600.00, 8_885.00]
    assert [pool(results, t)["months_of_capacity"] for t in (0, 1, 2)] == pytest.approx(
        [6.0, 6_600 * 12 / 10_500, 8_885 * 12 / 11_025], abs=1e-4)


def test_budget_growth_capped_by_income_and_a_share_of_income():
    """Growth 20% capped by income growth (insured +10%): budget 10,000 x 1.1 = 11,000.00 in year 1. Share of
    income 0.5: 0.5 x 12,100 = 6,050.00 in year 1."""
    cases, grouped = tiny()
    fund = {"P-employee": {"insured": 100, "insured_growth": 0.1, "contribution": 110.0, "balance": 0.0}}
    capped = projection_of({"projection": {"years": 1},
                            "budget": {"rule": "growth", "growth": 0.2, "cap_by_income": True}, "fund": fund})
    assert pool(project(cases, HOSPITALS, policy(), capped, grouped), 1)["budget"] == 11_000.00
    share = projection_of({"projection": {"years": 1}, "budget": {"rule": "share_of_income", "share": 0.5},
                           "fund": fund})
    results = project(cases, HOSPITALS, policy(), share, grouped)
    assert pool(results, 1)["budget"] == 6_050.00 and pool(results, 1)["point_value"] == pytest.approx(3.025)


def test_a_lever_dated_by_year_is_read_on_that_years_settlement_day():
    """budget.reserve_share 0 from 2025-01-01, 0.1 from 2026-01-01: year 0 (last discharge 2025-12-10) pays the
    whole 10,000 (V = 5), year 1 (2026-12-10) 9,000 (V = 4.5)."""
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 1}})
    lever = policy(**{"budget.reserve_share": {"2025-01-01": 0.0, "2026-01-01": 0.1}})
    results = project(cases, HOSPITALS, lever, spec, grouped)
    assert pool(results, 0)["point_value"] == pytest.approx(5.0) and pool(results, 1)["point_value"] == \
        pytest.approx(4.5)
    assert pool(results, 1)["fund_payout"] == 9_000.00


def test_a_budget_point_value_from_history_is_the_floors_base():
    """[budget] budget_point_value = "history", floor 0.97; H1 +10% cases a year, budget 10,000, patients pay nothing.
    Year 0: 2,000 points, V = 5 (its own budget point value: 10,000 / 2,000).
    Year 1: budget point value from year 0 alone = 10,000 / 2,000 = 5, floor 0.97 x 5 = 4.85; the budget would give
    10,000 / 2,100 = 4.7619 < 4.85: floored, H1 1,100 x 4.85 = 5,335.00, H2 4,850.00 (185.00 over the budget).
    Year 2: years 0 and 1 weighted 2:7 (the last two of 1:2:7): money (2 x 10,000 + 7 x 10,000) / 9 = 10,000,
    points (2 x 2,000 + 7 x 2,100) / 9 = 18,700 / 9; budget point value 90,000 / 18,700 = 4.8128342...; floor
    0.97 x that = 4.6684492; the budget would give 10,000 / 2,200 = 4.5454 below it: floored."""
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 2}, "demand": {"volume_growth_by_hospital": {"H1": 0.10}},
                          "budget": {"budget_point_value": "history"}})
    results = project(cases, HOSPITALS, policy(**{"budget.point_value_floor": 0.97}), spec, grouped)
    assert pool(results, 0)["point_value"] == pytest.approx(5.0, abs=1e-12) and pool(results, 0)["status"] == \
        "balanced"
    assert pool(results, 1)["point_value"] == pytest.approx(4.85, abs=1e-12) and pool(results, 1)["status"] == \
        "floored"
    assert (by(results, 1)["H1"]["fund_payout"], by(results, 1)["H2"]["fund_payout"]) == (5_335.00, 4_850.00)
    assert pool(results, 2)["point_value"] == pytest.approx(0.97 * 90_000 / 18_700, abs=1e-10)  # 10 decimals
    assert by(results, 2)["H1"]["fund_payout"] == pytest.approx(1_200 * 0.97 * 90_000 / 18_700, abs=0.01)
    # the rule "policy" (the default): the year's own figures, so a floor below 1 never binds
    plain = project(cases, HOSPITALS, policy(**{"budget.point_value_floor": 0.97}),
                    projection_of({"projection": {"years": 2},
                                   "demand": {"volume_growth_by_hospital": {"H1": 0.10}}}), grouped)
    assert pool(plain, 2)["point_value"] == pytest.approx(10_000 / 2_200, abs=1e-10)


# ------------------------------------------------------------------ behaviour


def test_drift_with_no_response_and_with_a_positive_elasticity():
    """H1's cases cost 1,500 (r = 1.5), H2's 700 (0.7): both normal (default thresholds 0.5 and 2). Budget 10,000,
    2,000 points: V = 5; H1 is paid 5,000 for 15,000 of cost (ratio 1/3), H2 5,000 for 7,000 (5/7).
    Drift 10% a year, factor 1.5. Elasticity 0: each hospital round(0.1 x 10) = 1 drifted case (150 points).
    Elasticity 1: share x ratio^-1: H1 0.1 x 3 = 0.3 -> 3 cases, H2 0.1 x 1.4 = 0.14 -> round(1.4) = 1: the hospital
    paid furthest below its cost drifts more. H1's points: 7 x 100 + 3 x 150 = 1,150."""
    cases, grouped = tiny(costs=(1_500.0, 700.0))
    none = projection_of({"projection": {"years": 1, "seed": 3},
                          "behaviour": {"drift_share": 0.1, "drift_factor": 1.5}})
    y1 = by(project(cases, HOSPITALS, policy(), none, grouped), 1)
    assert (y1["H1"]["drifted"], y1["H2"]["drifted"]) == (1, 1)
    assert (y1["H1"]["points"], y1["H2"]["points"]) == (1_050.0, 1_050.0)
    responds = projection_of({"projection": {"years": 1, "seed": 3},
                              "behaviour": {"drift_share": 0.1, "drift_factor": 1.5, "drift_elasticity": 1.0}})
    y1 = by(project(cases, HOSPITALS, policy(), responds, grouped), 1)
    assert (y1["H1"]["drifted"], y1["H2"]["drifted"]) == (3, 1)
    assert y1["H1"]["points"] == 1_150.0 and y1["H1"]["cmi"] == pytest.approx(115.0)


def test_drift_accumulates_and_a_level_rate_replaces_the_overall_one():
    """drift 0.1 a year, H1's level (三级甲等) 0.2: year 1 H1 2 cases, H2 1; year 2 H1 4, H2 2 (the drifted share
    adds up: 0.4 and 0.2)."""
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 2}, "behaviour": {"drift_share": 0.1, "drift_factor": 1.2,
                                                                    "drift_share_by_level": {"三级甲等": 0.2}}})
    results = project(cases, HOSPITALS, policy(), spec, grouped)
    assert (by(results, 1)["H1"]["drifted"], by(results, 1)["H2"]["drifted"]) == (2, 1)
    assert (by(results, 2)["H1"]["drifted"], by(results, 2)["H2"]["drifted"]) == (4, 2)


# ------------------------------------------------------------------ a synthetic region


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A small synthetic region (DIP), its catalogue, and budgets of 60% of each pool's cost."""
    import pyarrow.parquet as pq

    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.grouping.dip import load_catalog
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.io import load_cases
    from dipsim.region import budgets_from_cost
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("project")
    synthesize_region(root / "region", cases=3_000, hospitals=8, seed=11)
    cases = load_cases(root / "region" / "cases").accepted
    write_catalog(build_catalog(cases, CatalogOptions(threshold=10)), root / "cat")
    grouped = group_dip(cases, load_catalog(root / "cat"))
    budgets = budgets_from_cost(cases, 0.6)
    hospitals = pq.read_table(root / "region" / "hospitals.parquet")
    return root, cases, hospitals, grouped, budgets


@pytest.mark.parametrize("budget_point_value", ["policy", "history"])
def test_zero_growth_every_year_equals_the_base_year_to_the_fen(region, budget_point_value):
    from dipsim.payment.chain import CaseSet, run_chain

    _, cases, hospitals, grouped, budgets = region
    base_policy = Policy(values={}).overlay({"payment.mode": "dip", "budget.total": budgets,
                                             "bands.in_effect": True, "budget.point_value_floor": 0.99})
    spec = projection_of({"projection": {"years": 3, "seed": 5}, "budget": {"budget_point_value": budget_point_value},
                          "behaviour": {"drift_share": 0.0, "drift_factor": 1.3, "drift_elasticity": 0.8}})
    results = project(cases, hospitals, base_policy, spec, grouped)
    base = results.hospitals[results.hospitals["year"] == 0].set_index("hospital_id")
    for year in (1, 2, 3):
        h = results.hospitals[results.hospitals["year"] == year].set_index("hospital_id")
        for column in ("cases", "points", "cost", "payment", "fund_payout"):
            assert h[column].to_dict() == base[column].to_dict(), (year, column)
        y = results.years[results.years["year"] == year].set_index("pool")
        y0 = results.years[results.years["year"] == 0].set_index("pool")
        if budget_point_value == "policy":
            assert y["point_value"].to_dict() == y0["point_value"].to_dict()
        else:  # the budget point value, a weighted mean of equal years, is the year's own to a float's rounding: the
            # point value (written to 10 decimals) may differ in its last decimal, the money not by a fen (above)
            assert y["point_value"].to_numpy() == pytest.approx(y0["point_value"].to_numpy(), abs=1.5e-10)
    # the base year is the one chain's settlement of the cases (what `dipsim settle` runs), to the fen
    run = run_chain(CaseSet.of(cases), grouped, hospitals, base_policy)
    settled = {}
    for r in run.hospitals.to_pylist():
        settled[r["hospital_id"]] = settled.get(r["hospital_id"], Decimal(0)) + r["fund_payout"]
    assert {k: Decimal(str(v)).quantize(Decimal("0.01")) for k, v in base["fund_payout"].items()} == settled


def test_a_budget_growing_as_fast_as_the_points_keeps_the_point_value(region):
    """Every hospital's cases doubled (+100%: each case copied once, so the points double exactly) and the budget
    doubled (rule growth 1.0): the point value is the same, within the floating-point error of summing points in
    another order (the pool is solved exactly, without iteration: `budget.settle_pool`); 1e-12 relative."""
    _, cases, hospitals, grouped, budgets = region
    base_policy = Policy(values={}).overlay({"payment.mode": "dip", "budget.total": budgets,
                                             "bands.in_effect": True})
    spec = projection_of({"projection": {"years": 2}, "demand": {"volume_growth": [1.0, 0.0]},
                          "budget": {"rule": "growth", "growth": [1.0, 0.0]}})
    results = project(cases, hospitals, base_policy, spec, grouped)
    y = results.years.set_index(["year", "pool"])["point_value"]
    for p in budgets:
        assert y[(1, p)] == pytest.approx(y[(0, p)], rel=1e-12) and y[(2, p)] == pytest.approx(y[(0, p)], rel=1e-12)
    h = results.hospitals
    assert (h[h["year"] == 1]["cases"].to_numpy() == 2 * h[h["year"] == 0]["cases"].to_numpy()).all()


def test_the_same_seed_gives_the_same_years_and_another_seed_other_cases(region):
    _, cases, hospitals, grouped, budgets = region
    base_policy = Policy(values={}).overlay({"payment.mode": "dip", "budget.total": budgets})
    data = {"projection": {"years": 1, "seed": 1}, "demand": {"volume_growth": 0.07},
            "behaviour": {"drift_share": 0.05, "drift_factor": 1.2}}
    one = project(cases, hospitals, base_policy, projection_of(data), grouped)
    again = project(cases, hospitals, base_policy, projection_of(data), grouped)
    assert one.hospitals.equals(again.hospitals) and one.years.equals(again.years)
    other = project(cases, hospitals, base_policy,
                    projection_of({**data, "projection": {"years": 1, "seed": 2}}), grouped)
    assert not one.hospitals["points"].equals(other.hospitals["points"])


# ------------------------------------------------------------------ the file


def test_a_bad_projection_file_lists_every_problem_with_its_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[projection]\nname = "x"\nyears = 0\n\n[demand]\nvolume_grwth = 0.1\ncost_growth = [0.1, 0.2]\n'
                    '\n[budget]\nrule = "magic"\n\n[behaviour]\ndrift_share = 1.5\n', encoding="utf-8")
    with pytest.raises(InputError) as error:
        load_projection(path)
    message = str(error.value)
    assert "[projection] years (line 3): years = T is needed, a whole number of years from 1 to 50 (got 0)" in message
    assert "[demand] volume_grwth (line 6): unknown key" in message
    assert "[budget] rule (line 10): one of 'policy', 'share_of_income', 'growth' (got 'magic')" in message
    assert "[behaviour] drift_share (line 13): shares from 0 to 1" in message
    path.write_text('[projection]\nyears = 3\n[demand]\ncost_growth = [0.1, 0.2]\n[budget]\nrule = "share_of_income"\n'
                    'share = 0.5\n', encoding="utf-8")
    with pytest.raises(InputError) as error:
        load_projection(path)
    assert "[demand] cost_growth (line 4): 2 rates for 3 years" in str(error.value)
    assert "needs a [fund.\"POOL\"] table" in str(error.value)
    path.write_text("[projection\nyears = 3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"not valid TOML .*line 1"):
        load_projection(path)


def test_the_shipped_example_is_a_valid_projection():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = load_projection(root / "scenarios" / "projection_example.toml")
    assert spec.years == 5 and spec.rule == "growth" and set(spec.funds) == {"990100-employee", "990100-resident"}
    assert Path(spec.policy).is_file()


# ------------------------------------------------------------------ the command


def read_rows(path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_cli_end_to_end_on_a_synthetic_region(region, tmp_path, capsys):
    """`dipsim project` with zero growth writes its tables, figures, report and manifest; its base year pays each
    hospital what `dipsim settle` pays it (summed over its pools), to the fen; a bad file is exit 1 naming its
    line."""
    from dipsim.cli import main

    root, _, _, _, budgets = region
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('[payment]\nmode = "dip"\n[budget]\ntotal = { '
                           + ", ".join(f'"{p}" = {v}' for p, v in budgets.items()) + " }\n", encoding="utf-8")
    projection = tmp_path / "p.toml"
    projection.write_text('[projection]\nyears = 2\npolicy = "policy.toml"\n[demand]\nvolume_growth = 0.0\n'
                          '[fund."990100-employee"]\ninsured = 1000\ncontribution = 5000.0\nbalance = 1e6\n',
                          encoding="utf-8")
    common = ["--cases", str(root / "region" / "cases"), "--hospitals", str(root / "region" / "hospitals.parquet"),
              "--catalog", str(root / "cat"), "-q"]
    assert main(["project", str(projection), *common, "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "year 2 pool 990100-employee" in out and "months" in out
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"years.csv", "hospitals.csv", "comparison.csv", "point_value.png", "balance.png", "payout_by_level.png",
            "report.html", "manifest.json"} <= names
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["command"] == "project" and manifest["policy_sha256"]
    named = {e["file"] for e in manifest["inputs"]}
    assert {str(projection), str(policy_file)} <= named and len(named) == 12 + 1 + 2  # 12 months of cases
    assert set(manifest["outputs"]) == {"years.csv", "hospitals.csv", "comparison.csv", "point_value.png",
                                        "balance.png", "payout_by_level.png", "report.html"}
    rows = read_rows(tmp_path / "out" / "hospitals.csv")
    assert main(["settle", str(root / "region" / "cases"), "--policy", str(policy_file), "--hospitals",
                 str(root / "region" / "hospitals.parquet"), "--catalog", str(root / "cat"), "-q",
                 "-o", str(tmp_path / "settle")]) == 0
    settled: dict[str, Decimal] = {}
    for r in read_rows(tmp_path / "settle" / "hospitals.csv"):
        settled[r["hospital_id"]] = settled.get(r["hospital_id"], Decimal(0)) + Decimal(r["fund_payout"])
    for year in ("0", "1", "2"):
        got = {r["hospital_id"]: Decimal(r["fund_payout"]).quantize(Decimal("0.01")) for r in rows
               if r["year"] == year}
        assert got == settled, year
    years = read_rows(tmp_path / "out" / "years.csv")
    employee = [r for r in years if r["pool"] == "990100-employee"]
    assert Decimal(employee[1]["balance"]) == Decimal("1000000") + Decimal("5000000") - Decimal(
        employee[1]["fund_payout"])
    bad = tmp_path / "bad.toml"
    bad.write_text('[projection]\nyears = 2\n\n[demand]\nvolume = 0.1\n', encoding="utf-8")
    assert main(["project", str(bad), *common, "--policy", str(policy_file), "-o", str(tmp_path / "bad")]) == 1
    assert "[demand] volume (line 5): unknown key" in capsys.readouterr().err
    aged = tmp_path / "aged.toml"  # ageing of the 65+ only: the younger cases are in no band, a warning
    aged.write_text('[projection]\nyears = 1\n[demand]\nvolume_growth_by_age = { "65-" = 0.1 }\n', encoding="utf-8")
    assert main(["project", str(aged), *common, "--policy", str(policy_file), "--no-report",
                 "-o", str(tmp_path / "aged")]) == 0
    warned = json.loads((tmp_path / "aged" / "manifest.json").read_text(encoding="utf-8"))["warnings"]
    assert len(warned) == 1 and "have no age (age_years, age_days) or an age in no band (65-)" in warned[0]
    assert "warning: volume_growth_by_age:" in capsys.readouterr().err


def test_cli_help_answers(capsys):
    from dipsim.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["project", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "PROJECTION" in text or "projection file" in text
    assert "--cases" in text and "--budget-share" in text


def test_dates_move_by_whole_years_29_february_to_28_february():
    from dipsim.project import _shift_dates

    column = pa.chunked_array([pa.array([dt.date(2024, 2, 29), None, dt.date(2025, 3, 1)], pa.date32())])
    assert _shift_dates(column, 1).to_pylist() == [dt.date(2025, 2, 28), None, dt.date(2026, 3, 1)]
    assert _shift_dates(column, 4).to_pylist() == [dt.date(2028, 2, 29), None, dt.date(2029, 3, 1)]


def test_a_name_the_region_does_not_have_is_an_error():
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 1}, "demand": {"volume_growth_by_hospital": {"H9": 0.1},
                                                                 "volume_growth_by_level": {"三甲": 0.1}},
                          "fund": {"P-resident": {"insured": 1}}}, "p.toml")
    with pytest.raises(InputError) as error:
        project(cases, HOSPITALS, policy(), spec, grouped)
    message = str(error.value)
    assert "volume_growth_by_hospital: no hospital H9 in the region (its hospitals: H1, H2)" in message
    assert "volume_growth_by_level: no level 三甲 in the region" in message
    assert "[fund] P-resident: not a pool of the cases (P-employee)" in message


def test_a_grouping_changed_by_year_is_refused():
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 1}})
    dated = policy(**{"payment.mode": "drg", "payment.drg_scheme": {"2025-01-01": "chs-drg-1.1",
                                                                    "2026-01-01": "chs-drg-2.0"}})
    with pytest.raises(InputError, match="cannot change the grouping by year yet"):
        project(cases, HOSPITALS, dated, spec, grouped)


# ------------------------------------------------------------------ ageing and the hospitals' volume responses


def test_volume_responds_to_last_years_payment_over_cost_by_hand():
    """volume_elasticity 1: each year's growth factor x r (last year's payment / cost), no trend.
    Base year: H1 costs 1,000 a case, H2 1,250 (r = 1.25 of the standard 1,000: normal); 1,000 points each, V = 5:
    H1 paid 5,000.00 for 10,000.00 (r = 0.5), H2 5,000.00 for 12,500.00 (r = 0.4).
    Year 1: H1 round(10 x 0.5) = 5 cases, H2 round(10 x 0.4) = 4; V = 10,000 / 900 = 11.1111...: H1 5,555.56 for
    5,000.00 (r = 1.111112), H2 4,444.44 for 5,000.00 (r = 0.888888).
    Year 2: H1 round(10 x 0.5 x 1.111112) = round(5.56) = 6, H2 round(10 x 0.4 x 0.888888) = round(3.56) = 4."""
    cases, grouped = tiny(costs=(1_000.0, 1_250.0))
    spec = projection_of({"projection": {"years": 2}, "behaviour": {"volume_elasticity": 1.0}})
    results = project(cases, HOSPITALS, policy(), spec, grouped)
    assert [(by(results, t)["H1"]["cases"], by(results, t)["H2"]["cases"]) for t in (0, 1, 2)] == \
        [(10, 10), (5, 4), (6, 4)]
    assert (by(results, 1)["H1"]["fund_payout"], by(results, 1)["H2"]["fund_payout"]) == (5_555.56, 4_444.44)


def test_volume_and_drift_respond_to_the_point_values_fall_by_hand():
    """H1 +100% cases a year. Base year V = 10,000 / 2,000 = 5. Year 1: H1 20 cases, H2 10: V = 10,000 / 3,000, a
    ratio of 2/3 to the base year's.
    volume_elasticity_pv 1: year 2's growth factors x (2/3)^-1 = 1.5: H1 10 x 2 x 2 x 1.5 = 60 cases, H2 10 x 1.5 = 15.
    drift_elasticity_pv 1 (drift share 0.1 a year, factor 1.2, no volume response): year 1 drifts D = 0.1, H1 2 of
    20 cases, H2 1 of 10: points 1,800 + 240 = 2,040 and 900 + 120 = 1,020, V = 10,000 / 3,060, a ratio of
    (10,000 / 3,060) / 5 = 0.653595 to the base year's; year 2's share 0.1 / 0.653595 = 0.153, D = 0.253: H1 40 x
    0.253 = 10.12 -> 10 cases drifted, H2 10 x 0.253 -> 3 (without the response: D = 0.2, 8 and 2)."""
    cases, grouped = tiny()
    growth = {"volume_growth_by_hospital": {"H1": 1.0}}
    spec = projection_of({"projection": {"years": 2}, "demand": growth, "behaviour": {"volume_elasticity_pv": 1.0}})
    results = project(cases, HOSPITALS, policy(), spec, grouped)
    assert pool(results, 1)["point_value"] == pytest.approx(10_000 / 3_000, abs=1e-9)
    assert [(by(results, t)["H1"]["cases"], by(results, t)["H2"]["cases"]) for t in (1, 2)] == [(20, 10), (60, 15)]
    drifting = {"drift_share": 0.1, "drift_factor": 1.2}
    for elasticity, expected in ((1.0, (10, 3)), (0.0, (8, 2))):
        spec = projection_of({"projection": {"years": 2, "seed": 3}, "demand": growth,
                              "behaviour": {**drifting, "drift_elasticity_pv": elasticity}})
        results = project(cases, HOSPITALS, policy(), spec, grouped)
        assert (by(results, 1)["H1"]["drifted"], by(results, 1)["H2"]["drifted"]) == (2, 1)
        assert (by(results, 2)["H1"]["drifted"], by(results, 2)["H2"]["drifted"]) == expected
    # drift_elasticity_pv 0 is the file without the key: the same hospitals' years to the fen
    without = project(cases, HOSPITALS, policy(), projection_of({"projection": {"years": 2, "seed": 3},
                                                                 "demand": growth, "behaviour": drifting}), grouped)
    assert without.hospitals.equals(results.hospitals) and without.years.equals(results.years)


def aged(ages):
    """`tiny` with each case's age at admission (age_years; None: no age)."""
    cases, grouped = tiny()
    return cases.append_column("age_years", pa.array(ages, pa.int16())), grouped


def test_ageing_by_band_by_hand():
    """H1's cases aged 70 x 5, 30 x 3 (in no band) and 2 without an age; H2's all 10. Bands 0-14 -50% a year, 65-
    +50%. Year 1: H1 65+ round(5 x 1.5) = round(7.5) = 8 (half to even), the 5 others kept: 13; H2 round(10 x 0.5) =
    5. Year 2: H1 round(5 x 2.25) = round(11.25) = 11, + 5 = 16; H2 round(10 x 0.25) = round(2.5) = 2. Every copy
    is of a case aged 70; 5 of the 20 base cases have no band (a warning)."""
    from dipsim.project import ageing_warning, case_age_bands, year_rows

    cases, grouped = aged([70] * 5 + [30] * 3 + [None] * 2 + [10] * 10)
    spec = projection_of({"projection": {"years": 2, "seed": 5},
                          "demand": {"volume_growth_by_age": {"65-": 0.5, "0-14": -0.5}}})
    results = project(cases, HOSPITALS, policy(), spec, grouped)
    assert [(by(results, t)["H1"]["cases"], by(results, t)["H2"]["cases"]) for t in (1, 2)] == [(13, 5), (16, 2)]
    bands = case_age_bands(cases, spec)
    assert bands.tolist() == [1] * 5 + [-1] * 5 + [0] * 10  # bands lowest first: 0-14, 65-
    made = year_rows(np.array([0] * 10 + [1] * 10), np.array(["H1", "H2"], object), {}, spec, 2, bands=bands)
    copied = made.rows[made.copy > 0]
    assert len(copied) == 6 and set(copied.tolist()) <= {0, 1, 2, 3, 4}
    assert ageing_warning(cases, spec).startswith("volume_growth_by_age: 5 of 20 base cases have no age")
    assert ageing_warning(cases, projection_of({"projection": {"years": 1}})) == ""


@pytest.mark.parametrize("bands, wrong", [({"65-70": 0.1, "70-": 0.1}, "overlap: 65-70 and 70-"),
                                          ({"old": 0.1}, "(got 'old')"), ({"70-65": 0.1}, "(got '70-65')"),
                                          ({"0-": 0.0, "65-": 0.1}, "overlap: 0- and 65-"),
                                          ({"65-": [0.1]}, "1 rates for 2 years"), ({"65-": -1.5}, "above -1"),
                                          ([0.1], "a table of age band = rate")])
def test_age_bands_are_checked(bands, wrong):
    with pytest.raises(InputError, match=r"volume_growth_by_age.*" + re.escape(wrong)):
        projection_of({"projection": {"years": 2}, "demand": {"volume_growth_by_age": bands}})


def test_a_child_without_age_years_is_banded_by_age_days():
    """age_years missing: the whole years in age_days (0-364 days: age 0; 400 days: 1; 5,500 days: 15); both
    missing: no band."""
    from dipsim.project import case_age_bands

    cases, _ = aged([None, None, None, None, 3] + [40] * 15)
    cases = cases.append_column("age_days", pa.array([30, 400, 5_500, None] + [None] * 16, pa.int32()))
    spec = projection_of({"projection": {"years": 1}, "demand": {"volume_growth_by_age": {"0-14": 0.1, "15-": 0.0}}})
    assert case_age_bands(cases, spec).tolist() == [0, 0, 1, -1, 0] + [1] * 15


def test_year_rows_by_hospital_factor_and_band_by_hand():
    """factors given (as project passes them, responses in): H1 x 1.25 (a payment / cost ratio of 1.25 at
    volume_elasticity 1), H2 x 0.75. No ageing: H1 round(10 x 1.25) = round(12.5) = 12 (half to even), H2
    round(7.5) = 8. Ageing 65- +50% (H1's first 4 cases aged 70, the rest 30, in no band; H2 all 70): H1 round(4 x
    1.25 x 1.5) = round(7.5) = 8 + round(6 x 1.25) = round(7.5) = 8 -> 16; H2 round(10 x 0.75 x 1.5) = round(11.25)
    = 11. One band 0- at 0 holding every case: the same rows, in the same order, as without ageing."""
    from dipsim.project import case_age_bands, year_rows

    cases, _ = aged([70] * 4 + [30] * 6 + [70] * 10)
    codes, ids, factors = np.array([0] * 10 + [1] * 10), np.array(["H1", "H2"], object), np.array([1.25, 0.75])
    plain = projection_of({"projection": {"years": 1, "seed": 7}})
    made = year_rows(codes, ids, {}, plain, 1, factors=factors)
    assert np.bincount(codes[made.rows]).tolist() == [12, 8]
    ageing = projection_of({"projection": {"years": 1, "seed": 7}, "demand": {"volume_growth_by_age": {"65-": 0.5}}})
    banded = year_rows(codes, ids, {}, ageing, 1, factors=factors, bands=case_age_bands(cases, ageing))
    assert np.bincount(codes[banded.rows]).tolist() == [16, 11]
    assert np.bincount(banded.rows[codes[banded.rows] == 0], minlength=10)[:4].sum() == 8  # H1's aged 70
    everyone = projection_of({"projection": {"years": 1, "seed": 7}, "demand": {"volume_growth_by_age": {"0-": 0.0}}})
    same = year_rows(codes, ids, {}, everyone, 1, factors=factors, bands=case_age_bands(cases, everyone))
    assert same.rows.tolist() == made.rows.tolist() and same.copy.tolist() == made.copy.tolist()


def test_ageing_rates_by_year_by_hand():
    """65- [+50%, -20%]: H1's 5 cases aged 70 -> round(7.5) = 8 in year 1, round(5 x 1.5 x 0.8) = 6 in year 2, its 5
    aged 30 (no band) kept: 13, 11; H2's 10 cases aged 10 (0-14 at 0): 10 both years."""
    cases, grouped = aged([70] * 5 + [30] * 5 + [10] * 10)
    spec = projection_of({"projection": {"years": 2, "seed": 5},
                          "demand": {"volume_growth_by_age": {"65-": [0.5, -0.2], "0-14": 0.0}}})
    assert spec.volume_growth_by_age == {"65-": [0.5, -0.2], "0-14": [0.0, 0.0]}
    results = project(cases, HOSPITALS, policy(), spec, grouped)
    assert [(by(results, t)["H1"]["cases"], by(results, t)["H2"]["cases"]) for t in (1, 2)] == [(13, 10), (11, 10)]


def test_ageing_rates_may_be_distributions():
    """A band's rate, or one year's of its list, drawn: held at the central value (uniform: the midpoint), the draws
    by path."""
    spec = projection_of({"projection": {"years": 2}, "demand": {"volume_growth_by_age": {
        "65-": [{"dist": "uniform", "min": 0.01, "max": 0.05}, 0.02], "0-14": {"dist": "uniform", "min": -0.02,
                                                                             "max": 0.0}}}})
    assert spec.volume_growth_by_age == {"65-": [pytest.approx(0.03), 0.02], "0-14": [-0.01, -0.01]}
    assert set(spec.distributions) == {("demand", "volume_growth_by_age", "65-", 0),
                                       ("demand", "volume_growth_by_age", "0-14")}
