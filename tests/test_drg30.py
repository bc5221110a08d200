"""The rule kinds CHS-DRG 3.0 adds to the table format (grouper_tables/README.md, issue 18): age bands (`age_years_min`
/ `age_years_max` in `[drg_conditions]`, alone or with `cc_levels`), procedure bands (`procedures`: robot-assisted
surgery), a list that needs two codes (`[list_min_count]`: IC2) and a principal diagnosis counted as an MCC in some
ADRGs (`[principal_mcc]` + principal_mcc.csv: high-risk pregnancy in OB1 / OB2).

Every case is grouped by the reference grouper and by the Numba kernel (`group_table`), which must agree; the expected
DRG is written by hand from the scheme's rule text.

Part 1 runs on a hand-made scheme: a copy of grouper_tables/chs-drg-2.0 with 3.0's new rules added to it (so that it
runs without the 3.0 tables). The codes, read from the 2.0 tables: G40.900 癫痫 is in BV1's dx list only (BV11 / BV13
/ BV15 by MCC / CC / none); G12.200 in BU2's only (BU21 mcc, BU25 no_mcc); H40.900 in CV1's only (CV19); C34.000 is
an MDCE principal (ER1) and 32.4100 (肺叶切除) is in EB1's px list, the first of MDCE's surgical ADRGs to name it
(EB19); M17.900 (膝关节病) is in IU1 (IU13 cc_or_mcc, IU15 none) and 81.5100 / 81.5400 (hip / knee replacement) in IC2's
px list and no other MDCI list; O14.900 and O82.000 are MDCO principals (OZ1), 74.1x01 (剖宫产) is in OB1's px list (the
first MDCO ADRG), 72.0x00 in OC1's (OC11 mcc, OC15 no_mcc). I50.900 is an MCC (exclusion table 90) and E87.600 a CC
(table 48); neither table holds any principal used here. 17.4100-17.4500 are on no list of 2.0.

Part 2 runs on grouper_tables/chs-drg-3.0 (skipped when absent) with the codes of its source
(../shared/reference/chs-drg-3.0: adrg_rules.json sections, drg_rules.json conditions, the MCC / CC lists).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from dipsim.grouping.compiled import FLAG_PRINCIPAL_MCC, FLAG_SINGLE, compile_scheme
from dipsim.grouping.drg import group_table
from dipsim.grouping.explain import explain_case
from dipsim.grouping.reference import Case, group_case
from dipsim.grouping.tables import list_reads, load_scheme
from dipsim.paths import tables_dir

from case_tables import grouping_table

HAND = "hand-drg-3.0"
ROBOT = ["17.4100", "17.4200", "17.4300", "17.4400", "17.4500"]

_HAND_RULES = '''
[drg_conditions.BV1E]
age_years_min = 70
cc_levels = ["mcc"]
text = "大于等于70岁"
source = "test: 3.0 BV1E 癫痫,伴严重合并症或并发症,大于等于70岁"

[drg_conditions.BV1F]
age_years_min = 70
cc_levels = ["cc"]
text = "大于等于70岁"
source = "test: 3.0 BV1F"

[drg_conditions.BV1G]
age_years_min = 70
cc_levels = ["none"]
text = "大于等于70岁"
source = "test: 3.0 BV1G"

[drg_conditions.BU2C]
age_years_max = 6
cc_levels = ["none"]
text = "小于等于6岁"
source = "test: 3.0 BU2C 神经系统变性疾病,不伴合并症或并发症,小于等于6岁"

[drg_conditions.CV1H]
age_years_min = 70
text = "大于等于70岁"
source = "test: 3.0 CV1H 各种类型青光眼,大于等于70岁"

[drg_conditions.EB10]
procedures = ["17.4100", "17.4200", "17.4300", "17.4400", "17.4500"]
text = "机器人辅助手术"
source = "test: 3.0 EB10 肺大手术,机器人辅助手术"

[list_min_count.IC2]
any_px = 2
source = "test: 3.0 IC2 sectionMinimumOccurrences"

[principal_mcc]
adrgs = ["OB1"]
text = "high-risk pregnancy"
source = "test: 3.0 highRiskPregnancyAsMcc"
'''

# drg, adrg, name, suffix, severity
_HAND_DRGS = [
    ("BV1E", "BV1", "癫痫，伴严重合并症或并发症，大于等于70岁", "E", "mcc"),
    ("BV1F", "BV1", "癫痫，伴一般合并症或并发症，大于等于70岁", "F", "cc"),
    ("BV1G", "BV1", "癫痫，不伴合并症或并发症，大于等于70岁", "G", "none"),
    ("BU2C", "BU2", "神经系统变性疾病，不伴合并症或并发症，小于等于6岁", "C", "none"),
    ("CV1H", "CV1", "各种类型青光眼，大于等于70岁", "H", "all"),
    ("EB10", "EB1", "肺大手术，机器人辅助手术", "0", "all"),
    ("OB11", "OB1", "剖宫产术，伴严重合并症或并发症", "1", "mcc"),
    ("OB15", "OB1", "剖宫产术，不伴严重合并症或并发症", "5", "no_mcc"),
]


def _append_rows(path: Path, rows: list[tuple], drop=lambda row: False) -> None:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        kept = [row for row in reader if not drop(row)]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(kept + [list(r) for r in rows])


def make_hand_scheme(root: Path, ic2_logic: str = "px & any_px"):
    """grouper_tables/chs-drg-2.0 copied to root/HAND with 3.0's new rule kinds added (module docstring)."""
    folder = root / HAND
    shutil.copytree(tables_dir() / "chs-drg-2.0", folder)
    with (folder / "special_rules.toml").open("a", encoding="utf-8") as f:
        f.write(_HAND_RULES)
    (folder / "principal_mcc.csv").write_text("code\nO14.900\n", encoding="utf-8")
    _append_rows(folder / "drg.csv", _HAND_DRGS, drop=lambda row: row[0] == "OB19")
    ic2 = [row for row in csv.reader((folder / "adrg_codes.csv").open(encoding="utf-8")) if row[:2] == ["IC2", "px"]]
    _append_rows(folder / "adrg_codes.csv", [("IC2", "any_px", code) for _, _, code in ic2])
    adrg = (folder / "adrg.csv").read_text(encoding="utf-8").splitlines()
    adrg = [line.replace(",surgical,px", f",surgical,{ic2_logic}") if line.startswith("IC2,") else line
            for line in adrg]
    (folder / "adrg.csv").write_text("\n".join(adrg) + "\n", encoding="utf-8")
    return load_scheme(HAND, str(root))


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return make_hand_scheme(tmp_path_factory.mktemp("hand"))



