"""`dipsim explain` on a claim that carries the insurer's group (医保实际分组结果): why not that group.

The codes and lists, read from grouper_tables/chs-drg-1.1 (built from the rule text): J18.900 肺炎 is in MDCE only
(ES3 = ES31 / ES33 / ES35 by MCC / CC / none); J96.000 is an MCC with exclusion table 109, which holds J98.414
(also an ES3 principal); K92.210 is a CC (table 119); I60.000 is in BR1 (颅内出血性疾患), split only into BR11 / BR15;
C50.900 with principal procedure 85.2200 (JA2's 手术表 2, not 手术表 1 or 3) is JB2; C90.000 with 03.9202 is in both
RA1 and RA3 (RA1 comes first); Z51.800x092 (MDCR) with 99.2505 is in no px list of MDCR (RD1 needs an interventional
procedure); A06.800x004+N51.2* is in MDCM only (men); S06.000 is one trauma site (头颈部); P07.200 goes to PS1 below
1500 g and PS4 from 2500 g; 81.5100 全髋关节置换 is an operation (手术) on no list of MDCG. In chs-drg-2.0 AH2
(有创呼吸机支持≥96小时) needs 96.7201 and a tracheostomy (手术或操作 1) or Z93.000 (其他诊断).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from dipsim.grouping.explain import case_from_row, explain_case, insurer_lines
from dipsim.grouping.reference import group_case
from dipsim.grouping.tables import load_scheme


def claim(diagnoses, procedures=(), insurer_drg=None, **fields) -> dict:
    """One accepted row (CASE_SCHEMA names) of a 60-year-old man, 5 days, as `find_case` returns it."""
    row = {"case_id": "C1", "diagnoses": list(diagnoses), "procedures": list(procedures), "sex": 1, "age_years": 60,
           "age_days": None, "birth_weight_g": None, "ventilation_hours": None, "los_days": 5,
           "insurer_drg": insurer_drg}
    return row | fields


def why_not(row: dict, scheme="chs-drg-1.1") -> str:
    """The explanation's `Why not` line (the test fails when there is none)."""
    _, text = explain_case(row, scheme)
    lines = [line for line in text.splitlines() if line.startswith("Why not ")]
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------- the insurer's group is in another MDC


def test_insurer_mdc_the_principal_diagnosis_is_not_in_its_table():
    _, text = explain_case(claim(["J18.900"], insurer_drg="GS11"))
    assert "insurer: GS11 胃肠出血，伴严重并发症或合并症; dipsim: ES35." in text
    line = why_not(claim(["J18.900"], insurer_drg="GS11"))
    assert "the principal diagnosis J18.900 is not in MDCG's table (it is in MDCE)" in line
    assert "GS1's own rule `dx` fails: principal diagnosis J18.900 not in dx" in line


def test_insurer_mdc_a_pre_mdc_rule_took_the_case_first():
    line = why_not(claim(["J18.900"], ventilation_hours=100.0, insurer_drg="ES35"))
    assert line.startswith("Why not ES35: the pre-MDC rule MDCA takes the case first")
    assert "invasive ventilation 100 h >= 96 h" in line


def test_insurer_mdc_a_pre_mdc_rule_that_does_not_hold():
    ventilation = why_not(claim(["J18.900"], ventilation_hours=50.0, insurer_drg="AH11"))
    assert "AH1's rule `px` fails: no procedure in px" in ventilation
    assert "ventilation 50 h (at least 96 h enter it)" in ventilation
    trauma = why_not(claim(["S06.000"], insurer_drg="ZZ15"))
    assert "trauma in 1 body site(s) (头颈部创伤): MDCZ needs at least 2" in trauma


def test_insurer_mdc_barred_by_sex():
    line = why_not(claim(["A06.800x004+N51.2*"], sex=2, insurer_drg="MS13"))
    assert "MDCM is for men only" in line and "sex is 2 (女)" in line


def test_insurer_group_of_a_case_without_principal_diagnosis():
    assert why_not(claim([], insurer_drg="ES35")) == "Why not ES35: the case has no principal diagnosis"


# ---------------------------------------------------------------- same MDC, another ADRG


def test_insurer_adrg_tried_first_names_the_list_the_case_missed():
    """JA2 (乳房恶性肿瘤根治性切除术) needs 手术表 1, or 手术表 2 and 3: the case has only a 手术表 2 operation."""
    line = why_not(claim(["C50.900"], ["85.2200"], insurer_drg="JA29"))
    assert "JA2 (rule `(px & ((dx & table_1) | (dx & table_2 & table_3)))`) does not take the case" in line
    assert "no procedure in table_1 (手术表 1); no procedure in table_3 (手术表 3)" in line
    assert "table_2" not in line.split("does not take the case")[1]  # met, so not a reason
    assert "(dipsim tried JA1, JA2, JB1; JB2 is the first whose rule holds)" in line


