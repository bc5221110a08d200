"""A scenario variant that switches the CHS-DRG version (`payment.drg_scheme`): checked before anything runs, grouped
once per scheme with the scheme's own weights, settled as `dipsim settle` settles it (to the fen), and explained
(which cases moved group, which groups split, per hospital and per ADRG family), on a hand-made region worked by
hand and on a synthetic region against plain-Python counts."""

from __future__ import annotations

import collections
import csv
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.paths import repo_root
from dipsim.policy import Policy, PolicyError
from dipsim.scenarios import BASELINE, load_scenarios, run_scenarios, run_schemes

SCENARIOS = repo_root() / "scenarios"
DRG = Policy(values={}).overlay({"payment.mode": "drg"})


def scenario_file(tmp_path, baseline: str, body: str):
    path = tmp_path / "switch.toml"
    path.write_text(f'[scenario]\nname = "switch"\nbaseline = "{(SCENARIOS / baseline).as_posix()}"\n{body}',
                    encoding="utf-8")
    return path


# ---------------------------------------------------------------- the parameter and its checks


def test_a_scheme_in_dip_mode_or_without_tables_is_refused_naming_the_variant(tmp_path):
    path = scenario_file(tmp_path, "baseline.toml", '[[variant]]\nname = "2.0 in DIP"\n'
                                                    'set = { "payment.drg_scheme" = "chs-drg-2.0" }\n')
    with pytest.raises(PolicyError) as error:
        load_scenarios(path)
    assert error.value.problems == [
        "variant '2.0 in DIP': payment.drg_scheme: a CHS-DRG scheme, in DRG mode: 'chs-drg-2.0' is set with "
        "payment.mode = 'dip' (leave it unset, or set payment.mode = \"drg\"); the cases are grouped under "
        "grouper_tables/<payment.drg_scheme>; DIP mode groups to a catalogue"]
    path = scenario_file(tmp_path, "baseline_drg.toml", '[[variant]]\nname = "typo"\n'
                                                        'set = { "payment.drg_scheme" = "chs-drg-2" }\n'
                                                        '[[variant]]\nname = "a path"\n'
                                                        'set = { "payment.drg_scheme" = "../chs-drg-2.0" }\n')
    with pytest.raises(PolicyError) as error:
        load_scenarios(path)
    assert len(error.value.problems) == 2
    assert error.value.problems[0].startswith("variant 'typo': payment.drg_scheme: a CHS-DRG scheme, in DRG mode: "
                                              "no grouper tables for 'chs-drg-2' in ")
    assert "(have: chs-drg-1.1, chs-drg-1.1-beijing, chs-drg-2.0" in error.value.problems[0]
    assert error.value.problems[1].startswith("variant 'a path': ")


def test_each_run_takes_its_own_scheme_else_the_command_line_one(tmp_path):
    import datetime as dt

    from dipsim.payment.terms import command_line_scheme, drg_scheme

    path = scenario_file(tmp_path, "baseline_drg.toml",
                         '[[variant]]\nname = "2.0"\nset = { "payment.drg_scheme" = "chs-drg-2.0" }\n'
                         '[[variant]]\nname = "high 3"\nset = { "outlier.high_ratio" = 3.0 }\n')
    scenarios = load_scenarios(path)
    assert run_schemes(scenarios) == {BASELINE: "chs-drg-1.1", "2.0": "chs-drg-2.0", "high 3": "chs-drg-1.1"}
    assert run_schemes(scenarios, default="chs-drg-1.1-beijing") == {
        BASELINE: "chs-drg-1.1-beijing", "2.0": "chs-drg-2.0", "high 3": "chs-drg-1.1-beijing"}
    assert run_schemes(load_scenarios(SCENARIOS / "tcm_weighting.toml")) == {}  # DIP: no scheme
    # dated: read on the settlement day, one scheme for the period
    dated = DRG.overlay({"payment.drg_scheme": {"2025-01-01": "chs-drg-1.1", "2026-01-01": "chs-drg-2.0"}})
    assert drg_scheme(dated, dt.date(2025, 12, 31)) == "chs-drg-1.1"
    assert drg_scheme(dated, dt.date(2026, 1, 1)) == "chs-drg-2.0"
    # the command line's --scheme fills in a policy without one; both naming different schemes is an error
    assert command_line_scheme(DRG, None, None) == "chs-drg-1.1"
    assert command_line_scheme(DRG, None, "chs-drg-2.0") == "chs-drg-2.0"
    two = DRG.overlay({"payment.drg_scheme": "chs-drg-2.0"})
    assert command_line_scheme(two, None, "chs-drg-2.0") == "chs-drg-2.0"
    with pytest.raises(InputError, match=r"--scheme chs-drg-1.1 and the policy's payment.drg_scheme = "
                                         r"'chs-drg-2.0' differ: give one of them"):
        command_line_scheme(two, None, "chs-drg-1.1")


