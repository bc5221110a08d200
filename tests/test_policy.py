"""Policy files: every problem at once, dated values, overlays checked before they apply."""

from __future__ import annotations

import pytest

from dipsim.paths import repo_root
from dipsim.policy import PARAMETERS, Policy, PolicyError, load_policy


def write(tmp_path, text: str):
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_baseline_loads_and_every_parameter_says_unit_default_and_source():
    policy = load_policy(repo_root() / "scenarios" / "baseline.toml")
    assert policy.name == "baseline-dip" and policy.get("outlier.low_ratio") == 0.5
    assert policy.get("coefficient.level")["一级"] == 0.677
    for p in PARAMETERS.values():
        assert p.doc and p.source, p.path
        assert p.type in ("float", "int", "str", "bool", "map", "schedule"), p.path


def test_every_problem_is_reported_at_once_with_its_key(tmp_path):
    path = write(tmp_path, """
[outlier]
low_ratio = "half"
high_ration = 2.0
[bands]
deficit_fund_share = 1.5
[coefficient]
level = { "三级甲等" = "one" }
""")
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert len(error.value.problems) == 4
    text = str(error.value)
    assert "outlier.low_ratio: expected a number" in text
    assert "outlier.high_ration: unknown parameter (did you mean outlier.high_ratio?)" in text
    assert "bands.deficit_fund_share: 1.5 is above the maximum 1.0" in text
    assert "coefficient.level: entries ['三级甲等'] are not numbers" in text
    assert error.value.exit_code == 1


def test_dated_values_take_effect_on_their_day(tmp_path):
    policy = load_policy(write(tmp_path, 'outlier.high_ratio = { "2025-01-01" = 2.0, "2025-07-01" = 1.5 }\n'))
    assert policy.get("outlier.high_ratio", on="2025-06-30") == 2.0
    assert policy.get("outlier.high_ratio", on="2025-07-01") == 1.5
    with pytest.raises(KeyError, match="no value in force"):
        policy.get("outlier.high_ratio", on="2024-12-31")


def test_an_overlay_is_checked_whole_before_it_applies_and_leaves_the_baseline_alone():
    base = Policy(values={})
    with pytest.raises(PolicyError) as error:
        base.overlay({"outlier.high_ratio": 1.5, "bands.in_effect": "yes"})
    assert len(error.value.problems) == 1  # the good change did not apply either: nothing half-applied
    variant = base.overlay({"outlier.high_ratio": 1.5}, name="lower high outliers")
    assert variant.get("outlier.high_ratio") == 1.5 and base.get("outlier.high_ratio") == 2.0
    assert variant.digest() != base.digest() and variant.overlays == ({"outlier.high_ratio": 1.5},)


# ---------------------------------------------------------------- values that cannot be meant (issue 15, item 6)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_a_ratio_set_to_nan_or_inf_is_refused_although_it_passes_the_minimum(text):
    """`--set outlier.high_ratio=nan` passed `min = 1.0` (every comparison with nan is false) and priced every case
    with a nan factor."""
    with pytest.raises(PolicyError) as error:
        Policy(values={}).overlay({"outlier.high_ratio": float(text)})
    assert error.value.problems == [f"outlier.high_ratio: {float(text)} is not a finite number"]


def test_non_finite_numbers_are_refused_in_maps_schedules_and_dated_values(tmp_path):
    path = write(tmp_path, """
[budget]
total = { "990100-employee" = inf, "990100-resident" = 1000.0 }
[coefficient]
level = { "三级甲等" = nan }
[cycle]
quality_schedule = [[90, 1.0], [80, nan]]
prepay_share = { "2025-01-01" = 0.9, "2025-07-01" = nan }
""")
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert error.value.problems == [
        "budget.total: entry '990100-employee': inf is not a finite number",
        "coefficient.level: entry '三级甲等': nan is not a finite number",
        "cycle.quality_schedule: every threshold and value must be a finite number, not [[90, 1.0], [80, nan]]",
        "cycle.prepay_share (from 2025-07-01): nan is not a finite number"]


def test_a_policy_whose_values_cannot_be_meant_together_lists_every_problem_at_once(tmp_path):
    """The report's cases: a point-value floor above the cap (the pools overran their budgets by 17.6 M yuan), a
    low-outlier ratio above the high one, budgets of 0 and -5, a reserve share of 1 (hospitals with negative
    payouts); and, for a level of the by-level tables, a low ratio above that level's high ratio (二级: 1.3 against
    1.2; 一级 takes the plain high ratio 2.0 against its own low 1.5, which is fine)."""
    path = write(tmp_path, """
[outlier]
low_ratio = 2.5
high_ratio = 2.0
high_ratio_by_level = { "二级" = 1.2 }
low_ratio_by_level = { "二级" = 1.3, "一级" = 1.5 }
[budget]
point_value_floor = 1.2
point_value_cap = 1.1
reserve_share = 1.0
total = { "990100-employee" = 0.0, "990100-resident" = -5.0 }
""")
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert [p.split(";")[0] for p in error.value.problems] == [
        "budget.reserve_share: 1.0 must be below 1.0 share",
        "budget.total: entry '990100-employee': 0.0 must be above 0.0 yuan",
        "budget.point_value_floor <= budget.point_value_cap: 1.2 > 1.1",
        "outlier.low_ratio < outlier.high_ratio: 2.5 >= 2.0",
        "outlier.low_ratio < outlier.high_ratio: 1.3 >= 1.2 at level 二级"]
    assert "entry '990100-resident': -5.0 must be above 0.0 yuan" in error.value.problems[1]
    assert "a floor above the cap (0: no cap) makes every pool overrun its budget" in error.value.problems[2]
    assert error.value.exit_code == 1 and str(error.value).startswith(f"{path}: 5 problem(s) in the policy")