def test_insurer_adrg_after_ours_says_ours_comes_first():
    line = why_not(claim(["C90.000"], ["03.9202"], insurer_drg="RA39"))
    assert "ADRG RA1 comes before RA3 in MDCR's order and takes the case" in line
    assert "RA3 (rule `(dx & px)`) would take it too" in line


def test_insurer_adrg_where_no_adrg_of_the_mdc_takes_the_case():
    line = why_not(claim(["Z51.800x092"], ["99.2505"], insurer_drg="RD13"))
    assert "RD1 (rule `px`) does not take the case: principal procedure 99.2505 not in px (主要手术或操作)" in line
    assert "no ADRG of MDCR takes the case" in line


def test_insurer_adrg_when_the_operation_fits_no_adrg_xqy():
    """With xQY paid, an operation no surgical ADRG of MDCG takes is GQY before the medical GS1 is tried."""
    qy = load_scheme("chs-drg-1.1", qy=True)
    line = why_not(claim(["K92.210"], ["81.5100"], insurer_drg="GS15"), qy)
    assert "xQY is decided before the medical ADRGs" in line
    assert "principal operation 81.5100 fits no surgical or non-OR ADRG of MDCG: GQY" in line
    not_paid = why_not(claim(["K92.210"], ["81.5100"], insurer_drg="GQY"))
    assert "GQY is an xQY group (与主要诊断无关的手术), which chs-drg-1.1 does not pay" in not_paid


def test_insurer_newborn_adrg_by_birth_weight():
    row = claim(["P07.200"], age_years=0, age_days=3, birth_weight_g=2600, insurer_drg="PS15")
    assert "birth weight 2600 g outside PS1's <= 1499 g" in why_not(row)
    unweighed = claim(["P07.200"], age_years=0, age_days=3, insurer_drg="PS45")
    assert "birth weight not recorded (PS4 needs >= 2500 g)" in why_not(unweighed)


# ---------------------------------------------------------------- same ADRG, another suffix


def test_insurer_suffix_the_code_that_gave_the_mcc():
    line = why_not(claim(["J18.900", "J96.000"], insurer_drg="ES35"))
    assert "ES35 takes a case without MCC or CC; the case's CC level is MCC: J96.000 is MCC" in line


def test_insurer_suffix_an_mcc_cancelled_by_its_exclusion_table():
    line = why_not(claim(["J98.414", "J96.000"], insurer_drg="ES31"))
    assert "ES31 takes a case with an MCC; the case's CC level is none" in line
    assert "J96.000 would be MCC but the principal J98.414 is in its exclusion table 109" in line


def test_insurer_suffix_decided_by_the_x1_x5_option():
    """BR1 has no DRG named for a CC: the DRG is named 伴严重并发症或合并症 while the CC level is CC."""
    row = claim(["I60.000", "K92.210"], insurer_drg="BR15")
    _, text = explain_case(row)
    assert "result: DRG BR11 颅内出血性疾患，伴严重并发症或合并症 (ADRG BR1, MDCB, CC level CC)" in text
    assert "the option [options] cc_only_in_x1_x5_split = 'x1' pays it as BR11" in text  # a step of its own
    line = why_not(row)
    assert "the case has a CC and no MCC (K92.210 is CC" in line
    assert "split only into BR11 (伴严重并发症或合并症) and BR15" in line
    assert "cc_only_in_x1_x5_split = 'x1' pays a CC as BR11, the x1 group" in line


def test_insurer_suffix_x1_x5_option_set_to_x5():
    base = load_scheme("chs-drg-1.1")
    x5 = dataclasses.replace(base, rules=base.rules | {"options": {"cc_only_in_x1_x5_split": "x5"}})
    line = why_not(claim(["I60.000", "K92.210"], insurer_drg="BR11"), x5)
    assert line.startswith("Why not BR11: the case has a CC and no MCC")
    assert "cc_only_in_x1_x5_split = 'x5' pays a CC as BR15, the x5 group" in line


# ---------------------------------------------------------------- codes this scheme does not have, same DRG


def test_insurer_code_that_is_not_a_drg_of_the_scheme():
    line = why_not(claim(["J18.900"], insurer_drg="ES39"))
    assert "ES39 is not a DRG of chs-drg-1.1 (a code of another version or a local one" in line
    assert "ADRG ES3 here has ES31, ES33, ES35" in line
    local = why_not(claim(["J18.900"], insurer_drg="LOCAL7"))
    assert "LOCAL7 is not a DRG of chs-drg-1.1" in local


