"""Lever scenarios of a projection side by side (issue 20): [scenario.NAME] tables, the comparison, the figures and
the report. Expected values are worked by hand in the docstrings (the two-hospital region of tests/test_project.py),
or are the baseline's own rows (a scenario that changes nothing), or the years.csv / hospitals.csv rows a
comparison row is made of."""

from __future__ import annotations

import contextlib
import csv
import io
import tomllib

import pandas as pd
import pytest

from dipsim.io.errors import InputError
from dipsim.project import projection_of
from dipsim.projection.levers import lever_scenarios, project_levers
from tests.test_project import HOSPITALS, policy, tiny
from tests.test_project import region as region  # a fixture (module scope)

FILE = '''[projection]
years = 1
seed = 7
title = "tiny"

[demand]
volume_growth_by_hospital = { H1 = 0.10 }
cost_growth = 0.03

[scenario.reserve]
title = "调剂金 5%"
policy = { "budget.reserve_share" = { "2025-01-01" = 0.0, "2026-01-01" = 0.05 } }

[scenario.same]
title = "the baseline again"
policy = { "budget.reserve_share" = 0.0 }

[scenario.faster.demand]
volume_growth_by_hospital = { H1 = 0.20 }
'''


def spec_of(text: str, source: str = "p.toml"):
    return projection_of(tomllib.loads(text), source, text)


def rows(frame: pd.DataFrame, scenario: str) -> pd.DataFrame:
    return frame[frame["scenario"] == scenario].drop(columns="scenario").reset_index(drop=True)


def run(text: str = FILE, **options):
    cases, grouped = tiny()
    scenarios = lever_scenarios(spec_of(text), policy())
    return project_levers(cases, HOSPITALS, policy(), scenarios, grouped, **options)


def test_a_five_percent_reserve_by_hand():
    """Budget 10,000; H1 +10% cases (11 in year 1), H2 10; every case 100 points; patients pay nothing.
    Reserve 0 in 2025 (year 0: V = 10,000 / 2,000 = 5, as the baseline) and 5% from 2026 (year 1): 9,500 available,
    V = 9,500 / 2,100 = 4.5238095...; H1 1,100 V = 497,619.05 fen, H2 1,000 V = 452,380.95 fen; floors 497,619 +
    452,380 = 949,999, the fen left to the larger remainder (H2 .95) -> H1 4,976.19, H2 4,523.81 yuan.
    The baseline's year 1 (tests/test_project.py): V = 10,000 / 2,100, H1 5,238.10, H2 4,761.90.
    Comparison, the reserve's last year (1) against year 0: V 4.5238095 - 5 = -0.4761905 (-9.5238%); against the
    baseline 9,500 / 10,000 - 1 = -5%; 三级甲等 (H1) 4,976.19 - 5,000.00 = -23.81 yuan, against the baseline
    4,976.19 - 5,238.10 = -261.91 yuan."""
    results = run()
    years = results.years.set_index(["scenario", "year"])
    assert years.loc[("reserve", 0), "point_value"] == pytest.approx(5.0, abs=1e-12)
    assert years.loc[("reserve", 1), "point_value"] == pytest.approx(9_500 / 2_100, abs=1e-9)
    assert years.loc[("reserve", 1), "budget_available"] == 9_500.00
    h = results.hospitals.set_index(["scenario", "year", "hospital_id"])["fund_payout"]
    assert (h[("reserve", 1, "H1")], h[("reserve", 1, "H2")]) == (4_976.19, 4_523.81)
    assert (h[("baseline", 1, "H1")], h[("baseline", 1, "H2")]) == (5_238.10, 4_761.90)
    c = results.comparison.set_index(["scenario", "measure", "level"], drop=False)
    pv = results.comparison[(results.comparison["scenario"] == "reserve")
                            & (results.comparison["measure"] == "point_value")].iloc[0]
    assert (pv["base_year"], pv["year"], pv["base"]) == (0, 1, 5.0)
    assert pv["change"] == pytest.approx(9_500 / 2_100 - 5, abs=1e-9)
    assert pv["change_pct"] == pytest.approx(9_500 / 2_100 / 5 - 1, abs=1e-9)
    assert pv["against_baseline_pct"] == pytest.approx(-0.05, abs=1e-9)
    top = c.loc[("reserve", "fund_payout", "三级甲等")]
    assert (top["base"], top["value"], top["change"], top["against_baseline"]) == (5_000.00, 4_976.19, -23.81,
                                                                                    -261.91)
    assert results.titles == {"baseline": "tiny", "reserve": "调剂金 5%", "same": "the baseline again",
                              "faster": "faster"}