def group_both(scheme, batch: list[Case]) -> list[dict]:
    """Each case grouped by the reference and the kernel; they must agree on every output column."""
    got = group_table(grouping_table(batch), scheme).to_pylist()
    for case, kernel in zip(batch, got):
        ref = group_case(case, scheme)
        assert (kernel["drg"], kernel["adrg"], kernel["mdc"], kernel["cc_level"], kernel["reason"]) == (
            ref.drg, ref.adrg, ref.mdc, ref.cc_level, ref.reason), (case, ref.trace)
        kernel["trace"] = ref.trace
    return got


def drgs(scheme, batch: list[Case]) -> list[str]:
    return [g["drg"] for g in group_both(scheme, batch)]


def age(dx: list[str], years: int | None, days: int | None = None, procedures=()) -> Case:
    return Case(dx, list(procedures), sex=1, age_years=years, age_days=days, los_days=5)


# ---------------------------------------------------------------- part 1: the hand-made scheme


def test_age_band_with_cc_levels_bv1(hand):
    """BV1E / BV1F / BV1G (大于等于70岁, MCC / CC / none) beside BV11 / BV13 / BV15: 70 is in the band, 69 is not."""
    g, mcc, cc = "G40.900", "I50.900", "E87.600"
    batch = [age([g], 70), age([g, cc], 70), age([g, mcc], 70), age([g], 69), age([g, cc], 69), age([g, mcc], 69),
             age([g, mcc], 95), age([g], None), age([g, mcc], None)]
    assert drgs(hand, batch) == ["BV1G", "BV1F", "BV1E", "BV15", "BV13", "BV11", "BV1E", "BV15", "BV11"]