# ---------------------------------------------------------------- six cases worked by hand


def hand_region():
    """Three hospitals of one pool, six cases, each case's cost its group's standard cost (r = 1: no outlier), no
    patient payment, budget 7,200 yuan, 100 points per RW.

    scheme A (chs-drg-1.1 here): c1-c4 AA11 (RW 1), c5-c6 BB11 (RW 2)          -> 100 100 100 100 200 200 = 800 points
    scheme B (chs-drg-2.0 here): c1, c3 AA13 (RW 1.5); c2, c4 AA15 (RW 0.25);  -> 150  25 150  25 200 200 = 750 points
                                 c5-c6 BB11 (RW 2)
    Point value: A 7,200 / 800 = 9; B 7,200 / 750 = 9.6.
    H1 (c1, c2): A 200 points = 1,800 yuan; B 175 x 9.6 = 1,680 (-120)
    H2 (c3, c5): A 300 = 2,700;             B 350 x 9.6 = 3,360 (+660)
    H3 (c4, c6): A 300 = 2,700;             B 225 x 9.6 = 2,160 (-540)"""
    cases = pa.table({"case_id": [f"c{i}" for i in range(1, 7)],
                      "hospital_id": ["H1", "H1", "H2", "H3", "H2", "H3"],
                      "pool": ["990100"] * 6, "insurance_type": ["employee"] * 6,
                      "total_cost": [1000.0, 1000.0, 1000.0, 1000.0, 2000.0, 2000.0], "patient_paid": [0.0] * 6})
    hospitals = pa.table({"hospital_id": ["H1", "H2", "H3"], "level": ["三级甲等"] * 3, "type": ["综合"] * 3})

    def grouped(groups, rw, cost):
        n = len(groups)
        return GroupedCases(group=np.array(groups, dtype=object), group_points=np.array(rw),
                            standard_cost=np.array(cost), tcm_group_case=np.zeros(n, bool),
                            tcm_treated=np.zeros(n, bool), unit="rw")

    a = grouped(["AA11"] * 4 + ["BB11"] * 2, [1.0] * 4 + [2.0] * 2, [1000.0] * 4 + [2000.0] * 2)
    b = grouped(["AA13", "AA15", "AA13", "AA15", "BB11", "BB11"], [1.5, 0.25, 1.5, 0.25, 2.0, 2.0],
                [1000.0] * 4 + [2000.0] * 2)
    return cases, hospitals, {"chs-drg-1.1": a, "chs-drg-2.0": b}


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    cases, hospitals, grouped = hand_region()
    path = scenario_file(tmp_path_factory.mktemp("hand"), "baseline_drg.toml",
                         '[[variant]]\nname = "B"\nset = { "payment.drg_scheme" = "chs-drg-2.0" }\n'
                         '[[variant]]\nname = "A, high 3"\nset = { "outlier.high_ratio" = 3.0 }\n')
    scenarios = load_scenarios(path)
    scenarios.baseline = scenarios.baseline.overlay({"budget.total": {"990100-employee": 7200.0}})
    return run_scenarios(cases, hospitals, scenarios, grouped)


