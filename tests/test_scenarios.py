"""Scenario files and the runner: variants and sweeps checked before running, zero-sum redistribution under a fixed
budget, and a frozen summary per shipped scenario file (tests/expected/, regenerated only on purpose:
DIPSIM_REGENERATE=1 python -m pytest tests/test_scenarios.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dipsim.io.errors import InputError
from dipsim.paths import repo_root
from dipsim.policy import PolicyError
from dipsim.scenarios import BASELINE, load_scenarios, run_scenarios

SCENARIOS = repo_root() / "scenarios"
EXPECTED = Path(__file__).resolve().parent / "expected"
SHIPPED = ("tcm_weighting", "budget_growth", "outlier_thresholds", "special_case_review")


def test_variants_and_sweeps_are_read_and_checked(tmp_path):
    s = load_scenarios(SCENARIOS / "tcm_weighting.toml")
    assert len(s.variants) == 8  # 4 bonuses x same price on / off
    assert s.variants[2].changes == {"coefficient.tcm_hospital_bonus": 0.05, "tcm.same_price": True}
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[scenario]\nbaseline = "{(SCENARIOS / "baseline.toml").as_posix()}"\n'
                   '[[variant]]\nname = "a"\nset = { "outlier.high_ration" = 1.5 }\n'
                   '[[variant]]\nname = "a"\nset = { "bands.in_effect" = "yes" }\n', encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_scenarios(bad)
    assert len(error.value.problems) == 3  # the typo, the bad value and the repeated name, all at once


@pytest.fixture(scope="module")
def small_region(tmp_path_factory):
    """A small synthetic region, validated, with a DIP catalogue (TCM catalogue included) and budgets of 60% of
    each pool's cost."""
    import pyarrow.parquet as pq

    from dipsim.catalog import CatalogOptions, build_catalog
    from dipsim.grouping.dip import DipCatalog
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.io import load_cases
    from dipsim.region import budgets_from_cost
    from dipsim.synth import synthesize_region
    from dipsim.tcm import load_tcm

    root = tmp_path_factory.mktemp("scenarios")
    synthesize_region(root / "region", cases=6_000, hospitals=12, seed=20251122)
    cases = load_cases(root / "region" / "cases").accepted
    hospitals = pq.read_table(root / "region" / "hospitals.parquet")
    built = build_catalog(cases, CatalogOptions(threshold=10, tcm=load_tcm(repo_root() / "examples" / "dip_tcm.toml")))
    grouped = group_dip(cases, DipCatalog(built.groups, built.options, "test", built.keys))
    budgets = budgets_from_cost(cases, 0.6)
    return cases, hospitals, grouped, budgets


def run(name: str, region):
    cases, hospitals, grouped, budgets = region
    scenarios = load_scenarios(SCENARIOS / f"{name}.toml")
    scenarios.baseline = scenarios.baseline.overlay({"budget.total": budgets})
    return run_scenarios(cases, hospitals, scenarios, grouped)


def test_under_a_fixed_budget_a_tcm_bonus_only_moves_money(small_region):
    results = run("tcm_weighting", small_region)
    h = results.hospitals
    for (scenario, pool), rows in h.groupby(["scenario", "pool"]):
        assert round(rows["delta"].sum(), 2) == 0.0, (scenario, pool)  # zero-sum to the fen
    bonus = h[h["scenario"] == "tcm_hospital_bonus=0.15, same_price=True"]
    assert (bonus.loc[bonus["type"] == "中医", "delta"] > 0).all()  # TCM hospitals gain ...
    assert (bonus.loc[bonus["type"] != "中医", "delta"] <= 0).all()  # ... the others pay
    by_type = results.by_type.set_index(["scenario", "hospital_type"])["delta"]
    assert by_type[("tcm_hospital_bonus=0.15, same_price=True", "TCM (中医)")] == pytest.approx(
        -by_type[("tcm_hospital_bonus=0.15, same_price=True", "other")], abs=0.01)  # what TCM gains, others pay
    summary = results.summary.set_index("scenario")
    assert summary.loc[BASELINE, "moved"] == 0 and summary.loc["tcm_hospital_bonus=0.15, same_price=True",
                                                                "tcm_hospital_share"] > summary.loc[
        BASELINE, "tcm_hospital_share"]