def test_a_cap_of_zero_is_no_cap_and_equal_floor_and_cap_are_allowed():
    base = Policy(values={})
    assert base.overlay({"budget.point_value_floor": 0.9}).get("budget.point_value_cap") == 0.0
    assert base.overlay({"budget.point_value_floor": 1.0, "budget.point_value_cap": 1.0})


def test_a_dated_floor_that_rises_above_the_cap_is_refused_from_its_date(tmp_path):
    """The floor is 0.9 until June and 1.2 from July; the cap stays 1.1: the rule breaks from 2025-07-01 only."""
    path = write(tmp_path, '[budget]\npoint_value_floor = { "2025-01-01" = 0.9, "2025-07-01" = 1.2 }\n'
                           'point_value_cap = 1.1\n')
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert [p.split(";")[0] for p in error.value.problems] == [
        "budget.point_value_floor <= budget.point_value_cap (from 2025-07-01): 1.2 > 1.1"]


def test_an_overlay_is_checked_with_the_rules_on_the_policy_it_makes():
    """The baseline's high ratio is 2; a variant lowering the extreme ratio to 1.5 flags normal cases as extreme
    (特例单议) and is refused; so is a variant whose per-level high ratio passes the extreme one."""
    base = Policy(values={})
    with pytest.raises(PolicyError) as error:
        base.overlay({"outlier.extreme_ratio": 1.5}, name="extreme 1.5")
    assert str(error.value).startswith("extreme 1.5: 1 problem(s)")
    assert error.value.problems[0].startswith("outlier.high_ratio <= outlier.extreme_ratio: 2.0 > 1.5;")
    with pytest.raises(PolicyError) as error:
        base.overlay({"outlier.high_ratio_by_level": {"三级甲等": 6.0}})
    assert error.value.problems[0].startswith(
        "outlier.high_ratio <= outlier.extreme_ratio: 6.0 > 5.0 at level 三级甲等;")
    with pytest.raises(PolicyError) as error:
        base.overlay({"monitor.warning_excess": 0.2})  # 预警 at 20% but 警报 at 10%
    assert error.value.problems[0].startswith("monitor.warning_excess <= monitor.alert_excess: 0.2 > 0.1;")


@pytest.mark.parametrize("content, what", [
    (bytes(range(256)), "byte 128 (b'\\x80') is not UTF-8 text"),  # a binary file given as the policy
    ("[outlier]\nlow_ratio = 0.5  # 低倍率\n".encode("gb18030"), "is not UTF-8 text"),  # saved as GBK
])
def test_a_binary_or_gbk_policy_file_is_a_one_line_error_not_a_crash(tmp_path, capsys, content, what):
    from dipsim.cli import main

    path = tmp_path / "policy.toml"
    path.write_bytes(content)
    assert main(["settle", str(tmp_path / "cases.csv"), "--policy", str(path), "--hospitals", "h.csv",
                 "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: not a policy file: " in err and what in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_set_and_budget_on_the_command_line_are_checked_with_the_policy_all_at_once(tmp_path, capsys):
    """`--set outlier.high_ratio=inf`, `--budget POOL=inf`, a pool given twice, a budget of 0 and of -5, a floor
    above the cap: one exit-1 error listing them all, before any case is read."""
    from dipsim.cli import main

    code = main(["settle", str(tmp_path / "absent.csv"), "--policy", str(repo_root() / "scenarios" / "baseline.toml"),
                 "--hospitals", "h.csv", "-o", str(tmp_path / "out"),
                 "--set", "outlier.high_ratio=inf", "--set", "budget.point_value_floor=1.2",
                 "--set", "budget.point_value_cap=1.1",
                 "--budget", "990100-employee=inf", "--budget", "990100-resident=1000",
                 "--budget", "990100-resident=2000", "--budget", "990200-employee=0", "--budget", "990200-resident=-5"])
    err = capsys.readouterr().err
    assert code == 1 and "4 problem(s) in the policy" in err
    for line in ("--budget 990100-resident is given twice (1,000.00 and 2,000.00): give each pool once",
                 # the amounts are checked as budget.total's entries, whether given in the file or by --budget
                 "budget.total: entry '990100-employee': inf is not a finite number; entry '990200-employee': "
                 "0.0 must be above 0.0 yuan; entry '990200-resident': -5.0 must be above 0.0 yuan",
                 "outlier.high_ratio: inf is not a finite number",
                 "budget.point_value_floor <= budget.point_value_cap: 1.2 > 1.1"):
        assert line in err, line
    assert "absent.csv" not in err  # nothing was read