def test_a_scenario_identical_to_the_baseline_gives_identical_rows_and_draws():
    """[scenario.same] sets the reserve to its default (0): its years, hospitals and, with draws, every draw's rows
    and bands are the baseline's."""
    uncertain = FILE.replace("cost_growth = 0.03", 'cost_growth = { dist = "uniform", min = 0.0, max = 0.06 }')
    results = run(uncertain, draws=3, seed=5)
    pd.testing.assert_frame_equal(rows(results.years, "same"), rows(results.years, "baseline"))
    pd.testing.assert_frame_equal(rows(results.hospitals, "same"), rows(results.hospitals, "baseline"))
    drawn = results.drawn
    for part in (drawn.years, drawn.hospitals, drawn.bands, drawn.parameters):
        pd.testing.assert_frame_equal(rows(part, "same"), rows(part, "baseline"))
    assert rows(drawn.parameters, "baseline")["demand.cost_growth"].nunique() == 3  # the draws differ
    same = results.comparison[results.comparison["scenario"] == "same"]
    assert (same["against_baseline"] == 0).all()


def test_a_scenarios_table_replaces_keys_of_the_files_table_and_keeps_the_others():
    """[scenario.faster.demand] volume_growth_by_hospital = { H1 = 0.20 }: H1 round(10 x 1.2) = 12 cases in year 1
    (the baseline's 11); [demand] cost_growth = 0.03 stays: H1's cost 12 x 1,030.00 = 12,360.00."""
    h = run().hospitals.set_index(["scenario", "year", "hospital_id"])
    assert (h.loc[("faster", 1, "H1"), "cases"], h.loc[("baseline", 1, "H1"), "cases"]) == (12, 11)
    assert h.loc[("faster", 1, "H1"), "cost"] == 12_360.00


def test_level_bands_sum_the_levels_hospitals_in_each_draw():
    """Each level has one hospital here (H1 三级甲等, H2 二级甲等): the level's band is its hospital's."""
    results = run(FILE.replace("cost_growth = 0.03", 'cost_growth = { dist = "uniform", min = 0.0, max = 0.06 }')
                  .replace("volume_growth_by_hospital = { H1 = 0.10 }",
                           'volume_growth_by_hospital = { H1 = { dist = "uniform", min = 0.0, max = 0.5 } }'),
                  draws=5, seed=2)
    b = results.drawn.bands
    level = b[(b["what"] == "level") & (b["level"] == "三级甲等")].set_index(["scenario", "year", "measure"])
    hospital = b[(b["what"] == "hospital") & (b["hospital_id"] == "H1")].set_index(["scenario", "year", "measure"])
    cols = ["draws", "mean", "p10", "p50", "p90"]
    pd.testing.assert_frame_equal(level[cols], hospital.loc[level.index, cols])
    assert level.loc[("baseline", 1, "cases"), "p90"] > level.loc[("baseline", 1, "cases"), "p10"]


def test_level_payouts_sum_whole_fen_per_scenario_in_the_files_order():
    """By hand: zeta's two 三级甲等 hospitals 0.10 + 0.20 = 0.30 yuan (30 fen, not the float 0.30000000000000004),
    100.01 + 0.02 = 100.03 payment; alpha's one 二级甲等 hospital 7.77; zeta first (its first row), not by name."""
    from dipsim.projection.levers import level_payouts

    hospitals = pd.DataFrame({"scenario": ["zeta", "zeta", "alpha"], "year": [1, 1, 1],
                              "hospital_id": ["H1", "H3", "H2"], "level": ["三级甲等", "三级甲等", "二级甲等"],
                              "cases": [2, 5, 4], "payment": [100.01, 0.02, 7.77], "fund_payout": [0.10, 0.20, 7.77]})
    out = level_payouts(hospitals)
    assert out.to_dict("records") == [
        {"scenario": "zeta", "year": 1, "level": "三级甲等", "hospitals": 2, "cases": 7, "payment": 100.03,
         "fund_payout": 0.30},
        {"scenario": "alpha", "year": 1, "level": "二级甲等", "hospitals": 1, "cases": 4, "payment": 7.77,
         "fund_payout": 7.77}]


