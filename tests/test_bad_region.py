"""A region with the mistakes of real exports (issue 15, items 5 and 6): cases without a pool, an insurance type or a
hospital; a hospitals table with an id twice or a level the policy does not know; budgets missing, unknown or
impossible. Each is an exit-1 error before anything is grouped, or rows rejected with their reason and counted,
never money moved silently."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dipsim.cli import main
from dipsim.paths import repo_root

BASELINE = str(repo_root() / "scenarios" / "baseline.toml")
BUDGETS = ["--budget", "990100-employee=5000000", "--budget", "990100-resident=6000000"]
BAD_ROWS = {5: ("pool", ""), 9: ("insurance_type", "商业保险"), 12: ("insurance_type", ""), 20: ("hospital_id", "")}


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A synthetic region of 1,200 cases in 6 hospitals (pools 990100-employee and -resident): the cases as one CSV
    export, the hospitals table as CSV, a DIP catalogue."""
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("bad_region")
    synthesize_region(root / "synth", cases=1_200, hospitals=6, seed=5)
    assert main(["catalog", "build", str(root / "synth" / "cases"), "-o", str(root / "cat"), "-q"]) == 0
    cases = pq.read_table(root / "synth" / "cases").to_pandas()
    for column in ("diagnoses", "procedures"):
        cases[column] = cases[column].map(",".join)
    cases.drop(columns=["discharge_month"], errors="ignore").to_csv(root / "cases.csv", index=False)
    pq.read_table(root / "synth" / "hospitals.parquet").to_pandas().to_csv(root / "hospitals.csv", index=False)
    return root


def cases_with(region, tmp_path, rows: dict, drop: str | None = None):
    """The region's cases CSV with `rows` ({data row: (field, value)}) edited, or a column dropped."""
    cases = pd.read_csv(region / "cases.csv", dtype=str, keep_default_na=False)
    for row, (field, value) in rows.items():
        cases.loc[row - 1, field] = value
    path = tmp_path / "cases.csv"
    cases.drop(columns=[drop] if drop else []).to_csv(path, index=False)
    return path


def hospitals_with(region, tmp_path, edit):
    table = pd.read_csv(region / "hospitals.csv", dtype=str, keep_default_na=False)
    path = tmp_path / "hospitals.csv"
    edit(table).to_csv(path, index=False)
    return path


def settle(region, cases, out, *extra, hospitals=None):
    return main(["settle", str(cases), "--policy", BASELINE, "--hospitals", str(hospitals or region / "hospitals.csv"),
                 "--catalog", str(region / "cat"), "-o", str(out), "-q", *extra])


# ---------------------------------------------------------------- cases without a pool or a hospital


def test_cases_without_a_pool_or_hospital_are_rejected_at_settlement_not_paid_in_a_phantom_pool(region, tmp_path,
                                                                                                 capsys):
    """Row 5 has no 统筹区, row 9 an insurance type dipsim does not know (商业保险), row 12 none, row 20 no hospital.
    They made pools "-resident" and "990100-" with point values of their own, and the missing hospital stopped
    settle with "'list' argument must have no negative elements". Now: rejected with their reason, the two real
    pools spend exactly their budgets, and every other hospital is paid what it is paid without those rows."""
    bad = cases_with(region, tmp_path, BAD_ROWS)
    assert settle(region, bad, tmp_path / "out", *BUDGETS) == 0
    assert "rows read 1,200 = accepted 1,196 + rejected 4 (at settlement, no pool or hospital 4)" in \
        capsys.readouterr().out
    out = tmp_path / "out"
    pools = pd.read_csv(out / "pools.csv", encoding="utf-8-sig", dtype=str)
    assert pools[["pool", "fund_payout"]].values.tolist() == [["990100-employee", "5000000.00"],
                                                              ["990100-resident", "6000000.00"]]
    rejects = pd.read_csv(out / "rejects.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert rejects[["row", "field", "reason"]].values.tolist() == [
        ["5", "pool", "no settlement pool: 统筹区 (pool) missing"],
        ["9", "insurance_type", "no settlement pool: 险种 (insurance_type) missing or unknown"],
        ["12", "insurance_type", "no settlement pool: 险种 (insurance_type) missing or unknown"],
        ["20", "hospital_id", "no hospital: 定点医疗机构编码 (hospital_id) missing"]]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert {k: manifest[k] for k in ("rows_read", "accepted", "rejected", "rejected_at_settlement")} == {
        "rows_read": 1_200, "accepted": 1_196, "rejected": 4, "rejected_at_settlement": 4}
    # the same region without those four rows pays every hospital the same, to the fen
    clean = pd.read_csv(region / "cases.csv", dtype=str, keep_default_na=False).drop(index=[r - 1 for r in BAD_ROWS])
    clean.to_csv(tmp_path / "clean.csv", index=False)
    assert settle(region, tmp_path / "clean.csv", tmp_path / "clean", *BUDGETS) == 0
    got, want = (pd.read_csv(d / "hospitals.csv", encoding="utf-8-sig", dtype=str) for d in (out, tmp_path / "clean"))
    pd.testing.assert_frame_equal(got, want)
    assert got["cases"].astype(int).sum() == 1_196


