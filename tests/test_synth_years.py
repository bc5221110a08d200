"""dipsim synth --years (issue 20): a multi-year region with injected trends, and the issue's check that projecting
from year 1 with the injected parameters reproduces year 3 (point values within 1%, drifting hospitals' payouts
within 2%). The reference for year 3 is the synthetic year 3 itself (its own cases, drawn independently of the
projection's copies), grouped to the year-1 catalogue and settled by the payment chain; the structural checks
recompute counts and money from year 1 in plain Python."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dipsim.synth.years import Trends, synthesize_years

from case_tables import case_table

YEARS, CASES, HOSPITALS, SEED = 3, 20_000, 10, 7
TRENDS = Trends(drift_share=0.10)  # strong drift: year 3 has 20% of the drifting hospitals' cases picked


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_years")
    summary = synthesize_years(root / "region", years=YEARS, cases=CASES, hospitals=HOSPITALS, seed=SEED, trends=TRENDS)
    return root / "region", summary


def load(folder):
    from dipsim.io import load_cases

    loaded = load_cases(folder)
    assert loaded.n_rejected == 0
    return loaded.accepted


def test_volume_cost_dates_and_ids_follow_the_injected_trends(region):
    out, summary = region
    t = summary.trends
    assert set(t.drift_share_by_hospital) and set(t.volume_growth_by_hospital)
    assert not set(t.drift_share_by_hospital) & set(t.volume_growth_by_hospital)
    y1, y3 = load(out / "year1" / "cases").to_pylist(), load(out / "year3" / "cases").to_pylist()
    n1: dict[str, int] = {}
    for r in y1:
        n1[r["hospital_id"]] = n1.get(r["hospital_id"], 0) + 1
    n3: dict[str, int] = {}
    for r in y3:
        n3[r["hospital_id"]] = n3.get(r["hospital_id"], 0) + 1
    for h, n in n1.items():
        g = t.volume_growth_by_hospital.get(h, t.volume_growth)
        assert n3[h] == round(n * (1 + g) * (1 + g)), h  # Python's round: half to even
    assert len({r["case_id"] for r in y3}) == len(y3)
    base = {r["case_id"]: r for r in y1}
    for r in y3[:500] + y3[-500:]:
        original = base[r["case_id"].split("-Y3")[0]]
        assert r["hospital_id"] == original["hospital_id"]
        assert r["total_cost"] == round(original["total_cost"] * 1.04 * 1.04, 2)
        assert r["discharge_date"].year == original["discharge_date"].year + 2
        assert r["diagnoses"] == original["diagnoses"]
        copied = r["case_id"] != original["case_id"] + "-Y3"
        assert (r["patient_id"] != original["patient_id"]) == copied


def test_drift_truth_and_budgets(region):
    """Year 3: round(2 x share x n) cases of each drifting hospital picked (moved + unmoved); each moved case's
    record, regrouped by the DIP grouper with the region's catalogue, is in its to_group, a group of the same
    principal diagnosis with more points than its from_group."""
    from dipsim.grouping.dip import load_catalog
    from dipsim.grouping.grouped_cases import group_dip

    out, summary = region
    t = summary.trends
    moved = pq.read_table(out / "ground_truth" / "moved_cases.parquet").to_pylist()
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    y3 = load(out / "year3" / "cases")
    n3: dict[str, int] = {}
    for h in y3["hospital_id"].to_pylist():
        n3[h] = n3.get(h, 0) + 1
    got: dict[str, int] = {}
    for r in moved:
        if r["year"] == 3:
            got[r["hospital_id"]] = got.get(r["hospital_id"], 0) + 1
    assert set(got) == set(t.drift_share_by_hospital)
    for h, share in t.drift_share_by_hospital.items():
        assert got[h] + truth["unmoved_by_year"]["3"].get(h, 0) == round(2 * share * n3[h])
    catalog = load_catalog(out / "ground_truth" / "catalog")
    groups = {g["group_id"]: g for g in catalog.groups.to_pylist()}
    regrouped = dict(zip(y3["case_id"].to_pylist(), group_dip(y3, catalog).group))
    for r in moved:
        if r["year"] == 3:
            assert regrouped[r["case_id"]] == r["to_group"]
            source, target = groups[r["from_group"]], groups[r["to_group"]]
            assert target["diagnosis"] == source["diagnosis"] and target["points"] > source["points"]
    with open(out / "budgets.csv", encoding="utf-8-sig", newline="") as f:
        budgets = {(int(r["year"]), r["pool"]): float(r["budget"]) for r in csv.DictReader(f)}
    y1 = load(out / "year1" / "cases").to_pylist()
    assert not (out / "ground_truth" / "drifted_cases.parquet").exists()  # the points model's file
    for pool in ("990100-employee", "990100-resident"):
        cost = sum(r["total_cost"] for r in y1 if f"{r['pool']}-{r['insurance_type']}" == pool)
        assert budgets[(1, pool)] == pytest.approx(round(cost * 0.6, 2), abs=0.011)
        assert budgets[(2, pool)] == round(budgets[(1, pool)] * 1.05, 2)
        assert budgets[(3, pool)] == round(budgets[(2, pool)] * 1.05, 2)
    assert truth["trends"]["drift_share_by_hospital"] == t.drift_share_by_hospital
    assert truth["cases_by_year"] == summary.cases_by_year


def test_same_seed_same_region(region, tmp_path):
    out, _ = region
    synthesize_years(tmp_path / "again", years=YEARS, cases=CASES, hospitals=HOSPITALS, seed=SEED, trends=TRENDS)
    a = json.loads((out / "truth.json").read_text(encoding="utf-8"))["files"]
    b = json.loads((tmp_path / "again" / "truth.json").read_text(encoding="utf-8"))["files"]
    a.pop("year1/manifest.json"), b.pop("year1/manifest.json")  # it records the time taken
    assert a == b and len(a) > 20


def test_projection_from_year_one_reproduces_year_three(region, tmp_path):
    """The issue's check: project 2 years from year 1 with truth_projection.toml (intensity moves, the group table
    of the catalogue built from year 1, as `dipsim project --catalog` builds it); year 3 of the synthetic region,
    regrouped from its own (recoded) records by the DIP grouper and settled by the chain with its budget, has point
    values within 1% and the drifting hospitals' payouts within 2%."""
    from dataclasses import replace

    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.grouping.dip import load_catalog
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.payment.chain import CaseSet, run_chain
    from dipsim.policy import load_policy
    from dipsim.project import load_projection, project
    from dipsim.projection.moves import dip_group_table
    from dipsim.region import load_hospitals

    out, summary = region
    y1, y3 = load(out / "year1" / "cases"), load(out / "year3" / "cases")
    write_catalog(build_catalog(y1, CatalogOptions()), tmp_path / "cat")  # the user's catalogue, built apart
    catalog = load_catalog(tmp_path / "cat")
    hospitals = load_hospitals(out / "hospitals.parquet")
    spec = load_projection(out / "truth_projection.toml")
    assert spec.intensity_share_by_hospital == summary.trends.drift_share_by_hospital
    policy = load_policy(spec.policy)
    grouped1 = group_dip(y1, catalog)
    projected = project(y1, hospitals, policy, spec, grouped1, groups=dip_group_table(grouped1, catalog))

    grouped3 = group_dip(y3, catalog)  # the recoded cases fall in their higher groups by their own codes
    grouped3 = replace(grouped3, standard_cost=grouped3.standard_cost * (1.04 * 1.04))  # standard costs follow cost
    with open(out / "budgets.csv", encoding="utf-8-sig", newline="") as f:
        budgets3 = {r["pool"]: float(r["budget"]) for r in csv.DictReader(f) if r["year"] == "3"}
    chain_policy = policy.overlay({"budget.total": budgets3})
    actual = run_chain(CaseSet.of(y3), grouped3, hospitals, chain_policy, None)

    years = projected.years[projected.years["year"] == 2].set_index("pool")
    errors = {}
    for row in actual.pools.to_pylist():
        assert float(years.loc[row["pool"], "budget"]) == pytest.approx(budgets3[row["pool"]], abs=0.011)
        errors[row["pool"]] = years.loc[row["pool"], "point_value"] / row["point_value"] - 1
        assert years.loc[row["pool"], "point_value"] == pytest.approx(row["point_value"], rel=0.01), row["pool"]
    h = actual.hospitals.to_pandas()
    paid = h.assign(payment=h["payment"].astype(float)).groupby("hospital_id")["payment"].sum()
    mine = projected.hospitals[projected.hospitals["year"] == 2].set_index("hospital_id")
    for hospital in summary.trends.drift_share_by_hospital:
        picked = mine.loc[hospital, "intensity_moved"] + mine.loc[hospital, "intensity_unmoved"]
        assert picked == round(0.2 * mine.loc[hospital, "cases"])
        errors[hospital] = mine.loc[hospital, "payment"] / paid[hospital] - 1
        assert mine.loc[hospital, "payment"] == pytest.approx(paid[hospital], rel=0.02), hospital
    assert all(abs(e) < 0.005 for e in errors.values()), errors  # seen: -0.06%, +0.43%; -0.36%, +0.41%
    # and the drift matters: year 3 with the moved cases' original codes back (their year-1 groups) has the
    # drifting hospitals' points lower by more than 1.5%, three times the projection's errors
    moved = pq.read_table(out / "ground_truth" / "moved_cases.parquet").to_pylist()
    back = {r["case_id"]: r["from_group"] for r in moved if r["year"] == 3}
    points_of = dict(zip(catalog.groups["group_id"].to_pylist(), catalog.groups["points"].to_pylist()))
    ids3 = y3["case_id"].to_pylist()
    undone = [points_of[back[c]] if c in back else p for c, p in zip(ids3, grouped3.group_points)]
    unmoved = run_chain(CaseSet.of(y3), replace(grouped3, group_points=np.array(undone, float)), hospitals,
                        chain_policy, None)
    u = unmoved.hospitals.to_pandas()
    for hospital in summary.trends.drift_share_by_hospital:
        points = h.loc[h["hospital_id"] == hospital, "points"].sum()
        assert mine.loc[hospital, "points"] == pytest.approx(points, rel=0.02)
        assert abs(u.loc[u["hospital_id"] == hospital, "points"].sum() / points - 1) > 0.015  # 2.1%, 3.8%