def test_every_problem_of_every_scenario_is_listed_with_its_line():
    text = FILE + '''
[scenario.typo]
policy = { "budget.reserve_shar" = 0.05 }

[scenario.too_much.policy]
"budget.reserve_share" = 1.5

[scenario.bad.demand]
volume_growth = -2

[scenario.seeded]
projection = { seed = 1 }

[scenario.baseline]

[scenario.drg]
policy = { "payment.drg_scheme" = "chs-drg-2.0" }
'''
    with pytest.raises(InputError) as error:
        lever_scenarios(spec_of(text), policy())
    message = str(error.value)
    assert message.startswith("p.toml: 7 problem(s) in the scenarios:")
    assert "[scenario.typo] policy (line 22): budget.reserve_shar: unknown parameter (did you mean " \
           "budget.reserve_share?)" in message
    assert "[scenario.too_much] policy (line 25): budget.reserve_share: 1.5 must be below 1.0" in message
    assert "[scenario.bad] [demand] volume_growth (line 28): a yearly rate above -1" in message
    assert "[scenario.seeded] projection (line 31): a scenario runs the file's [projection]" in message
    assert "[scenario.baseline] (line 33): the name 'baseline' is the file itself" in message
    assert "[scenario.drg] policy (line 36): payment.drg_scheme: a projection groups the cases once" in message


def test_the_shipped_example_compares_the_five_levers_on_its_policy():
    from pathlib import Path

    from dipsim.policy import load_policy
    from dipsim.project import load_projection

    spec = load_projection(Path(__file__).resolve().parents[1] / "scenarios" / "projection_example.toml")
    scenarios = lever_scenarios(spec, load_policy(spec.policy))
    assert [s.name for s in scenarios] == ["baseline", "reserve", "floor", "caps", "reweight"]
    reserve, floor, caps = scenarios[1].changes, scenarios[2].changes, scenarios[3].changes
    assert reserve == {"budget.reserve_share": {"2025-01-01": 0.0, "2026-01-01": 0.05}}
    assert floor["budget.point_value_floor"] == {"2025-01-01": 0.0, "2026-01-01": 1.0}
    assert scenarios[2].spec.budget_point_value == "history"  # the floor's base set from the years before
    assert caps["budget.hospital_cap_tiers"]["2026-01-01"] == [[0.0, 1.0], [1.0, 0.79], [1.05, 0.53], [1.10, 0.26]]
    assert scenarios[4].spec.catalogue.rule == "reweight" and not scenarios[4].changes
    assert all(s.spec.seed == spec.seed and s.spec.years == spec.years for s in scenarios)


# ------------------------------------------------------------------ the command


def read_rows(path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


HOSTILE = '<script>alert("x")</script> $x^$ & 点值'


@pytest.fixture(scope="module")
def levers_run(region, tmp_path_factory):
    """`dipsim project` with two scenarios (a dated 5% reserve, a faster volume), a hostile title, a fund: in Chinese
    with 2 draws, in English without."""
    from dipsim.cli import main

    root, _, _, _, budgets = region
    out = tmp_path_factory.mktemp("levers")
    (out / "policy.toml").write_text('[payment]\nmode = "dip"\n[budget]\ntotal = { '
                                     + ", ".join(f'"{p}" = {v}' for p, v in budgets.items()) + " }\n",
                                     encoding="utf-8")
    (out / "p.toml").write_text(
        f'[projection]\nyears = 2\npolicy = "policy.toml"\ntitle = {tomllib_quote(HOSTILE)}\n'
        '[demand]\nvolume_growth = { dist = "uniform", min = 0.0, max = 0.1 }\n'
        '[fund."990100-employee"]\ninsured = 1000\ncontribution = 5000.0\nbalance = 1e6\n'
        '[scenario.reserve]\ntitle = "调剂金 5%"\n'
        'policy = { "budget.reserve_share" = { "2020-01-01" = 0.0, "2026-01-01" = 0.05 } }\n'
        f'[scenario.hostile]\ntitle = {tomllib_quote(HOSTILE + " 2")}\n[scenario.hostile.demand]\n'
        'volume_growth = 0.2\n', encoding="utf-8")
    common = ["--cases", str(root / "region" / "cases"), "--hospitals", str(root / "region" / "hospitals.parquet"),
              "--catalog", str(root / "cat"), "-q"]
    assert main(["project", str(out / "p.toml"), *common, "--draws", "2", "-o", str(out / "zh")]) == 0
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["project", str(out / "p.toml"), *common, "--lang", "en", "-o", str(out / "en")]) == 0
    return out, common, printed.getvalue()