def test_age_from_days_when_years_are_missing(hand):
    """Age for a band: age_years when recorded, else age_days // 365: 25,550 days = 70 years, 25,549 days = 69."""
    g = "G40.900"
    batch = [age([g], None, 25_550), age([g], None, 25_549), age([g], 69, 25_550), age([g], -1, 25_550)]
    assert drgs(hand, batch) == ["BV1G", "BV15", "BV15", "BV1G"]


def test_age_band_6_and_under_bu2(hand):
    """BU2C 小于等于6岁 without CC: 6 years is in, 7 is out (BU25, no_mcc); an infant recorded in days only (200
    days: 0 years) is in; missing age, or a CC (the band's CC levels are none only), falls back to BU21 / BU25."""
    d, mcc, cc = "G12.200", "I50.900", "E87.600"
    batch = [age([d], 6), age([d], 7), age([d], 0), age([d], None, 200), age([d], None, None), age([d, cc], 6),
             age([d, mcc], 6), age([d, mcc], 7)]
    assert drgs(hand, batch) == ["BU2C", "BU25", "BU2C", "BU2C", "BU25", "BU25", "BU21", "BU21"]


def test_age_band_of_an_unsplit_adrg_cv1(hand):
    """CV1H 大于等于70岁 (every CC level) beside CV19."""
    h = "H40.900"
    batch = [age([h], 69), age([h], 70), age([h, "I50.900"], 70), age([h], None), age([h], 0, 200)]
    assert drgs(hand, batch) == ["CV19", "CV1H", "CV1H", "CV19", "CV19"]


def test_robot_assisted_band_eb1(hand):
    """EB10 机器人辅助手术: one of 17.4100-17.4500 among the procedures (principal or other) of an EB1 case."""
    lung = ["C34.000"]
    batch = [age(lung, 60, procedures=["32.4100", code]) for code in ROBOT]
    batch += [age(lung, 60, procedures=["32.4100"]), age(lung, 60, procedures=["32.4100", "99.9999x999", "17.4500"]),
              age(lung, 60, procedures=["32.4100", "17.4900"])]
    assert drgs(hand, batch) == ["EB10"] * 5 + ["EB19", "EB10", "EB19"]


def test_list_needing_two_codes_ic2(hand):
    """[list_min_count.IC2] any_px = 2: the principal procedure in IC2's px list and two procedures of its list,
    counted by position (the same code twice is two joints); one only: IC2 fails, and M17.900 goes to IU1."""
    knee = ["M17.900"]
    batch = [age(knee, 60, procedures=["81.5100", "81.5100"]), age(knee, 60, procedures=["81.5100", "81.5400"]),
             age(knee, 60, procedures=["81.5100"]), age(knee, 60, procedures=["81.5100", "32.4100"]),
             age(knee, 60, procedures=["32.4100", "81.5100", "81.5400"])]
    out = group_both(hand, batch)
    assert [g["drg"] for g in out[:2]] == ["IC29", "IC29"]
    assert [g["drg"] for g in out[2:4]] == ["IU15", "IU15"]
    assert out[4]["adrg"] != "IC2"


