"""DIP catalogue building on small hand-made case tables; every expected figure is worked out by hand in the test.

Codes: K35.800 / K35.801 are in subcategory K35.8 (阑尾炎); 47.0901 is an appendectomy (手术), 45.2302 a colonoscopy
(诊断性操作), 99.2503 an intravenous chemotherapy (治疗性操作); J18.9 / J18.900 is pneumonia.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dipsim.catalog import CatalogOptions, build_catalog, case_keys, coverage_threshold

from case_tables import case_table

cases = case_table


def groups(catalog) -> dict:
    return {g["group_id"]: g for g in catalog.groups.to_pylist()}


def test_key_is_subcategory_and_the_unordered_set_of_procedures():
    keys = case_keys(cases([
        (["K35.800", "E11.900"], ["47.0901", "45.2302", "47.0901"], 1.0),
        (["K35.801"], ["45.2302", "47.0901"], 1.0),
        (["J18.900"], [], 1.0),
        ([], ["47.0901"], 1.0),
    ]))
    assert keys["key"].tolist() == ["K35.8/45.2302+47.0901", "K35.8/45.2302+47.0901", "J18.9/", "/47.0901"]
    assert keys["treatment"].tolist() == [3, 3, 0, 3]  # 相关手术, 相关手术, 保守治疗


def test_threshold_splits_core_and_comprehensive_groups_and_points_are_means_over_the_overall_mean():
    # 3 appendectomies at 10,000 / 12,000 / 14,000 (mean 12,000); 2 pneumonias at 4,000 and 6,000 (mean 5,000);
    # 1 appendicitis with a colonoscopy at 7,000. Threshold 2: the colonoscopy case is alone, so it goes to the
    # comprehensive group K35/诊断性操作. Overall mean M = 53,000 / 6 = 8,833.33...
    table = cases([(["K35.800"], ["47.0901"], c) for c in (10_000, 12_000, 14_000)]
                  + [(["J18.900"], [], c) for c in (4_000, 6_000)]
                  + [(["K35.800"], ["45.2302"], 7_000)])
    cat = build_catalog(table, CatalogOptions(threshold=2, year_weights=(1.0,)))
    g = groups(cat)
    assert set(g) == {"K35.8/47.0901", "J18.9/", "K35/诊断性操作"}
    assert g["K35.8/47.0901"]["kind"] == "core" and g["K35/诊断性操作"]["kind"] == "comprehensive"
    overall = 53_000 / 6
    assert g["K35.8/47.0901"]["points"] == pytest.approx(round(12_000 / overall * 1000, 4), abs=0)
    assert g["J18.9/"]["points"] == round(5_000 / overall * 1000, 4)
    assert g["K35/诊断性操作"]["points"] == round(7_000 / overall * 1000, 4)
    assert cat.coverage == pytest.approx(5 / 6) and cat.threshold == 2
    assert g["J18.9/"]["cv_cost"] == pytest.approx(1_000 / 5_000)  # population sd 1,000 over mean 5,000
    # every case maps back to its own group: core by its key, else the comprehensive group of its category
    keys = case_keys(table)
    assert all(k in g or f"{k[:3]}/诊断性操作" in g for k in keys["key"])


def test_trimming_drops_outliers_only_in_groups_large_enough():
    # 41 cases: 39 at 1,000, one at 10 and one at 1,000,000. Positions 0.025 x 40 = 1 and 0.975 x 40 = 39:
    # the bounds are the 2nd and the 40th smallest costs (1,000 and 1,000), so both extremes go.
    big = [(["J18.900"], [], 1_000)] * 39 + [(["J18.900"], [], 10), (["J18.900"], [], 1_000_000)]
    g = groups(build_catalog(cases(big), CatalogOptions(threshold=1)))["J18.9/"]
    assert (g["cases"], g["cases_used"], g["mean_cost"]) == (41, 39, 1_000)
    # 40 cases: positions 0.975 and 38.025 round outward to 0 and 39: nothing is trimmed
    small = big[:38] + big[39:]
    g = groups(build_catalog(cases(small), CatalogOptions(threshold=1)))["J18.9/"]
    assert (g["cases"], g["cases_used"]) == (40, 40)


def test_years_are_weighted_one_two_seven():
    # pneumonia: 2023 mean 1,000, 2024 mean 2,000, 2025 mean 3,000 -> (1x1,000 + 2x2,000 + 7x3,000) / 10 = 2,600
    # appendectomy only in 2025 at 6,000 -> 6,000 (its only year). Overall by year: 2023 1,000, 2024 2,000,
    # 2025 (3,000 + 6,000) / 2 = 4,500 -> (1,000 + 4,000 + 31,500) / 10 = 3,650
    table = cases([(["J18.900"], [], 1_000, 2023), (["J18.900"], [], 2_000, 2024), (["J18.900"], [], 3_000, 2025),
                   (["K35.800"], ["47.0901"], 6_000, 2025)])
    cat = build_catalog(table, CatalogOptions(threshold=1))
    g = groups(cat)
    assert cat.years == {2023: 1.0, 2024: 2.0, 2025: 7.0}
    assert g["J18.9/"]["mean_cost"] == pytest.approx(2_600)
    assert g["K35.8/47.0901"]["mean_cost"] == pytest.approx(6_000)
    assert g["J18.9/"]["points"] == round(2_600 / 3_650 * 1000, 4)
    # four years of data: the oldest is outside the 1:2:7 window
    older = pa.concat_tables([table, cases([(["J18.900"], [], 50_000, 2022)])])
    assert groups(build_catalog(older, CatalogOptions(threshold=1)))["J18.9/"]["mean_cost"] == pytest.approx(2_600)


def test_a_reference_disease_gets_exactly_the_scale():
    table = cases([(["J18.900"], [], 4_000), (["J18.900"], [], 6_000), (["K35.800"], ["47.0901"], 12_000)])
    g = groups(build_catalog(table, CatalogOptions(threshold=1, reference_group="J18.9/", scale=100)))
    assert g["J18.9/"]["points"] == 100.0 and g["K35.8/47.0901"]["points"] == 240.0
    with pytest.raises(ValueError, match="reference group"):
        build_catalog(table, CatalogOptions(threshold=1, reference_group="X00.0/"))


def test_comprehensive_groups_merge_by_category_and_treatment():
    # four single cases of category K35 with different keys: two operations merge, one chemotherapy, one without
    table = cases([(["K35.800"], ["47.0901"], 10_000), (["K35.801"], ["47.0901", "45.2302"], 14_000),
                   (["K35.800"], ["99.2503"], 5_000), (["K35.900"], [], 3_000)])
    g = groups(build_catalog(table, CatalogOptions(threshold=2, year_weights=(1.0,))))
    assert set(g) == {"K35/相关手术", "K35/治疗性操作", "K35/保守治疗"}
    assert g["K35/相关手术"]["cases"] == 2 and g["K35/相关手术"]["mean_cost"] == 12_000
    assert g["K35/相关手术"]["name"].endswith("（相关手术）")


def test_coverage_target_picks_the_largest_threshold_reaching_it():
    counts = np.array([50, 30, 10, 5, 5])  # 100 cases
    assert coverage_threshold(counts_series(counts), 0.80) == 30  # 50 + 30 = 80%
    assert coverage_threshold(counts_series(counts), 0.81) == 10  # + 10 = 90%
    assert coverage_threshold(counts_series(counts), 0.95) == 5
    assert coverage_threshold(counts_series(counts), 1.0) == 5


def counts_series(values):
    import pandas as pd

    return pd.Series(values)


def test_cases_without_a_principal_or_a_cost_are_skipped_and_counted():
    table = cases([(["J18.900"], [], 1_000), ([], [], 1_000), (["J18.900"], [], 0.0)])
    cat = build_catalog(table, CatalogOptions(threshold=1))
    assert (cat.cases, cat.cases_skipped) == (1, 2)


def test_options_are_checked():
    with pytest.raises(ValueError):
        CatalogOptions(trim_percentiles=(50, 10))
    with pytest.raises(ValueError):
        CatalogOptions(coverage=1.5)


def test_catalog_build_command_writes_the_catalogue_and_its_manifest(tmp_path):
    import json

    from dipsim.cli import main

    region = tmp_path / "region"
    assert main(["synth", "--cases", "3000", "--hospitals", "8", "--seed", "5", "-o", str(region), "-q"]) == 0
    out = tmp_path / "cat"
    assert main(["catalog", "build", str(region / "cases"), "-o", str(out), "--threshold", "20", "-q"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    import pyarrow.parquet as pq

    groups = pq.read_table(out / "catalog.parquet")
    assert manifest["cases"] + manifest["cases_skipped"] == manifest["inputs"][0]["accepted"]
    assert sum(groups["cases"].to_pylist()) == manifest["cases"]
    assert manifest["threshold"] == 20 and manifest["options"]["threshold"] == 20
    assert all(len(f["sha256"]) == 64 for f in manifest["inputs"][0]["files"])
    assert (out / "catalog.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel opens the Chinese names
    assert "Core groups" in (out / "coverage.md").read_text(encoding="utf-8")
    assert main(["catalog", "build", str(region / "cases"), "-o", str(out), "--trim", "60,10"]) == 1


def test_dip_group_and_explain_commands(tmp_path, capsys):
    from dipsim.cli import main

    region = tmp_path / "region"
    assert main(["synth", "--cases", "2000", "--hospitals", "8", "--seed", "7", "-o", str(region), "-q"]) == 0
    cat = tmp_path / "cat"
    assert main(["catalog", "build", str(region / "cases"), "-o", str(cat), "--threshold", "10", "-q"]) == 0
    out = tmp_path / "dip.csv"
    assert main(["group", str(region / "cases"), "--scheme", "dip", "--catalog", str(cat), "-o", str(out), "-q"]) == 0
    import pandas as pd

    groups = pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False)
    assert list(groups.columns) == ["case_id", "dip_group", "dip_points", "match", "reason"]
    assert set(groups["match"]) <= {"exact", "comprehensive", "none"}  # building cases: never a best match
    case_id = groups["case_id"].iloc[0]
    capsys.readouterr()
    assert main(["explain", str(region / "cases"), "--case-id", case_id, "--scheme", "dip", "--catalog",
                 str(cat)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[-1].startswith(f"result: {groups['dip_group'].iloc[0]} ")
    assert main(["group", str(region / "cases"), "--scheme", "dip", "-o", str(out)]) == 1  # no --catalog


def tcm_cases(rows):
    """rows: (diagnoses, cost, tcm_treated, tcm_cost)."""
    return pa.table({
        "case_id": [str(i) for i in range(len(rows))],
        "diagnoses": pa.array([r[0] for r in rows], pa.list_(pa.string())),
        "procedures": pa.array([[] for _ in rows], pa.list_(pa.string())),
        "total_cost": pa.array([r[1] for r in rows], pa.float64()),
        "tcm_treated": pa.array([r[2] for r in rows], pa.bool_()),
        "tcm_cost": pa.array([r[3] for r in rows], pa.float64()),
        "tcm_diagnosis": pa.array([None] * len(rows), pa.string()),
    })


def test_tcm_cases_of_listed_diseases_get_the_western_points_and_stay_out_of_its_calibration():
    from dipsim.grouping.dip import DipCatalog, group_dip_table
    from dipsim.tcm import TcmRule

    # I63.9: Western cases 10,000 and 12,000 (mean 11,000); two TCM-treated cases at 6,000 (flag) and 7,000
    # (TCM share 3,000 / 7,000 = 43% >= 30%). J18.9 at 4,000 is not listed. All cases: M = 39,000 / 5 = 7,800.
    rows = [(["I63.900"], 10_000, False, 0), (["I63.900"], 12_000, False, 0), (["I63.900"], 6_000, True, 0),
            (["I63.900"], 7_000, False, 3_000), (["J18.900"], 4_000, True, 4_000)]
    rule = TcmRule(diseases=("I63.9",), treated_by=("flag", "share"), min_share=0.3)
    cat = build_catalog(tcm_cases(rows), CatalogOptions(threshold=1, year_weights=(1.0,), tcm=rule))
    g = groups(cat)
    assert g["I63.9/"]["mean_cost"] == 11_000 and g["I63.9/"]["cases"] == 2  # TCM cases left out
    assert g["TCM/I63.9"]["kind"] == "tcm" and g["TCM/I63.9"]["mean_cost"] == 6_500
    assert g["TCM/I63.9"]["points"] == g["I63.9/"]["points"] == round(11_000 / 7_800 * 1000, 4)
    assert g["J18.9/"]["cases"] == 1  # TCM-treated, but J18.9 is not a TCM advantage disease
    out = group_dip_table(tcm_cases(rows), DipCatalog(cat.groups, cat.options, "t", cat.keys)).to_pylist()
    assert [o["match"] for o in out] == ["exact", "exact", "tcm", "tcm", "exact"]
    assert out[2]["dip_points"] == out[0]["dip_points"]


def test_tcm_rule_criteria():
    from dipsim.tcm import TcmRule, tcm_treated

    table = tcm_cases([(["I63.900"], 1_000, True, 0), (["I63.900"], 1_000, False, 500),
                       (["I63.900"], 1_000, None, None)])
    table = table.set_column(6, "tcm_diagnosis", pa.array([None, None, "BNG080"], pa.string()))
    assert tcm_treated(table, TcmRule(("I63.9",))).tolist() == [True, False, False]
    assert tcm_treated(table, TcmRule(("I63.9",), ("share",), 0.5)).tolist() == [False, True, False]
    assert tcm_treated(table, TcmRule(("I63.9",), ("diagnosis",))).tolist() == [False, False, True]
    with pytest.raises(ValueError):
        TcmRule(("I63.9",), ("share",))  # no min_share


@pytest.mark.parametrize("name", ["dip-demo-costed", "dip-demo-synthetic"])
def test_committed_demo_catalogues_load_and_reconcile(name):
    import json

    from dipsim.grouping.dip import load_catalog
    from dipsim.paths import tables_dir

    folder = tables_dir() / name
    catalog = load_catalog(folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    kinds = catalog.groups["kind"].to_pylist()
    cases_by_kind = {k: sum(c for c, kk in zip(catalog.groups["cases"].to_pylist(), kinds) if kk == k)
                     for k in set(kinds)}
    assert sum(cases_by_kind.values()) == manifest["cases"]
    assert cases_by_kind["core"] / manifest["cases"] == pytest.approx(manifest["core_coverage"])
    assert sum(catalog.keys["cases"].to_pylist()) == manifest["cases"] - cases_by_kind.get("tcm", 0)
    assert (catalog.options.tcm is not None) == (name == "dip-demo-synthetic")


def test_a_procedure_under_the_resource_share_does_not_count():
    """DIP 2.0: a related procedure counts only if it carries >= 10% of the case's resources. 45.2302 costs 500 of
    10,000 (5%) in the first case and 2,000 (20%) in the second; the third has one cost too many: unknown, counts."""
    table = pa.table({
        "diagnoses": pa.array([["K35.800"]] * 3, pa.list_(pa.string())),
        "procedures": pa.array([["47.0901", "45.2302"], ["47.0901", "45.2302"], ["47.0901"]],
                               pa.list_(pa.string())),
        "procedure_costs": pa.array([[5_000.0, 500.0], [5_000.0, 2_000.0], [100.0, 200.0]],
                                    pa.list_(pa.float64())),
        "total_cost": [10_000.0] * 3,
    })
    keys = case_keys(table, CatalogOptions(min_procedure_share=0.10))["key"].tolist()
    assert keys == ["K35.8/47.0901", "K35.8/45.2302+47.0901", "K35.8/47.0901"]
    assert case_keys(table)["key"].tolist()[0] == "K35.8/45.2302+47.0901"  # the rule is off by default
    with pytest.raises(ValueError, match="procedure_costs"):
        case_keys(table.drop_columns(["procedure_costs"]), CatalogOptions(min_procedure_share=0.10))