def test_hand_region_money_by_hospital(hand):
    h = hand.hospitals.set_index(["scenario", "hospital_id"])
    assert [h.loc[(BASELINE, x), "fund_payout"] for x in ("H1", "H2", "H3")] == [1800.0, 2700.0, 2700.0]
    assert [h.loc[("B", x), "fund_payout"] for x in ("H1", "H2", "H3")] == [1680.0, 3360.0, 2160.0]
    assert [h.loc[("B", x), "delta"] for x in ("H1", "H2", "H3")] == [-120.0, 660.0, -540.0]
    pools = hand.pools.set_index("scenario")["point_value"]
    assert pools[BASELINE] == pytest.approx(9.0) and pools["B"] == pytest.approx(9.6)
    summary = hand.summary.set_index("scenario")
    assert summary.loc["B", ["winners", "losers", "moved"]].tolist() == [1, 2, 660.0]


def test_hand_region_regrouping_and_splits(hand):
    """Only variant B changes the scheme: it alone is explained. AA11's four cases split into AA13 (c1 at H1, c3 at
    H2) and AA15 (c2 at H1, c4 at H3); BB11 stays: value 2 x 200 x 9 = 3,600 before, 2 x 200 x 9.6 = 3,840 after."""
    assert set(hand.regrouping["scenario"]) == {"B"}
    rows = hand.regrouping.drop(columns="scenario").to_dict("records")
    assert rows == [
        {"from_group": "AA11", "to_group": "AA13", "cases": 2, "hospitals": 2, "points_before": 200.0,
         "points_after": 300.0, "value_before": 1800.0, "value_after": 2880.0},
        {"from_group": "AA11", "to_group": "AA15", "cases": 2, "hospitals": 2, "points_before": 200.0,
         "points_after": 50.0, "value_before": 1800.0, "value_after": 480.0},
        {"from_group": "BB11", "to_group": "BB11", "cases": 2, "hospitals": 2, "points_before": 400.0,
         "points_after": 400.0, "value_before": 3600.0, "value_after": 3840.0}]
    assert hand.splits.drop(columns="scenario").to_dict("records") == [
        {"from_group": "AA11", "cases": 4, "moved_cases": 4, "to_groups": 2, "into": "AA13 2; AA15 2",
         "points_before": 400.0, "points_after": 350.0, "value_before": 3600.0, "value_after": 3360.0}]
    assert hand.families.drop(columns="scenario").to_dict("records") == [
        {"family": "AA1", "cases": 4, "moved_cases": 4, "points_before": 400.0, "points_after": 350.0,
         "value_before": 3600.0, "value_after": 3360.0},
        {"family": "BB1", "cases": 2, "moved_cases": 0, "points_before": 400.0, "points_after": 400.0,
         "value_before": 3600.0, "value_after": 3840.0}]


def test_hand_region_per_hospital_why(hand):
    """H2: c3 AA11 -> AA13, 100 x 9 = 900 -> 150 x 9.6 = 1,440 (+540); c5 stays in BB11, 1,800 -> 1,920 (+120).
    H3: c4 AA11 -> AA15, 900 -> 25 x 9.6 = 240 (-660); c6 +120. H1: c1 +540, c2 -660: AA1 -120."""
    rows = hand.scheme_hospitals.set_index("hospital_id")
    assert rows["moved_cases"].tolist() == [2, 1, 1] and rows["cases"].tolist() == [2, 2, 2]
    assert rows["points_before"].tolist() == [200.0, 300.0, 300.0]
    assert rows["points_after"].tolist() == [175.0, 350.0, 225.0]
    assert rows["delta"].tolist() == [-120.0, 660.0, -540.0]
    assert rows["why"].tolist() == [
        "AA1 -120.00 yuan (2 of 2 cases moved)",
        "AA1 +540.00 yuan (1 of 1 cases moved); BB1 +120.00 yuan (0 of 1 cases moved)",
        "AA1 -660.00 yuan (1 of 1 cases moved); BB1 +120.00 yuan (0 of 1 cases moved)"]


