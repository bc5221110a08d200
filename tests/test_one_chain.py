"""One policy, one answer: `dipsim settle`, the baseline of `dipsim scenarios run`, the nightly job's three engines
and the demo's settlement pay every hospital the same, to the fen, under a policy with a dated case-level
parameter, supervision cuts and special-case review; a hospital's points are the sum of its cases' final points;
and a mid-year change of a dated parameter, worked by hand on four cases."""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dipsim.io.errors import InputError
from dipsim.policy import Policy

BUDGETS = '{ "990100-employee" = 15000000.0, "990100-resident" = 16000000.0 }'  # about 60% of each pool's cost
DATED = '[outlier]\nhigh_ratio = { "2025-01-01" = 2.0, "2025-07-01" = 1.5 }\n'
FULL = ('[payment]\nmode = "dip"\n[budget]\ntotal = ' + BUDGETS + "\n" + DATED
        + "[supervision]\nsplit_readmission_factor = 0.5\n[review]\nin_effect = true\n")
PLAIN = '[payment]\nmode = "dip"\n[budget]\ntotal = ' + BUDGETS + "\n" + DATED  # no review, no supervision
MONEY = ("cost", "patient_paid", "group_payment", "band_adjustment", "payment", "fund_payout", "prepaid", "deposit",
         "deposit_released", "clearing")  # compared as exact decimals (hospitals.csv writes yuan to the fen)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic region of 12 monthly partitions of 2025, its DIP catalogue and the two policies."""
    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.io import load_cases
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("one_chain")
    synthesize_region(root / "region", cases=4_000, hospitals=10, seed=3)
    loaded = load_cases(root / "region" / "cases")
    assert loaded.n_rejected == 0
    pools = set(pc.binary_join_element_wise(loaded.accepted["pool"], loaded.accepted["insurance_type"], "-")
                .to_pylist())
    assert pools == {"990100-employee", "990100-resident"}  # the pools the budgets name
    write_catalog(build_catalog(loaded.accepted, CatalogOptions()), root / "cat")
    (root / "full.toml").write_text(FULL, encoding="utf-8")
    (root / "plain.toml").write_text(PLAIN, encoding="utf-8")
    assert len(list((root / "region" / "cases").iterdir())) == 12
    return root


def read_rows(path, key=("hospital_id", "pool")) -> dict:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return {tuple(row[k] for k in key): row for row in csv.DictReader(f)}


def settle(world, policy: str, out):
    from dipsim.cli import main

    code = main(["settle", str(world / "region" / "cases"), "--policy", str(world / policy), "--catalog",
                 str(world / "cat"), "--hospitals", str(world / "region" / "hospitals.parquet"), "-o", str(out),
                 "-q"])
    assert code == 0
    return out


def nightly(world, policy: str, tmp_path, engine: str):
    from dipsim.nightly import run_nightly

    result = run_nightly(world / "region" / "cases", world / policy, world / "region" / "hospitals.parquet",
                         tmp_path / f"state-{engine}", tmp_path / f"out-{engine}", world / "cat",
                         log=lambda _: None, engine=engine)
    assert result.budget_share == 1.0 and result.months == 12  # the year-to-date budget is the annual one
    return result.run_dir / "hospitals.csv"


def assert_same_money(expected: dict, got: dict, what: str, columns=("points", "cases", *MONEY)) -> None:
    """Hospital by hospital, the money to the fen (exact decimals) and the points as written, in every column of
    `columns` both tables have (fund_payout and points at least)."""
    assert set(got) == set(expected), what
    both = [c for c in columns if c in next(iter(expected.values())) and c in next(iter(got.values()))]
    assert {"fund_payout", "points"} <= set(both), what
    differ = []
    for key, row in expected.items():
        for column in both:
            a, b = row[column], got[key][column]
            same = Decimal(a) == Decimal(b) if column in MONEY else a == b
            if not same:
                differ.append((key, column, a, b))
    assert not differ, f"{what}: {differ}"


@pytest.fixture(scope="module")
def settled_full(world, tmp_path_factory):
    return settle(world, "full.toml", tmp_path_factory.mktemp("settle_full") / "out")


