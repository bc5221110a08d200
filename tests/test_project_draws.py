"""Monte Carlo draws of a projection (issue 20, uncertainty): distributions in the projection file, one child seed
per draw, bands, Dask. Expected values come from numpy's Generator used directly (the draws), from the deterministic
projection run at the drawn values (each draw's results), from plain-Python quantiles (the bands), or are worked by
hand in the docstrings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dipsim.io.errors import InputError
from dipsim.project import (
    _path_text,
    bands,
    draw_spec,
    drawn_values,
    project,
    project_draws,
    projection_of,
)
from tests.test_project import HOSPITALS, policy, tiny
from tests.test_project import region as region  # a fixture (module scope)

UNCERTAIN = {"projection": {"years": 2, "seed": 7},
             "demand": {"volume_growth_by_hospital": {"H1": {"dist": "uniform", "min": 0.0, "max": 0.3}},
                        "cost_growth": {"dist": "triangular", "min": 0.0, "mode": 0.02, "max": 0.05}}}


def test_a_distribution_in_the_file_gives_its_central_value_to_a_deterministic_projection():
    """uniform(0, 0.3) -> 0.15, triangular(0, 0.02, 0.05) -> its mode 0.02, normal -> its mean: the same spec as the
    file with those numbers."""
    spec = projection_of(UNCERTAIN)
    plain = projection_of({"projection": {"years": 2, "seed": 7},
                           "demand": {"volume_growth_by_hospital": {"H1": 0.15}, "cost_growth": 0.02}})
    assert spec.volume_growth_by_hospital == plain.volume_growth_by_hospital == {"H1": 0.15}
    assert spec.cost_growth == plain.cost_growth == [0.02, 0.02]
    normal = projection_of({"projection": {"years": 3}, "behaviour": {
        "drift_factor": {"dist": "normal", "mean": 1.1, "sd": 0.05, "min": 1.0, "max": 1.3},
        "drift_share": [0.01, {"dist": "uniform", "min": 0.0, "max": 0.04}, 0.01]}})
    assert normal.drift_factor == 1.1 and normal.drift_share == [0.01, 0.02, 0.01]
    assert sorted(map(_path_text, normal.distributions)) == ["behaviour.drift_factor", "behaviour.drift_share[1]"]
    cases, grouped = tiny()
    a = project(cases, HOSPITALS, policy(), spec, grouped)
    b = project(cases, HOSPITALS, policy(), plain, grouped)
    pd.testing.assert_frame_equal(a.years, b.years)
    pd.testing.assert_frame_equal(a.hospitals, b.hospitals)


def test_draw_k_is_numpys_kth_child_generator_in_path_order():
    """Draw k's values: Generator(SeedSequence(seed).spawn(n)[k]) drawing the distributions in the order of their
    paths as text (demand.cost_growth, then demand.volume_growth_by_hospital["H1"]), whatever n is."""
    spec = projection_of(UNCERTAIN)
    for n in (3, 8):
        children = np.random.SeedSequence(123).spawn(n)
        for k in range(3):
            rng = np.random.default_rng(children[k])
            cost, volume = rng.triangular(0.0, 0.02, 0.05), rng.uniform(0.0, 0.3)
            values = {_path_text(p): v for p, v in drawn_values(spec, 123, k).items()}
            assert values == {"demand.cost_growth": cost, 'demand.volume_growth_by_hospital["H1"]': volume}


def test_a_truncated_normal_stays_within_its_bounds_and_is_redrawn_not_clipped():
    """normal(0, 1) truncated to [0.5, 0.6]: every draw within the bounds, none at a bound (redrawn, not clipped),
    and draw 0 the first of numpy's normals within them."""
    spec = projection_of({"projection": {"years": 1},
                          "demand": {"cost_growth": {"dist": "normal", "mean": 0.55, "sd": 1.0, "min": 0.5,
                                                     "max": 0.6}}})
    values = [next(iter(drawn_values(spec, 5, k).values())) for k in range(50)]
    assert all(0.5 < v < 0.6 for v in values)
    rng = np.random.default_rng(np.random.SeedSequence(5).spawn(1)[0])
    first = next(x for x in (rng.normal(0.55, 1.0) for _ in range(100_000)) if 0.5 <= x <= 0.6)
    assert values[0] == first