def test_budget_growth_raises_the_point_value_as_the_payments_grow(small_region):
    """Bands off: V = (B + U) / P, so a 5% larger budget gives V x (1.05 B + U) / (B + U) in each pool."""
    from dipsim.payment.chain import case_pools

    cases, _, _, budgets = small_region
    results = run("budget_growth", small_region)
    p = results.pools.pivot(index="pool", columns="scenario", values="point_value")
    pool = case_pools(cases)
    paid = cases["patient_paid"].to_numpy()
    for name in p.index:
        b, u = budgets[name], paid[pool == name].sum()
        assert p.loc[name, "scale=1.05"] / p.loc[name, "scale=1.0"] == pytest.approx((1.05 * b + u) / (b + u))


def frozen(results) -> pd.DataFrame:
    summary = results.summary.copy()
    summary["tcm_hospital_share"] = summary["tcm_hospital_share"].round(6)
    values = results.pools.pivot(index="scenario", columns="pool", values="point_value").round(6)
    return summary.merge(values, left_on="scenario", right_index=True)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_match_their_frozen_summary(name, small_region):
    got = frozen(run(name, small_region))
    path = EXPECTED / f"scenario_{name}.csv"
    if os.environ.get("DIPSIM_REGENERATE") == "1":
        got.to_csv(path, index=False)
    want = pd.read_csv(path)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False, atol=1e-6)


DRG_SHIPPED = ("drg_version_switch",)


@pytest.mark.parametrize("name", DRG_SHIPPED)
def test_shipped_drg_scenarios_match_their_frozen_summary(name, small_region):
    """A DRG scenario file (a CHS-DRG version switch) on the same region, grouped once under each scheme its runs
    use, each scheme's weights calibrated on the region's costs. A regression guard, like the DIP ones above: the
    frozen figures are this code's output when frozen, not worked by hand (tests/test_scheme_switch.py has those);
    with them the cases that moved group and the baseline groups that split, per variant."""
    from dipsim.grouping.grouped_cases import group_drg
    from dipsim.scenarios import run_schemes

    cases, hospitals, _, budgets = small_region
    scenarios = load_scenarios(SCENARIOS / f"{name}.toml")
    scenarios.baseline = scenarios.baseline.overlay({"budget.total": budgets})
    grouped = {scheme: group_drg(cases, scheme) for scheme in set(run_schemes(scenarios).values())}
    results = run_scenarios(cases, hospitals, scenarios, grouped)
    got = frozen(results)
    moved = results.scheme_hospitals.groupby("scenario")["moved_cases"].sum()
    got["moved_cases"] = got["scenario"].map(moved).fillna(0).astype(int)
    got["split_groups"] = got["scenario"].map(results.splits.groupby("scenario").size()).fillna(0).astype(int)
    path = EXPECTED / f"scenario_{name}.csv"
    if os.environ.get("DIPSIM_REGENERATE") == "1":
        got.to_csv(path, index=False)
    want = pd.read_csv(path)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False, atol=1e-6)