def tomllib_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_the_report_has_every_figure_and_escapes_a_hostile_title(levers_run):
    out, _, _ = levers_run
    for lang, heading in (("zh", "多年预测报告"), ("en", "Projection report")):
        folder = out / lang
        page = (folder / "report.html").read_text(encoding="utf-8")
        for figure in ("point_value", "balance", "payout_by_level"):
            assert (folder / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
            assert f"<img alt='{figure}' src='data:image/png;base64," in page
        assert "<script" not in page and "http://" not in page and "https://" not in page  # no script, no CDN
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; $x^$ &amp; 点值" in page
        assert f"<h1>{heading}" in page
        assert "调剂金 5%" in page  # the comparison's columns are the scenarios' titles


def test_the_outputs_have_a_scenario_column_and_the_comparison_equals_the_rows_it_comes_from(levers_run):
    """Every comparison row: its value and base are years.csv's rows of the last year and year 0 (pools), or the
    sum of hospitals.csv's rows of the level (to the fen); change = value - base; against_baseline = value - the
    baseline's value."""
    import pyarrow.parquet as pq

    out, _, _ = levers_run
    folder = out / "zh"
    years, hospitals = read_rows(folder / "years.csv"), read_rows(folder / "hospitals.csv")
    assert {r["scenario"] for r in years} == {r["scenario"] for r in hospitals} == {"baseline", "reserve", "hostile"}
    assert {r["scenario"] for r in read_rows(folder / "bands.csv")} == {"baseline", "reserve", "hostile"}
    assert set(pq.read_table(folder / "draws.parquet").column("scenario").to_pylist()) == {"baseline", "reserve",
                                                                                             "hostile"}
    comparison = read_rows(folder / "comparison.csv")
    assert {r["measure"] for r in comparison} == {"point_value", "balance", "months_of_capacity", "fund_payout"}
    by_pool = {(r["scenario"], r["year"], r["pool"]): r for r in years}
    for r in comparison:
        if r["measure"] == "fund_payout":
            def level_sum(year, scenario=r["scenario"], level=r["level"]):
                return round(sum(float(h["fund_payout"]) for h in hospitals if h["scenario"] == scenario
                                 and h["year"] == year and h["level"] == level), 2)
            base, value = level_sum("0"), level_sum("2")
            baseline = level_sum("2", scenario="baseline")
        else:
            base = float(by_pool[(r["scenario"], "0", r["pool"])][r["measure"]])
            value = float(by_pool[(r["scenario"], "2", r["pool"])][r["measure"]])
            baseline = float(by_pool[("baseline", "2", r["pool"])][r["measure"]])
        assert (r["base_year"], r["year"]) == ("0", "2")
        assert float(r["base"]) == pytest.approx(base, abs=1e-9) and float(r["value"]) == pytest.approx(value,
                                                                                                        abs=1e-9)
        assert float(r["change"]) == pytest.approx(value - base, abs=1e-6)
        assert float(r["against_baseline"]) == pytest.approx(value - baseline, abs=1e-6)
    reserve = [r for r in comparison if r["scenario"] == "reserve" and r["measure"] == "point_value"]
    assert all(float(r["against_baseline_pct"]) < 0 for r in reserve)  # a reserve lowers every point value


def test_a_bad_parameter_in_a_scenario_is_the_commands_error_with_the_files_line(levers_run, capsys):
    from dipsim.cli import main

    out, common, _ = levers_run
    bad = out / "bad.toml"
    bad.write_text('[projection]\nyears = 2\npolicy = "policy.toml"\n\n[scenario.floor]\n'
                   'policy = { "budget.point_value_floor" = -1 }\n', encoding="utf-8")
    assert main(["project", str(bad), *common, "-o", str(out / "bad")]) == 1
    err = capsys.readouterr().err
    assert "[scenario.floor] policy (line 6): budget.point_value_floor" in err
    assert not (out / "bad").exists()


def test_the_console_prints_the_scenarios_side_by_side(levers_run):
    """A column per scenario (its title, markup not read), a row per measure and pool (level), each cell the last
    year's value and its change from the base year (and the baseline's)."""
    _, _, printed = levers_run
    head = next(line for line in printed.splitlines() if "measure" in line)
    assert "调剂金 5%" in head and head.index("measure") < head.index("调剂金 5%")
    assert "point value, year 2" in printed and "fund payout, year 2" in printed
    assert "vs year 0" in printed and "vs baseline" in printed
    assert "3 scenario(s) x 3 years" in printed


@pytest.mark.slow
def test_every_scenarios_draws_on_one_local_dask_cluster_give_the_in_process_results():
    pytest.importorskip("dask.distributed")
    uncertain = FILE.replace("cost_growth = 0.03", 'cost_growth = { dist = "uniform", min = 0.0, max = 0.06 }')
    local = run(uncertain, draws=3, seed=4)
    dask = run(uncertain, draws=3, seed=4, scheduler="processes")
    for part in ("years", "hospitals", "bands", "parameters"):
        pd.testing.assert_frame_equal(getattr(local.drawn, part), getattr(dask.drawn, part))