def test_cli_synth_years_then_project_the_truth(tmp_path, capsys):
    """dipsim synth --years 2 writes the truth files; dipsim project runs the truth projection on year 1 as is
    (its policy file beside it) and its year 1 budgets are budgets.csv's year 2."""
    from dipsim.cli import main

    out = tmp_path / "region"
    assert main(["synth", "--years", "2", "--cases", "3000", "--hospitals", "6", "--seed", "5", "-o", str(out)]) == 0
    assert "synthesised 2 years of 6 hospitals" in capsys.readouterr().out
    for name in ("truth.json", "truth_projection.toml", "truth_policy.toml", "budgets.csv", "hospitals.parquet",
                 "year1/cases", "year2/cases", "ground_truth/moved_cases.parquet", "ground_truth/catalog"):
        assert (out / name).exists(), name
    assert main(["catalog", "build", str(out / "year1" / "cases"), "-o", str(tmp_path / "cat")]) == 0
    assert main(["project", str(out / "truth_projection.toml"), "--cases", str(out / "year1" / "cases"),
                 "--hospitals", str(out / "hospitals.parquet"), "--catalog", str(tmp_path / "cat"), "--no-report",
                 "-o", str(tmp_path / "proj")]) == 0
    with open(out / "budgets.csv", encoding="utf-8-sig", newline="") as f:
        budgets = {r["pool"]: r["budget"] for r in csv.DictReader(f) if r["year"] == "2"}
    with open(tmp_path / "proj" / "years.csv", encoding="utf-8-sig", newline="") as f:
        projected = {r["pool"]: r["budget"] for r in csv.DictReader(f) if r["year"] == "1"}
    assert {p: float(b) for p, b in projected.items()} == {p: float(b) for p, b in budgets.items()}