def test_review_in_expected_value_by_hand():
    """Three hospitals, points 100 each at a budget point value of 10 (each case paid 1,000). H1: 1,000 cases, two
    candidates losing 9,000 and 4,000 (cost 10,000 and 5,000); quota 1 per mille -> 1 application (the 9,000 loss).
    H2: 3 cases, one candidate losing 2,000: quota rounds down to 0, at least 1 -> applies. H3: no candidate.
    Approval 65.29%: H1 0.6529 approved, 9,000 x 0.6529 = 5,876.10; H2 2,000 x 0.6529 = 1,305.80."""
    from dipsim.payment.terms import ReviewTerms
    from dipsim.policy import Policy
    from dipsim.review import review_cases

    policy = ReviewTerms.of(Policy(values={}).overlay({"review.quota_per_mille": 1.0}), None)
    hospital = np.array(["H1"] * 1000 + ["H2"] * 3 + ["H3"] * 2, dtype=object)
    cost = np.full(1005, 1_000.0)
    cost[0], cost[1], cost[1000] = 10_000.0, 5_000.0, 3_000.0
    candidate = np.zeros(1005, bool)
    candidate[[0, 1, 1000]] = True
    review = review_cases(hospital, cost, np.full(1005, 100.0), np.full(1005, 10.0), candidate, policy)
    assert np.flatnonzero(review.applied).tolist() == [0, 1000]
    h = review.hospitals.set_index("hospital_id")
    assert h.loc["H1", "candidates"] == 2 and h.loc["H1", "applied"] == 1 and h.loc["H3", "applied"] == 0
    assert h.loc["H1", "amount"] == pytest.approx(5_876.10) and h.loc["H2", "amount"] == pytest.approx(1_305.80)
    # the default: the county's published 65.29%
    assert h["approved"].sum() / h["applied"].sum() == pytest.approx(0.6529)


def test_review_monte_carlo_gives_intervals_around_the_expected_value():
    from dipsim.policy import Policy
    from dipsim.review import review_cases, simulate

    rng = np.random.default_rng(3)
    hospital = np.array([f"H{i % 4}" for i in range(4000)], dtype=object)
    cost = rng.uniform(500, 50_000, 4000)
    candidate = rng.random(4000) < 0.1
    from dipsim.payment.terms import ReviewTerms

    review = review_cases(hospital, cost, np.full(4000, 100.0), np.full(4000, 10.0), candidate,
                          ReviewTerms.of(Policy(values={}), None))
    mc = simulate(review, hospital, cost - 1_000, draws=2000, seed=1).set_index("hospital_id")
    ev = review.hospitals.set_index("hospital_id")
    for h in ev.index:
        assert mc.loc[h, "approved_p5"] <= ev.loc[h, "approved"] <= mc.loc[h, "approved_p95"]
        assert mc.loc[h, "approved_mean"] == pytest.approx(ev.loc[h, "approved"], rel=0.05)


def test_supervision_cuts_move_money_from_the_flagged_hospitals_and_raise_the_point_value(small_region):
    """Under a fixed budget the cut points go back to everyone through the point value: the pool pays out the same
    to the fen, the split-stay hospitals pay, the value rises."""
    from dipsim.policy import Policy
    from dipsim.supervise import screen_cases

    cases, _, grouped, _ = small_region
    results = run("supervision", small_region)
    h = results.hospitals
    for (scenario, pool), rows in h.groupby(["scenario", "pool"]):
        assert round(rows["delta"].sum(), 2) == 0.0, (scenario, pool)
    halved = "分解住院: the earlier stay's points halved (Zhejiang)"
    screens = screen_cases(cases, grouped.group, Policy(values={}))
    splitters = set(screens.flags.loc[screens.flags["screen"] == "split_readmission", "hospital_id"])
    assert splitters
    rows = h[h["scenario"] == halved].groupby("hospital_id")["delta"].sum()
    assert (rows[rows.index.isin(splitters)] < 0).all() and (rows[~rows.index.isin(splitters)] >= 0).all()
    values = results.pools.pivot(index="pool", columns="scenario", values="point_value")
    assert (values[halved] > values[BASELINE]).all()
    assert (values["both, and 50 points off each 超长住院 and 五同 repeat"] >= values[halved]).all()


def test_settlement_halves_exactly_the_flagged_earlier_stays(small_region):
    from dipsim.payment.chain import CaseSet, run_chain
    from dipsim.policy import Policy
    from dipsim.supervise import screen_cases

    cases, hospitals, grouped, budgets = small_region
    policy = Policy(values={}).overlay({"budget.total": budgets})
    plain = run_chain(CaseSet.of(cases), grouped, hospitals, policy).case_points
    cut = run_chain(CaseSet.of(cases), grouped, hospitals,
                    policy.overlay({"supervision.split_readmission_factor": 0.5})).case_points
    earlier = screen_cases(cases, grouped.group, policy).masks["split_readmission"]
    assert earlier.sum() > 0
    np.testing.assert_allclose(cut[earlier], plain[earlier] * 0.5)
    np.testing.assert_array_equal(cut[~earlier], plain[~earlier])


