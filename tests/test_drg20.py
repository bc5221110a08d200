"""CHS-DRG 2.0: one hand-made case per rule kind the 2.0 tables use (grouper_tables/README.md), grouped by the
reference grouper and by the kernel; and the version chosen by discharge date, and the transition between versions.

Codes come from the 2.0 rule data (grouper_tables/chs-drg-2.0/adrg_codes.csv), named where they are used.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from dipsim.grouping.drg import group_table
from dipsim.grouping.reference import Case, group_case
from dipsim.grouping.tables import load_scheme

SCHEME = "chs-drg-2.0"


@pytest.fixture(scope="module")
def scheme():
    return load_scheme(SCHEME)


def both(case: Case, scheme) -> tuple[str, str]:
    """(ADRG, DRG) from the reference grouper, checked equal to the kernel's."""
    ref = group_case(case, scheme)
    table = pa.table({"case_id": ["c"], "diagnoses": [case.diagnoses], "procedures": [case.procedures],
                      "sex": pa.array([case.sex], pa.int8()), "age_years": pa.array([case.age_years], pa.int16()),
                      "age_days": pa.array([case.age_days], pa.int32()),
                      "birth_weight_g": pa.array([case.birth_weight_g], pa.int32()),
                      "ventilation_hours": pa.array([case.ventilation_hours], pa.float64()),
                      "los_days": pa.array([case.los_days], pa.int32())})
    kernel = group_table(table, SCHEME).to_pylist()[0]
    assert (kernel["adrg"], kernel["drg"]) == (ref.adrg, ref.drg), ref.trace
    return ref.adrg, ref.drg


ADULT = dict(sex=1, age_years=50, los_days=6)


# AH2 有创呼吸机支持≥96小时: (其他诊断 Z93.000 气管造口状态 或 手术或操作 1 气管切开) + 手术或操作 2 96.7201
@pytest.mark.parametrize("diagnoses, procedures, in_ah2", [
    (["J18.900"], ["31.1x00x005", "96.7201"], True),  # tracheotomy and ventilation >= 96 h
    (["J18.900", "Z93.000"], ["96.7201"], True),  # tracheostomy status and ventilation
    (["J18.900"], ["96.7201"], False),  # ventilation alone: not AH2 in 2.0
])
def test_ventilation_needs_the_formula(scheme, diagnoses, procedures, in_ah2):
    assert (both(Case(diagnoses, procedures, **ADULT), scheme)[0] == "AH2") == in_ah2


@pytest.mark.parametrize("hours, procedures, in_ah2", [
    (96.0, ["31.1x00x005"], True),  # tracheotomy, hours recorded but no 96.7201 code: the hours stand for it
    (95.0, ["31.1x00x005"], False),
    (200.0, [], False),  # hours without a tracheostomy: AH2's formula does not hold
])
def test_ventilation_hours_stand_for_the_procedure(scheme, hours, procedures, in_ah2):
    case = Case(["J18.900"], procedures, ventilation_hours=hours, **ADULT)
    assert (both(case, scheme)[0] == "AH2") == in_ah2


# JA2 乳房恶性肿瘤根治性切除术: 主要诊断 + 主要手术或操作 1, or 主要诊断 + 手术或操作 2 + 手术或操作 3
@pytest.mark.parametrize("procedures, adrg", [
    (["85.4301"], "JA2"),  # a principal procedure of 主要手术或操作 1
    (["85.2100x003", "40.2100"], "JA2"),  # 手术或操作 2 and 3, either one principal
    (["40.2100", "85.2100x003"], "JA2"),
    (["85.2100x003"], None),  # 手术或操作 2 without 3: not JA2 (a local excision of the breast)
])
def test_principal_procedure_lists_and_any_position_tables(scheme, procedures, adrg):
    got = both(Case(["C50.900"], procedures, sex=2, age_years=50, los_days=6), scheme)[0]
    assert got == adrg if adrg else got not in ("JA1", "JA2")