def test_list_needing_two_codes_as_the_whole_rule(tmp_path):
    """IC2's rule as the one list `any_px` (2 needed): the kernel must not take the list found for one code as the
    answer (FLAG_SINGLE is off)."""
    scheme = make_hand_scheme(tmp_path, ic2_logic="any_px")
    compiled = compile_scheme(scheme)
    assert not compiled.adrg_flags[list(scheme.adrgs).index("IC2")] & FLAG_SINGLE
    knee = ["M17.900"]
    batch = [age(knee, 60, procedures=["81.5100"]), age(knee, 60, procedures=["32.4100", "81.5100", "81.5100"]),
             age(knee, 60, procedures=["81.5100", "81.5100"])]
    assert drgs(scheme, batch) == ["IU15", "IC29", "IC29"]


def test_principal_mcc_in_ob1_only(hand):
    """O14.900 (principal_mcc.csv) as principal is an MCC in OB1 (OB11, cc_level 2); O82.000 without an MCC is
    OB15, with I50.900 OB11; in OC1 (not in [principal_mcc] adrgs) O14.900 does nothing: OC15, cc_level 0."""
    batch = [age(["O14.900"], 30, procedures=["74.1x01"]), age(["O82.000"], 30, procedures=["74.1x01"]),
             age(["O82.000", "I50.900"], 30, procedures=["74.1x01"]), age(["O14.900"], 30, procedures=["72.0x00"]),
             age(["O82.000", "O14.900"], 30, procedures=["74.1x01"])]
    out = group_both(hand, batch)
    assert [(g["drg"], g["cc_level"]) for g in out] == [("OB11", 2), ("OB15", 0), ("OB11", 2), ("OC15", 0),
                                                        ("OB15", 0)]
    compiled = compile_scheme(hand)
    flagged = [a for a, f in zip(compiled.adrg_codes, compiled.adrg_flags) if f & FLAG_PRINCIPAL_MCC]
    assert flagged == ["OB1"]


def test_two_and_one_schemes_are_unchanged_by_the_new_keys():
    """Beijing's and 1.1 / 2.0's bands: the new keys are absent (every CC level, no procedure, no minimum age)."""
    for name in ("chs-drg-1.1", "chs-drg-1.1-beijing", "chs-drg-2.0"):
        scheme = load_scheme(name)
        assert not scheme.principal_mcc and not scheme.principal_mcc_adrgs
        assert all(not a.min_counts for a in scheme.adrgs.values())
        for a in scheme.adrgs.values():
            for band in a.bands:
                assert band.age_years_min is None and band.cc_levels is None and not band.procedures
        compiled = compile_scheme(scheme)
        assert set(compiled.list_min.tolist()) == {1} and not compiled.dx_principal_mcc.any()
        assert (compiled.band_cc_mask == 7).all() and len(compiled.band_px_codes) == 0


def test_beijing_age_band_reads_days_when_years_are_missing():
    """The age rule is the same for Beijing's bands: CD1D 小于等于6岁 for a case with age_days only."""
    scheme = load_scheme("chs-drg-1.1-beijing")
    cd1 = scheme.adrgs["CD1"]
    (band,) = [b for b in cd1.bands]
    assert band.age_years_max == 6 and band.age_years_min is None
    assert band.holds(6, None) and not band.holds(7, None) and not band.holds(None, None)


