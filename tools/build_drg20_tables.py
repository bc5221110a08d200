"""Build grouper_tables/chs-drg-2.0/ from the CHS-DRG 2.0 rule data (NHSA, July 2024), as encoded in JSON by the
CHS-DRG-Grouper project (../shared/reference/chs-drg-2.0; its SOURCE.txt says what each file is).

Usage: python tools/build_drg20_tables.py [--source DIR] [--out DIR]

Writes the same table format as the 1.1 build (grouper_tables/README.md), with the list names 2.0 needs:
`dx_N` (主要诊断 N), `main_px_N` (主要手术或操作 N), `other_dx_N` (其他诊断 N) beside `dx`, `px`, `other_dx`,
`any_dx` (诊断) and `table_N` (手术或操作 N: any procedure). The rule formulas come from the source's compiled
reverse-Polish form (`_logicRPN`), checked against its text; the structured rules are translated as documented in
RULE_KINDS. Deterministic: the same sources give byte-identical files (only built_on / source_dir in the manifest
change). Every problem is listed and the script exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
from pathlib import Path

import tomli_w

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from dipsim.codes import load_icd9  # noqa: E402
from dipsim.grouping.tables import list_reads  # noqa: E402
from dipsim.io.writers import sha256_file  # noqa: E402

from _common import BuildError, run, source_dir_label, write  # noqa: E402
from build_drg_tables import (  # noqa: E402
    BUILTINS,
    DX_LISTS,
    MDCZ_SITES,
    AdrgRule,
    anchor_lists,
    drg_severities,
    kind_of,
    logic_names,
    normalise,
    parse_logic,
    render_logic,
    shape_ok,
    special_rules_text,
    write_tables,
)

SCHEME = "chs-drg-2.0"
EFFECTIVE_DATE = "2025-01-01"
COUNTS = (26, 409, 634)
COMMON = Path("drg-common/chs-2.0")
VERSION = Path("versions/chs-drg-2.0")
SOURCES = (COMMON / "config.json", COMMON / "raw/ADRG.dat", COMMON / "generated/mdc_rules.json",
           COMMON / "generated/adrg_rules.json", COMMON / "generated/mcc_codes.json",
           COMMON / "generated/cc_codes.json", COMMON / "generated/cce_codes.json",
           COMMON / "generated/ss_invalid.json", COMMON / "generated/zd_invalid.json",
           VERSION / "config.json", VERSION / "raw/DRG.dat", VERSION / "generated/drg_rules.json")
LICENCE = ("NHSA CHS-DRG 2.0 (2024) rule data; encoded by CHS-DRG-Grouper (Apache-2.0 code; the data's rights stay "
           "with NHSA): see ../shared/reference/chs-drg-2.0/SOURCE.txt")

# A rule section (its name in the source) -> list name; a trailing " N" gives the numbered form.
SECTION_LISTS = {"主要诊断": "dx", "主要手术或操作": "px", "其他诊断": "other_dx", "诊断": "any_dx",
                 "手术或操作": "table"}
NUMBERED = {"dx": "dx_{n}", "px": "main_px_{n}", "other_dx": "other_dx_{n}", "table": "table_{n}"}
# The structured rules of an ADRG without sections, and how each is written in the table format.
RULE_KINDS = {
    "requiredProcedureGroups": "one procedure from each group: `table_1 & table_2`, the principal procedure in one "
                               "of them (`px & (…)`, as every combined surgical rule)",
    "requiredReferencedADRGs": "procedures of each referenced ADRG (CB2: CB4 and CB5): their `px` lists copied as "
                               "`table_1 & table_2`, anchored on the principal procedure like the above",
    "referencedADRGs": "WJ1 烧伤相关其他手术 refers to WB1-WB3, which are tried first: `all_or` (any OR procedure)",
    "anyProcedureRequired": "an operating-room procedure (`all_or`: the principal procedure is in or_procedures.csv)",
    "zeroProceduresRequired": "ZZ1 多发性重要创伤无手术: `mdcz_no_surgery`",
}
JUNK_PRINCIPAL = {"ALK", "AILD"}  # two rows of MDCR in mdc_rules.json that are not codes (SOURCE.txt)


def section_list(name: str) -> str:
    """'主要手术或操作 1' -> 'main_px_1', '手术或操作 2' -> 'table_2', '主要诊断' -> 'dx'."""
    m = re.fullmatch(r"(\S+?)\s*([0-9]+)?", name.strip())
    base = SECTION_LISTS.get(m.group(1)) if m else None
    if base is None:
        raise BuildError(f"unknown rule section {name!r}")
    if m.group(2):
        return NUMBERED[base].format(n=m.group(2))
    if base == "table":
        raise BuildError(f"unnumbered 手术或操作 section {name!r}")
    return base


def rpn_logic(rpn: list, sections: dict) -> str:
    """The source's reverse-Polish formula as a logic expression of list names."""
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