def test_principal_procedure_list_needs_the_principal_position(scheme):
    """主要手术或操作 1 of JA2 (85.4301) as a secondary procedure does not make the case JA2 (nor does 手术或操作 2
    without 手术或操作 3, whose lists do not hold 85.4301)."""
    assert "85.4301" not in scheme.adrgs["JA2"].lists["table_3"]
    assert both(Case(["C50.900"], ["85.2100x003", "85.4301"], sex=2, age_years=50), scheme)[0] != "JA2"
    assert both(Case(["C50.900"], ["85.4301", "85.2100x003"], sex=2, age_years=50), scheme)[0] == "JA2"


# OF1 中期引产手术操作: 主要诊断 1 + 主要手术或操作, or 主要诊断 2 (O02.100) + 其他诊断 + 主要手术或操作
def test_numbered_principal_diagnosis_lists(scheme):
    px = sorted(scheme.adrgs["OF1"].lists["px"])[0]
    other = sorted(scheme.adrgs["OF1"].lists["other_dx"])[0]
    assert both(Case(["O01.001"], [px], sex=2, age_years=28), scheme)[0] == "OF1"  # 主要诊断 1
    assert both(Case(["O02.100", other], [px], sex=2, age_years=28), scheme)[0] == "OF1"  # 主要诊断 2 + 其他诊断
    assert both(Case(["O02.100"], [px], sex=2, age_years=28), scheme)[0] != "OF1"  # 主要诊断 2 alone


# WB1 烧伤面积≥50%: 主要诊断 + 其他诊断 1 + 主要手术或操作, or 其他诊断 2 (三度≥20%) + 主要手术或操作
def test_numbered_other_diagnosis_lists(scheme):
    px = sorted(scheme.adrgs["WB1"].lists["px"])[0]
    assert both(Case(["T20.300", "T31.500"], [px], **ADULT), scheme)[0] == "WB1"  # 其他诊断 1 (50-59%)
    assert both(Case(["T20.300", "T31.100"], [px], **ADULT), scheme)[0] != "WB1"  # 10-19%: not


# IB1 复杂脊柱疾病或3节段及以上脊柱融合手术或翻修手术: 主要诊断 + 主要手术或操作 1, or 主要手术或操作 2, or
# 手术或操作 3 + 手术或操作 4
@pytest.mark.parametrize("diagnoses, procedures, in_ib1", [
    (["A18.000x047+M49.0*"], ["03.0900x025"], True),  # spinal tuberculosis + 主要手术或操作 1
    (["M48.001"], ["03.0900x007"], True),  # 主要手术或操作 2 alone
    (["M50.100"], ["81.0200x001", "81.6300"], True),  # 手术或操作 3 + 4 (M50.100: not in IB1's 主要诊断)
    (["M50.100"], ["81.0200x001"], False),  # 手术或操作 3 without 4
    (["M48.001"], ["81.0200x001"], True),  # ... but with a 主要诊断 of IB1 it is 主要手术或操作 1
])
def test_three_way_formula(scheme, diagnoses, procedures, in_ib1):
    assert (both(Case(diagnoses, procedures, **ADULT), scheme)[0] == "IB1") == in_ib1


def test_a_formula_of_three_conjunctions_with_tables(scheme):
    """JA1 乳房恶性肿瘤根治性切除伴乳房重建术: 主要诊断 + 手术或操作 1 + 手术或操作 2 (one of the three ways)."""
    woman = dict(sex=2, age_years=50, los_days=8)
    assert both(Case(["C50.900"], ["85.4301", "85.5300x001"], **woman), scheme)[0] == "JA1"
    assert both(Case(["C50.900"], ["85.4301"], **woman), scheme)[0] == "JA2"  # no reconstruction: JA2