def test_bad_new_keys_are_refused(tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(tables_dir() / "chs-drg-2.0", folder)
    rules = (folder / "special_rules.toml").read_text(encoding="utf-8")
    (folder / "special_rules.toml").write_text(rules + '\n[drg_conditions.CV19]\ncc_levels = ["severe"]\n',
                                               encoding="utf-8")
    with pytest.raises(ValueError, match="cc_levels"):
        load_scheme("bad", str(tmp_path))
    (folder / "special_rules.toml").write_text(rules + "\n[list_min_count.IC2]\nnot_a_list = 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not lists of IC2"):
        load_scheme("bad", str(tmp_path), qy=True)  # another cache entry of load_scheme
    (folder / "special_rules.toml").write_text(rules + "\n[drg_conditions.CV19]\nage_years_minimum = 70\n",
                                               encoding="utf-8")
    with pytest.raises(ValueError, match="unknown keys"):
        load_scheme("bad", str(tmp_path), qy=False)


# ---------------------------------------------------------------- explain


def _row(case: Case, case_id="C1", insurer_drg=None) -> dict:
    return {"case_id": case_id, "diagnoses": case.diagnoses, "procedures": case.procedures, "sex": case.sex,
            "age_years": case.age_years, "age_days": case.age_days, "birth_weight_g": None,
            "ventilation_hours": None, "los_days": case.los_days, "insurer_drg": insurer_drg}


def test_explain_tells_the_new_rule_kinds(hand):
    _, text = explain_case(_row(age(["H40.900"], 75)), hand)
    assert "age 75 years: 大于等于70岁 (age >= 70)" in text
    _, text = explain_case(_row(age(["G12.200"], None, 200)), hand)
    assert "age 0 years (200 days), CC level none: 小于等于6岁 (age <= 6, CC level none)" in text
    _, text = explain_case(_row(age(["G40.900", "I50.900"], 60)), hand)
    assert ("age 60 years, CC level MCC: no condition of ADRG BV1's DRGs holds (BV1E 大于等于70岁 (age >= 70, CC level "
            "MCC); BV1F 大于等于70岁 (age >= 70, CC level CC); BV1G 大于等于70岁 (age >= 70, CC level none))") in text
    _, text = explain_case(_row(age(["C34.000"], 60, procedures=["32.4100", "17.4300"])), hand)
    assert "procedure 17.4300: 机器人辅助手术 (a procedure among 17.4100, 17.4200, 17.4300, 17.4400, 17.4500)" in text
    _, text = explain_case(_row(age(["O14.900"], 30, procedures=["74.1x01"])), hand)
    assert ("principal diagnosis O14.900 is a high-risk pregnancy (principal_mcc.csv): counted as an MCC in OB1"
            in text)
    assert "result: DRG OB11" in text
    _, text = explain_case(_row(age(["M17.900"], 60, procedures=["81.5100", "81.5100"])), hand)
    assert "any_px: 81.5100, 81.5100 (at least 2 of them: [list_min_count.IC2])" in text


def test_explain_why_not_the_new_rule_kinds(hand):
    def why(case, insurer):
        _, text = explain_case(_row(case, insurer_drg=insurer), hand)
        return next(line for line in text.splitlines() if line.startswith("Why not"))

    assert why(age(["H40.900"], 69), "CV1H") == (
        "Why not CV1H: CV1H is for 大于等于70岁 (age >= 70); the case: age 69 years, stay 5 days")
    assert why(age(["G40.900", "I50.900"], 75), "BV1F").startswith(
        "Why not BV1F: BV1F is for 大于等于70岁 (age >= 70, CC level CC); the case: age 75 years, stay 5 days, "
        "CC level MCC (I50.900 is MCC")
    assert why(age(["C34.000"], 60, procedures=["32.4100"]), "EB10") == (
        "Why not EB10: EB10 is for 机器人辅助手术 (a procedure among 17.4100, 17.4200, 17.4300, 17.4400, 17.4500); "
        "the case: age 60 years, stay 5 days, no procedure among them")
    line = why(age(["M17.900"], 60, procedures=["81.5100"]), "IC29")
    assert ("only 1 procedure (81.5100) in any_px (手术或操作): IC2 needs at least 2 of them ([list_min_count], the "
            "same code twice counts twice)") in line
    assert why(age(["O82.000"], 30, procedures=["74.1x01"]), "OB11") == (
        "Why not OB11: OB11 takes a case with an MCC; the case's CC level is none: no secondary diagnosis")
    assert "is a high-risk pregnancy" in why(age(["O14.900"], 30, procedures=["74.1x01"]), "OB15")


# ---------------------------------------------------------------- part 2: grouper_tables/chs-drg-3.0
# Codes from ../shared/reference/chs-drg-3.0 (adrg_rules.json sections; mcc / cc / cce_codes.json): G40.900 is in
# BV1's 主要诊断 only, G12.200 in BU2's, K80.101 in HZ2's (MDCH) and 51.2300 (腹腔镜胆囊切除) is HC4's 主要手术或操作
# (HC1 and GB1 name it only in a 手术或操作 2 that needs a 手术或操作 1 too); E10.300x051+H42.0* is in CV1's 主要诊断;
# C34.000 an MDCE principal, 32.4100 in EB1's 主要手术或操作 (the only MDCE list); M16.900 an MDCI principal and
# 81.5100 / 81.5400 in IC2's 主要手术或操作 and 手术或操作 (2 needed) and IC3's 主要手术或操作 (IA1 needs a bone-tumour
# principal). I50.900 is an MCC (exclusion table 45), D62.x00 a CC (table 18); the principals here cancel tables 34,
# 31, 67, 23, 98, 94 or none. AH2 = 96.7201 as principal + 39.9500x007 (CRRT) anywhere, AH3 = 96.7201 alone. OC1 =
# 72.0x00 (principal) + 03.9000x001 (椎管内镇痛), OC2 = 72.0x00; OC3 = 73.6x01 + 03.9000x001, OC4 = 73.6x01; OL1 =
# Z37.000x001 (其他诊断) + 03.9000x001 as principal procedure, OR1 = Z37.000x001 alone. OB1 = a cesarean (74.1x01) as
# principal + a uterine / adnexal procedure (65.2901), OB2 = the cesarean alone. O14.900 (子痫前期) is in
# HIGH_RISK_PREGNANCY.dat, O82.000 is not; both are in OZ1's 主要诊断 (OZ19, unsplit). P07.200 is in PS2's 诊断 list
# (入院体重 1000-1499 g).

S30 = "chs-drg-3.0"


@pytest.fixture(scope="module")
def s30():
    if not (tables_dir() / S30 / "adrg.csv").is_file():
        pytest.skip("grouper_tables/chs-drg-3.0 is absent")
    return load_scheme(S30)


def test_30_age_bands_at_their_boundaries(s30):
    g, b, mcc, cc = "G40.900", "G12.200", "I50.900", "D62.x00"
    batch = [age([g], 70), age([g], 69), age([g, mcc], 70), age([g, cc], 70), age([g, mcc], 69), age([g, cc], 69),
             age([g], None, 25_550), age([g], None, None),
             age([b], 6), age([b], 7), age([b], None, 200), age([b], None, None), age([b, cc], 6), age([b, mcc], 3)]
    assert drgs(s30, batch) == ["BV1G", "BV15", "BV1E", "BV1F", "BV11", "BV13", "BV1G", "BV15",
                                "BU2C", "BU25", "BU2C", "BU25", "BU23", "BU23"]


def test_30_age_band_with_cc_hc4_and_unsplit_cv1(s30):
    """HC4F 伴合并症或并发症,大于等于70岁 takes a CC or an MCC at 70 and over; CV1H every case at 70 and over."""
    k, cv = ["K80.101"], ["E10.300x051+H42.0*"]
    px = ["51.2300"]
    batch = [age([*k, "I50.900"], 70, procedures=px), age([*k, "D62.x00"], 70, procedures=px),
             age(k, 70, procedures=px), age([*k, "D62.x00"], 69, procedures=px), age(k, 69, procedures=px),
             age(cv, 69), age(cv, 70), age([*cv, "I50.900"], 75), age(cv, None, None), age(cv, None, 25_550)]
    assert drgs(s30, batch) == ["HC4F", "HC4F", "HC45", "HC43", "HC45", "CV19", "CV1H", "CV1H", "CV19", "CV1H"]


def test_30_robot_assisted(s30):
    lung, hip = ["C34.000"], ["M16.900"]
    batch = [age(lung, 60, procedures=["32.4100", "17.4100"]), age(lung, 60, procedures=["32.4100"]),
             age(lung, 60, procedures=["32.4100", "17.4900"]), age(hip, 60, procedures=["81.5100", "17.4400"]),
             age(hip, 60, procedures=["81.5100"])]
    assert drgs(s30, batch) == ["EB10", "EB19", "EB19", "IC30", "IC39"]


def test_30_two_joints_ic2(s30):
    """IC2 needs two procedures of its list: the same code twice (both hips) counts twice; one only is IC3."""
    hip = ["M16.900"]
    batch = [age(hip, 60, procedures=["81.5100", "81.5100"]), age(hip, 60, procedures=["81.5100", "81.5400"]),
             age(hip, 60, procedures=["81.5100"]), age(hip, 60, procedures=["81.5100", "81.5400", "17.4100"])]
    assert drgs(s30, batch) == ["IC29", "IC29", "IC39", "IC29"]


def test_30_crrt_with_long_ventilation(s30):
    batch = [Case(["J96.000"], ["96.7201", "39.9500x007"]), Case(["J96.000"], ["96.7201"]),
             Case(["J96.000"], ["96.7201", "33.2400", "39.9500x007"])]
    assert drgs(s30, batch) == ["AH29", "AH39", "AH29"]


def test_30_neuraxial_analgesia_at_delivery(s30):
    o = ["O80.000", "Z37.000x001"]
    batch = [age(o, 30, procedures=["72.0x00", "03.9000x001"]), age(o, 30, procedures=["72.0x00"]),
             age(o, 30, procedures=["73.6x01", "03.9000x001"]), age(o, 30, procedures=["73.6x01"]),
             age(o, 30, procedures=["03.9000x001"]), age(o, 30)]
    assert drgs(s30, batch) == ["OC19", "OC29", "OC39", "OC49", "OL19", "OR19"]


def test_30_high_risk_pregnancy_counts_as_mcc_in_ob1_ob2_only(s30):
    hr, plain = "O14.900", "O82.000"
    batch = [age([hr], 30, procedures=["74.1x01"]), age([hr], 30, procedures=["74.1x01", "65.2901"]),
             age([plain], 30, procedures=["74.1x01"]), age([plain], 30, procedures=["74.1x01", "65.2901"]),
             age([plain, "I50.900"], 30, procedures=["74.1x01"]), age([plain, "D62.x00"], 30, procedures=["74.1x01"]),
             age([hr], 30, procedures=["72.0x00"]), age([hr], 30), age([plain, hr], 30, procedures=["74.1x01"])]
    out = group_both(s30, batch)
    assert [(g["drg"], g["cc_level"]) for g in out] == [
        ("OB21", 2), ("OB11", 2), ("OB25", 0), ("OB15", 0), ("OB21", 2), ("OB25", 1), ("OC29", 0), ("OZ19", 0),
        ("OB25", 0)]


def test_30_published_examples(s30):
    """SOURCE.txt's last lines (the source repository's README), codes normalised as `dipsim` reads them."""
    from dipsim.codes import normalise_codes

    def dx(*codes):
        return normalise_codes(pa.array(list(codes)), "icd10").to_pylist()

    batch = [Case(dx("K80.101", "I50.900"), ["51.2300"], sex=1, age_years=45),
             Case(dx("P07.200"), [], sex=1, age_years=0, age_days=2, birth_weight_g=1200),
             Case(dx("E10.300x051 + H42.0*"), [], sex=1, age_years=75)]
    assert batch[2].diagnoses == ["E10.300x051+H42.0*"]
    assert drgs(s30, batch) == ["HC43", "PS29", "CV1H"]
    _, text = explain_case(_row(batch[2]), s30)
    assert "age 75 years: 大于等于70岁 (age >= 70)" in text


def test_30_random_cases_agree(s30):
    """Random cases from 3.0's own lists (tests/test_drg_kernel.py's generator) with ages around 6 / 70 and robot
    procedures added: the kernel agrees with the reference."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from test_drg_kernel import Pools, cases

    scheme = load_scheme(S30, qy=True)  # QY on: the generator draws QY procedures too
    p = Pools(scheme)
    p.orphans = p.orphans or ["X99.999x999"]  # 3.0: every MDC principal has an ADRG; the generator needs one

    targets = [a for a in scheme.adrgs.values() if a.bands]
    rare = [a for a in scheme.adrgs.values() if a.min_counts or a.code in scheme.principal_mcc_adrgs]
    targets += rare * max(1, len(targets) // (2 * max(len(rare), 1)))  # about a third of the targeted cases
    high_risk = sorted(scheme.principal_mcc)
    severity = sorted(scheme.mcc)[::50] + sorted(scheme.cc)[::200]

    @st.composite
    def targeted(draw):
        """A case aimed at an ADRG with a new rule kind: codes from each of its lists (the principal from a
        principal list), an age around the bands, a robot code, a repeated procedure, a high-risk principal."""
        adrg = targets[draw(st.integers(0, len(targets) - 1))]
        dx, px = [], []
        for name, codes in sorted(adrg.lists.items()):
            pool = sorted(codes)
            code = pool[draw(st.integers(0, len(pool) - 1))]
            reads = list_reads(name)
            if reads in ("dx", "any_dx"):
                dx.insert(0, code)
            elif reads == "other_dx":
                dx.append(code)
            elif reads == "px":
                px.insert(0, code)
            else:
                px.append(code)
        if adrg.code in scheme.principal_mcc_adrgs and draw(st.integers(0, 1)) == 0:
            dx.insert(0, high_risk[draw(st.integers(0, len(high_risk) - 1))])
        elif not dx or draw(st.integers(0, 4)) == 0:
            principals = p.principal_of.get(adrg.mdc) or p.principal_by_mdc[0]
            dx.insert(0, principals[draw(st.integers(0, len(principals) - 1))])
        dx += [severity[draw(st.integers(0, len(severity) - 1))] for _ in range(draw(st.integers(0, 2)))]
        if px and draw(st.integers(0, 2)) == 0:
            px.append(px[0])
        if draw(st.integers(0, 2)) == 0:
            px.append(ROBOT[draw(st.integers(0, 4))])
        years = draw(st.sampled_from([None, None, 0, 5, 6, 7, 30, 69, 70, 71]))
        days = draw(st.sampled_from([None, 200, 2_500, 25_549, 25_550]))
        return Case(dx, px, sex=draw(st.integers(0, 2)), age_years=years, age_days=days, los_days=5)

    @st.composite
    def with_new_kinds(draw):
        if draw(st.integers(0, 1)) == 0:
            return draw(targeted())
        case = draw(cases(p))
        case.age_years = draw(st.sampled_from([None, 0, 5, 6, 7, 69, 70, 71, case.age_years]))
        if draw(st.integers(0, 3)) == 0:
            case.procedures = [*case.procedures, draw(st.sampled_from(ROBOT))]
        return case

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(with_new_kinds(), min_size=5, max_size=40))
    def check(batch):
        group_both(scheme, batch)

    check()


def test_30_real_cases_group_as_the_reference_does(s30, shared_reference):
    """The real 1.1 cases grouped under 3.0: no internal error, and the kernel gives the reference's DRG, CC level
    and reason for every one (the age rule and the principal MCC included)."""
    from dipsim.io import load_cases

    path = shared_reference / "cases" / "grouped_cases_chs_drg_1.1.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    table = load_cases(path).accepted
    out = group_table(table, s30).to_pydict()
    rows = table.select(["diagnoses", "procedures", "sex", "age_years", "age_days", "birth_weight_g",
                         "ventilation_hours", "los_days"]).to_pylist()
    want = [group_case(Case(r["diagnoses"], r["procedures"], r["sex"] or 0, r["age_years"], r["age_days"],
                            r["birth_weight_g"], r["ventilation_hours"], r["los_days"]), s30) for r in rows]
    assert out["drg"] == [w.drg for w in want]
    assert out["cc_level"] == [w.cc_level for w in want]
    assert out["reason"] == [w.reason for w in want]