def test_make_year_by_hand_falling_volume_and_full_drift():
    """Two hospitals of 10 cases (cost 100 -> 100 x 1.1^2 = 121.00, patient 30 -> 36.30, fund 70 -> 84.70, discharged
    29 February 2024 -> 28 February 2026): A falls 50% a year
    -> year 2: round(10 x 0.5) = 5 of its own cases, year 3: round(2.5) = 2 (half to even); B +10% a year, drifting
    60% a year -> year 3: round(10 x 1.21) = round(12.1) = 12 cases, all drifted (min(1, 2 x 0.6) = 1)."""
    import datetime as dt

    import numpy as np

    from dipsim.synth.years import make_year

    ids = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]
    base = pa.table({"case_id": ids, "patient_id": [f"p{i}" for i in range(20)], "hospital_id": ["A"] * 10 + ["B"] * 10,
                     "total_cost": [100.0] * 20, "patient_paid": [30.0] * 20, "fund_paid": [70.0] * 20,
                     "discharge_date": pa.array([dt.date(2024, 2, 29)] * 20, pa.date32())})
    trends = Trends(volume_growth=0.0, volume_growth_by_hospital={"A": -0.5, "B": 0.1},
                    drift_share_by_hospital={"B": 0.6}, cost_growth=0.1)
    rng = np.random.default_rng(1)
    y2, d2 = make_year(base, 2, trends, rng)
    y3, d3 = make_year(base, 3, trends, rng)
    assert [y2["hospital_id"].to_pylist().count(h) for h in "AB"] == [5, 11]
    assert [y3["hospital_id"].to_pylist().count(h) for h in "AB"] == [2, 12]
    assert set(y3.filter(pa.compute.equal(y3["hospital_id"], "A"))["case_id"].to_pylist()) <= {f"a{i}-Y3"
                                                                                             for i in range(10)}
    assert d2["hospital_id"].to_pylist() == ["B"] * 7  # round(0.6 x 11) = round(6.6) = 7
    assert sorted(d3["case_id"].to_pylist()) == sorted(y3.filter(pa.compute.equal(y3["hospital_id"], "B"))
                                                       ["case_id"].to_pylist())
    assert set(y3["total_cost"].to_pylist()) == {121.0} and set(y3["patient_paid"].to_pylist()) == {36.3}
    assert set(y3["fund_paid"].to_pylist()) == {84.7}
    assert set(y3["discharge_date"].to_pylist()) == {dt.date(2026, 2, 28)}
    copies = [c for c in y3["case_id"].to_pylist() if c.count("-") == 2]  # B: 12 - 10 copies, each the first
    assert len(copies) == 2 and all(c.endswith("-Y3-1") for c in copies)