def test_each_draw_is_the_deterministic_projection_at_its_drawn_values():
    """Draw k's tables are those of `project` with the file's numbers set by hand to draw k's values."""
    cases, grouped = tiny()
    spec = projection_of(UNCERTAIN)
    drawn = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=4, seed=99)
    assert sorted(drawn.years["draw"].unique()) == [0, 1, 2, 3]
    for k in (0, 3):
        row = drawn.parameters[drawn.parameters["draw"] == k].iloc[0]
        by_hand = projection_of({"projection": {"years": 2, "seed": 7}, "demand": {
            "volume_growth_by_hospital": {"H1": row['demand.volume_growth_by_hospital["H1"]']},
            "cost_growth": row["demand.cost_growth"]}})
        expected = project(cases, HOSPITALS, policy(), by_hand, grouped)
        got = drawn.years[drawn.years["draw"] == k].drop(columns="draw").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.years)
        got = drawn.hospitals[drawn.hospitals["draw"] == k].drop(columns="draw").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.hospitals)


def test_draw_k_is_the_same_whatever_the_number_of_draws():
    cases, grouped = tiny()
    spec = projection_of(UNCERTAIN)
    few = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=2, seed=3)
    many = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=5, seed=3)
    pd.testing.assert_frame_equal(few.years, many.years[many.years["draw"] < 2].reset_index(drop=True))
    pd.testing.assert_frame_equal(few.parameters, many.parameters[many.parameters["draw"] < 2])
    other = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=2, seed=4)
    assert not few.parameters.equals(other.parameters)


def _quantile(values, q):
    """Plain Python: the value at position q x (n - 1) of the sorted values, linear between its neighbours."""
    s = sorted(values)
    at = q * (len(s) - 1)
    low = math.floor(at)
    high = min(low + 1, len(s) - 1)
    return s[low] + (s[high] - s[low]) * (at - low)


def test_bands_are_the_draws_quantiles():
    """Bands by hand: five draws' point values 1..5 -> p10 1.4, p50 3, p90 4.6 (positions 0.4, 2, 3.6)."""
    years = pd.DataFrame({"draw": range(5), "year": 1, "pool": "P", "point_value": [3.0, 1.0, 5.0, 2.0, 4.0],
                          "budget": 10.0, "fund_payout": 9.0, "balance": None, "months_of_capacity": None})
    hospitals = pd.DataFrame({"draw": range(5), "year": 1, "hospital_id": "H1", "cases": 10, "points": 1.0,
                              "payment": [10.0, 20.0, 30.0, 40.0, 50.0], "fund_payout": 1.0})
    b = bands(years, hospitals)
    row = b[(b["measure"] == "point_value")].iloc[0]
    assert (row["p10"], row["p50"], row["p90"], row["mean"], row["draws"]) == pytest.approx((1.4, 3.0, 4.6, 3.0, 5))
    assert b[b["measure"] == "payment"].iloc[0]["p90"] == pytest.approx(46.0)
    assert "balance" not in set(b["measure"])  # no fund: no band


def test_bands_of_a_projection_match_plain_python_quantiles():
    cases, grouped = tiny()
    drawn = project_draws(cases, HOSPITALS, policy(), projection_of(UNCERTAIN), grouped, draws=7, seed=1)
    b = drawn.bands
    for year in (1, 2):
        values = drawn.years[drawn.years["year"] == year]["point_value"].tolist()
        row = b[(b["year"] == year) & (b["measure"] == "point_value")].iloc[0]
        for q in (0.1, 0.5, 0.9):
            assert row[f"p{q * 100:g}"] == pytest.approx(_quantile(values, q), rel=1e-12)
        payouts = drawn.hospitals[(drawn.hospitals["year"] == year) & (drawn.hospitals["hospital_id"] == "H1")]
        row = b[(b["year"] == year) & (b["hospital_id"] == "H1") & (b["measure"] == "fund_payout")].iloc[0]
        assert row["p90"] == pytest.approx(_quantile(payouts["fund_payout"].tolist(), 0.9), rel=1e-12)
    # the point value falls as H1's volume rises (the budget fixed): more points, a lower value
    d2 = drawn.years[drawn.years["year"] == 2].merge(drawn.parameters, on="draw")
    order = d2.sort_values('demand.volume_growth_by_hospital["H1"]')["point_value"].to_numpy()
    assert (np.diff(order) <= 1e-12).all()


