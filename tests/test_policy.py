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