def build(src: Path, out: Path) -> list[str]:
    problems: list[str] = []
    log: list[str] = [f"scheme {SCHEME} from {src}"]
    missing = [str(f) for f in SOURCES if not (src / f).is_file()]
    if missing:
        raise BuildError(f"source files missing under {src}: {missing}")
    load = lambda rel: json.loads((src / rel).read_text(encoding="utf-8"))  # noqa: E731

    def codes(raw, system: str, what: str) -> list[str]:
        norm = normalise(list(raw), system)
        good = shape_ok(norm, system)
        bad = [c for c, ok in zip(raw, good) if not ok]
        if bad:
            problems.append(f"{what}: {len(bad)} invalid {system} codes, e.g. {bad[:5]}")
        return [n for n, ok in zip(norm, good) if ok]

    # -- MDC: names, order, principal-diagnosis tables, MDCZ sites
    mdc_json = load(COMMON / "generated/mdc_rules.json")
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
    names = dict(read_dat(src / COMMON / "raw/ADRG.dat"))
    adrg_json = load(COMMON / "generated/adrg_rules.json")
    if [a["code"] for a in adrg_json] != list(names):
        problems.append("adrg_rules.json and ADRG.dat differ in ADRGs or order")
    px_of = {a["code"]: a["rule"]["sections"].get("主要手术或操作", []) for a in adrg_json}
    code_rows: set[tuple[str, str, str]] = set()
    adrg_out, rules, how_notes = [], {}, []
    for order, a in enumerate(adrg_json, start=1):
        code, rule = a["code"], a["rule"]
        lists = {section_list(s): v for s, v in rule["sections"].items()}
        if rule.get("_logicCompileError"):
            problems.append(f"{code}: the source could not compile its formula: {rule['_logicCompileError']}")
        if rule["logic"]:
            logic = rpn_logic(rule["_logicRPN"], rule["sections"])
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
        # as in 1.1, a rule that combines procedure lists is entered by its principal procedure; one with
        # principal-procedure lists of its own (main_px_N) already says where the principal procedure must be
        anchor = anchor_lists(code, set(lists)) if not any(n.startswith("main_px_") for n in lists) else set()
        if anchor:
            lists["px"] = sorted({c for n in anchor for c in lists[n]})
            logic = render_logic(parse_logic(f"px & ({logic})"))
            how += "; anchored on the principal procedure"
        used = logic_names(parse_logic(logic))
        for n in sorted(used - set(lists) - BUILTINS):
            problems.append(f"{code}: logic {logic!r} uses {n}, which has no codes")
        for n in sorted(set(lists) - used):
            problems.append(f"{code}: list {n} is not used by its logic {logic!r}")
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

    # -- DRG
    drg_list = [(c, n, f"DRG.dat:{i}") for i, (c, n) in enumerate(read_dat(src / VERSION / "raw/DRG.dat"), 1)]
    drg_info = drg_severities(drg_list, problems)
    expected = {"WITH_MCC": {"mcc"}, "WITH_CC": {"cc", "cc_or_mcc"}, "NO_CC": {"none", "no_mcc"},
                "ADRG_ONLY": {"all"}}
    for r in load(VERSION / "generated/drg_rules.json"):  # the source's own reading of each DRG's split
        d, conditions = r["drgCode"], r["conditions"]
        if d in drg_info and any(drg_info[d][0] not in expected.get(c, set()) for c in conditions):
            problems.append(f"drg_rules.json: {d} {conditions} but its name reads {drg_info[d][0]}")
    drg_out = [[d, d[:3], n, d[3], drg_info[d][0]] for d, n, _ in drg_list if d in drg_info]
    for a in names:
        if not any(d[:3] == a for d, _, _ in drg_list):
            problems.append(f"ADRG {a} has no DRG")
    counts = (len(mdc_rows), len(names), len(drg_list))
    if counts != COUNTS:
        problems.append(f"counts {counts} differ from the expected {COUNTS}")

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
        return {n: str(raw[k]) for k, n, ok in zip(keys, norm, good) if ok}

    mcc = code_table(COMMON / "generated/mcc_codes.json", "MCC")
    cc = code_table(COMMON / "generated/cc_codes.json", "CC")
    cce = sorted({(t, c) for c, t in code_table(COMMON / "generated/cce_codes.json", "CC exclusions").items()},
                 key=lambda r: (int(r[0]), r[1]))
    tables = {t for t, _ in cce}
    for what, table_map in (("MCC", mcc), ("CC", cc)):
        missing_t = sorted({t for t in table_map.values() if t and t not in tables}, key=int)
        if missing_t:
            problems.append(f"{what} refers to exclusion tables missing from cce_codes.json: {missing_t}")
    log.append(f"{len(mcc)} MCC, {len(cc)} CC, {len(cce)} exclusion rows in {len(tables)} tables")

    # -- OR procedures: 2.0 publishes the procedures that do not count (ss_invalid.json), not an OR list; an OR
    # procedure is a code of the 医保版 2.0 procedure dictionary that is not on it.
    icd9 = load_icd9()
    not_or = set(codes(list(load(COMMON / "generated/ss_invalid.json")), "icd9", "ss_invalid"))
    or_codes = sorted(set(icd9.codes.to_pylist()) - not_or)
    if not or_codes:
        problems.append("no procedure dictionary to derive the OR procedures from")
    invalid_dx = set(codes(list(load(COMMON / "generated/zd_invalid.json")), "icd10", "zd_invalid"))
    listed = {c for _, c in principal_rows}
    log.append(f"zd_invalid.json: {len(invalid_dx)} diagnoses not valid as principal; {len(invalid_dx & listed)} of "
               "them are in an MDC table (the others leave a case ungroupable by themselves)")
    log.append(f"or_procedures.csv: {len(or_codes)} dictionary procedures not in ss_invalid.json ({len(not_or)})")
    if problems:
        raise BuildError("\n".join([*problems, f"{len(problems)} problems"]))

    # -- write
    outputs = write_tables(out, log, mdc_rows, principal_rows, site_rows, adrg_out, code_rows, drg_out, mcc, cc,
                           cce, or_codes, **{"invalid_principal.csv": (["code"], [[c] for c in sorted(invalid_dx)])})
    adrg_rows = {a: [a, a[0], names[a]] for a in names}
    text = special_rules_text(SCHEME, adrg_rows, drg_info, {}, rules, {s: [] for s in sites},
                              ventilation_adrg="AH2", source="ADRG.dat / adrg_rules.json",
                              ventilation_as_procedure=True,  # AH2 also needs a tracheostomy: its formula decides
                              files={"mdc": "mdc_rules.json", "adrg": "ADRG.dat", "drg": "DRG.dat",
                                     "detail": "adrg_rules.json"}, built_by="tools/build_drg20_tables.py")
    write(out / "special_rules.toml", text.encode("utf-8"))
    outputs.append({"file": "special_rules.toml", "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})
    manifest = {
        "version": SCHEME, "scheme": SCHEME, "effective_date": EFFECTIVE_DATE,
        "counts": {"mdc": counts[0], "adrg": counts[1], "drg": counts[2]},
        "built_by": "tools/build_drg20_tables.py", "built_on": dt.date.today().isoformat(), "licence": LICENCE,
        "source_dir": source_dir_label(src),
        "notes": [f"{k}: {v}" for k, v in RULE_KINDS.items()] + [
            "MDCP has no principal table in the source: mdc_principal.csv gives it the dx and any_dx codes of its "
            "ADRGs",
            "or_procedures.csv = the 医保版 2.0 procedure dictionary minus ss_invalid.json (procedures that do not "
            "count for grouping); invalid_principal.csv = zd_invalid.json (diagnoses not valid as principal)"],
        "sources": [{"file": str(f), "sha256": sha256_file(src / f)} for f in SOURCES]
        + [{"file": "SOURCE.txt", "sha256": sha256_file(src / "SOURCE.txt")}],
        "outputs": outputs,
    }
    write(out / "manifest.toml", tomli_w.dumps(manifest).encode("utf-8"))
    write(out / "LICENSE", (LICENCE + "\n").encode("utf-8"))
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "reference" / SCHEME)
    parser.add_argument("--out", type=Path, default=REPO / "grouper_tables" / SCHEME)
    args = parser.parse_args(argv)
    return run("build_drg20_tables", lambda: build(args.source, args.out))


if __name__ == "__main__":
    sys.exit(main())