def test_settle_hospital_points_are_the_sums_of_the_final_case_points(settled_full):
    cases = pq.read_table(settled_full / "cases.parquet").to_pandas()
    assert {"outlier_factor", "supervision_factor", "review_applied", "case_points", "policy_day"} <= set(cases)
    # the dated parameter: cases before July read 2.0, from July 1.5
    days = cases["policy_day"].astype(str)
    assert set(days) == {"2025-01-01", "2025-07-01"}
    assert (cases["supervision_factor"] < 1).any() and cases["review_applied"].any()  # both steps really act
    sums = cases.groupby(["hospital_id", "pool"])["case_points"].sum()
    rows = read_rows(settled_full / "hospitals.csv")
    assert set(rows) == set(sums.index)
    for key, row in rows.items():
        assert round(float(sums[key]), 4) == round(float(row["points"]), 4), key
    pools = read_rows(settled_full / "pools.csv", key=("pool",))
    for (pool,), row in pools.items():  # the fen rounding spends each pool's payout exactly
        total = sum(Decimal(r["fund_payout"]) for (_, p), r in rows.items() if p == pool)
        assert total == Decimal(row["fund_payout"]), pool


def test_settle_manifest_lists_every_output(settled_full):
    manifest = json.loads((settled_full / "manifest.json").read_text(encoding="utf-8"))
    files = {p.name for p in settled_full.iterdir()} - {"manifest.json"}
    assert "review.csv" in files
    assert set(manifest["outputs"]) == files and len(manifest["outputs"]) == len(files)


def test_settle_is_the_same_with_code_lists_read_as_text(world, settled_full, tmp_path, monkeypatch):
    """settle reads the code lists dictionary-encoded (issue 17); read as plain lists of strings, every output file
    is the same, byte for byte (the manifest aside: it names its folder)."""
    import dipsim.cli as cli

    load = cli._load
    monkeypatch.setattr(cli, "_load", lambda *a, **k: load(*a, **{**k, "dictionary_codes": False}))
    out = settle(world, "full.toml", tmp_path / "text")
    files = sorted(p.name for p in settled_full.iterdir() if p.name != "manifest.json")
    assert files == sorted(p.name for p in out.iterdir() if p.name != "manifest.json")
    for name in files:
        assert (out / name).read_bytes() == (settled_full / name).read_bytes(), name