def test_required_procedure_groups_need_one_of_each(scheme):
    """FB1 瓣膜手术伴冠脉手术 (requiredProcedureGroups): a valve and a coronary procedure."""
    valve, coronary = sorted(scheme.adrgs["FB1"].lists["table_1"])[0], sorted(scheme.adrgs["FB1"].lists["table_2"])[0]
    assert both(Case(["I35.000"], [valve, coronary], **ADULT), scheme)[0] == "FB1"
    assert both(Case(["I35.000"], [valve], **ADULT), scheme)[0] != "FB1"


def test_burns_other_diagnosis_branch_and_referenced_other_operations(scheme):
    """WB3: (主要诊断 或 其他诊断) + 主要手术或操作; WJ1 烧伤相关其他手术 (after WB1-WB3): any other OR procedure."""
    px = sorted(scheme.adrgs["WB3"].lists["px"])[0]
    assert both(Case(["T20.000x010"], [px], **ADULT), scheme)[0] == "WB3"
    assert "54.1100" not in scheme.adrgs["WB3"].lists["px"] and "54.1100" in scheme.or_procedures
    assert both(Case(["T20.000x010"], ["54.1100"], **ADULT), scheme)[0] == "WJ1"


def test_referenced_adrgs_need_both_procedure_sets(scheme):
    """CB2 玻璃体、视网膜、脉络膜联合晶状体手术 = a CB4 and a CB5 procedure (requiredReferencedADRGs)."""
    cb4 = sorted(scheme.adrgs["CB4"].lists["px"])[0]
    cb5 = sorted(scheme.adrgs["CB5"].lists["px"])[0]
    assert both(Case(["H33.000"], [cb4, cb5], **ADULT), scheme)[0] == "CB2"
    assert both(Case(["H33.000"], [cb4], **ADULT), scheme)[0] == "CB4"


def test_any_procedure_and_no_procedure_flags(scheme):
    """SB1 全身性感染疾病的手术 (anyProcedureRequired: an OR procedure) and ZZ1 多发性重要创伤无手术."""
    assert both(Case(["A41.900"], ["54.1100"], **ADULT), scheme)[0] == "SB1"
    assert both(Case(["A41.900"], [], **ADULT), scheme)[0] != "SB1"
    trauma = ["S06.500", "S27.000"]  # head and chest: two MDCZ sites
    assert both(Case(trauma, [], **ADULT), scheme)[:1] == ("ZZ1",)


def test_mdcy_identifying_codes_and_mdcz_sites(scheme):
    assert sum("Y" in m for m in scheme.principal_mdcs.values()) == 48  # MDCY's 48 identifying diagnoses
    assert len(set(scheme.mdcz_sites.values())) == 9
    assert both(Case(["B20.001"], [], **ADULT), scheme)[0].startswith("Y")
    assert not both(Case(["S06.500"], [], **ADULT), scheme)[0].startswith("Z")  # one site: not MDCZ


def test_newborn_weight_thresholds_from_the_names(scheme):
    bounds = scheme.rules["mdcp"]["adrg"]
    assert (bounds["PS1"]["weight_g_max"], bounds["PS2"]["weight_g_min"], bounds["PS4"]["weight_g_min"]) == (
        1499, 1500, 2500)
    newborn = dict(sex=1, age_years=0, age_days=2, los_days=10)
    assert both(Case(["P07.200"], [], birth_weight_g=1499, **newborn), scheme)[0] == "PS1"
    assert both(Case(["P07.200"], [], birth_weight_g=1500, **newborn), scheme)[0] == "PS2"
    assert scheme.rules["ventilation"]["hours_min"] == 96  # AH2's name: ≥96小时