def test_a_file_without_distributions_draws_the_same_projection_every_time():
    cases, grouped = tiny()
    spec = projection_of({"projection": {"years": 1}, "demand": {"volume_growth": 0.1}})
    drawn = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=3, seed=0)
    b = drawn.bands[drawn.bands["measure"] == "point_value"]
    assert (b["p10"] == b["p90"]).all()
    assert draw_spec(spec, {}) is spec


def test_bad_distributions_are_listed_with_their_lines(tmp_path):
    from dipsim.project import load_projection

    path = tmp_path / "p.toml"
    path.write_text('[projection]\nyears = 2\n[demand]\n'
                    'cost_growth = { dist = "lognormal", min = 0.0, max = 1.0 }\n'
                    'volume_growth = { dist = "normal", mean = 0.02, sd = 0.01 }\n'
                    '[behaviour]\ndrift_share = { dist = "uniform", min = 0.5, max = 1.5 }\n'
                    'drift_factor = { dist = "triangular", min = 1.0, mode = 2.0, max = 1.5 }\n', encoding="utf-8")
    with pytest.raises(InputError) as error:
        load_projection(path)
    text = str(error.value)
    assert "cost_growth (line 4): dist is one of" in text
    assert "volume_growth (line 5): a normal distribution is" in text and "missing min, max" in text
    assert "drift_factor (line 8): min <= mode <= max" in text
    path.write_text('[projection]\nyears = 2\n[behaviour]\n'
                    'drift_share = { dist = "uniform", min = 0.5, max = 1.5 }\n', encoding="utf-8")
    with pytest.raises(InputError) as error:
        load_projection(path)
    assert "drift_share (line 4): shares from 0 to 1 (with every distribution at its max)" in str(error.value)


def test_the_synchronous_scheduler_gives_the_in_process_results():
    pytest.importorskip("dask")
    cases, grouped = tiny()
    spec = projection_of(UNCERTAIN)
    local = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=3, seed=11)
    dask = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=3, seed=11, scheduler="synchronous")
    for a, b in ((local.years, dask.years), (local.hospitals, dask.hospitals), (local.bands, dask.bands),
                 (local.parameters, dask.parameters)):
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_in_process_results():
    pytest.importorskip("dask.distributed")
    cases, grouped = tiny()
    spec = projection_of(UNCERTAIN)
    local = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=4, seed=11)
    dask = project_draws(cases, HOSPITALS, policy(), spec, grouped, draws=4, seed=11, scheduler="processes")
    for a, b in ((local.years, dask.years), (local.hospitals, dask.hospitals), (local.bands, dask.bands)):
        pd.testing.assert_frame_equal(a, b)