def test_insurer_same_drg_is_one_line():
    _, text = explain_case(claim(["J18.900"], insurer_drg="ES35"))
    assert text.splitlines()[-1] == "insurer: same DRG (ES35)"
    assert "Why not" not in text
    _, without = explain_case(claim(["J18.900"]))
    assert "insurer" not in without


# ---------------------------------------------------------------- chs-drg-2.0


def test_insurer_group_under_2_0():
    """2.0's AH2 needs a tracheostomy or Z93.000 beside the 96 hours; AH11 is a 1.1 code."""
    line = why_not(claim(["J18.900"], ventilation_hours=100.0, insurer_drg="AH29"), "chs-drg-2.0")
    assert "AH2's rule `((other_dx | table_1) & table_2)` fails" in line
    assert "no secondary diagnosis in other_dx (其他诊断); no procedure in table_1" in line
    old_code = why_not(claim(["J18.900"], ventilation_hours=100.0, insurer_drg="AH11"), "chs-drg-2.0")
    assert "AH11 is not a DRG of chs-drg-2.0" in old_code


# ---------------------------------------------------------------- missing values and the command line


def test_missing_values_are_not_printed_as_none():
    _, adult = explain_case(claim(["J18.900"], los_days=None))
    assert "None" not in adult
    assert "age 60 y, LOS not recorded, ventilation not recorded" in adult
    assert "birth weight" not in adult  # the newborn fields only where MDCP may read them
    _, newborn = explain_case(claim(["P07.200"], age_years=0, age_days=3))
    assert "age 0 y / 3 d, birth weight not recorded" in newborn and "None" not in newborn
    _, unknown = explain_case(claim(["P07.200"], age_years=0))
    assert "age 0 y / days not recorded, birth weight not recorded" in unknown


def test_explain_command_with_the_insurer_column(tmp_path):
    """A claims export with 医保实际分组结果 (typed in lower case with a space by the insurer's system)."""
    source = tmp_path / "claims.csv"
    source.write_text("病案号,性别,年龄,住院天数,诊断编码,手术操作编码,医保实际分组结果\n"
                      "A1,1,60,5,\"I60.000,K92.210\",,br15 \n"
                      "A2,1,60,5,J18.900,,ES35\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "dipsim.cli", "explain", str(source), "--case-id", "A1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "insurer: BR15 颅内出血性疾患，不伴并发症或合并症; dipsim: BR11." in done.stdout
    assert "Why not BR15: " in done.stdout and "cc_only_in_x1_x5_split" in done.stdout
    same = subprocess.run([sys.executable, "-m", "dipsim.cli", "explain", str(source), "--case-id", "A2"],
                          capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.rstrip().endswith("insurer: same DRG (ES35)")


def test_every_real_disagreement_gets_a_why_not_line(shared_reference):
    """benchmarks/drg_agreement.md: 19 of the 6,738 insurer-grouped 1.1 cases disagree; each gets a reason."""
    from dipsim.io import load_cases

    scheme = load_scheme("chs-drg-1.1")
    rows = load_cases(shared_reference / "cases" / "grouped_cases_chs_drg_1.1.csv").accepted.to_pylist()
    explained = {}
    for row in rows:
        grouping = group_case(case_from_row(row), scheme)
        if grouping.drg != row["insurer_drg"]:
            explained[row["case_id"]] = insurer_lines(row, grouping, scheme)
    assert len(explained) == 19
    for case_id, lines in explained.items():
        assert len(lines) == 2 and lines[1].startswith("Why not "), (case_id, lines)
        reason = lines[1].split(": ", 1)[1]
        assert len(reason) > 20 and "?" not in reason, (case_id, reason)
    assert "RD1 (rule `px`) does not take the case" in explained["G02997"][1]
    assert "SB1 (rule `all_or`) does not take the case" in explained["G07062"][1]
    assert "the principal diagnosis R57.900 is not in MDCG's table" in explained["G05063"][1]



def test_insurer_length_of_stay_band_under_beijing():
    """Beijing splits RC1 (放射治疗, principal procedure 92.2200) by stay only: RC16 2-5 days, RC14 6-12 days."""
    line = why_not(claim(["C90.000"], ["92.2200"], los_days=3, insurer_drg="RC14"), "chs-drg-1.1-beijing")
    assert line == "Why not RC14: RC14 is for stay 6-12 days (6-12天); the case: age 60 years, stay 3 days"
    missing = why_not(claim(["C90.000"], ["92.2200"], los_days=None, insurer_drg="RC16"), "chs-drg-1.1-beijing")
    assert missing.endswith("the case: age 60 years, stay not recorded")