def test_scenarios_reject_the_same_rows_and_show_the_variant_count(region, tmp_path, capsys):
    bad = cases_with(region, tmp_path, BAD_ROWS)
    out = tmp_path / "out"
    assert main(["scenarios", "run", str(repo_root() / "scenarios" / "budget_growth.toml"), "--cases", str(bad),
                 "--hospitals", str(region / "hospitals.csv"), "--catalog", str(region / "cat"), *BUDGETS,
                 "-o", str(out), "--no-report"]) == 0
    captured = capsys.readouterr()
    assert "budget_growth: the baseline and 5 variant(s)" in captured.err
    assert "rows read 1,200 = accepted 1,196 + rejected 4 (at settlement, no pool or hospital 4" in captured.out
    assert sorted(set(pd.read_csv(out / "pools.csv")["pool"])) == ["990100-employee", "990100-resident"]
    assert pd.read_csv(out / "rejects.csv", encoding="utf-8-sig")["row"].tolist() == [5, 9, 12, 20]
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["rejected"] == 4


@pytest.mark.parametrize("column", ["pool", "insurance_type", "hospital_id", "total_cost"])
def test_a_cases_file_without_a_settlement_column_is_an_error(region, tmp_path, capsys, column):
    """An export without its 统筹区 column (or 险种, hospital, cost) would settle every case in one phantom pool."""
    assert settle(region, cases_with(region, tmp_path, {}, drop=column), tmp_path / "out", *BUDGETS) == 1
    err = capsys.readouterr().err
    assert f"cases.csv: no column for {column} (" in err and "--mapping" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the hospitals table


def test_a_hospital_id_twice_in_the_table_stops_naming_both_rows(region, tmp_path, capsys):
    """H0004 copied to the end with another level: the later row replaced the first's level (-30% for the hospital).
    A row without an id is named too."""
    def edit(table):
        copy = table.iloc[[3]].assign(level="一级")
        table = pd.concat([table, copy], ignore_index=True)
        table.loc[1, "hospital_id"] = ""
        return table

    hospitals = hospitals_with(region, tmp_path, edit)
    assert settle(region, region / "cases.csv", tmp_path / "out", *BUDGETS, hospitals=hospitals) == 1
    err = capsys.readouterr().err
    assert f"{hospitals}: 2 problem(s) in the hospitals table:" in err
    assert "no hospital_id on row(s) 2" in err and "hospital_id H0004 is on rows 4, 7 " in err
    assert "rows read" not in err and not (tmp_path / "out").exists()  # stopped before the cases were read


def test_an_unknown_or_empty_level_stops_unless_the_hospital_has_its_own_coefficient(region, tmp_path, capsys):
    def edit(table):
        table.loc[1, "level"], table.loc[2, "level"] = "三甲", ""
        return table

    hospitals = hospitals_with(region, tmp_path, edit)
    assert settle(region, region / "cases.csv", tmp_path / "out", *BUDGETS, hospitals=hospitals) == 1
    err = capsys.readouterr().err
    assert "hospital(s) H0002 (level '三甲'), H0003 (no level): the level is not in coefficient.level" in err
    assert not (tmp_path / "out").exists()
    # with a coefficient of their own (the table's override, the policy's per-hospital value) they are priced
    assert settle(region, region / "cases.csv", tmp_path / "out", *BUDGETS, "--set",
                  'coefficient.hospital={ H0002 = 0.93, H0003 = 0.88 }', hospitals=hospitals) == 0
    cases = pq.read_table(tmp_path / "out" / "cases.parquet", columns=["hospital_id", "coefficient"]).to_pandas()
    assert cases.groupby("hospital_id")["coefficient"].unique().loc[["H0002", "H0003"]].map(list).tolist() == [
        [0.93], [0.88]]


# ---------------------------------------------------------------- budgets


def test_a_pool_without_a_budget_stops_before_grouping_naming_it(region, tmp_path, capsys):
    assert settle(region, region / "cases.csv", tmp_path / "out", "--budget", "990100-employee=5000000") == 1
    err = capsys.readouterr().err
    assert "no budget for pool(s) 990100-resident of the cases" in err and not (tmp_path / "out").exists()


def test_a_budget_for_a_pool_the_cases_do_not_have(region, tmp_path, capsys):
    """--budget for a pool with a typo was silently ignored: an error listing the cases' pools. A policy's budget
    for such a pool may be meant (no claims yet): a warning on screen."""
    assert settle(region, region / "cases.csv", tmp_path / "out", *BUDGETS, "--budget", "990100-employe=1") == 1
    assert ("--budget 990100-employe: not a pool of the cases (990100-employee, 990100-resident)"
            in capsys.readouterr().err)
    assert settle(region, region / "cases.csv", tmp_path / "out", "--set",
                  'budget.total={ "990100-employee" = 5e6, "990100-resident" = 6e6, "990200-resident" = 1e6 }') == 0
    assert ("warning: budget.total has pool(s) 990200-resident that the cases do not have"
            in capsys.readouterr().err)
    assert pd.read_csv(tmp_path / "out" / "pools.csv")["pool"].tolist() == ["990100-employee", "990100-resident"]


