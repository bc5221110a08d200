"""The CHS-DRG grouper tables in grouper_tables/<scheme>/ (built by tools/build_drg_tables.py, and for 2.0 / 3.0
tools/build_drg_json_tables.py).

Everything but the rebuild test reads only the committed tables, never ../shared.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest

from dipsim.codes import is_valid_code_shape
from dipsim.grouping.tables import list_reads

REPO = Path(__file__).resolve().parents[1]
TABLES = REPO / "grouper_tables"
SCHEMES = ("chs-drg-1.1", "chs-drg-1.1-beijing", "chs-drg-2.0", "chs-drg-3.0")
JSON_SCHEMES = ("chs-drg-2.0", "chs-drg-3.0")  # built by tools/build_drg_json_tables.py
CSV_FILES = ("mdc.csv", "mdc_principal.csv", "mdcz_sites.csv", "adrg.csv", "adrg_codes.csv", "drg.csv", "mcc.csv",
             "cc.csv", "cc_exclusions.csv", "or_procedures.csv")
DX_LISTS = {"dx", "any_dx", "other_dx"}


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


builder = _load_tool("build_drg_tables")


def read(scheme: str, name: str) -> list[dict[str, str]]:
    with (TABLES / scheme / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module", params=SCHEMES)
def scheme(request) -> str:
    return request.param


def lists_of(scheme: str) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in read(scheme, "adrg_codes.csv"):
        out[(r["adrg"], r["list"])].add(r["code"])
    return out


# ----------------------------------------------------------------------------------------------------------------
# Counts and integrity


def test_counts_chs_drg_11():
    assert len(read("chs-drg-1.1", "mdc.csv")) == 26
    assert len(read("chs-drg-1.1", "adrg.csv")) == 376
    assert len(read("chs-drg-1.1", "drg.csv")) == 628


def test_manifest_matches_files(scheme):
    manifest = tomllib.loads((TABLES / scheme / "manifest.toml").read_text(encoding="utf-8"))
    assert manifest["scheme"] == scheme
    assert manifest["effective_date"] == {"chs-drg-1.1": "2021", "chs-drg-1.1-beijing": "2022",
                                          "chs-drg-2.0": "2025-01-01", "chs-drg-3.0": "2026-09-02"}[scheme]
    assert "Apache-2.0" in manifest["licence"]
    assert (TABLES / scheme / "LICENSE").is_file()
    outputs = {o["file"]: o for o in manifest["outputs"]}
    extra = {"chs-drg-2.0": {"invalid_principal.csv"},
             "chs-drg-3.0": {"invalid_principal.csv", "principal_mcc.csv"}}.get(scheme, set())
    assert set(CSV_FILES) | extra | {"special_rules.toml"} == set(outputs)
    for name in CSV_FILES:
        data = (TABLES / scheme / name).read_bytes()
        assert builder.hashlib.sha256(data).hexdigest() == outputs[name]["sha256"], name
        assert len(read(scheme, name)) == outputs[name]["rows"], name
    counts = manifest["counts"]
    assert (counts["mdc"], counts["adrg"], counts["drg"]) == (
        len(read(scheme, "mdc.csv")), len(read(scheme, "adrg.csv")), len(read(scheme, "drg.csv")))


def test_referential_integrity(scheme):
    mdcs = {r["mdc"] for r in read(scheme, "mdc.csv")}
    adrgs = {r["adrg"]: r for r in read(scheme, "adrg.csv")}
    for r in adrgs.values():
        assert r["mdc"] in mdcs and r["adrg"][0] == r["mdc"]
    drgs = read(scheme, "drg.csv")
    for d in drgs:
        assert d["adrg"] in adrgs and d["drg"][:3] == d["adrg"] and d["suffix"] == d["drg"][3]
    assert {d["adrg"] for d in drgs} == set(adrgs)  # every ADRG has at least one DRG
    assert {r["adrg"] for r in read(scheme, "adrg_codes.csv")} <= set(adrgs)
    assert {r["mdc"] for r in read(scheme, "mdc_principal.csv")} <= mdcs
    assert [int(r["order"]) for r in adrgs.values()] == list(range(1, len(adrgs) + 1))
    assert [int(r["order"]) for r in read(scheme, "mdc.csv")] == list(range(1, len(mdcs) + 1))


def test_logic_formulas_parse_and_name_existing_lists(scheme):
    lists = lists_of(scheme)
    for r in read(scheme, "adrg.csv"):
        names = builder.logic_names(builder.parse_logic(r["logic"]))
        own = {name for (a, name) in lists if a == r["adrg"]}
        assert names - builder.BUILTINS <= own, r
        assert own <= names, r  # every list is used
        assert names, r


def test_logic_grammar():
    parse, render = builder.parse_logic, builder.render_logic
    assert render(parse("dx & table_1 | dx & table_2 & table_3")) == "dx & table_1 | dx & table_2 & table_3"
    assert parse("a | b & c") == ("or", ["a", ("and", ["b", "c"])])
    assert render(parse("(other_dx | table_1) & table_2 | table_3")) == "(other_dx | table_1) & table_2 | table_3"
    for bad in ("", "dx &", "dx | | px", "(dx", "dx px", "DX"):
        with pytest.raises(ValueError):
            parse(bad)
    assert builder.translate_formula("包含以下主要诊断+手术表 1或包含以下主要诊断+手术表 2+手术表 3") == \
        "dx & table_1 | dx & table_2 & table_3"


def test_kinds_match_second_letter(scheme):
    for r in read(scheme, "adrg.csv"):
        c = r["adrg"][1]
        expected = "surgical" if "A" <= c <= "J" else "non_or" if "K" <= c <= "Q" else "medical"
        assert r["kind"] == expected, r


def test_every_adrg_without_lists_has_a_special_rule(scheme):
    with_lists = {a for (a, _) in lists_of(scheme)}
    for r in read(scheme, "adrg.csv"):
        if r["adrg"] not in with_lists:
            assert r["logic"] in ("all_or", "mdcz_no_surgery"), r


def test_code_shapes(scheme):
    dx: list[str] = []
    px: list[str] = []
    for r in read(scheme, "adrg_codes.csv"):
        (dx if list_reads(r["list"]) in DX_LISTS else px).append(r["code"])
    dx += [r["code"] for r in read(scheme, "mdc_principal.csv")]
    dx += [r["code"] for r in read(scheme, "mdcz_sites.csv")]
    for name in ("mcc.csv", "cc.csv", "cc_exclusions.csv"):
        dx += [r["code"] for r in read(scheme, name)]
    px += [r["code"] for r in read(scheme, "or_procedures.csv")]
    if (TABLES / scheme / "principal_mcc.csv").is_file():
        dx += [r["code"] for r in read(scheme, "principal_mcc.csv")]
    for codes, system in ((dx, "icd10"), (px, "icd9")):
        ok = is_valid_code_shape(pa.array(codes, pa.string()), system).to_pylist()
        assert all(ok), [c for c, good in zip(codes, ok) if not good][:10]


def test_no_pdf_artefacts_and_sorted(scheme):
    for path in sorted((TABLES / scheme).iterdir()):
        text = path.read_text(encoding="utf-8")
        assert "~~" not in text, path.name
        assert "\r" not in text, path.name
    for name, key in (("adrg_codes.csv", lambda r: (r["adrg"], r["list"], r["code"])),
                      ("drg.csv", lambda r: r["drg"]), ("mcc.csv", lambda r: r["code"]),
                      ("cc.csv", lambda r: r["code"]), ("or_procedures.csv", lambda r: r["code"]),
                      ("cc_exclusions.csv", lambda r: (int(r["exclusion_table"]), r["code"]))):
        rows = [key(r) for r in read(scheme, name)]
        assert rows == sorted(rows) and len(rows) == len(set(rows)), name


def test_exclusion_tables_exist(scheme):
    tables = {r["exclusion_table"] for r in read(scheme, "cc_exclusions.csv")}
    for name in ("mcc.csv", "cc.csv"):
        refs = {r["exclusion_table"] for r in read(scheme, name)}
        assert refs - {""} <= tables, name


def test_severity(scheme):
    allowed = {"mcc", "cc", "cc_or_mcc", "none", "no_mcc", "all"}
    by_adrg: dict[str, set[str]] = defaultdict(set)
    for d in read(scheme, "drg.csv"):
        assert d["severity"] in allowed, d
        if d["suffix"] == "9":
            assert d["severity"] == "all", d
        if d["suffix"] == "1":
            assert d["severity"] == "mcc", d
        by_adrg[d["adrg"]].add(d["severity"])
    for adrg, sevs in by_adrg.items():
        assert not ({"cc_or_mcc", "mcc"} <= sevs) or adrg == "IT2", (adrg, sevs)  # Beijing IT2: age split


# ----------------------------------------------------------------------------------------------------------------
# Known facts, checked by reading the rule text


def test_known_facts_chs_drg_11():
    s = "chs-drg-1.1"
    lists = lists_of(s)
    adrg = {r["adrg"]: r for r in read(s, "adrg.csv")}
    assert "37.5100" in lists[("AA1", "px")] and adrg["AA1"]["logic"] == "px"
    assert adrg["AC1"]["logic"] == "px_1 & px_2"
    assert "52.8000" in lists[("AC1", "px_1")] and "55.6901" in lists[("AC1", "px_2")]
    assert "52.8000" not in lists[("AC1", "px_2")] and "55.6901" not in lists[("AC1", "px_1")]
    # Combined procedure rules are anchored by the principal procedure: px = the union of their lists.
    assert adrg["IB1"]["logic"] == "px & dx & px_1 & px_2"
    assert adrg["JA1"]["logic"] == "px & (dx & table_1 & table_2 | dx & table_1 & table_3 & table_4)"
    assert adrg["NA1"]["logic"] == "px & (dx & table_1 | dx & table_2 & table_3)"
    assert lists[("NA1", "px")] == lists[("NA1", "table_1")] | lists[("NA1", "table_2")] | lists[("NA1", "table_3")]
    assert adrg["PS1"]["logic"] == "any_dx" and "P07.200" in lists[("PS1", "any_dx")]
    assert adrg["ZZ1"]["logic"] == "mdcz_no_surgery"
    assert adrg["SB1"]["logic"] == adrg["TB1"]["logic"] == adrg["XJ1"]["logic"] == "all_or"
    assert adrg["BB1"]["kind"] == "surgical" and adrg["BL1"]["kind"] == "non_or" and adrg["BR1"]["kind"] == "medical"
    assert "K35.800x001" not in lists[("AA1", "px")]
    principal = {(r["mdc"], r["code"]) for r in read(s, "mdc_principal.csv")}
    assert ("B", "A17.000+G01*") in principal and ("B", "A01.002+G01*") in principal
    assert ("D", "L04.002") in principal  # in DZ1's list, not in the text's MDCD table: added by the build
    mdc = {r["mdc"]: r for r in read(s, "mdc.csv")}
    assert mdc["B"]["name"] == "神经系统疾病及功能障碍" and mdc["B"]["order"] == "2" and mdc["Z"]["order"] == "26"
    drg = {r["drg"]: r for r in read(s, "drg.csv")}
    assert drg["AA19"]["severity"] == "all"
    assert drg["BB11"]["severity"] == "mcc" and drg["BB13"]["severity"] == "cc" and drg["BB15"]["severity"] == "none"
    assert drg["BJ13"]["severity"] == "cc_or_mcc"  # BJ1 splits into 3 / 5 only
    mcc = {r["code"]: r["exclusion_table"] for r in read(s, "mcc.csv")}
    assert mcc["A01.100"] == "1" and mcc["U82.100"] == ""
    cc = {r["code"]: r["exclusion_table"] for r in read(s, "cc.csv")}
    assert cc["A00.100"] == "1" and cc["Z99.900"] == ""
    assert {"A00.900", "A01.000"} <= {r["code"] for r in read(s, "cc_exclusions.csv") if r["exclusion_table"] == "1"}
    assert len(read(s, "mcc.csv")) == 4678 and len(read(s, "cc.csv")) == 16568
    assert len(read(s, "cc_exclusions.csv")) == 28302
    assert "00.5500" in {r["code"] for r in read(s, "or_procedures.csv")}
    sites = {r["site"] for r in read(s, "mdcz_sites.csv")}
    assert sites == set(builder.MDCZ_SITES)
    z_principal = {c for m, c in principal if m == "Z"}
    assert z_principal == {r["code"] for r in read(s, "mdcz_sites.csv")}
    assert "S01.800x011" in z_principal


def test_special_rules_chs_drg_11():
    rules = tomllib.loads((TABLES / "chs-drg-1.1" / "special_rules.toml").read_text(encoding="utf-8"))
    assert rules["pre_mdc"]["order"] == ["A", "P", "Y", "Z"]
    assert rules["ventilation"] == {**rules["ventilation"], "adrg": "AH1", "hours_min": 96}
    assert "96.7201" in rules["ventilation"]["procedures"]
    assert rules["mdcp"]["age_days_max"] == 28
    bounds = rules["mdcp"]["adrg"]
    assert bounds["PS1"]["weight_g_max"] == 1499 and "weight_g_min" not in bounds["PS1"]
    assert (bounds["PS2"]["weight_g_min"], bounds["PS2"]["weight_g_max"]) == (1500, 1999)
    assert (bounds["PS3"]["weight_g_min"], bounds["PS3"]["weight_g_max"]) == (2000, 2499)
    assert bounds["PS4"]["weight_g_min"] == 2500
    assert (bounds["PV1"]["age_days_min"], bounds["PV1"]["age_days_max"]) == (29, 364)
    assert rules["mdcz"]["min_sites"] == 2 and len(rules["mdcz"]["sites"]) == 9
    assert rules["sex"] == {**rules["sex"], "male_only": ["M"], "female_only": ["N"]}
    assert rules["options"]["cc_only_in_x1_x5_split"] == "x1"
    assert rules["qy"]["suffix"] == "QY"
    for name, table in rules.items():
        assert "source" in table, name


def test_beijing_side_by_side():
    a, b = "chs-drg-1.1", "chs-drg-1.1-beijing"
    assert len(read(b, "mdc.csv")) == 26 and len(read(b, "adrg.csv")) == 376 and len(read(b, "drg.csv")) == 696
    adrg_a = {r["adrg"]: r for r in read(a, "adrg.csv")}
    adrg_b = {r["adrg"]: r for r in read(b, "adrg.csv")}
    assert adrg_b["AH1"]["logic"] == "(other_dx | table_1) & table_2 | table_3" != adrg_a["AH1"]["logic"]
    assert adrg_b["IB1"]["logic"] == "any_px | dx & px_1"
    assert adrg_b["WB1"]["logic"] == "(dx | other_dx) & px"
    assert adrg_b["BB1"]["name"] != adrg_a["BB1"]["name"]
    drg_b = {r["drg"]: r for r in read(b, "drg.csv")}
    assert drg_b["AG15"]["severity"] == "no_mcc" and drg_b["RC12"]["severity"] == "all"
    assert read(a, "adrg_codes.csv") != read(b, "adrg_codes.csv")
    rules = tomllib.loads((TABLES / b / "special_rules.toml").read_text(encoding="utf-8"))
    assert rules["drg_conditions"]["RC12"]["los_days_min"] == 13
    assert rules["drg_conditions"]["CD1D"]["age_years_max"] == 6
    manifest = tomllib.loads((TABLES / b / "manifest.toml").read_text(encoding="utf-8"))
    assert any("chs-drg-1.1 OR procedure list" in n for n in manifest["notes"])


def test_chs_drg_30_tables():
    """Facts read by hand from ../shared/reference/chs-drg-3.0 (SOURCE.txt, DRG.dat, drg_rules.json, adrg_rules.json,
    ROBOT_ASSISTED_SURGERY.dat, HIGH_RISK_PREGNANCY.dat, mcc_codes.json, cc_codes.json)."""
    s = "chs-drg-3.0"
    assert (len(read(s, "mdc.csv")), len(read(s, "adrg.csv")), len(read(s, "drg.csv"))) == (26, 492, 825)
    mcc = {r["code"]: r["exclusion_table"] for r in read(s, "mcc.csv")}
    cc = {r["code"]: r["exclusion_table"] for r in read(s, "cc.csv")}
    assert len(mcc) == 1581 and len(cc) == 6337
    assert mcc["I50.900"] == "45"  # SOURCE.txt: MCC (table 45) in 3.0, table 90 in 2.0
    assert cc["Z94.001"] == ""  # cc_codes.json table 0: no such exclusion table
    assert len({r["exclusion_table"] for r in read(s, "cc_exclusions.csv")}) == 148
    drg = {r["drg"]: r for r in read(s, "drg.csv")}
    # severity: the phrase before the band; 伴合并症或并发症 is cc_or_mcc where the band has no MCC DRG
    assert drg["BU2C"]["severity"] == "none" and drg["BV1E"]["severity"] == "mcc"
    assert drg["BV1F"]["severity"] == "cc" and drg["HC4F"]["severity"] == "cc_or_mcc"
    assert drg["EM1G"]["severity"] == "no_mcc"  # 不伴严重合并症或并发症,大于等于70岁
    assert drg["CV1H"]["severity"] == drg["EB10"]["severity"] == drg["AH29"]["severity"] == "all"
    assert drg["BU2C"]["name"] == "神经系统变性疾病,不伴合并症或并发症,小于等于6岁"
    rules = tomllib.loads((TABLES / s / "special_rules.toml").read_text(encoding="utf-8"))
    cond = rules["drg_conditions"]
    assert cond["BV1E"] == {**cond["BV1E"], "age_years_min": 70, "cc_levels": ["mcc"], "text": "大于等于70岁"}
    assert "age_years_max" not in cond["BV1E"]
    assert cond["BU2C"] == {**cond["BU2C"], "age_years_max": 6, "cc_levels": ["none"], "text": "小于等于6岁"}
    assert "age_years_min" not in cond["BU2C"]
    assert cond["CV1H"]["age_years_min"] == 70 and "cc_levels" not in cond["CV1H"]
    assert cond["HC4F"]["cc_levels"] == ["cc", "mcc"] and cond["EM1G"]["cc_levels"] == ["none", "cc"]
    robot = ["17.4100", "17.4200", "17.4300", "17.4400", "17.4500"]
    assert cond["EB10"]["procedures"] == robot and cond["EB10"]["text"] == "机器人辅助手术"
    assert "cc_levels" not in cond["EB10"] and "age_years_min" not in cond["EB10"]
    # drg_rules.json: AGE_GE_70 in 71 DRGs (16 + 33 + 18 + 4), AGE_LE_6 in 12, ROBOT_ASSISTED_SURGERY in 9
    assert sum("age_years_min" in c for c in cond.values()) == 71
    assert sum("age_years_max" in c for c in cond.values()) == 12
    assert sorted(d[:3] for d, c in cond.items() if "procedures" in c) == \
        ["EB1", "GB4", "IB4", "IC3", "IE2", "LA2", "MB1", "NA1", "NC1"]
    assert len(cond) == 92 and all("source" in c and c["text"] for c in cond.values())
    assert "BV11" not in cond and "BY11" not in cond
    assert rules["list_min_count"]["IC2"]["any_px"] == 2
    assert rules["principal_mcc"]["adrgs"] == ["OB1", "OB2"]
    pregnancy = [r["code"] for r in read(s, "principal_mcc.csv")]
    assert len(pregnancy) == 811 and "A34.x00" in pregnancy and "F53.001" in pregnancy
    vent = rules["ventilation"]
    assert (vent["hours_min"], vent["procedures"], vent["mode"]) == (96, ["96.7201"], "procedure")
    bounds = rules["mdcp"]["adrg"]  # 3.0 names the weight on admission (入院体重)
    assert bounds["PS1"] == {**bounds["PS1"], "weight_g_max": 999} and "weight_g_min" not in bounds["PS1"]
    assert (bounds["PS2"]["weight_g_min"], bounds["PS2"]["weight_g_max"]) == (1000, 1499)
    assert bounds["PS5"]["weight_g_min"] == 2500 and "weight_g_max" not in bounds["PS5"]
    adrg = {r["adrg"]: r for r in read(s, "adrg.csv")}
    lists = lists_of(s)
    assert adrg["AH2"]["name"] == "有创呼吸机支持≥96小时,伴CRRT"
    assert adrg["AH2"]["logic"] == "main_px_1 & table_2"  # 主要手术或操作 1 + 手术或操作 2
    assert lists[("AH2", "main_px_1")] == {"96.7201"} and lists[("AH2", "table_2")] == {"39.9500x007"}
    assert adrg["AH3"]["logic"] == "px" and lists[("AH3", "px")] == {"96.7201"}
    assert adrg["IC2"]["logic"] == "px & any_px" and len(lists[("IC2", "any_px")]) == 24
    # sectionAliases: 主要手术或操作 N may be met by 手术或操作 N's list
    assert adrg["CB2"]["logic"] == "(main_px_1 | main_px_2) & table_1 & table_2"
    assert lists[("CB2", "main_px_1")] == lists[("CB2", "table_1")] and len(lists[("CB2", "table_1")]) == 22
    assert lists[("CB2", "main_px_2")] == lists[("CB2", "table_2")] and len(lists[("CB2", "table_2")]) == 41
    # RN1: 主要诊断 1 / 其他诊断 1 are both the 诊断 1 list (4 codes), which is not written itself
    assert lists[("RN1", "dx_1")] == lists[("RN1", "other_dx_1")] and len(lists[("RN1", "dx_1")]) == 4
    assert not any(a == "RN1" and n.startswith("any_dx") for a, n in lists)
    assert adrg["SB1"]["logic"] == "all_or" and adrg["ZZ1"]["logic"] == "mdcz_no_surgery"
    manifest = tomllib.loads((TABLES / s / "manifest.toml").read_text(encoding="utf-8"))
    assert any("qy_diff_codes.json and all_procedure_codes.json are NOT used" in n for n in manifest["notes"])


def test_chs_drg_30_loads_in_the_grouper():
    from dipsim.grouping.tables import load_scheme

    scheme = load_scheme("chs-drg-3.0")
    assert len(scheme.adrgs) == 492


# ----------------------------------------------------------------------------------------------------------------
# Rebuild from ../shared reproduces the committed files


def _manifest_without_run(path: Path) -> dict:
    m = tomllib.loads(path.read_text(encoding="utf-8"))
    m.pop("built_on")
    m.pop("source_dir")
    m["sources"] = [{**s, "file": Path(s["file"]).name} for s in m["sources"]]
    return m


@pytest.mark.parametrize("name", SCHEMES)
def test_rebuild_reproduces_committed_files(name, shared_reference, tmp_path):
    src = shared_reference / name
    if not src.is_dir():
        pytest.skip(f"{src} is absent")
    if name in JSON_SCHEMES:
        _load_tool("build_drg_json_tables").build(src, tmp_path, name)
    else:
        builder.build(name, src, tmp_path)
    committed = TABLES / name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in committed.iterdir())
    for path in sorted(committed.iterdir()):
        if path.name == "manifest.toml":
            assert _manifest_without_run(tmp_path / path.name) == _manifest_without_run(path)
        else:
            assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_build_fails_on_unclassified_line(shared_reference, tmp_path):
    src = shared_reference / "chs-drg-1.1"
    if not src.is_dir():
        pytest.skip(f"{src} is absent")
    copy = tmp_path / "src"
    (copy / "rules").mkdir(parents=True)
    for f in builder.RULE_FILES:
        text = (src / "rules" / f).read_text(encoding="utf-8")
        if f == "4_ADRG_DETAIL.txt":
            text = text.replace("同时包含以下手术：", "同时包含下列手术：", 1)
        (copy / "rules" / f).write_text(text, encoding="utf-8")
    (copy / "LICENSE").write_text("x", encoding="utf-8")
    with pytest.raises(builder.BuildError, match=r"4_ADRG_DETAIL.txt:15: unclassified line"):
        builder.build("chs-drg-1.1", copy, tmp_path / "out",
                      or_file=src / "lists" / "SS_VALID.dat")


def test_json_build_fails_on_a_drg_rule_it_does_not_read_so(shared_reference, tmp_path):
    """drg_rules.json saying BV1E is WITH_CC (its name says 伴严重…) and a high-risk-pregnancy list that differs
    from config.json: the build lists both and writes nothing."""
    src = shared_reference / "chs-drg-3.0"
    if not src.is_dir():
        pytest.skip(f"{src} is absent")
    copy = tmp_path / "src"
    shutil.copytree(src, copy)
    rules_path = copy / "versions/chs-drg-3.0/generated/drg_rules.json"
    rules_path.chmod(0o644)
    text = rules_path.read_text(encoding="utf-8")
    rules = json.loads(text)
    for r in rules:
        if r["drgCode"] == "BV1E":
            r["conditions"] = ["AGE_GE_70", "WITH_CC"]
        if r["drgCode"] == "CV19":
            r["conditions"] = ["AGE_GE_70"]
    rules_path.write_text(json.dumps(rules, ensure_ascii=False), encoding="utf-8")
    hrp = copy / "versions/chs-drg-3.0/raw/HIGH_RISK_PREGNANCY.dat"
    hrp.chmod(0o644)
    hrp.write_text("\n".join(hrp.read_text(encoding="utf-8").splitlines()[1:]) + "\n", encoding="utf-8")
    json_builder = _load_tool("build_drg_json_tables")
    with pytest.raises(json_builder.BuildError) as e:
        json_builder.build(copy, tmp_path / "out", "chs-drg-3.0")
    message = str(e.value)
    assert "BV1E ['AGE_GE_70', 'WITH_CC'] but its name reads mcc" in message
    assert "CV19 ['AGE_GE_70'] but its name reads the band {}" in message
    assert "HIGH_RISK_PREGNANCY.dat (810 codes) differs from config.json" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../chs-drg-2.0", "chs-drg-2.0/", "..", "", "dip", "chs-drg-9.9"])
def test_a_scheme_name_is_a_scheme_folder_never_a_path(name):
    """`dip` is a folder of grouper_tables/ but not a CHS-DRG scheme (no adrg.csv); the others are no folder name."""
    from dipsim.grouping.tables import scheme_folder

    with pytest.raises(FileNotFoundError, match=r"no grouper tables for .* \(have: chs-drg-1.1, "):
        scheme_folder(name)