def test_cli_trend_options(tmp_path, capsys):
    """--drift-share / --drift-model points / --drift-factor / --cost-growth reach the truth projection; out of
    range, a factor without the points model or without --years they are refused (exit code 1, an input error; no
    region written)."""
    from dipsim.cli import main
    from dipsim.project import load_projection

    out = tmp_path / "region"
    assert main(["synth", "--years", "2", "--cases", "2000", "--hospitals", "5", "--drift-share", "0.2",
                 "--drift-model", "points", "--drift-factor", "1.5", "--cost-growth", "0.0", "-o", str(out)]) == 0
    spec = load_projection(out / "truth_projection.toml")
    assert spec.drift_factor == 1.5 and spec.cost_growth == [0.0]
    assert set(spec.drift_share_by_hospital.values()) == {0.2} and not spec.intensity_share_by_hospital
    assert (out / "ground_truth" / "drifted_cases.parquet").exists()
    capsys.readouterr()
    assert main(["synth", "--years", "2", "--cases", "2000", "--hospitals", "5", "--drift-factor", "1.5", "-o",
                 str(tmp_path / "factor")]) == 1
    assert "--drift-factor is the points drift model's: give --drift-model points" in capsys.readouterr().err
    assert main(["synth", "--years", "2", "--cases", "2000", "--hospitals", "5", "--drift-share", "1.5", "-o",
                 str(tmp_path / "bad")]) == 1
    assert "drift_share: a share from 0 to 1" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "truth.json").exists()
    assert main(["synth", "--cases", "2000", "--hospitals", "5", "--drift-share", "0.1", "-o",
                 str(tmp_path / "one")]) == 1
    assert "give --years N" in capsys.readouterr().err


def test_recode_intensity_by_hand(tmp_path):
    """A catalogue of appendicitis (K35.8) built by hand, threshold 2: no procedure (3,000), an appendectomy 47.0901
    (12,000) and appendectomy + colonoscopy 45.2302 (20,000): three core groups of K35.8, points in that order.
    Picked: a K35.800 case without procedures -> its record gets 47.0901 and groups into K35.8/47.0901 (next up);
    an appendectomy -> 45.2302 + 47.0901 (K35.8/45.2302+47.0901); a case already in the top group has no group above:
    it keeps its codes and is counted. The unpicked case is untouched."""
    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.grouping.dip import load_catalog
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.synth.years import recode_intensity, target_procedures

    both = ["45.2302", "47.0901"]
    base = case_table([(["K35.800"], [], c) for c in (2_900, 3_100)] + [(["K35.800"], ["47.0901"], c)
                      for c in (11_000, 13_000)] + [(["K35.801"], both, c) for c in (19_000, 21_000)])
    write_catalog(build_catalog(base, CatalogOptions(threshold=2, year_weights=(1.0,))), tmp_path / "cat")
    catalog = load_catalog(tmp_path / "cat")
    year = case_table([(["K35.800", "E11.900"], [], 3_000.0), (["K35.800"], ["47.0901"], 12_000.0),
                       (["K35.801"], both, 20_000.0), (["K35.800"], [], 3_000.0)])
    year = year.append_column("hospital_id", pa.array(["A", "A", "B", "B"]))
    picked = pa.table({"case_id": ["0", "1", "2"]})
    recoded, moved, unmoved = recode_intensity(year, picked, catalog, target_procedures(base, catalog), 3)
    assert recoded["procedures"].to_pylist() == [["47.0901"], both, both, []]
    assert recoded["diagnoses"].to_pylist() == year["diagnoses"].to_pylist()
    assert list(group_dip(recoded, catalog).group) == ["K35.8/47.0901", "K35.8/45.2302+47.0901",
                                                      "K35.8/45.2302+47.0901", "K35.8/"]
    assert moved.to_pylist() == [
        {"year": 3, "case_id": "0", "hospital_id": "A", "from_group": "K35.8/", "to_group": "K35.8/47.0901"},
        {"year": 3, "case_id": "1", "hospital_id": "A", "from_group": "K35.8/47.0901",
         "to_group": "K35.8/45.2302+47.0901"}]
    assert unmoved == {"B": 1}