def test_scenarios_baseline_is_settle(world, settled_full, tmp_path):
    from dipsim.cli import main

    scenario = tmp_path / "scenario.toml"
    scenario.write_text(f'[scenario]\nname = "one_chain"\nbaseline = "{(world / "full.toml").as_posix()}"\n\n'
                        '[[variant]]\nname = "high 3"\nset = { "outlier.high_ratio" = 3.0 }\n', encoding="utf-8")
    code = main(["scenarios", "run", str(scenario), "--cases", str(world / "region" / "cases"), "--hospitals",
                 str(world / "region" / "hospitals.parquet"), "--catalog", str(world / "cat"), "-o",
                 str(tmp_path / "scen"), "--no-report", "-q"])
    assert code == 0
    with open(tmp_path / "scen" / "hospitals.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    names = {r["scenario"] for r in rows}
    assert len(names) == 2
    from dipsim.scenarios import BASELINE

    baseline = {(r["hospital_id"], r["pool"]): r for r in rows if r["scenario"] == BASELINE}
    assert baseline, names
    assert_same_money(read_rows(settled_full / "hospitals.csv"), baseline, "scenarios run baseline vs settle")


@pytest.mark.parametrize("engine", ["memory", "chunked"])
def test_nightly_is_settle(world, settled_full, tmp_path, engine):
    """Review and supervision cuts on: chunked falls back to the whole year in memory; the same answer."""
    got = nightly(world, "full.toml", tmp_path, engine)
    assert_same_money(read_rows(settled_full / "hospitals.csv"), read_rows(got), f"nightly {engine} vs settle")
    assert got.read_bytes() == (settled_full / "hospitals.csv").read_bytes()
    assert (got.parent / "pools.csv").read_bytes() == (settled_full / "pools.csv").read_bytes()


@pytest.mark.slow  # about 10 s on two cores: kept out of the default run
def test_nightly_dask_is_settle(world, settled_full, tmp_path):
    """Dask with review on: the partitions grouped on the cluster, the year settled in memory; as settle."""
    pytest.importorskip("dask.distributed")
    got = nightly(world, "full.toml", tmp_path, "dask")
    assert_same_money(read_rows(settled_full / "hospitals.csv"), read_rows(got), "nightly dask vs settle")
    assert got.read_bytes() == (settled_full / "hospitals.csv").read_bytes()


def test_nightly_dask_prices_partitions_like_settle(world, tmp_path, monkeypatch):
    """Dask with only the dated parameter: the partitions priced on the cluster and their sums added (the
    in-memory path refused); to the fen as settle."""
    pytest.importorskip("dask.distributed")
    from dipsim import nightly as job

    expected = read_rows(settle(world, "plain.toml", tmp_path / "settle") / "hospitals.csv")

    def refuse(*args, **kwargs):
        raise AssertionError("dask fell back to the whole year in memory")

    monkeypatch.setattr(job, "_settle_in_memory", refuse)
    assert_same_money(expected, read_rows(nightly(world, "plain.toml", tmp_path, "dask")),
                      "plain: nightly dask vs settle")


def test_demo_settlement_is_settle(world, settled_full, tmp_path):
    from dipsim.demo import settle_demo
    from dipsim.grouping.dip import load_catalog
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.io import load_cases
    from dipsim.policy import load_policy
    from dipsim.region import load_hospitals, settleable

    loaded = load_cases(world / "region" / "cases")
    cases = settleable(loaded.accepted, loaded.accepted_rows, loaded.accepted_sources).cases
    grouped = group_dip(cases, load_catalog(world / "cat"))
    hospitals = load_hospitals(world / "region" / "hospitals.parquet")
    folder, _ = settle_demo(cases, hospitals, grouped, load_policy(world / "full.toml"), tmp_path)
    assert_same_money(read_rows(settled_full / "hospitals.csv"), read_rows(folder / "hospitals.csv"),
                      "demo settlement vs settle")
    assert (folder / "hospitals.csv").read_bytes() == (settled_full / "hospitals.csv").read_bytes()


def test_without_review_chunked_nightly_sums_partitions_and_agrees(world, tmp_path, monkeypatch):
    """Only the dated parameter: the chunked engine prices partition by partition and adds the sums (the in-memory
    path is made to fail to prove it is not taken); settle, nightly chunked and nightly memory agree to the fen."""
    from dipsim import nightly as job

    expected = read_rows(settle(world, "plain.toml", tmp_path / "settle") / "hospitals.csv")
    in_memory = job._settle_in_memory

    def refuse(*args, **kwargs):
        raise AssertionError("chunked fell back to the whole year in memory")

    monkeypatch.setattr(job, "_settle_in_memory", refuse)
    assert_same_money(expected, read_rows(nightly(world, "plain.toml", tmp_path, "chunked")),
                      "plain: nightly chunked vs settle")
    monkeypatch.setattr(job, "_settle_in_memory", in_memory)
    assert_same_money(expected, read_rows(nightly(world, "plain.toml", tmp_path, "memory")),
                      "plain: nightly memory vs settle")


# ------------------------------------------------------------------ a mid-year change by hand

HOSPITALS = pa.table({"hospital_id": ["H1", "H2"], "level": ["三级甲等", "三级甲等"], "type": ["综合", "综合"],
                      "coefficient_override": [None, None]})
HIGH = {"outlier.high_ratio": {"2025-01-01": 2.0, "2025-07-01": 1.5}}


def hand_region(days=("2025-03-10", "2025-08-01", "2025-05-05", "2025-09-09")):
    """Four cases in two hospitals, one pool; group points 100, standard cost 1,000. Cases 1 and 2 (H1) cost 2,500
    (r = 2.5), cases 3 and 4 (H2) cost 1,000 (r = 1, normal)."""
    from dipsim.grouping.grouped_cases import GroupedCases

    cases = pa.table({"case_id": ["c1", "c2", "c3", "c4"], "hospital_id": ["H1", "H1", "H2", "H2"],
                      "pool": ["P"] * 4, "insurance_type": ["employee"] * 4,
                      "total_cost": [2_500.0, 2_500.0, 1_000.0, 1_000.0], "patient_paid": [0.0] * 4,
                      "discharge_date": pa.array([dt.date.fromisoformat(d) for d in days], pa.date32())})
    grouped = GroupedCases(group=np.array(["G"] * 4, dtype=object), group_points=np.full(4, 100.0),
                           standard_cost=np.full(4, 1_000.0), tcm_group_case=np.zeros(4, bool),
                           tcm_treated=np.zeros(4, bool))
    return cases, grouped


def chain(changes: dict, on=None, days=None):
    from dipsim.payment.chain import CaseSet, run_chain

    cases, grouped = hand_region(*([days] if days else []))
    policy = Policy(values={}).overlay({"budget.total": {"P-employee": 9_000.0}, **changes})
    return run_chain(CaseSet.of(cases), grouped, HOSPITALS, policy, on=on)


def test_a_mid_year_change_of_a_case_level_parameter_by_hand():
    """c1 (2025-03-10): high_ratio 2.0, factor (2.5 - 2.0) + 1 = 1.5 -> 150 points. c2 (2025-08-01): high_ratio
    1.5, factor (2.5 - 1.5) + 1 = 2.0 -> 200 points. c3, c4: r = 1, 100 points each. Coefficient 1 (三级甲等 at
    the default level table: checked through the points). H1 350, H2 200, total 550.
    Pool P-employee: budget 9,000, budget.reserve_share default 0.0 (policy_parameters.toml), no bands, patients
    paid 0: point value = 9,000 x (1 - 0) / 550 = 16.363636... yuan; H1 350 x 16.3636 = 5,727.27..., H2 200 x
    16.3636 = 3,272.72...: to the fen, largest remainder: 5,727.27 + 3,272.73 = 9,000.00."""
    run = chain(HIGH)
    table = run.case_table().to_pylist()
    assert [r["outlier_factor"] for r in table] == [1.5, 2.0, 1.0, 1.0]
    assert [r["case_points"] for r in table] == [150.0, 200.0, 100.0, 100.0]
    assert [r["policy_day"] for r in table] == [dt.date(2025, 1, 1), dt.date(2025, 7, 1), dt.date(2025, 1, 1),
                                                dt.date(2025, 7, 1)]
    pool = run.pools.to_pylist()[0]
    assert pool["point_value"] == pytest.approx(9_000 / 550, abs=1e-9)
    rows = {r["hospital_id"]: r for r in run.hospitals.to_pylist()}
    assert {h: r["points"] for h, r in rows.items()} == {"H1": 350.0, "H2": 200.0}
    # 350 x 9000/550 = 5727.2727..., 200 x 9000/550 = 3272.7272...; the remainders .27 and .72: H2 gets the fen
    assert rows["H1"]["fund_payout"] == Decimal("5727.27") and rows["H2"]["fund_payout"] == Decimal("3272.73")


def test_on_a_day_every_case_reads_that_day():
    """--on 2025-12-31: high_ratio 1.5 for both r = 2.5 cases: factor 2.0 each."""
    table = chain(HIGH, on=dt.date(2025, 12, 31)).case_table().to_pylist()
    assert [r["outlier_factor"] for r in table] == [2.0, 2.0, 1.0, 1.0]
    assert [r["case_points"] for r in table] == [200.0, 200.0, 100.0, 100.0]


def test_a_dated_pool_parameter_takes_the_last_discharge_day():
    """budget.reserve_share 0.2 from 2025-01-01, 0.1 from 2025-09-01: the last discharge is 2025-09-09, so 0.1:
    point value = 9,000 x 0.9 / 550 = 14.727272..."""
    # point_value: pools.csv keeps 10 decimals
    run = chain({**HIGH, "budget.reserve_share": {"2025-01-01": 0.2, "2025-09-01": 0.1}})
    assert run.terms.settlement_day == dt.date(2025, 9, 9)
    assert run.pools.to_pylist()[0]["point_value"] == pytest.approx(8_100 / 550, abs=1e-9)
    # with the last discharge before September the 0.2 holds: 9,000 x 0.8 / 550
    early = chain({**HIGH, "budget.reserve_share": {"2025-01-01": 0.2, "2025-09-01": 0.1}},
                  days=("2025-03-10", "2025-08-01", "2025-05-05", "2025-08-31"))
    assert early.pools.to_pylist()[0]["point_value"] == pytest.approx(7_200 / 550, abs=1e-9)


def test_a_case_before_a_dated_parameters_first_day_is_an_input_error():
    with pytest.raises(InputError, match=r"1 case\(s\) discharged on or before 2024-12-31"):
        chain(HIGH, days=("2024-12-20", "2025-08-01", "2025-05-05", "2025-09-09"))
