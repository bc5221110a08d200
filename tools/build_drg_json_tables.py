"""Build grouper_tables/chs-drg-2.0/ or chs-drg-3.0/ from the CHS-DRG rule data (NHSA: 2.0 July 2024, 3.0
医保发〔2026〕22号) as encoded in JSON by the CHS-DRG-Grouper project (../shared/reference/<scheme>; its SOURCE.txt
says what each file is).

Usage: python tools/build_drg_json_tables.py [--scheme chs-drg-2.0|chs-drg-3.0] [--source DIR] [--out DIR]
  --scheme  default chs-drg-2.0; each scheme's counts, effective date, source files, licence and expected DRG
            conditions are in SCHEMES below
  --source  default <repo>/../shared/reference/<scheme>, else /work/shared/reference/<scheme> when the first is absent
            (a git worktree under /work/wt has its ../shared elsewhere)
  --out     default <repo>/grouper_tables/<scheme>

Writes the same table format as the 1.1 build (grouper_tables/README.md), with the list names 2.0 needs:
`dx_N` (主要诊断 N), `main_px_N` (主要手术或操作 N), `other_dx_N` (其他诊断 N) beside `dx`, `px`, `other_dx`,
`any_dx` (诊断) and `table_N` (手术或操作 N: any procedure). The rule formulas come from the source's compiled
reverse-Polish form (`_logicRPN`), checked against its text; the structured rules are translated as documented in
RULE_KINDS. 3.0 adds (README "3.0 extensions"): the unnumbered 手术或操作 as `any_px`, `sectionAliases` as copied
lists, `[list_min_count.*]`, DRG bands by age / robot-assisted surgery with the CC levels they take
(`[drg_conditions.*]`), and high-risk pregnancy as an MCC in OB1/OB2 (`[principal_mcc]`, principal_mcc.csv); every
DRG's severity and band is cross-checked against drg_rules.json. Deterministic: the same sources give
byte-identical files (only built_on / source_dir in the manifest change). Every problem is listed and the script
exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from dipsim.codes import load_icd9, load_icd10  # noqa: E402
from dipsim.grouping.tables import list_reads  # noqa: E402
from dipsim.io.writers import sha256_file  # noqa: E402

from _common import BuildError, run, source_dir_label, write  # noqa: E402
from build_drg_tables import (  # noqa: E402
    BUILTINS,
    DX_LISTS,
    MDCZ_SITES,
    AdrgRule,
    anchor_lists,
    drg_condition,
    drg_severities,
    kind_of,
    logic_names,
    newborn_bounds,
    nfkc,
    normalise,
    orphan_principals,
    parse_logic,
    render_logic,
    shape_ok,
    special_rules_text,
    write_tables,
)

BUILT_BY = "tools/build_drg_json_tables.py"
# The source's DRG split conditions (drg_rules.json) that name a severity, and the severities (drg.csv, read from
# the DRG name) each allows.
SEVERITY_CONDITIONS = {"WITH_MCC": {"mcc"}, "WITH_CC": {"cc", "cc_or_mcc"}, "NO_CC": {"none", "no_mcc"},
                       "ADRG_ONLY": {"all"}}
# drg.csv severity -> the CC levels a DRG band takes (README: [drg_conditions] cc_levels); `all` has no key.
CC_LEVELS = {"mcc": ["mcc"], "cc": ["cc"], "cc_or_mcc": ["cc", "mcc"], "none": ["none"], "no_mcc": ["none", "cc"]}


@dataclass(frozen=True)
class SchemeConfig:
    """What differs between the JSON-encoded schemes."""

    effective_date: str
    counts: tuple[int, int, int]  # MDC, ADRG, DRG
    common: Path  # drg-common/<id>: MDC / ADRG rules, MCC / CC lists
    version: Path  # versions/<scheme>: DRG list and split rules
    licence: str
    # drg_rules.json conditions that put a DRG in a band, and the band they mean ([drg_conditions] keys;
    # "procedures" stands for the robot-assisted procedure list)
    band_conditions: dict[str, dict] = field(default_factory=dict)
    # DRG suffix letter -> the severities it allows and whether its DRG has a band (checked, 3.0)
    suffixes: dict[str, tuple[set[str], str | None]] = field(default_factory=dict)
    robot_file: Path | None = None  # the robot-assisted procedures (ROBOT_ASSISTED_SURGERY.dat)
    pregnancy_file: Path | None = None  # the high-risk-pregnancy diagnoses (HIGH_RISK_PREGNANCY.dat)
    ventilation_comment: str = ""
    notes: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[Path, ...]:
        c, v = self.common, self.version
        return (c / "config.json", c / "raw/ADRG.dat", c / "generated/mdc_rules.json",
                c / "generated/adrg_rules.json", c / "generated/mcc_codes.json", c / "generated/cc_codes.json",
                c / "generated/cce_codes.json", c / "generated/ss_invalid.json", c / "generated/zd_invalid.json",
                v / "config.json", v / "raw/DRG.dat", v / "generated/drg_rules.json",
                *(f for f in (self.robot_file, self.pregnancy_file) if f is not None))


_V30 = Path("versions/chs-drg-3.0")
SCHEMES = {
    "chs-drg-2.0": SchemeConfig(
        effective_date="2025-01-01", counts=(26, 409, 634), common=Path("drg-common/chs-2.0"),
        version=Path("versions/chs-drg-2.0"),
        licence="NHSA CHS-DRG 2.0 (2024) rule data; encoded by CHS-DRG-Grouper (Apache-2.0 code; the data's rights "
                "stay with NHSA): see ../shared/reference/chs-drg-2.0/SOURCE.txt"),
    "chs-drg-3.0": SchemeConfig(
        # The notice's date: the source names no date from which 3.0 groups cases (scheme_dates.toml decides)
        effective_date="2026-09-02", counts=(26, 492, 825), common=Path("drg-common/chs-3.0"), version=_V30,
        licence="NHSA CHS-DRG 3.0 (医保发〔2026〕22号, 2026-09-02) rule data; encoded by CHS-DRG-Grouper (Apache-2.0 "
                "code; the data's rights stay with NHSA): see ../shared/reference/chs-drg-3.0/SOURCE.txt",
        band_conditions={"AGE_GE_70": {"age_years_min": 70}, "AGE_LE_6": {"age_years_max": 6},
                         "ROBOT_ASSISTED_SURGERY": {"procedures": None}},
        suffixes={"E": ({"mcc"}, "age_years_min"), "F": ({"cc", "cc_or_mcc"}, "age_years_min"),
                  "G": ({"none", "no_mcc"}, "age_years_min"), "H": ({"all"}, "age_years_min"),
                  "C": ({"none"}, "age_years_max"), "D": ({"all"}, "age_years_max"), "0": ({"all"}, "procedures"),
                  "1": ({"mcc"}, None), "3": ({"cc", "cc_or_mcc"}, None), "5": ({"none", "no_mcc"}, None),
                  "9": ({"all"}, None)},
        robot_file=_V30 / "raw/ROBOT_ASSISTED_SURGERY.dat", pregnancy_file=_V30 / "raw/HIGH_RISK_PREGNANCY.dat",
        ventilation_comment=(
            "3.0: AH2 有创呼吸机支持≥96小时,伴CRRT = main_px_1 (96.7201) & table_2 (39.9500x007 CRRT); AH3 (不伴CRRT)\n"
            "= px (96.7201). Both need 96.7201 as the PRINCIPAL procedure (主要手术或操作), and 96.7201 is in no\n"
            "other list of 3.0. Recorded hours >= hours_min stand for 96.7201 appended after the case's\n"
            "procedures: it is the principal procedure only when the case has no other procedure; otherwise the\n"
            "hours alone enter neither AH2 nor AH3 (as the source's formulas say), and the appended code changes\n"
            "nothing else."),
        notes=(
            "drg_conditions: the DRG bands of 3.0 (age 大于等于70岁 / 小于等于6岁, 机器人辅助手术) read from the DRG "
            "names and checked against drg_rules.json (AGE_GE_70 -> age_years_min = 70, AGE_LE_6 -> age_years_max = 6, "
            "ROBOT_ASSISTED_SURGERY -> procedures = ROBOT_ASSISTED_SURGERY.dat); cc_levels from the DRG's severity "
            "(drg.csv) where the band also has a severity (WITH_MCC / WITH_CC / NO_CC)",
            "principal_mcc.csv = HIGH_RISK_PREGNANCY.dat (= config.json strategy.highRiskPregnancyAsMcc "
            "diagnosisCodes), an MCC as principal diagnosis in [principal_mcc] adrgs (OB1, OB2; DRG footnotes 10-11)",
            "mdcp: 3.0's PS1-PS5 names give the weight on admission (入院体重; 1.1 / 2.0: 出生体重, birth weight), "
            "written as the same weight_g_min / weight_g_max bounds ([mdcp.adrg.PS1] ...)",
            "ventilation: AH2/AH3 need 96.7201 as the principal procedure (special_rules.toml [ventilation] comment)",
            "qy_diff_codes.json and all_procedure_codes.json are NOT used: their role is not documented in the data "
            "and could not be confirmed (all_procedure_codes.json is not the dictionary minus ss_invalid.json: "
            "the build prints the comparison); the QY rule is as in 2.0",
            "cc.csv: 14 CC codes (Z94.x transplant status) have exclusion table 0 in cc_codes.json, a table that "
            "does not exist (cce_codes.json numbers them from 1): written as no exclusion table (the text's 无; "
            "1.1 lists Z94.900 so)",
            "effective_date = the notice's date (2026-09-02); the source names no date from which 3.0 groups cases"),
    ),
}

# A rule section (its name in the source) -> list name; a trailing " N" gives the numbered form.
SECTION_LISTS = {"主要诊断": "dx", "主要手术或操作": "px", "其他诊断": "other_dx", "诊断": "any_dx",
                 "手术或操作": "table"}
NUMBERED = {"dx": "dx_{n}", "px": "main_px_{n}", "other_dx": "other_dx_{n}", "table": "table_{n}",
            "any_dx": "any_dx_{n}"}
# The structured rules of an ADRG, and how each is written in the table format (the manifest notes the ones used).
RULE_KINDS = {
    "requiredProcedureGroups": "one procedure from each group: `table_1 & table_2`, the principal procedure in one "
                               "of them (`px & (…)`, as every combined surgical rule)",
    "requiredReferencedADRGs": "procedures of each referenced ADRG (CB2: CB4 and CB5): their `px` lists copied as "
                               "`table_1 & table_2`, anchored on the principal procedure like the above",
    "referencedADRGs": "WJ1 烧伤相关其他手术 refers to WB1-WB3, which are tried first: `all_or` (any OR procedure)",
    "anyProcedureRequired": "an operating-room procedure (`all_or`: the principal procedure is in or_procedures.csv)",
    "zeroProceduresRequired": "ZZ1 多发性重要创伤无手术: `mdcz_no_surgery`",
    "手术或操作": "an unnumbered 手术或操作 section (3.0 IC2): `any_px`, any procedure (principal or other)",
    "sectionAliases": "主要手术或操作 N (主要诊断 N, 其他诊断 N) that may be met by the same list as 手术或操作 N "
                      "(诊断 N): a list `main_px_N` (`dx_N`, `other_dx_N`) with its codes; a 诊断 N section that the "
                      "formula names only through its aliases is not written itself",
    "sectionMinimumOccurrences": "IC2 多部位…关节置换术: at least 2 of the case's procedures (by position) in "
                                 "`any_px`: special_rules.toml [list_min_count.IC2]",
}
RULE_KEYS = {"logic", "sections", "_logicRPN", "_logicCompileError"}
JUNK_PRINCIPAL = {"ALK", "AILD"}  # two rows of MDCR in mdc_rules.json that are not codes (SOURCE.txt)


def section_list(name: str) -> str:
    """'主要手术或操作 1' -> 'main_px_1', '手术或操作 2' -> 'table_2', '主要诊断' -> 'dx', '手术或操作' -> 'any_px'."""
    m = re.fullmatch(r"(\S+?)\s*([0-9]+)?", name.strip())
    base = SECTION_LISTS.get(m.group(1)) if m else None
    if base is None:
        raise BuildError(f"unknown rule section {name!r}")
    if m.group(2):
        return NUMBERED[base].format(n=m.group(2))
    return "any_px" if base == "table" else base


def rpn_logic(rpn: list, sections) -> str:
    """The source's reverse-Polish formula as a logic expression of list names (`sections`: the names a token may
    take: the ADRG's sections and their aliases)."""
    stack: list[tuple] = []
    for token in rpn:
        if isinstance(token, dict):
            if token.get("type") != "SECTION" or token["name"] not in sections:
                raise BuildError(f"formula token {token!r} names no section")
            stack.append(section_list(token["name"]))
        elif token in ("&&", "||"):
            if len(stack) < 2:
                raise BuildError(f"formula {rpn!r}: operator without operands")
            right, left = stack.pop(), stack.pop()
            stack.append(("and" if token == "&&" else "or", [left, right]))
        else:
            raise BuildError(f"formula token {token!r}")
    if len(stack) != 1:
        raise BuildError(f"formula {rpn!r} leaves {len(stack)} terms")
    return render_logic(parse_logic(render_logic(stack[0])))