@pytest.mark.parametrize("principal, barred", [("B95.000", True), ("X99.999", False)])
def test_a_principal_diagnosis_not_valid_for_grouping_is_ungroupable(scheme, principal, barred):
    """zd_invalid.json (grouper_tables/chs-drg-2.0/invalid_principal.csv): in no MDC table, so no group; the
    reason names the list, for the reference and the kernel alike. A code in no table at all just has no MDC."""
    assert (principal in scheme.invalid_principal) is barred
    result = group_case(Case([principal], [], **ADULT), scheme)
    kernel = group_table(pa.table({"case_id": ["c"], "diagnoses": [[principal]]}), SCHEME).to_pylist()[0]
    assert result.drg == kernel["drg"] == "0000"
    assert kernel["reason"] == result.reason
    assert ("invalid_principal.csv" in result.reason) is barred and result.reason.endswith("in no MDC")


def test_mcc_cancelled_by_its_exclusion_table(scheme):
    principal = "J18.900"
    mcc = sorted(c for c, t in scheme.mcc.items() if not t or principal not in scheme.exclusions.get(t, ()))[0]
    excluded = sorted(c for c, t in scheme.mcc.items() if t and principal in scheme.exclusions.get(t, ()))[0]
    assert both(Case([principal, mcc], [], **ADULT), scheme)[1].endswith("1")
    assert not both(Case([principal, excluded], [], **ADULT), scheme)[1].endswith("1")


def test_the_version_in_force_on_the_discharge_date(tmp_path):
    from dipsim.grouping.versions import group_by_date, load_scheme_dates, scheme_of_each

    dates = load_scheme_dates()
    assert dates == [(dt.date(2021, 1, 1), "chs-drg-1.1"), (dt.date(2025, 1, 1), "chs-drg-2.0"),
                     (dt.date(2027, 1, 1), "chs-drg-3.0")]
    days = pa.array([dt.date(2024, 12, 31), dt.date(2025, 1, 1), None, dt.date(2019, 5, 1), dt.date(2026, 12, 31),
                     dt.date(2027, 1, 1)], pa.date32())
    assert scheme_of_each(days, dates).tolist() == ["chs-drg-1.1", "chs-drg-2.0", None, "chs-drg-1.1",
                                                    "chs-drg-2.0", "chs-drg-3.0"]
    city = tmp_path / "dates.toml"
    city.write_text('[[version]]\nscheme = "chs-drg-1.1"\nfrom = "2021-01-01"\n[[version]]\nscheme = "chs-drg-2.0"\n'
                    'from = "2025-07-01"\n', encoding="utf-8")
    assert scheme_of_each(days, load_scheme_dates(city)).tolist()[:2] == ["chs-drg-1.1", "chs-drg-1.1"]
    cases = pa.table({"case_id": ["a", "b"], "diagnoses": [["J18.900"], ["J18.900"]], "procedures": [[], []],
                      "discharge_date": pa.array([dt.date(2025, 3, 1), dt.date(2024, 3, 1)], pa.date32())})
    grouped = group_by_date(cases, dates)
    assert grouped["case_id"].to_pylist() == ["a", "b"] and grouped["scheme"].to_pylist() == ["chs-drg-2.0",
                                                                                               "chs-drg-1.1"]


def test_compare_schemes_writes_the_transition(tmp_path, capsys):
    import pandas as pd

    from dipsim.cli import main

    source = tmp_path / "cases.csv"
    source.write_text("病案号,性别,年龄,住院天数,诊断编码,手术操作编码\nA,1,50,5,J18.900,\nB,1,50,5,J18.900,\n"
                      "C,2,50,5,C50.900,85.4301\n", encoding="utf-8")
    out = tmp_path / "moves.csv"
    assert main(["group", str(source), "--compare-schemes", "chs-drg-1.1,chs-drg-2.0", "-o", str(out), "-q"]) == 0
    moves = pd.read_csv(tmp_path / "moves.transition.csv", encoding="utf-8-sig")
    assert moves["cases"].sum() == 3 and set(moves.columns) == {"from_drg", "to_drg", "cases", "share_of_from"}
    per_case = pd.read_csv(out, encoding="utf-8-sig")
    assert len(per_case) == 3 and "3 =" in capsys.readouterr().out