def test_cli_draws_write_bands_draws_and_parameters(region, tmp_path, capsys):
    """`dipsim project --draws 5 --seed 2` on a synthetic region: bands.csv, draws.parquet, parameters.csv beside
    the central projection, the same files with --scheduler synchronous; the manifest records the draws, their
    seed and distributions."""
    import json

    import pyarrow.parquet as pq

    from dipsim.cli import main

    root, _, _, _, budgets = region
    (tmp_path / "policy.toml").write_text('[payment]\nmode = "dip"\n[budget]\ntotal = { '
                                          + ", ".join(f'"{p}" = {v}' for p, v in budgets.items()) + " }\n",
                                          encoding="utf-8")
    (tmp_path / "p.toml").write_text(
        '[projection]\nyears = 2\npolicy = "policy.toml"\n[demand]\n'
        'volume_growth = { dist = "uniform", min = 0.0, max = 0.2 }\n'
        '[fund."990100-employee"]\ninsured = 1000\ncontribution = 5000.0\nbalance = 1e6\n', encoding="utf-8")
    common = ["--cases", str(root / "region" / "cases"), "--hospitals", str(root / "region" / "hospitals.parquet"),
              "--catalog", str(root / "cat"), "-q", "--draws", "5", "--seed", "2"]
    assert main(["project", str(tmp_path / "p.toml"), *common, "-o", str(tmp_path / "a")]) == 0
    assert "point value over 5 draws p10" in capsys.readouterr().out
    bands_csv = pd.read_csv(tmp_path / "a" / "bands.csv")
    assert set(bands_csv["measure"]) >= {"point_value", "fund_payout", "balance", "payment"}
    draws = pq.read_table(tmp_path / "a" / "draws.parquet").to_pandas()
    assert sorted(draws["draw"].unique()) == [0, 1, 2, 3, 4] and set(draws["what"]) == {"pool", "hospital"}
    parameters = pd.read_csv(tmp_path / "a" / "parameters.csv")
    expected = [np.random.default_rng(c).uniform(0.0, 0.2) for c in np.random.SeedSequence(2).spawn(5)]
    assert parameters["demand.volume_growth"].to_numpy() == pytest.approx(expected, rel=1e-12)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["draws"] == 5 and manifest["draw_seed"] == 2 and "point_value.png" in manifest["outputs"]
    assert manifest["distributions"]["demand.volume_growth"]["kind"] == "uniform"
    assert main(["project", str(tmp_path / "p.toml"), *common, "--scheduler", "synchronous",
                 "-o", str(tmp_path / "b")]) == 0
    for name in ("bands.csv", "parameters.csv", "years.csv", "hospitals.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_draws_reusing_the_years_cases_equal_projections_without_the_cache(region):
    """Only drift drawn: every draw reuses the years' case sets and drift order (`project`'s cache); each draw's
    tables are still those of a projection at its values run without any cache."""
    from dipsim.policy import Policy

    _, cases, hospitals, grouped, budgets = region
    pol = Policy(values={}).overlay({"payment.mode": "dip", "budget.total": budgets})
    data = {"projection": {"years": 2, "seed": 5},
            "demand": {"volume_growth": 0.05, "cost_growth": 0.03},
            "behaviour": {"drift_share": {"dist": "uniform", "min": 0.0, "max": 0.1},
                          "drift_factor": {"dist": "triangular", "min": 1.0, "mode": 1.1, "max": 1.3}}}
    spec = projection_of(data)
    drawn = project_draws(cases, hospitals, pol, spec, grouped, draws=3, seed=8)
    for k in range(3):
        row = drawn.parameters.iloc[k]
        plain = projection_of({**data, "behaviour": {"drift_share": row["behaviour.drift_share"],
                                                     "drift_factor": row["behaviour.drift_factor"]}})
        expected = project(cases, hospitals, pol, plain, grouped)
        got = drawn.hospitals[drawn.hospitals["draw"] == k].drop(columns="draw").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.hospitals)
        got = drawn.years[drawn.years["draw"] == k].drop(columns="draw").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.years)
    assert drawn.hospitals.groupby("draw")["drifted"].sum().nunique() == 3  # the draws differ


def test_the_shipped_example_draws_drift_and_budget_growth_around_its_central_values():
    """scenarios/projection_example.toml: drift share triangular(0, 0.02, 0.04) and budget growth normal(3%, 1%)
    within 1-5%: without --draws the projection is the one of 0.02 and 0.03 (their central values)."""
    from pathlib import Path

    from dipsim.project import load_projection

    spec = load_projection(Path(__file__).resolve().parents[1] / "scenarios" / "projection_example.toml")
    assert spec.drift_share == [0.02] * 5 and spec.growth == [0.03] * 5
    assert sorted(map(_path_text, spec.distributions)) == ["behaviour.drift_share", "budget.growth"]
    values = [drawn_values(spec, spec.seed, k) for k in range(20)]
    assert all(0.0 <= v[("behaviour", "drift_share")] <= 0.04 and 0.01 <= v[("budget", "growth")] <= 0.05
               for v in values)