def read_dat(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            code, name = line.strip().split(maxsplit=1)  # `code name`, one record a line
            rows.append((code, name))
    return rows


def band_condition(robot: list[str]) -> Callable[[str], dict]:
    """3.0: the band a DRG name's last part states (癫痫,伴严重合并症或并发症,大于等于70岁): age_years_min /
    age_years_max (inclusive: 大于等于 / 小于等于) or the robot-assisted procedures, with `text` = that part."""
    def read(name: str) -> dict:
        parts = nfkc(name).split(",")
        last = parts[-1].strip() if len(parts) > 1 else ""
        if m := re.fullmatch(r"大于等于([0-9]+)岁", last):
            return {"age_years_min": int(m.group(1)), "text": last}
        if m := re.fullmatch(r"小于等于([0-9]+)岁", last):
            return {"age_years_max": int(m.group(1)), "text": last}
        if last == "机器人辅助手术":
            return {"procedures": list(robot), "text": last}
        return {}
    return read


def build(src: Path, out: Path, scheme: str = "chs-drg-2.0") -> list[str]:
    cfg = SCHEMES[scheme]
    problems: list[str] = []
    log: list[str] = [f"scheme {scheme} from {src}"]
    missing = [str(f) for f in cfg.sources if not (src / f).is_file()]
    if missing:
        raise BuildError(f"source files missing under {src}: {missing}")
    load = lambda rel: json.loads((src / rel).read_text(encoding="utf-8"))  # noqa: E731
    common, version = cfg.common, cfg.version

    def codes(raw, system: str, what: str) -> list[str]:
        norm = normalise(list(raw), system)
        good = shape_ok(norm, system)
        bad = [c for c, ok in zip(raw, good) if not ok]
        if bad:
            problems.append(f"{what}: {len(bad)} invalid {system} codes, e.g. {bad[:5]}")
        return [n for n, ok in zip(norm, good) if ok]

    # -- MDC: names, order, principal-diagnosis tables, MDCZ sites
    mdc_json = load(common / "generated/mdc_rules.json")
    mdc_rows = [(m["code"].removeprefix("MDC"), m["name"]) for m in mdc_json]
    principal_rows: set[tuple[str, str]] = set()
    site_rows: set[tuple[str, str]] = set()
    junk = set()
    for m in mdc_json:
        letter = m["code"].removeprefix("MDC")
        raw = list(m.get("identifyingDiagnoses", []))
        junk |= JUNK_PRINCIPAL & set(raw)
        principal_rows |= {(letter, c) for c in codes([c for c in raw if c not in JUNK_PRINCIPAL], "icd10",
                                                      f"MDC{letter} identifyingDiagnoses")}
        for site, site_codes in m.get("mdczCategories", {}).items():
            for c in codes(site_codes, "icd10", f"MDCZ {site}"):
                site_rows.add((site, c))
                principal_rows.add(("Z", c))
    log.append(f"dropped non-code principal rows {sorted(junk)} (SOURCE.txt: junk rows under MDCR)")
    sites = {s for s, _ in site_rows}
    if sites != set(MDCZ_SITES):
        problems.append(f"MDCZ sites {sorted(sites)} differ from {MDCZ_SITES}")
    y_codes = sum(1 for m, _ in principal_rows if m == "Y")
    log.append(f"MDCY identifying diagnoses: {y_codes}")

    # -- ADRG
    names = dict(read_dat(src / common / "raw/ADRG.dat"))
    adrg_json = load(common / "generated/adrg_rules.json")
    if [a["code"] for a in adrg_json] != list(names):
        problems.append("adrg_rules.json and ADRG.dat differ in ADRGs or order")
    px_of = {a["code"]: a["rule"]["sections"].get("主要手术或操作", []) for a in adrg_json}
    code_rows: set[tuple[str, str, str]] = set()
    adrg_out, rules, how_notes = [], {}, []
    kinds_seen: set[str] = set()
    min_counts: dict[str, dict[str, int]] = {}
    for order, a in enumerate(adrg_json, start=1):
        code, rule = a["code"], a["rule"]
        for k in sorted(set(rule) - RULE_KEYS - set(RULE_KINDS)):
            problems.append(f"{code}: rule key {k!r} is not known to this build (RULE_KINDS)")
        kinds_seen |= set(rule) & set(RULE_KINDS)
        if "手术或操作" in rule["sections"]:
            kinds_seen.add("手术或操作")
        lists = {section_list(s): v for s, v in rule["sections"].items()}
        aliases = rule.get("sectionAliases", {})
        for alias, target in aliases.items():
            if alias in rule["sections"] or target not in rule["sections"]:
                problems.append(f"{code}: sectionAliases {alias!r} -> {target!r}: not an alias of a section")
                continue
            lists[section_list(alias)] = rule["sections"][target]
        if rule.get("_logicCompileError"):
            problems.append(f"{code}: the source could not compile its formula: {rule['_logicCompileError']}")
        if rule["logic"]:
            logic = rpn_logic(rule["_logicRPN"], set(rule["sections"]) | set(aliases))
            how = f"formula {rule['logic']!r}"
        elif "requiredProcedureGroups" in rule or "requiredReferencedADRGs" in rule:
            groups = rule.get("requiredProcedureGroups") or [px_of[r] for r in rule["requiredReferencedADRGs"]]
            lists.update({f"table_{i}": g for i, g in enumerate(groups, start=1)})
            logic = " & ".join(f"table_{i}" for i in range(1, len(groups) + 1))
            how = "requiredProcedureGroups" if "requiredProcedureGroups" in rule else \
                f"requiredReferencedADRGs {rule['requiredReferencedADRGs']}"
        elif "referencedADRGs" in rule or rule.get("anyProcedureRequired"):
            logic, how = "all_or", "referencedADRGs" if "referencedADRGs" in rule else "anyProcedureRequired"
        elif rule.get("zeroProceduresRequired"):
            logic, how = "mdcz_no_surgery", "zeroProceduresRequired"
        elif lists:
            logic, how = " & ".join(sorted(lists, key=lambda n: (n != "dx", n))), "sections joined with &"
        else:
            problems.append(f"{code} {names[code]}: no sections and no rule")
            continue
        if aliases:
            how += f"; sectionAliases {', '.join(f'{k} = {v}' for k, v in aliases.items())}"
        # as in 1.1, a rule that combines procedure lists is entered by its principal procedure; one with
        # principal-procedure lists of its own (main_px_N) already says where the principal procedure must be
        anchor = anchor_lists(code, set(lists)) if not any(n.startswith("main_px_") for n in lists) else set()
        if anchor:
            lists["px"] = sorted({c for n in anchor for c in lists[n]})
            logic = render_logic(parse_logic(f"px & ({logic})"))
            how += "; anchored on the principal procedure"
        used = logic_names(parse_logic(logic))
        # a section the formula names only through its aliases (3.0 RN1: 诊断 1 as 主要诊断 1 / 其他诊断 1)
        for target in sorted(set(aliases.values())):
            if section_list(target) not in used:
                del lists[section_list(target)]
                how += f"; {target} only through its aliases"
        for n in sorted(used - set(lists) - BUILTINS):
            problems.append(f"{code}: logic {logic!r} uses {n}, which has no codes")
        for n in sorted(set(lists) - used):
            problems.append(f"{code}: list {n} is not used by its logic {logic!r}")
        for section, n_min in rule.get("sectionMinimumOccurrences", {}).items():
            name = section_list(section)
            if name not in used or not isinstance(n_min, int) or n_min < 1:
                problems.append(f"{code}: sectionMinimumOccurrences {section!r}: {n_min!r} is not a count of a list "
                                "its logic uses")
                continue
            min_counts.setdefault(code, {})[name] = n_min
            how += f"; at least {n_min} codes in {name}"
        for n, values in lists.items():
            system = "icd10" if list_reads(n) in DX_LISTS else "icd9"
            for c in codes(values, system, f"{code} {n}"):
                code_rows.add((code, n, c))
        if how != "sections joined with &" or logic not in ("dx", "px", "dx & px"):
            how_notes.append(f"  {code}: {logic}   [{how}]")
        adrg_out.append([code, code[0], names[code], order, kind_of(code), logic])
        rules[code] = AdrgRule(code, code[0], "adrg_rules.json",
                               {n: [(c, "") for c in values] for n, values in lists.items()})
    log.append("ADRG rules that are not a plain dx / px / dx & px:")
    log.extend(how_notes)
    # MDCP has no table of its own in the source: its principal diagnoses are those its ADRGs list (as in 1.1, an
    # ADRG's principal diagnoses belong to its MDC); a newborn's case enters MDCP by age and such a diagnosis.
    p_rows = {("P", c) for a, n, c in code_rows if a.startswith("P") and n in ("dx", "any_dx")}
    principal_rows |= p_rows
    log.append(f"MDCP principal table: {len(p_rows)} codes from the dx and any_dx lists of the P ADRGs")
    # the same rule for a principal diagnosis no MDC table lists but one MDC's ADRG names as principal (3.0: WR1
    # 烧伤面积≥30%的烧伤 lists T31.3-T32.9 as 主要诊断, which mdc_rules.json's MDCW table lacks; none in 2.0)
    orphans = orphan_principals(principal_rows, code_rows)
    principal_rows |= orphans
    log.append(f"principal diagnoses in no MDC table but in an ADRG's dx list of one MDC, added to that MDC: "
               f"{len(orphans)} {sorted(orphans)[:10]}")
    for a in names:  # every weight / age a newborn ADRG's name states is read into [mdcp.adrg.*]
        b = newborn_bounds(names[a]) if a.startswith("P") else {}
        if (re.search(r"体重", names[a]) and not {"weight_g_min", "weight_g_max"} & set(b)) or \
                (re.search(r"出生年龄", names[a]) and not {"age_days_min", "age_days_max"} & set(b)):
            problems.append(f"ADRG.dat {a} {names[a]!r}: a weight or age that newborn_bounds does not read")
    icd10_dict, icd9_dict = set(load_icd10().codes.to_pylist()), set(load_icd9().codes.to_pylist())
    absent = {(list_reads(n) in DX_LISTS, c) for _, n, c in code_rows} - \
        {(True, c) for c in icd10_dict} - {(False, c) for c in icd9_dict}
    log.append(f"ADRG list codes missing from the 医保版 2.0 dictionaries (kept): {sum(d for d, _ in absent)} "
               f"diagnoses, {sum(not d for d, _ in absent)} procedures")

    # -- robot-assisted procedures and high-risk pregnancy (3.0 strategies in versions/<scheme>/config.json)
    strategy = load(version / "config.json").get("strategy", {})
    robot: list[str] = []
    if cfg.robot_file:
        robot = sorted(codes([c for c, _ in read_dat(src / cfg.robot_file)], "icd9", cfg.robot_file.name))
        listed = sorted(codes(strategy.get("robotAssistedSurgery", {}).get("procedureCodes", []), "icd9",
                              "robotAssistedSurgery"))
        if robot != listed or len(robot) != 5:
            problems.append(f"{cfg.robot_file.name} {robot} differs from config.json robotAssistedSurgery {listed}")
        log.append(f"robot-assisted procedures: {robot}")
    pregnancy: list[str] = []
    pregnancy_adrgs: list[str] = []
    if cfg.pregnancy_file:
        raw_p = [c for c, _ in read_dat(src / cfg.pregnancy_file)]
        pregnancy = sorted(set(codes(raw_p, "icd10", cfg.pregnancy_file.name)))
        hrp = strategy.get("highRiskPregnancyAsMcc", {})
        listed = sorted(set(codes(hrp.get("diagnosisCodes", []), "icd10", "highRiskPregnancyAsMcc")))
        pregnancy_adrgs = list(hrp.get("adrgCodes", []))
        if pregnancy != listed or len(raw_p) != len(set(raw_p)):
            problems.append(f"{cfg.pregnancy_file.name} ({len(pregnancy)} codes) differs from config.json "
                            f"highRiskPregnancyAsMcc ({len(listed)} codes) or repeats a code")
        if pregnancy_adrgs != ["OB1", "OB2"]:
            problems.append(f"highRiskPregnancyAsMcc adrgCodes {pregnancy_adrgs} are not OB1, OB2")
        log.append(f"high-risk pregnancy diagnoses: {len(pregnancy)} ({len(raw_p)} in {cfg.pregnancy_file.name}), "
                   f"an MCC as principal diagnosis in {pregnancy_adrgs}; {len(set(pregnancy) - icd10_dict)} not in "
                   "the 医保版 2.0 dictionary (kept)")

    # -- DRG
    drg_list = [(c, n, f"DRG.dat:{i}") for i, (c, n) in enumerate(read_dat(src / version / "raw/DRG.dat"), 1)]
    drg_info = drg_severities(drg_list, problems, band_condition(robot) if cfg.band_conditions else drg_condition)
    drg_names = {c: n for c, n, _ in drg_list}
    for d, n, where in drg_list:  # a name that states a condition the reader did not take
        if re.search(r"岁|天|机器人", nfkc(n).split(",", 1)[-1]) and d in drg_info and not drg_info[d][1] \
                and "," in nfkc(n):
            problems.append(f"{where}: {d} {n!r} states a condition that is not read")
    drg_rules = load(version / "generated/drg_rules.json")
    if sorted(r["drgCode"] for r in drg_rules) != sorted(drg_names):
        problems.append("drg_rules.json and DRG.dat differ in DRGs")
    band_drgs: dict[str, list[str]] = {}
    for r in drg_rules:  # the source's own reading of each DRG's split
        d, conditions = r["drgCode"], r["conditions"]
        if d not in drg_info:
            continue
        sev, cond = drg_info[d]
        if r.get("drgName") != drg_names.get(d) or r.get("adrgCode") != d[:3]:
            problems.append(f"drg_rules.json: {d} {r.get('adrgCode')} {r.get('drgName')!r} differs from DRG.dat "
                            f"{drg_names.get(d)!r}")
        severity_conds = [c for c in conditions if c not in cfg.band_conditions]
        for c in severity_conds:
            if sev not in SEVERITY_CONDITIONS.get(c, set()):
                problems.append(f"drg_rules.json: {d} {conditions} but its name reads {sev}")
        if not severity_conds and sev != "all":
            problems.append(f"drg_rules.json: {d} {conditions} names no severity but its name reads {sev}")
        want: dict = {}
        for c in conditions:
            if c in cfg.band_conditions:
                want.update({k: (robot if k == "procedures" else v) for k, v in cfg.band_conditions[c].items()})
                band_drgs.setdefault(c, []).append(d)
        got = {k: v for k, v in cond.items() if k in ("age_years_min", "age_years_max", "procedures")}
        if got != want:
            problems.append(f"drg_rules.json: {d} {conditions} but its name reads the band {got}")
        if cfg.suffixes:
            allowed, band_key = cfg.suffixes.get(d[3], (set(), "?"))
            if sev not in allowed or (band_key is None) != (not got) or (band_key and band_key not in got):
                problems.append(f"{d} {drg_names[d]!r}: suffix {d[3]} does not fit severity {sev} / band {got}")
    if cfg.band_conditions:
        log.append("DRG bands (drg_rules.json conditions): " + ", ".join(
            f"{c} {len(ds)}" for c, ds in sorted(band_drgs.items())))
        robot_adrgs = sorted({d[:3] for d in band_drgs.get("ROBOT_ASSISTED_SURGERY", [])})
        listed_adrgs = sorted(strategy.get("robotAssistedSurgery", {}).get("adrgCodes", []))
        if robot_adrgs != listed_adrgs:
            problems.append(f"robot-assisted DRGs' ADRGs {robot_adrgs} differ from config.json {listed_adrgs}")
    for sev, cond in drg_info.values():  # the CC levels a band takes, from its DRG's severity
        if cond and sev != "all":
            cond["cc_levels"] = CC_LEVELS[sev]
    for a in pregnancy_adrgs:
        if not any(drg_info.get(d, ("",))[0] == "mcc" for d in drg_names if d[:3] == a):
            problems.append(f"{a} (highRiskPregnancyAsMcc) has no MCC DRG")
    drg_out = [[d, d[:3], n, d[3], drg_info[d][0]] for d, n, _ in drg_list if d in drg_info]
    for a in names:
        if not any(d[:3] == a for d, _, _ in drg_list):
            problems.append(f"ADRG {a} has no DRG")
    counts = (len(mdc_rows), len(names), len(drg_list))
    if counts != cfg.counts:
        problems.append(f"counts {counts} differ from the expected {cfg.counts}")

    # -- MCC / CC / exclusion tables
    def code_table(rel: Path, what: str) -> dict[str, str]:
        """code -> exclusion table number, codes normalised (a code of the wrong shape is a problem)."""
        raw = load(rel)
        keys = list(raw)
        norm = normalise(keys, "icd10")
        good = shape_ok(norm, "icd10")
        bad = [k for k, ok in zip(keys, good) if not ok]
        if bad:
            problems.append(f"{what}: invalid icd10 codes {bad[:5]}")
        out = {n: str(raw[k]) for k, n, ok in zip(keys, norm, good) if ok}
        none = sorted(c for c, t in out.items() if t == "0")
        if none:  # 3.0 CC: Z94.x (transplant status); exclusion tables are numbered from 1 and cce has no table 0
            log.append(f"{what}: {len(none)} codes with exclusion table 0 (no such table) written as no exclusion "
                       f"table (the text's 无; 1.1 lists Z94.900 so): {none}")
            out.update(dict.fromkeys(none, ""))
        return out

    mcc = code_table(common / "generated/mcc_codes.json", "MCC")
    cc = code_table(common / "generated/cc_codes.json", "CC")
    cce = sorted({(t, c) for c, t in code_table(common / "generated/cce_codes.json", "CC exclusions").items()},
                 key=lambda r: (int(r[0]), r[1]))
    tables = {t for t, _ in cce}
    for what, table_map in (("MCC", mcc), ("CC", cc)):
        missing_t = sorted({t for t in table_map.values() if t and t not in tables}, key=int)
        if missing_t:
            problems.append(f"{what} refers to exclusion tables missing from cce_codes.json: {missing_t}")
    log.append(f"{len(mcc)} MCC, {len(cc)} CC, {len(cce)} exclusion rows in {len(tables)} tables")

    # -- OR procedures: 2.0 publishes the procedures that do not count (ss_invalid.json), not an OR list; an OR
    # procedure is a code of the 医保版 2.0 procedure dictionary that is not on it.
    not_or = set(codes(list(load(common / "generated/ss_invalid.json")), "icd9", "ss_invalid"))
    or_codes = sorted(icd9_dict - not_or)
    if not or_codes:
        problems.append("no procedure dictionary to derive the OR procedures from")
    invalid_dx = set(codes(list(load(common / "generated/zd_invalid.json")), "icd10", "zd_invalid"))
    listed = {c for _, c in principal_rows}
    log.append(f"zd_invalid.json: {len(invalid_dx)} diagnoses not valid as principal; {len(invalid_dx & listed)} of "
               "them are in an MDC table (the others leave a case ungroupable by themselves)")
    log.append(f"or_procedures.csv: {len(or_codes)} dictionary procedures not in ss_invalid.json ({len(not_or)})")
    all_px = src / common / "generated/all_procedure_codes.json"
    if all_px.is_file():  # undocumented; compared, not used (manifest notes)
        ap = set(codes(list(load(common / "generated/all_procedure_codes.json")), "icd9", "all_procedure_codes"))
        log.append(f"all_procedure_codes.json (not used): {len(ap)} codes; {len(ap & set(or_codes))} in "
                   f"or_procedures.csv, {len(ap & not_or)} in ss_invalid.json, {len(ap - icd9_dict)} not in the "
                   f"dictionary; {len(set(or_codes) - ap)} OR procedures not in it")
    if problems:
        raise BuildError("\n".join([*problems, f"{len(problems)} problems"]))

    # -- write
    extra = {"invalid_principal.csv": (["code"], [[c] for c in sorted(invalid_dx)])}
    if cfg.pregnancy_file:
        extra["principal_mcc.csv"] = (["code"], [[c] for c in pregnancy])
    outputs = write_tables(out, log, mdc_rows, principal_rows, site_rows, adrg_out, code_rows, drg_out, mcc, cc,
                           cce, or_codes, **extra)
    adrg_rows = {a: [a, a[0], names[a]] for a in names}
    extra_tables = []
    for a in sorted(min_counts):
        extra_tables.append((f"list_min_count.{a}", [(n, k, f"at least {k} of the case's codes in the positions the "
                                                            "list reads (counted by position)")
                                                     for n, k in sorted(min_counts[a].items())],
                             f"adrg_rules.json {a} sectionMinimumOccurrences", ""))
    if pregnancy_adrgs:
        extra_tables.append((
            "principal_mcc", [("adrgs", pregnancy_adrgs, "a principal diagnosis in principal_mcc.csv is an MCC "
                                                         "(CC level 2) in these ADRGs only")],
            f"config.json strategy.highRiskPregnancyAsMcc; {cfg.pregnancy_file.name} (principal_mcc.csv); DRG "
            "footnotes 10-11: 主要诊断为高危妊娠…或者其他诊断符合 MCC 及排除列表的要求时，进入该组",
            "High-risk pregnancy (高危妊娠) as the principal diagnosis counts as an MCC in OB1 / OB2."))
    conditions_comment = None
    if cfg.band_conditions:
        conditions_comment = [
            "DRG bands read from the DRG names (DRG.dat) and checked against drg_rules.json conditions: age in",
            "years, inclusive (大于等于70岁 -> age_years_min = 70, 小于等于6岁 -> age_years_max = 6); procedures: one",
            "of them among the case's procedures (机器人辅助手术); cc_levels: the CC levels the band takes (from",
            "the DRG's severity, absent = every level). DRGs of an ADRG with identical conditions form a band;",
            "bands are tried in DRG code order; if none holds, the ADRG's DRGs without a condition. Age: age_years",
            "when recorded, else age_days // 365; neither recorded: an age condition fails.",
        ]
    rule_of = {r["drgCode"]: r["conditions"] for r in drg_rules}
    text = special_rules_text(
        scheme, adrg_rows, drg_info, {}, rules, {s: [] for s in sites}, ventilation_adrg="AH2",
        source="ADRG.dat / adrg_rules.json",
        ventilation_as_procedure=True,  # 2.0: AH2 also needs a tracheostomy; 3.0: 96.7201 principal: formula decides
        files={"mdc": "mdc_rules.json", "adrg": "ADRG.dat", "drg": "DRG.dat", "detail": "adrg_rules.json"},
        built_by=BUILT_BY, ventilation_comment=cfg.ventilation_comment, extra_tables=extra_tables,
        conditions_comment=conditions_comment,
        condition_source=(lambda d: f"DRG.dat {d} name; drg_rules.json {d} conditions {rule_of[d]}"
                          + ("; ROBOT_ASSISTED_SURGERY.dat" if "procedures" in drg_info[d][1] else ""))
        if cfg.band_conditions else None)
    write(out / "special_rules.toml", text.encode("utf-8"))
    outputs.append({"file": "special_rules.toml", "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})
    manifest = {
        "version": scheme, "scheme": scheme, "effective_date": cfg.effective_date,
        "counts": {"mdc": counts[0], "adrg": counts[1], "drg": counts[2]},
        "built_by": BUILT_BY, "built_on": dt.date.today().isoformat(), "licence": cfg.licence,
        "source_dir": source_dir_label(src),
        "notes": [f"{k}: {v}" for k, v in RULE_KINDS.items() if k in kinds_seen] + [
            "MDCP has no principal table in the source: mdc_principal.csv gives it the dx and any_dx codes of its "
            "ADRGs",
            *([f"mdc_principal.csv adds {len(orphans)} principal diagnoses that no MDC table of the source lists but "
               f"the dx list of an ADRG of one MDC names (an ADRG's principal diagnoses belong to its MDC): "
               f"{', '.join(f'{m}:{c}' for m, c in sorted(orphans))}"] if orphans else []),
            "or_procedures.csv = the 医保版 2.0 procedure dictionary minus ss_invalid.json (procedures that do not "
            "count for grouping); invalid_principal.csv = zd_invalid.json (diagnoses not valid as principal)",
            *cfg.notes],
        "sources": [{"file": str(f), "sha256": sha256_file(src / f)} for f in cfg.sources]
        + [{"file": "SOURCE.txt", "sha256": sha256_file(src / "SOURCE.txt")}],
        "outputs": outputs,
    }
    write(out / "manifest.toml", tomli_w.dumps(manifest).encode("utf-8"))
    write(out / "LICENSE", (cfg.licence + "\n").encode("utf-8"))
    return log


def default_source(scheme: str) -> Path:
    """<repo>/../shared/reference/<scheme>; from a worktree whose ../shared does not hold it, /work/shared."""
    for root in (REPO.parent / "shared", Path("/work/shared")):
        if (root / "reference" / scheme).is_dir():
            return root / "reference" / scheme
    return REPO.parent / "shared" / "reference" / scheme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", choices=sorted(SCHEMES), default="chs-drg-2.0")
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    src = args.source or default_source(args.scheme)
    out = args.out or REPO / "grouper_tables" / args.scheme
    return run("build_drg_json_tables", lambda: build(src, out, args.scheme))


if __name__ == "__main__":
    sys.exit(main())