def scenario_file(tmp_path, body: str):
    path = tmp_path / "scenario.toml"
    path.write_text(f'[scenario]\nname = "s"\nbaseline = "{(SCENARIOS / "baseline.toml").as_posix()}"\n{body}',
                    encoding="utf-8")
    return path


def test_an_impossible_variant_is_refused_before_anything_runs_naming_it(tmp_path):
    """A variant with the point-value floor above the cap ran to exit 0 and overran every pool; so did a sweep
    point whose low-outlier ratio passed its high one. Refused, each named, with every other problem."""
    path = scenario_file(tmp_path, '[[variant]]\nname = "band 1.2 / 1.1"\n'
                                   'set = { "budget.point_value_floor" = 1.2, "budget.point_value_cap" = 1.1 }\n'
                                   '[sweep]\n"outlier.low_ratio" = [0.5, 1.6]\n"outlier.high_ratio" = [1.5, 2.0]\n')
    with pytest.raises(PolicyError) as error:
        load_scenarios(path)
    assert [p.split(";")[0] for p in error.value.problems] == [
        "variant 'band 1.2 / 1.1': budget.point_value_floor <= budget.point_value_cap: 1.2 > 1.1",
        "variant 'low_ratio=1.6, high_ratio=1.5': outlier.low_ratio < outlier.high_ratio: 1.6 >= 1.5"]


def test_a_sweep_above_the_limit_is_refused_before_it_is_built(tmp_path, capsys):
    """Eight parameters of ten values each: 10^8 variants grew to 5 GB. Counted, refused in no time, with the way
    to raise the limit; a named variant counts too. --max-variants raises it."""
    import time

    from dipsim.cli import main

    grid = "".join(f'"{p}" = [{", ".join(str(1 + i / 100) for i in range(10))}]\n' for p in (
        "outlier.high_ratio", "outlier.extreme_ratio", "budget.scale", "budget.point_value_cap",
        "review.approval_rate", "review.quota_per_mille", "coefficient.history_blend", "cycle.prepay_share"))
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"100,000,000 variants \(0 named \+ the sweep's 10 outlier.high_ratio x "
                                         r"10 outlier.extreme_ratio x .*\) are more than 10,000: narrow the sweep, "
                                         r"or raise the limit with --max-variants N"):
        load_scenarios(scenario_file(tmp_path, "[sweep]\n" + grid))
    assert time.perf_counter() - start < 5
    path = scenario_file(tmp_path, '[[variant]]\nname = "a"\nset = { "budget.scale" = 1.05 }\n'
                                   '[sweep]\n"budget.scale" = [0.9, 0.95, 1.0]\n"tcm.same_price" = [true, false]\n')
    args = ["scenarios", "run", str(path), "--cases", str(tmp_path / "absent"), "--hospitals", "h.csv", "-o",
            str(tmp_path / "out")]
    assert main([*args, "--max-variants", "6"]) == 1  # 1 + 3 x 2 = 7 variants
    assert "7 variants (1 named + the sweep's 3 budget.scale x 2 tcm.same_price) are more than 6" in \
        capsys.readouterr().err
    assert len(load_scenarios(path, max_variants=7).variants) == 7


def test_a_binary_scenario_file_is_a_one_line_error(tmp_path, capsys):
    from dipsim.cli import main

    path = tmp_path / "scenario.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert main(["scenarios", "run", str(path), "--cases", "c", "--hospitals", "h", "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err == f"dipsim scenarios run: error: {path}: not a scenario file: byte 0 (b'\\x89') is not UTF-8 text; " \
                  "a scenario file is TOML saved as UTF-8\n"