def test_a_single_grouping_for_two_schemes_is_refused():
    from dipsim.scenarios import ScenarioSet, Variant

    cases, hospitals, grouped = hand_region()
    baseline = DRG.overlay({"budget.total": {"990100-employee": 7200.0}})
    scenarios = ScenarioSet("s", "s", baseline, [Variant("high 3", {"outlier.high_ratio": 3.0})], "test")
    run_scenarios(cases, hospitals, scenarios, grouped["chs-drg-1.1"])  # one scheme: one grouping is enough
    scenarios.variants = [Variant("B", {"payment.drg_scheme": "chs-drg-2.0"})]
    with pytest.raises(ValueError, match=r"pass the cases grouped under each scheme"):
        run_scenarios(cases, hospitals, scenarios, grouped["chs-drg-1.1"])
    with pytest.raises(ValueError, match=r"run 'B': no grouped cases for scheme 'chs-drg-2.0'"):
        run_scenarios(cases, hospitals, scenarios, {"chs-drg-1.1": grouped["chs-drg-1.1"]})


# ---------------------------------------------------------------- a synthetic region through the command line


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("switch_region")
    synthesize_region(root / "region", cases=3_000, hospitals=8, seed=18)
    return root


def cli(*args) -> None:
    from dipsim.cli import main

    assert main([*map(str, args), "-q"]) == 0