# ---------------------------------------------------------------- nightly: the whole configuration before grouping


@pytest.fixture
def claims(region, tmp_path):
    folder = tmp_path / "claims"
    shutil.copytree(region / "synth" / "cases", folder)
    return folder


def nightly(region, tmp_path, claims, policy_text: str, hospitals=None):
    policy = tmp_path / "policy.toml"
    policy.write_text('[payment]\nmode = "dip"\n' + policy_text, encoding="utf-8")
    return main(["nightly", "--claims", str(claims), "--policy", str(policy), "--hospitals",
                 str(hospitals or region / "synth" / "hospitals.parquet"), "--catalog", str(region / "cat"),
                 "--state", str(tmp_path / "state"), "--out", str(tmp_path / "out"), "-q"])


def test_nightly_without_a_budget_for_a_pool_stops_before_grouping_any_partition(region, tmp_path, claims, capsys):
    """It used to fail with exit 3 only after grouping all 12 partitions."""
    assert nightly(region, tmp_path, claims, '[budget]\ntotal = { "990100-employee" = 9e6 }\n') == 1
    err = capsys.readouterr().err
    assert "found before grouping" in err and "no budget for pool(s) 990100-resident" in err
    assert "Traceback" not in err and not list((tmp_path / "state" / "partitions").glob("*.parquet"))


def test_nightly_checks_the_hospitals_table_and_the_levels_before_grouping(region, tmp_path, claims, capsys):
    table = pq.read_table(region / "synth" / "hospitals.parquet")
    levels = table["level"].to_pylist()
    levels[0] = "三甲"
    hospitals = tmp_path / "hospitals.parquet"
    pq.write_table(table.set_column(table.column_names.index("level"), "level", pa.array(levels)), hospitals)
    budget = '[budget]\ntotal = { "990100-employee" = 9e6, "990100-resident" = 9e6 }\n'
    level = '[coefficient]\nlevel = { "三级甲等" = 1.0, "二级甲等" = 0.889, "一级" = 0.677 }\n'
    assert nightly(region, tmp_path, claims, budget + level, hospitals) == 1
    assert "H0001 (level '三甲')" in capsys.readouterr().err
    assert not list((tmp_path / "state" / "partitions").glob("*.parquet"))


def test_nightly_rejects_claims_without_a_pool_and_counts_them(region, tmp_path, claims):
    """March's partition: a claim without 统筹区 and one without hospital. Rejected with the reason; every partition's
    rows read = accepted + rejected; the pools are the two real ones."""
    march = next(claims.glob("discharge_month=2025-03/*.parquet"))
    table = pq.read_table(march)
    pools, hospitals = table["pool"].to_pylist(), table["hospital_id"].to_pylist()
    pools[2], hospitals[7] = None, " "
    table = table.set_column(table.column_names.index("pool"), "pool", pa.array(pools, pa.string()))
    pq.write_table(table.set_column(table.column_names.index("hospital_id"), "hospital_id",
                                    pa.array(hospitals, pa.string())), march)
    assert nightly(region, tmp_path, claims, '[budget]\ntotal = { "990100-employee" = 9e6, '
                                             '"990100-resident" = 9e6 }\n') == 0
    latest = tmp_path / "out" / "latest"
    rejects = pd.read_csv(latest / "rejects.csv", encoding="utf-8-sig")
    assert rejects[["row", "field"]].values.tolist() == [[3, "pool"], [8, "hospital_id"]]
    manifest = json.loads((latest / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["totals"] == {"rows_read": 1_200, "accepted": 1_198, "rejected": 2,
                                  "duplicates_of_earlier_partitions": 0}
    assert all(p["rows_read"] == p["accepted"] + p["rejected"] for p in manifest["partitions"])
    assert pd.read_csv(latest / "pools.csv")["pool"].tolist() == ["990100-employee", "990100-resident"]


def test_nightly_with_a_budget_no_point_value_can_spend_is_an_input_error_not_a_bug(region, tmp_path, claims,
                                                                                     capsys):
    """Bands that keep no surplus above q = 1.1 cap every hospital's payment at 1.1 x its cost: a budget of 10^12
    yuan cannot be paid out. A policy problem (exit 1 with the amounts), which nightly reported as an internal
    error with a traceback (exit 3)."""
    policy = ('[budget]\ntotal = { "990100-employee" = 1e12, "990100-resident" = 9e6 }\n'
              '[bands]\nin_effect = true\nsurplus_share_above = 0.0\n')
    assert nightly(region, tmp_path, claims, policy) == 1
    err = capsys.readouterr().err
    assert "pool 990100-employee: the budget 1,000,000,000,000.00 cannot be paid out" in err and "Traceback" not in err