def read_rows(path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def payouts(rows, scenario=None) -> dict:
    return {(r["hospital_id"], r["pool"]): Decimal(r["fund_payout"]) for r in rows
            if scenario is None or r["scenario"] == scenario}


@pytest.fixture(scope="module")
def switched(region, tmp_path_factory, monkeypatch_module):
    """`scenarios run` of a file whose baseline is under 1.1 (the default) and two variants under 2.0, one of them
    with another outlier ratio: grouped once per scheme (two groupings)."""
    import dipsim.scenarios

    calls = []
    grouped_cached = dipsim.scenarios.grouped_cached

    def counted(cases, digest, mode, catalog=None, scheme="chs-drg-1.1"):
        calls.append(scheme)
        return grouped_cached(cases, digest, mode, catalog, scheme)

    monkeypatch_module.setattr(dipsim.scenarios, "grouped_cached", counted)
    root = tmp_path_factory.mktemp("switched")
    path = scenario_file(root, "baseline_drg.toml",
                         '[[variant]]\nname = "2.0"\nset = { "payment.drg_scheme" = "chs-drg-2.0" }\n'
                         '[[variant]]\nname = "2.0, high 3"\n'
                         'set = { "payment.drg_scheme" = "chs-drg-2.0", "outlier.high_ratio" = 3.0 }\n'
                         '[[variant]]\nname = "1.1, high 3"\nset = { "outlier.high_ratio" = 3.0 }\n')
    cli("scenarios", "run", path, "--cases", region / "region" / "cases", "--hospitals",
        region / "region" / "hospitals.parquet", "--budget-share", "0.6", "-o", root / "out")
    return root / "out", calls


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_grouped_once_per_scheme(switched):
    out, calls = switched
    assert calls == ["chs-drg-1.1", "chs-drg-2.0"]
    assert {"regrouping.csv", "splits.csv", "families.csv", "scheme_hospitals.csv"} <= {p.name for p in out.iterdir()}
    assert {r["scenario"] for r in read_rows(out / "scheme_hospitals.csv")} == {"2.0", "2.0, high 3"}


def test_settle_under_the_variant_pays_the_same_to_the_fen(region, switched, tmp_path):
    """`settle` with payment.drg_scheme set, or with --scheme, pays every hospital what the scenario's variant pays;
    settle with neither is the baseline."""
    out, _ = switched
    rows = read_rows(out / "hospitals.csv")
    common = ["--hospitals", region / "region" / "hospitals.parquet", "--budget-share", "0.6"]
    policy = SCENARIOS / "baseline_drg.toml"
    cli("settle", region / "region" / "cases", "--policy", policy, "--set", 'payment.drg_scheme="chs-drg-2.0"',
        *common, "-o", tmp_path / "set")
    cli("settle", region / "region" / "cases", "--policy", policy, "--scheme", "chs-drg-2.0", *common,
        "-o", tmp_path / "flag")
    cli("settle", region / "region" / "cases", "--policy", policy, *common, "-o", tmp_path / "plain")
    variant = payouts(rows, "2.0")
    assert variant != payouts(rows, BASELINE)  # the switch moves money
    assert payouts(read_rows(tmp_path / "set" / "hospitals.csv")) == variant
    assert payouts(read_rows(tmp_path / "flag" / "hospitals.csv")) == variant
    assert payouts(read_rows(tmp_path / "plain" / "hospitals.csv")) == payouts(rows, BASELINE)
    import json

    assert json.loads((tmp_path / "set" / "manifest.json").read_text(encoding="utf-8"))["scheme"] == "chs-drg-2.0"


def test_explain_names_the_scheme_a_case_was_grouped_under(region, tmp_path, capsys):
    import pyarrow.parquet as pq

    from dipsim.cli import main

    out = tmp_path / "set"
    cli("settle", region / "region" / "cases", "--policy", SCENARIOS / "baseline_drg.toml", "--set",
        'payment.drg_scheme="chs-drg-2.0"', "--hospitals", region / "region" / "hospitals.parquet",
        "--budget-share", "0.6", "-o", out)
    case = pq.read_table(out / "cases.parquet", columns=["case_id", "group"]).slice(0, 1).to_pylist()[0]
    capsys.readouterr()
    assert main(["explain", str(out), "--case-id", case["case_id"]]) == 0
    text = capsys.readouterr().out
    assert f"group {case['group']} under chs-drg-2.0, its RW calibrated on the region's costs" in text
    assert "payment.drg_scheme = chs-drg-2.0 (the scheme the policy names)" in text


def test_nightly_refuses_a_policy_and_a_scheme_that_differ(tmp_path):
    from dipsim.nightly import run_nightly

    policy = tmp_path / "policy.toml"
    policy.write_text('[payment]\nmode = "drg"\ndrg_scheme = "chs-drg-2.0"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"--scheme chs-drg-1.1 and the policy's payment.drg_scheme = "
                                         r"'chs-drg-2.0' differ"):
        run_nightly(tmp_path / "claims", policy, tmp_path / "h.csv", tmp_path / "state", tmp_path / "out",
                    scheme="chs-drg-1.1", log=lambda _: None)


def test_regrouping_counts_are_the_cases_grouped_under_each_scheme(region, switched):
    """regrouping.csv's counts are a plain count of (1.1 DRG, 2.0 DRG) pairs over the cases grouped by
    `dipsim.grouping.drg.group_table`; splits.csv lists the 1.1 DRGs with two 2.0 DRGs or more."""
    from dipsim.grouping.drg import group_table
    from dipsim.io import load_cases

    out, _ = switched
    cases = load_cases(region / "region" / "cases").accepted
    before = group_table(cases, "chs-drg-1.1")["drg"].to_pylist()
    after = group_table(cases, "chs-drg-2.0")["drg"].to_pylist()
    want = collections.Counter(zip(before, after))
    rows = [r for r in read_rows(out / "regrouping.csv") if r["scenario"] == "2.0"]
    assert {(r["from_group"], r["to_group"]): int(r["cases"]) for r in rows} == dict(want)
    targets = collections.defaultdict(set)
    for (a, b) in want:
        targets[a].add(b)
    splits = {r["from_group"]: r for r in read_rows(out / "splits.csv") if r["scenario"] == "2.0"}
    assert set(splits) == {a for a, b in targets.items() if len(b) >= 2}
    for a, r in splits.items():
        assert int(r["to_groups"]) == len(targets[a])
        assert int(r["moved_cases"]) == sum(n for (x, y), n in want.items() if x == a and y != a)
        assert sum(int(part.rsplit(" ", 1)[1]) for part in r["into"].split("; ")) == int(r["cases"])
    hospitals = read_rows(out / "scheme_hospitals.csv")
    assert sum(int(r["moved_cases"]) for r in hospitals if r["scenario"] == "2.0") == sum(
        a != b for a, b in zip(before, after))


def test_a_hospitals_value_change_is_its_money_change(switched):
    """Without outliers paid by item the points make the whole payment: a hospital's value change (points x point
    value, after minus before) is its payout change, but for the fen rounding of its two pools' rows in each run."""
    out, _ = switched
    for r in read_rows(out / "scheme_hospitals.csv"):
        change = Decimal(r["value_after"]) - Decimal(r["value_before"])
        assert abs(change - Decimal(r["delta"])) <= Decimal("0.05"), r["hospital_id"]
