"""Build grouper_tables/<scheme>/ (CHS-DRG grouper tables) from the public rule text of a CHS-DRG scheme.

Usage: python tools/build_drg_tables.py [--scheme NAME] [--source DIR] [--out DIR] [--or-procedures FILE]
                                       [--effective-date YEAR]
  --scheme         chs-drg-1.1 (default) or chs-drg-1.1-beijing, or any name of a city's own version laid out
                   the same way
  --source         default <repo>/../shared/reference/<scheme>  (rules/1_MDC.txt ... 7_CCE.txt, optional lists/)
  --out            default <repo>/grouper_tables/<scheme>
  --or-procedures  the list of procedures valid as OR procedures (`code name` lines); default
                   <source>/lists/SS_VALID.dat, else <source>/../chs-drg-1.1/lists/SS_VALID.dat

Re-runnable and deterministic: every CSV, special_rules.toml, LICENSE come out byte-identical for the same sources;
only ``built_on`` (and ``source_dir``) in manifest.toml depend on the run. Every non-empty line of the rule text must
be classified (MDC / ADRG header, section marker, rule formula, code line, name continuation, page number, title);
anything else, and every failed consistency check, is listed with file:line and the script exits 1.

PDF clean-up done here (each kind is counted and printed): ``~~`` join marks removed; names (and ADRG headers,
rule formulas) broken across lines are joined to the record they continue; several ``code name [表 N]`` records
run together on one line are split at each code; page numbers and repeated column headers are dropped.
The special free-text rules (ventilation hours, newborn age / birth weight, MDCZ, the ADRGs without code lists)
are encoded below in LOGIC_OVERRIDES and special_rules.toml, each with the source it comes from.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import re
import shutil
import sys
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import tomli_w

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))  # tools/_common.py

from dipsim.codes import is_valid_code_shape, load_icd9, load_icd10, normalise_codes  # noqa: E402
from dipsim.io.writers import sha256_file  # noqa: E402

from _common import BuildError, run, source_dir_label, write  # noqa: E402

DEFAULT_SCHEME = "chs-drg-1.1"
LICENCE = "Apache-2.0 (OpenDRG/DRG_Rules; lists/ from OpenDRG/DRG_Python)"
SCHEME_META = {
    # scheme -> (effective date, expected counts (MDC, ADRG, DRG) or None when the files decide)
    "chs-drg-1.1": ("2021", (26, 376, 628)),
    "chs-drg-1.1-beijing": ("2022", None),
}

# What each rule file holds, by role (special_rules_text cites them; 2.0 has other names for the same roles)
RULE_FILE_ROLES = {"mdc": "1_MDC.txt", "adrg": "2_ADRG.txt", "drg": "3_DRG.txt", "detail": "4_ADRG_DETAIL.txt"}
RULE_FILES = ("1_MDC.txt", "2_ADRG.txt", "3_DRG.txt", "4_ADRG_DETAIL.txt", "5_MCC.txt", "6_CC.txt", "7_CCE.txt")
LIST_FILES = ("MCC.dat", "CC.dat", "CCE.dat", "DRG.dat")
OR_LIST = "SS_VALID.dat"

# Code shapes as they are spelled in the rule text (strict: used to find record boundaries inside a line).
DX_RE = r"[A-Z][0-9]{2}\.[0-9x][0-9]{2}(?:x[0-9]{3})?(?:\+[A-Z][0-9]{2}(?:\.[0-9x][0-9]{0,2})?\*)?"
PX_RE = (r"[0-9]{2}\.(?:(?:[0-9][0-9x][0-9]{2}|[0-9]{5}|[0-9]{3}[A-Z][0-9])(?:x[0-9]{3})?"
         r"|[0-9]{3}x[0-9]{4}|[0-9]{2}x[0-9]{3})")
# A code starts a record where it is not glued to other code characters: after a space, at the start, or after a
# CJK character (the PDF text sometimes glues the last character of a wrapped name onto the next code: 的J63.800x001).
CODE_AT = re.compile(rf"(?<![A-Za-z0-9.+*\-])({DX_RE}|{PX_RE})(?=\s|$)")
CODE_START = re.compile(r"^(?:[A-Z][0-9]{2}\.|[0-9]{2}\.)\S*")
PAGE_NUMBER = re.compile(r"^[0-9]{1,5}$")
TABLE_REF = re.compile(r"表\s*((?:[0-9]+\s*-\s*)*[0-9]+)\s*$")

MDCZ_SITES = ("头颈部创伤", "胸部创伤", "腹部创伤", "泌尿系统创伤", "生殖系统创伤", "躯干、脊柱创伤", "上肢创伤",
              "下肢创伤", "骨盆创伤")

# Section markers of 4_ADRG_DETAIL.txt, keyed without spaces: (kind, list name or predicate, connector).
# kind "list": the code lines that follow form that list; "pred": a built-in condition with no list.
# The connector joins the section to the ones before it when the ADRG has no explicit formula: "&" (both needed)
# or "|" (markers that start with 或). "和" opens the second list of a 同时包含 pair (see AND_FOLLOWS).
MARKERS: dict[str, tuple[str, str, str]] = {
    "包含以下主要诊断：": ("list", "dx", "&"),
    "主要诊断：": ("list", "dx", "&"),
    "包含以下诊断：": ("list", "any_dx", "&"),  # ADRG context (1.1 YC1); MDCZ site context: the site list
    "主要诊断或其他诊断中包含以下诊断：": ("list", "any_dx", "&"),
    "包含以下主要诊断或其他诊断：": ("list", "any_dx", "&"),
    "其他诊断：": ("list", "other_dx", "&"),
    "包含以下其他诊断：": ("list", "other_dx", "&"),
    "或包含以下其他诊断：": ("list", "other_dx", "|"),
    "包含以下主要手术或操作：": ("list", "px", "&"),
    "主要手术或操作：": ("list", "px", "&"),
    "包含以下手术或操作：": ("list", "any_px", "&"),
    "同时包含以下手术：": ("list", "px_1", "&"),
    "同时包含以下手术或操作：": ("list", "px_1", "&"),
    "或同时包含以下主要诊断和手术操作：": ("list", "dx", "|"),
    "全部手术": ("pred", "all_or", "&"),
    "包含全部手术": ("pred", "all_or", "&"),
    # Beijing WJ1: any OR procedure except WB1's list; WB1 comes first in the ADRG order, so "any" is equivalent.
    "包含除WB1手术表以外的手术": ("pred", "all_or", "&"),
    "符合MDCZ主诊表，且无手术": ("pred", "mdcz_no_surgery", "&"),
    "符合MDCZ诊断表，且无手术": ("pred", "mdcz_no_surgery", "&"),
}
TABLE_MARKER = re.compile(r"^(?:手术表|手术|包含以下主要手术或操作)([0-9]+)：$")
# "和" after a list opens the second list of a pair: after px_1 -> px_2; after the dx of
# 或同时包含以下主要诊断和手术操作 (Beijing IB1) -> px_1.
AND_FOLLOWS = {"px_1": "px_2", "dx": "px_1"}
FORMULA_LINE = re.compile(r"^(?:或)?(?:入组条件[0-9]*：|包含以下主要诊断\+)")
DX_LISTS = {"dx", "any_dx", "other_dx"}
BUILTINS = {"all_or", "mdcz_no_surgery"}

def anchor_lists(adrg: str, lists: set[str]) -> set[str]:
    """The procedure lists (手术表 N, px_1 / px_2) of an ADRG that must hold its principal procedure. Not for
    MDCA (pre-MDC entry by the procedures themselves: transplant pairs, ventilation, ECMO) nor for an ADRG with
    its own `px` list or an `any_px` list (the text says any procedure)."""
    if adrg.startswith("A") or lists & {"px", "any_px"}:
        return set()
    return {n for n in lists if n.startswith("table_") or n in ("px_1", "px_2")}


def orphan_principals(principal_rows: set[tuple[str, str]],
                      code_rows: set[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """(MDC, code) for principal diagnoses that no MDC table lists but an ADRG's `dx` list of exactly one MDC
    names: an ADRG's principal diagnoses belong to its MDC, so a code missing from the MDC table is a gap in the
    text. Pre-MDC ADRGs (A, P, Y, Z) are entered by their own rules and are left out."""
    listed = {c for _, c in principal_rows}
    owners: dict[str, set[str]] = {}
    for adrg, name, code in code_rows:
        if name == "dx" and code not in listed and adrg[0] not in "APYZ":
            owners.setdefault(code, set()).add(adrg[0])
    return {(next(iter(m)), c) for c, m in owners.items() if len(m) == 1}


# ADRGs whose rule is free text (or missing) in the source: logic written by hand, with the reason.
LOGIC_OVERRIDES: dict[str, dict[str, tuple[str, str]]] = {
    "chs-drg-1.1": {
        "WJ1": ("all_or", "4_ADRG_DETAIL.txt WJ1 has no rule text; name 烧伤伴除植皮之外的任何手术室手术: any OR "
                          "procedure (WB1/WC1 with skin grafts are tried first)"),
        "YC1": ("any_dx & all_or", "4_ADRG_DETAIL.txt YC1 包含以下诊断 (principal or other diagnosis) + name "
                                   "HIV 相关疾患的手术室手术 (an OR procedure)"),
    },
    "chs-drg-1.1-beijing": {},
}
SEVERITY_PHRASES = (
    # (phrase as the last 、-separated part of a DRG name, severity); "伴并发症或合并症" is resolved below.
    ("不伴严重并发症或合并症", "no_mcc"),
    ("不伴并发症或合并症", "none"),
    ("不伴合并症与伴随病", "none"),
    ("伴严重并发症或合并症", "mcc"),
    ("伴一般并发症或合并症", "cc"),
    ("伴并发症或合并症", "cc_or_mcc"),
    # CHS-DRG 2.0 writes 合并症或并发症 (the same words, the other order)
    ("不伴严重合并症或并发症", "no_mcc"),
    ("不伴合并症或并发症", "none"),
    ("伴严重合并症或并发症", "mcc"),
    ("伴一般合并症或并发症", "cc"),
    ("伴合并症或并发症", "cc_or_mcc"),
)


# ----------------------------------------------------------------------------------------------------------------
# Reading and cleaning


@dataclass
class Line:
    file: str
    no: int
    text: str  # cleaned: ~~ removed, stripped

    @property
    def where(self) -> str:
        return f"{self.file}:{self.no}"

    @property
    def key(self) -> str:
        return re.sub(r"\s+", "", self.text)


@dataclass
class Stats:
    """Counts of each kind of clean-up, per source file."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    normalised_codes: int = 0

    def add(self, kind: str, file: str, n: int = 1) -> None:
        per_file = self.counts.setdefault(kind, {})
        per_file[file] = per_file.get(file, 0) + int(n)

    LABELS: ClassVar[dict[str, str]] = {
        "tilde_lines": "lines with ~~ join marks",
        "continuation_lines": "name / header / formula continuation lines joined to their record",
        "split_lines": "lines holding several records",
        "split_records": "records split out of those lines",
        "page_numbers": "page numbers dropped",
        "repeated_headers": "repeated column headers / titles dropped",
    }

    def describe(self) -> list[str]:
        out = []
        for kind, label in self.LABELS.items():
            per_file = self.counts.get(kind, {})
            if per_file:
                detail = ", ".join(f"{f} {n}" for f, n in sorted(per_file.items()))
                out.append(f"  {sum(per_file.values())} {label} ({detail})")
        out.append(f"  {self.normalised_codes} codes changed by normalisation")
        return out


def read_lines(path: Path, stats: Stats) -> list[Line]:
    text = path.read_bytes().decode("utf-8-sig")
    out = []
    for n, raw in enumerate(text.split("\n"), start=1):
        if "~~" in raw:
            stats.add("tilde_lines", path.name, 1)
            raw = raw.replace("~~", "")
        raw = raw.strip()
        if raw:
            out.append(Line(path.name, n, raw))
    return out


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def clean_name(s: str) -> str:
    return re.sub(r"\s+", " ", s.replace("~~", "")).strip()


def split_records(line: Line, stats: Stats) -> list[tuple[str, str]]:
    """``code name`` records in a line: (code, rest); text before the first code is returned with code ''."""
    starts = [m.start() for m in CODE_AT.finditer(line.text)]
    if not starts:
        return [("", line.text)]
    out = []
    if starts[0] > 0:
        out.append(("", line.text[:starts[0]].strip()))
    for a, b in zip(starts, [*starts[1:], len(line.text)]):
        code, _, rest = line.text[a:b].strip().partition(" ")
        out.append((code, rest.strip()))
    if len(starts) > 1:
        stats.add("split_lines", line.file, 1)
        stats.add("split_records", line.file, len(starts))
    return out


def normalise(codes: list[str], system: str) -> list[str]:
    return normalise_codes(pa.array(codes, pa.string()), system).to_pylist() if codes else []


def shape_ok(codes: list[str], system: str) -> list[bool]:
    return is_valid_code_shape(pa.array(codes, pa.string()), system).to_pylist() if codes else []


# ----------------------------------------------------------------------------------------------------------------
# Logic formulas: NAME, &, |, parentheses; & binds tighter than |.


def tokenize(formula: str) -> list[str]:
    tokens = re.findall(r"[a-z][a-z0-9_]*|[&|()]|\S", formula)
    return tokens


def parse_logic(formula: str):
    """Recursive-descent parser: returns an AST (('or', [..]), ('and', [..]) or a name); raises ValueError."""
    tokens = tokenize(formula)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take(expected=None):
        nonlocal pos
        tok = peek()
        if tok is None or (expected is not None and tok != expected):
            raise ValueError(f"expected {expected or 'a name'} at token {pos} in {formula!r}")
        pos += 1
        return tok

    def expr():
        terms = [term()]
        while peek() == "|":
            take("|")
            terms.append(term())
        return terms[0] if len(terms) == 1 else ("or", terms)

    def term():
        factors = [factor()]
        while peek() == "&":
            take("&")
            factors.append(factor())
        return factors[0] if len(factors) == 1 else ("and", factors)

    def factor():
        tok = peek()
        if tok == "(":
            take("(")
            node = expr()
            take(")")
            return node
        tok = take()
        if not re.fullmatch(r"[a-z][a-z0-9_]*", tok):
            raise ValueError(f"unexpected {tok!r} in {formula!r}")
        return tok

    if not tokens:
        raise ValueError("empty formula")
    node = expr()
    if pos != len(tokens):
        raise ValueError(f"trailing {tokens[pos]!r} in {formula!r}")
    return node


def render_logic(node, parent: str = "or") -> str:
    if isinstance(node, str):
        return node
    op, kids = node
    text = (" & " if op == "and" else " | ").join(render_logic(k, op) for k in kids)
    return f"({text})" if op == "or" and parent == "and" else text


def logic_names(node) -> set[str]:
    if isinstance(node, str):
        return {node}
    return set().union(*(logic_names(k) for k in node[1]))


def translate_formula(text: str) -> str:
    """Rule text such as 主要诊断+手术表 1+手术表 2或主要诊断+手术表 2+手术表 3 -> dx & table_1 & table_2 | ..."""
    t = re.sub(r"\s+", "", nfkc(text))
    t = re.sub(r"入组条件[0-9]*:", "", t)
    t = t.replace("包含以下", "")
    for zh, name in (("主要手术或操作", "px"), ("主要诊断", "dx"), ("其他诊断", "other_dx")):
        t = t.replace(zh, f" {name} ")
    t = re.sub(r"手术表([0-9]+)", r" table_\1 ", t)
    t = re.sub(r"手术([0-9]+)", r" table_\1 ", t)
    t = t.replace("+", " & ").replace("或", " | ")
    t = re.sub(r"^\s*\|", "", t)
    return render_logic(parse_logic(t))


# ----------------------------------------------------------------------------------------------------------------
# 1_MDC, 2_ADRG, 3_DRG


def read_headers(lines: list[Line], pattern: str, problems: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for ln in lines:
        m = re.match(pattern, ln.text)
        if not m:
            problems.append(f"{ln.where}: cannot parse {ln.text!r}")
            continue
        out.append((m.group(1), clean_name(m.group(2)), ln.where))
    seen: set[str] = set()
    for code, _, where in out:
        if code in seen:
            problems.append(f"{where}: duplicate {code}")
        seen.add(code)
    return out


# ----------------------------------------------------------------------------------------------------------------
# 4_ADRG_DETAIL


@dataclass
class AdrgRule:
    adrg: str
    mdc: str
    where: str
    lists: dict[str, list[str]] = field(default_factory=dict)  # list name -> source codes
    sections: list[tuple[str, str]] = field(default_factory=list)  # (name, connector) in text order
    formula: list[str] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)


def parse_detail(lines: list[Line], mdcs: dict[str, str], adrg_names: dict[str, str], stats: Stats,
                 problems: list[str], log: list[str]):
    principal: dict[str, list[str]] = {}
    sites: dict[str, list[str]] = {}
    rules: dict[str, AdrgRule] = {}
    mdc_order: list[str] = []
    mdc = None
    rule: AdrgRule | None = None
    target: list[str] | None = None  # the list code lines go into
    target_name = ""
    last = ""  # kind of the last classified line: header / code / formula / marker
    expect_principal_header = False
    for ln in lines:
        key = ln.key
        # A rule formula broken across lines (Beijing: "...+手术表" / "4", "...+主要手术或操" / "作").
        if last == "formula" and rule is not None and re.search(r"(手术表|操|\+|或)$", rule.formula[-1]):
            rule.formula[-1] += key
            stats.add("continuation_lines", ln.file, 1)
            continue
        if PAGE_NUMBER.match(key):
            stats.add("page_numbers", ln.file, 1)
            continue
        m = re.match(r"^MDC([A-Z])(.*)$", key)
        if m:
            letter, rest = m.groups()
            if letter not in mdcs:
                problems.append(f"{ln.where}: unknown MDC {letter}")
            if rest in ("主诊表", "诊断表"):
                if letter != mdc:
                    problems.append(f"{ln.where}: 主诊表 of MDC{letter} outside its MDC (current {mdc})")
                target, target_name, rule = principal.setdefault(letter, []), f"MDC{letter} 主诊表", None
                # its codes follow a 包含以下主要诊断： marker, which keeps this target
            else:
                if letter in mdc_order:
                    problems.append(f"{ln.where}: MDC{letter} header repeated")
                mdc, rule, target, target_name = letter, None, None, ""
                mdc_order.append(letter)
                expect_principal_header = True
            last = "header"
            continue
        if key in ("主诊表", "诊断表") and expect_principal_header and rule is None:
            target, target_name = principal.setdefault(mdc, []), f"MDC{mdc} 主诊表"
            last = "marker"
            continue
        m = re.match(r"^([A-Z]{2}[0-9])\s+\S", ln.text)
        if m and m.group(1) in adrg_names:
            code = m.group(1)
            if code in rules:
                problems.append(f"{ln.where}: ADRG {code} repeated")
            if code[0] != mdc:
                problems.append(f"{ln.where}: ADRG {code} under MDC{mdc}")
            rule = rules.setdefault(code, AdrgRule(code, mdc or "", ln.where))
            target, target_name, last = None, "", "header"
            expect_principal_header = False
            continue
        if mdc == "Z" and rule is None and key in {re.sub(r"\s+", "", s) for s in MDCZ_SITES}:
            site = next(s for s in MDCZ_SITES if re.sub(r"\s+", "", s) == key)
            target, target_name, last = sites.setdefault(site, []), f"MDCZ {site}", "marker"
            continue
        if rule is None and target is not None and key in ("包含以下主要诊断：", "包含以下诊断："):
            last = "marker"  # the principal table / MDCZ site list announces its codes
            continue
        if rule is not None and FORMULA_LINE.match(key):
            rule.formula.append(key)
            last = "formula"
            continue
        if rule is not None and (key in MARKERS or key == "和" or TABLE_MARKER.match(key)):
            rule.markers.append(key)
            if key == "和":
                prev = rule.sections[-1][0] if rule.sections else ""
                if prev not in AND_FOLLOWS:
                    problems.append(f"{ln.where}: 和 after {prev or 'nothing'} in {rule.adrg}")
                    continue
                name, kind, conn = AND_FOLLOWS[prev], "list", "&"
            elif TABLE_MARKER.match(key):
                name, kind, conn = f"table_{TABLE_MARKER.match(key).group(1)}", "list", "&"
            else:
                kind, name, conn = MARKERS[key]
            if kind == "pred":
                rule.sections.append((name, conn))
                target, target_name = None, ""
            else:
                if name in rule.lists:
                    problems.append(f"{ln.where}: list {name} opened twice in {rule.adrg}")
                rule.sections.append((name, conn))
                target, target_name = rule.lists.setdefault(name, []), f"{rule.adrg} {name}"
            last = "marker"
            continue
        glued = CODE_AT.search(ln.text)
        if CODE_START.match(ln.text) or (last == "code" and glued and glued.start() <= 4
                                         and not re.search(r"包含|入组|：", ln.text[:glued.start()])):
            recs = split_records(ln, stats)
            if target is None:
                problems.append(f"{ln.where}: code line outside any list: {ln.text[:60]!r}")
                continue
            if not recs[0][0] and not CODE_START.match(ln.text):
                # the end of the previous name glued onto the next code (术28.6x00x005 ...)
                stats.add("continuation_lines", ln.file, 1)
                recs = recs[1:]
            for code, _ in recs:
                if not code:
                    problems.append(f"{ln.where}: cannot read a code in {ln.text[:60]!r}")
                else:
                    target.append((code, ln.where))
            last = "code"
            continue
        # A name (of a code, an ADRG or MDC header) broken across lines: allowed only after such a record and only
        # when it cannot be an unknown section marker.
        if last in ("code", "header") and not re.search(r"包含|入组|：$|^手术表|^和$", key) \
                and not CODE_AT.search(ln.text):
            stats.add("continuation_lines", ln.file, 1)
            continue
        problems.append(f"{ln.where}: unclassified line {ln.text[:80]!r} (after {last or 'start'}"
                        f"{', in ' + target_name if target_name else ''})")
    log.append(f"4_ADRG_DETAIL.txt: {len(mdc_order)} MDC headers, {len(principal)} 主诊表, {len(sites)} MDCZ sites, "
               f"{len(rules)} ADRG rules")
    return mdc_order, principal, sites, rules


def build_logic(rule: AdrgRule, scheme: str, problems: list[str]) -> tuple[str, str]:
    """The ADRG's formula and where it came from ('text' / 'sections' / 'override: reason')."""
    override = LOGIC_OVERRIDES.get(scheme, {}).get(rule.adrg)
    if override:
        return render_logic(parse_logic(override[0])), "override: " + override[1]
    if rule.formula:
        try:
            return translate_formula("或".join(f.removeprefix("或") for f in rule.formula)), "formula"
        except ValueError as e:
            problems.append(f"{rule.where}: {rule.adrg}: cannot translate formula {rule.formula}: {e}")
            return "", ""
    if not rule.sections:
        problems.append(f"{rule.where}: {rule.adrg} has no rule (no list, no formula, no override)")
        return "", ""
    text = rule.sections[0][0]
    for name, conn in rule.sections[1:]:
        text += f" {conn} {name}"
    return render_logic(parse_logic(text)), "sections"


# ----------------------------------------------------------------------------------------------------------------
# 5_MCC, 6_CC, 7_CCE (rule text) and lists/*.dat


HEADER_5_6 = "疾病编码 疾病名称 排除内容"


def parse_cc_text(lines: list[Line], stats: Stats, problems: list[str]) -> list[tuple[str, str, str]]:
    """5_MCC.txt / 6_CC.txt -> (code, table, where) with table = last number of 表 7-N / 表 2-3-N."""
    records: list[list[str]] = []  # [code, text, where]
    for ln in lines:
        text = ln.text
        m = re.match(r"^([0-9]{1,5})(\s+|$)", text)
        if m and not CODE_AT.match(text):
            stats.add("page_numbers", ln.file, 1)
            text = text[m.end():]
        if HEADER_5_6 in text:
            stats.add("repeated_headers", ln.file, text.count(HEADER_5_6))
            text = text.replace(HEADER_5_6, " ").strip()
        if not text:
            continue
        if not records and (re.match(r"^[0-9]+、", text) or re.match(r"^表\s*[0-9-]+\s+\S+.*（(MCC|CC)）$", text)):
            stats.add("repeated_headers", ln.file, 1)  # titles before the first record
            continue
        for code, rest in split_records(Line(ln.file, ln.no, text), stats):
            if code:
                records.append([code, rest, ln.where])
            elif records:
                records[-1][1] += rest
                stats.add("continuation_lines", ln.file, 1)
            else:
                problems.append(f"{ln.where}: unclassified line {text[:80]!r}")
    out = []
    for code, rest, where in records:
        if re.search(r"\s无$", " " + rest):  # no exclusion table: the code always counts
            out.append((code, "", where))
            continue
        m = TABLE_REF.search(rest)
        if not m:
            problems.append(f"{where}: no exclusion table (表 ...) for {code} in {rest[:60]!r}")
            continue
        out.append((code, re.sub(r"\s+", "", m.group(1)).split("-")[-1], where))
    return out


CCE_TOKEN = re.compile(rf"表\s*(?:[0-9]+\s*-\s*)*[0-9]+(?=\s|$)|包含以下主要诊断："
                       rf"|(?<![A-Za-z0-9.+*\-])(?:{DX_RE})(?=\s|$)")


def parse_cce_text(lines: list[Line], stats: Stats, problems: list[str]) -> list[tuple[str, str, str]]:
    """7_CCE.txt -> (table, code, where). A line may hold a page number, several records, a 表 header and its
    包含以下主要诊断： marker run together: it is read as a stream of those tokens, text between them being names."""
    out = []
    table = None
    last_code = False
    for ln in lines:
        text = ln.text
        m = re.match(r"^([0-9]{1,5})(\s+|$)", text)
        if m:
            stats.add("page_numbers", ln.file, 1)
            text = text[m.end():]
        if not text:
            continue
        if table is None and re.match(r"^[0-9]+、", text):
            stats.add("repeated_headers", ln.file, 1)
            continue
        tokens = list(CCE_TOKEN.finditer(text))
        head = text[:tokens[0].start()].strip() if tokens else text
        if head:
            if last_code and not re.search(r"包含|：$", head):
                stats.add("continuation_lines", ln.file, 1)
            else:
                problems.append(f"{ln.where}: unclassified text {head[:80]!r}")
                continue
        codes = 0
        for tok in tokens:
            t = tok.group(0)
            if t.startswith("表"):
                table, last_code = re.sub(r"\s+", "", t[1:]).split("-")[-1], False
            elif t == "包含以下主要诊断：":
                last_code = False
            elif table is None:
                problems.append(f"{ln.where}: code {t} before any 表")
            else:
                out.append((table, t, ln.where))
                last_code, codes = True, codes + 1
        if len(tokens) > 1:
            stats.add("split_lines", ln.file, 1)
            stats.add("split_records", ln.file, codes)
    return out


def read_dat(path: Path, problems: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for n, raw in enumerate(path.read_bytes().decode("utf-8-sig").split("\n"), start=1):
        raw = raw.strip()
        if not raw:
            continue
        a, _, b = raw.partition(" ")
        if not a or not b.strip():
            problems.append(f"{path.name}:{n}: cannot parse {raw!r}")
            continue
        out.append((a, b.strip(), f"{path.name}:{n}"))
    return out


# ----------------------------------------------------------------------------------------------------------------
# DRG severities and the conditions in names


def drg_condition(name: str) -> dict:
    """Age / length-of-stay conditions written in a DRG name (Beijing): {} when none."""
    n = nfkc(name)
    cond: dict = {}
    if m := re.search(r"小于等于([0-9]+)岁", n):
        cond["age_years_max"] = int(m.group(1))
    parts = n.split(",")  # NFKC turns ， into ,
    for p in parts[1:]:
        p = p.strip()
        if m := re.fullmatch(r"([0-9]+)-([0-9]+)天", p):
            cond.update(los_days_min=int(m.group(1)), los_days_max=int(m.group(2)))
        elif m := re.fullmatch(r"([0-9]+)天及以上", p):
            cond.update(los_days_min=int(m.group(1)))
        elif m := re.fullmatch(r"([0-9]+)天以上", p):
            cond.update(los_days_min=int(m.group(1)) + 1)
        elif m := re.fullmatch(r"([0-9]+)天以内", p):
            cond.update(los_days_max=int(m.group(1)))
        elif m := re.fullmatch(r"([0-9]+)天", p):
            cond.update(los_days_min=int(m.group(1)), los_days_max=int(m.group(1)))
        else:
            continue
        cond["text"] = p
    return cond


def drg_severities(drgs: list[tuple[str, str, str]], problems: list[str],
                   condition: Callable[[str], dict] = drg_condition) -> dict[str, tuple[str, dict]]:
    """drg -> (severity, condition). 伴并发症或合并症 is cc where the same ADRG (and the same age / stay condition)
    also has an MCC group, else cc_or_mcc (the two-way split). `condition` reads a name's condition (default
    drg_condition); when the name's last part is that condition's `text` (3.0: 癫痫,伴严重合并症或并发症,大于等于70岁)
    the severity phrase is the part before it."""
    raw: dict[str, tuple[str, str, dict]] = {}
    for code, name, where in drgs:
        cond = condition(name)
        parts = [p.strip() for p in nfkc(name).split(",")]
        if len(parts) > 2 and cond.get("text") == parts[-1]:
            parts = parts[:-1]
        last = parts[-1]
        sev = next((s for p, s in SEVERITY_PHRASES if last == p), None)
        if sev is None:
            if code[3] == "9" or cond:
                sev = "all"
            else:
                problems.append(f"{where}: cannot read the severity of {code} {name!r}")
                continue
        group = (code[:3] + "|" + nfkc(name).split(",")[0] + "|" + cond.get("text", "")
                 + str(cond.get("age_years_max"))
                 + "".join(f"|{k}={cond[k]}" for k in ("age_years_min", "procedures") if k in cond))
        raw[code] = (sev, group, cond)
    has_mcc = {g for s, g, _ in raw.values() if s == "mcc"}
    out = {}
    for code, (sev, group, cond) in raw.items():
        if sev == "cc_or_mcc" and group in has_mcc:
            sev = "cc"
        out[code] = (sev, cond)
    expected = {"1": {"mcc"}, "3": {"cc", "cc_or_mcc"}, "5": {"none", "no_mcc"}, "9": {"all"}}
    for code, name, where in drgs:
        if code in out and code[3] in expected and out[code][0] not in expected[code[3]]:
            problems.append(f"{where}: {code} severity {out[code][0]} does not fit suffix {code[3]} ({name})")
    return out


def newborn_bounds(name: str) -> dict:
    """Birth weight (g) and age (days) bounds written in an MDCP ADRG name; inclusive min/max."""
    n = nfkc(name).replace(" ", "")
    out: dict = {}
    # 1.1 / 2.0 write 出生体重 (birth weight), 3.0 入院体重 (weight on admission: PS1 入院体重＜1000g, PS5 ≥2500g)
    if m := re.search(r"(?:出生|入院)体重<([0-9]+)g", n):
        out["weight_g_max"] = int(m.group(1)) - 1
    if m := re.search(r"(?:出生|入院)体重([0-9]+)-([0-9]+)g", n):
        out.update(weight_g_min=int(m.group(1)), weight_g_max=int(m.group(2)))
    if m := re.search(r"(?:出生|入院)体重>([0-9]+)g", n):
        out["weight_g_min"] = int(m.group(1)) + 1
    if m := re.search(r"(?:出生|入院)体重≥([0-9]+)g", n):
        out["weight_g_min"] = int(m.group(1))
    if m := re.search(r"([0-9]+)天≤出生年龄<1周岁", n):
        out.update(age_days_min=int(m.group(1)), age_days_max=364)
    elif m := re.search(r"出生年龄<([0-9]+)天", n):
        out["age_days_max"] = int(m.group(1)) - 1
    return out


# ----------------------------------------------------------------------------------------------------------------
# special_rules.toml (written by hand so that every value keeps a comment; checked with tomllib)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return tomli_w.dumps({"x": v})[4:].strip()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def special_rules_text(scheme: str, adrg_rows: dict[str, list[str]], drg_info: dict, principal: dict,
                       rules: dict[str, AdrgRule], sites: dict[str, list[str]], ventilation_adrg: str = "AH1",
                       source: str | None = None, ventilation_as_procedure: bool = False,
                       files: dict[str, str] | None = None, built_by: str = "tools/build_drg_tables.py",
                       ventilation_comment: str = "",
                       extra_tables: list[tuple[str, list[tuple[str, object, str]], str, str]] | None = None,
                       conditions_comment: list[str] | None = None,
                       condition_source: Callable[[str], str] | None = None) -> str:
    """special_rules.toml. `files` names the source files the comments cite, by role (RULE_FILE_ROLES: the 1.1
    rule text's names by default). `extra_tables` (name, items, source, comment) are written after [qy];
    `conditions_comment` replaces the comment above the [drg_conditions.*] tables and `condition_source(drg)`
    their `source` (3.0)."""
    f = {**RULE_FILE_ROLES, **(files or {})}
    out: list[str] = [f"# Special (free-text) rules of {scheme}, encoded by {built_by}.",
                      "# Every table names its source: a rule file and the section / name the values come from.", ""]

    def table(name: str, items: list[tuple[str, object, str]], source: str, comment: str = "") -> None:
        out.append(f"[{name}]")
        if comment:
            out.extend(f"# {c}" for c in comment.split("\n"))
        for k, v, c in items:
            out.append(f"{k} = {toml_value(v)}" + (f"  # {c}" if c else ""))
        out.append(f"source = {toml_value(source)}")
        out.append("")

    table("pre_mdc", [("order", ["A", "P", "Y", "Z"], "tried in this order before the principal-diagnosis MDC")],
          "CHS-DRG 1.1 分组方案 (先期分组 MDCA, MDCP, MDCY, MDCZ); docs/domain.md §5; not in the rule text")

    # Ventilation (1.1 AH1, 2.0 AH2): the hours are only in the ADRG's name
    vent = adrg_rows.get(ventilation_adrg)
    hours = None
    if vent:
        m = re.search(r"≥\s*([0-9]+)\s*小时", vent[2])
        hours = int(m.group(1)) if m else None
    vent_codes = sorted({c for lst in rules[ventilation_adrg].lists.values() for c, _ in lst
                         if c.startswith("96.72")}) if ventilation_adrg in rules else []
    table("ventilation", [("adrg", ventilation_adrg, vent[2] if vent else ""),
                          ("hours_min", hours, "invasive ventilation of at least this many hours"),
                          ("procedures", vent_codes, f"呼吸机治疗[大于等于 96 小时] in {ventilation_adrg}'s lists"),
                          *([("mode", "procedure", "recorded hours >= hours_min count as the first of `procedures` "
                                                   "(appended to the case's procedures); the ADRG's formula decides")]
                            if ventilation_as_procedure else [])],
          f"{source}: {ventilation_adrg} name and lists (logic in adrg.csv)" if source else
          f"{f['adrg']} {ventilation_adrg} name; {f['detail']} {ventilation_adrg} lists (logic in adrg.csv)",
          ventilation_comment)

    # Newborns (MDCP)
    p_adrgs = [a for a in adrg_rows if a.startswith("P")]
    table("mdcp", [("age_days_max", 28, "a newborn: age < 29 days (出生年龄＜29天)"),
                   ("infant_age_days_max", 364, "an infant (PV1 29天≤出生年龄＜1周岁) with age in years 0 or missing "
                                                "also enters MDCP"),
                   ("adrgs_with_bounds", [a for a in p_adrgs if newborn_bounds(adrg_rows[a][2])], "")],
          f"{f['adrg']} MDCP ADRG names (PB1/PC1/PJ1 新生儿（出生年龄＜29天）; PV1 29天≤出生年龄＜1周岁)",
          "Bounds are inclusive integers: weight in grams, age in days.")
    for a in p_adrgs:
        b = newborn_bounds(adrg_rows[a][2])
        if b:
            table(f"mdcp.adrg.{a}", [(k, v, "") for k, v in sorted(b.items())],
                  f"{f['adrg']} {a} {adrg_rows[a][2]}")

    # MDCY
    ylists = {a: sorted(r.lists) for a, r in rules.items() if a.startswith("Y")}
    table("mdcy", [("principal_table", "Y", "mdc_principal.csv rows with mdc = Y (MDCY 主诊表)"),
                   ("secondary_lists", [f"{a}:{n}" for a in sorted(ylists) for n in ylists[a] if n != "dx"],
                    "ADRG lists (adrg_codes.csv) that also accept a secondary diagnosis")],
          f"{f['detail']} MDCY 主诊表 / 诊断表 and the YC1/YR1/YR2 sections")

    # MDCZ
    table("mdcz", [("sites", [s for s in MDCZ_SITES if s in sites], "site lists in mdcz_sites.csv, official order"),
                   ("min_sites", 2, "多发严重创伤: diagnoses in at least 2 different sites"),
                   ("principal_table", "Z", "mdc_principal.csv rows with mdc = Z (the union of the site lists)"),
                   ("no_surgery_adrg", "ZZ1", "符合 MDCZ 主诊表，且无手术")],
          f"{f['detail']} MDCZ 主诊表 site lists and ZZ1")

    # Sex
    table("sex", [("male_only", ["M"], "MDCM 男性生殖系统疾病及功能障碍"),
                  ("female_only", ["N"], "MDCN 女性生殖系统疾病及功能障碍")], f"{f['mdc']} MDC names")

    table("options", [("cc_only_in_x1_x5_split", "x1",
                       "x1 or x5 for a case with a CC but no MCC in an ADRG split only into x1 / x5")],
          "project decision from real data (cases/grouped_cases_chs_drg_1.1.csv)",
          "In the real insurer data 819 of 819 such cases are paid as x1. DRGs named 不伴严重并发症或合并症\n"
          "(severity no_mcc, Beijing) settle this in the table itself.")

    table("qy", [("enabled", False, f"the national DRG list ({f['drg']}) has no xQY group; a city that pays them "
                                     "(8 of 27 published weight tables list BQY ... ZQY) sets true"),
                 ("suffix", "QY", "<MDC letter>QY, e.g. BQY"),
                 ("procedure_kinds", ["手术"], "kinds (grouper_tables/codes icd9 `kind`) that make a procedure an "
                                               "operating-room procedure for this rule"),
                 ("rule", "a principal procedure of those kinds, when no surgical or non-OR ADRG of the MDC takes the "
                          "case (tried before the medical ADRGs)", "")],
          "CHS-DRG 1.1 分组方案 (歧义组 QY, 与主要诊断无关的手术); docs/domain.md §5; not in the rule text")

    for name, items, src, comment in extra_tables or []:
        table(name, items, src, comment)

    conds = {d: c for d, (s, c) in drg_info.items() if c}
    if conds:
        if conditions_comment is None:
            out.append(f"# DRG-level conditions read from DRG names ({f['drg']}): age in years, length of stay in "
                       "days,")
            out.append("# inclusive bounds; 'N天以上' read as > N, 'N天及以上' as >= N, 'N天以内' as <= N. "
                       "Where bands touch")
            out.append("# (Beijing RE14 7-14天 / RE16 7天以内) try the DRGs in table order. "
                       "A DRG of the same ADRG without a")
            out.append("# condition takes the cases that no conditioned DRG takes (Beijing IT21/IT25: age > 6).")
        else:
            out.extend(f"# {c}" for c in conditions_comment)
        out.append("")
        for d in sorted(conds):
            c = conds[d]
            table(f"drg_conditions.{d}", [(k, v, "") for k, v in sorted(c.items())],
                  condition_source(d) if condition_source else f"{f['drg']} {d} name")
    text = "\n".join(out).rstrip("\n") + "\n"
    tomllib.loads(text)  # must be valid TOML
    return text


# ----------------------------------------------------------------------------------------------------------------
# Writing


def csv_bytes(header: list[str], rows: list[list]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_tables(out: Path, log: list[str], mdc_names: list[tuple[str, str]], principal_rows, site_rows, adrg_out,
                 code_rows, drg_out, mcc: dict, cc: dict, cce, or_codes, **extra: tuple[list[str], list]) -> list[dict]:
    """Write the format's CSV tables (grouper_tables/README.md) in a stable order, plus `extra` name -> (header,
    rows); returns their manifest entries (file, rows, sha256). `mdc_names` is (mdc, name) in official order."""
    order_of = {m: i for i, (m, _) in enumerate(mdc_names)}
    tables: dict[str, tuple[list[str], list]] = {
        "mdc.csv": (["mdc", "name", "order"], [[m, n, i + 1] for i, (m, n) in enumerate(mdc_names)]),
        "mdc_principal.csv": (["mdc", "code"], sorted(principal_rows, key=lambda r: (order_of[r[0]], r[1]))),
        "mdcz_sites.csv": (["site", "code"], sorted(site_rows, key=lambda r: (MDCZ_SITES.index(r[0]), r[1]))),
        "adrg.csv": (["adrg", "mdc", "name", "order", "kind", "logic"], adrg_out),
        "adrg_codes.csv": (["adrg", "list", "code"], sorted(code_rows)),
        "drg.csv": (["drg", "adrg", "name", "suffix", "severity"], sorted(drg_out)),
        "mcc.csv": (["code", "exclusion_table"], sorted([c, t] for c, t in mcc.items())),
        "cc.csv": (["code", "exclusion_table"], sorted([c, t] for c, t in cc.items())),
        "cc_exclusions.csv": (["exclusion_table", "code"], [list(r) for r in cce]),
        "or_procedures.csv": (["code"], [[c] for c in or_codes]),
        **extra,
    }
    outputs = []
    for name, (header, rows) in tables.items():
        data = csv_bytes(header, [list(r) for r in rows])
        write(out / name, data)
        outputs.append({"file": name, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()})
        log.append(f"wrote {name}: {len(rows)} rows")
    return outputs


def kind_of(adrg: str) -> str:
    c = adrg[1]
    return "surgical" if "A" <= c <= "J" else "non_or" if "K" <= c <= "Q" else "medical"


# ----------------------------------------------------------------------------------------------------------------
# Build


def clean_codes(pairs: list[tuple[str, str]], system: str, what: str, stats: Stats, problems: list[str]
                ) -> list[tuple[str, str]]:
    """Normalise (code, where) pairs; shape errors become problems."""
    codes = [c for c, _ in pairs]
    norm = normalise(codes, system)
    ok = shape_ok(norm, system)
    out = []
    for (c, where), n, good in zip(pairs, norm, ok):
        if not good:
            problems.append(f"{where}: {what}: invalid {system} code {c!r}")
            continue
        if n != c:
            stats.normalised_codes += 1
        out.append((n, where))
    return out


def build(scheme: str, src: Path, out: Path, or_file: Path | None = None, effective_date: str | None = None
          ) -> list[str]:
    rules_dir = src / "rules"
    if not rules_dir.is_dir():
        raise BuildError(f"rules folder not found: {rules_dir}")
    problems: list[str] = []
    warnings: list[str] = []
    log: list[str] = [f"scheme {scheme} from {src}"]
    stats = Stats()
    lines = {f: read_lines(rules_dir / f, stats) for f in RULE_FILES}
    lists_dir = src / "lists"
    has_lists = all((lists_dir / f).is_file() for f in LIST_FILES)

    # -- MDC, ADRG, DRG
    mdc_rows = read_headers(lines["1_MDC.txt"], r"^MDC([A-Z])\s*(\S.*)$", problems)
    mdcs = {m: n for m, n, _ in mdc_rows}
    adrg_list = read_headers(lines["2_ADRG.txt"], r"^([A-Z]{2}[0-9])\s+(\S.*)$", problems)
    adrg_names = {a: n for a, n, _ in adrg_list}
    drg_list = read_headers(lines["3_DRG.txt"], r"^([A-Z]{2}[0-9][0-9A-Z])\s+(\S.*)$", problems)
    for a, _, where in adrg_list:
        if a[0] not in mdcs:
            problems.append(f"{where}: ADRG {a} has no MDC{a[0]} in 1_MDC.txt")
    for d, _, where in drg_list:
        if d[:3] not in adrg_names:
            problems.append(f"{where}: DRG {d} has no ADRG {d[:3]} in 2_ADRG.txt")
    counts = (len(mdc_rows), len(adrg_list), len(drg_list))
    log.append(f"counts: {counts[0]} MDC, {counts[1]} ADRG, {counts[2]} DRG")
    expected = SCHEME_META.get(scheme, (None, None))[1]
    if expected and counts != expected:
        problems.append(f"counts {counts} differ from the expected {expected} for {scheme}")
    if has_lists:
        dat = {c: n for c, n, _ in read_dat(lists_dir / "DRG.dat", problems)}
        txt = {c: n for c, n, _ in drg_list}
        if set(dat) != set(txt):
            problems.append(f"lists/DRG.dat and 3_DRG.txt differ in codes: {sorted(set(dat) ^ set(txt))[:20]}")
        names_differ = sorted(c for c in dat if c in txt and nfkc(dat[c]) != nfkc(txt[c]))
        log.append(f"lists/DRG.dat: {len(dat)} DRGs, same codes as 3_DRG.txt; names differ (after NFKC) for "
                   f"{len(names_differ)}: {', '.join(names_differ) or '-'}")

    # -- ADRG detail
    mdc_order, principal, sites, rules = parse_detail(lines["4_ADRG_DETAIL.txt"], mdcs, adrg_names, stats,
                                                      problems, log)
    if mdc_order != [m for m, _, _ in mdc_rows]:
        problems.append(f"4_ADRG_DETAIL.txt MDC order {mdc_order} differs from 1_MDC.txt")
    missing = [a for a in adrg_names if a not in rules]
    if missing:
        problems.append(f"4_ADRG_DETAIL.txt has no rule for ADRGs {missing}")
    order_detail = list(rules)
    if order_detail != [a for a in adrg_names if a in rules]:
        warnings.append("ADRG order in 4_ADRG_DETAIL.txt differs from 2_ADRG.txt; order = 4_ADRG_DETAIL")

    # principal tables, sites, ADRG lists: normalise and check
    principal_rows: set[tuple[str, str]] = set()
    for m, pairs in principal.items():
        for c, _ in clean_codes(pairs, "icd10", f"MDC{m} 主诊表", stats, problems):
            principal_rows.add((m, c))
    site_rows: set[tuple[str, str]] = set()
    for s, pairs in sites.items():
        for c, _ in clean_codes(pairs, "icd10", f"MDCZ {s}", stats, problems):
            site_rows.add((s, c))
            principal_rows.add(("Z", c))
    if sites and set(sites) != set(MDCZ_SITES):
        problems.append(f"MDCZ sites {sorted(sites)} differ from {MDCZ_SITES}")
    code_rows: set[tuple[str, str, str]] = set()
    adrg_out = []
    kind_mismatch = []
    special = []
    anchored: list[str] = []
    order = 0
    for a in order_detail:
        r = rules[a]
        order += 1
        for name, pairs in r.lists.items():
            system = "icd10" if name in DX_LISTS else "icd9"
            if not pairs:
                problems.append(f"{r.where}: {a} list {name} is empty")
            for c, _ in clean_codes(pairs, system, f"{a} {name}", stats, problems):
                code_rows.add((a, name, c))
        logic, how = build_logic(r, scheme, problems)
        if not logic:
            continue
        lists = set(r.lists)
        anchor = anchor_lists(a, lists)
        if anchor:
            # The principal procedure (主要手术) decides a surgical ADRG: one whose rule combines procedure lists
            # (手术表 N, 同时包含 … 和 …) is entered only when the principal procedure is in one of them; the other
            # lists may be met by secondary procedures. Real 1.1 cases: C50.900 with principal 85.2301 (JB2) and
            # a secondary 85.4301 (JA2 手术表 1) is paid JB2; with principal 85.2200 (JA2 手术表 2), JA2.
            code_rows.update((a, "px", c) for adrg, name, c in list(code_rows) if adrg == a and name in anchor)
            logic = render_logic(parse_logic(f"px & ({logic})"))
            how += f"; px = {' + '.join(sorted(anchor))}: the principal procedure anchors the ADRG"
            lists.add("px")
            anchored.append(a)
        names = logic_names(parse_logic(logic))
        for n in sorted(names - lists - BUILTINS):
            problems.append(f"{r.where}: {a} logic {logic!r} uses {n}, which has no code list")
        for n in sorted(lists - names):
            problems.append(f"{r.where}: {a} list {n} is not used by its logic {logic!r}")
        if not lists and not (names & BUILTINS):
            problems.append(f"{r.where}: {a} has no code list and no special rule")
        if not lists:
            special.append(f"{a} {logic} ({how})")
        has_px = bool(names & {"px", "any_px", "px_1", "px_2", "all_or"} or any(n.startswith("table_") for n in names))
        k = kind_of(a)
        if (k == "medical") == has_px and not (k == "medical" and a.startswith("Z")):
            kind_mismatch.append(f"{a} ({k}: {logic})")
        if how != "sections" or logic not in ("dx", "px"):
            log.append(f"  logic {a}: {logic}   [{how}]")
        adrg_out.append([a, a[0], adrg_names[a], order, k, logic])
    if kind_mismatch:
        warnings.append(f"ADRG kind (second letter) vs procedure conditions in the logic: {', '.join(kind_mismatch)}")
    orphans = orphan_principals(principal_rows, code_rows)
    principal_rows |= orphans
    log.append(f"principal diagnoses in no MDC table but in an ADRG's dx list of one MDC, added to that MDC: "
               f"{len(orphans)} {sorted(orphans)[:10]}")
    log.append(f"ADRGs without code lists (special free-text rules): {'; '.join(special) or '-'}")

    # -- DRG
    drg_info = drg_severities(drg_list, problems)
    drg_out = [[d, d[:3], n, d[3], drg_info[d][0]] for d, n, _ in drg_list if d in drg_info]
    for a in adrg_names:
        if not any(d[:3] == a for d, _, _ in drg_list):
            problems.append(f"2_ADRG.txt: ADRG {a} has no DRG")
    sev_counts: dict[str, int] = {}
    for row in drg_out:
        sev_counts[row[4]] = sev_counts.get(row[4], 0) + 1
    log.append("DRG severities: " + ", ".join(f"{k} {v}" for k, v in sorted(sev_counts.items())))

    # -- MCC / CC / exclusions
    mcc_text = parse_cc_text(lines["5_MCC.txt"], stats, problems)
    cc_text = parse_cc_text(lines["6_CC.txt"], stats, problems)
    cce_text = parse_cce_text(lines["7_CCE.txt"], stats, problems)

    def cleaned_pairs(rows, code_idx, table_idx, what):
        pairs = [(r[code_idx], r[2]) for r in rows]
        tables = [r[table_idx] for r in rows]
        norm = normalise([p[0] for p in pairs], "icd10")
        ok = shape_ok(norm, "icd10")
        out_rows = []
        for (c, where), n, t, good in zip(pairs, norm, tables, ok):
            if not good:
                problems.append(f"{where}: {what}: invalid icd10 code {c!r}")
                continue
            stats.normalised_codes += n != c
            out_rows.append((n, t, where))
        return out_rows

    mcc_t = cleaned_pairs(mcc_text, 0, 1, "MCC")
    cc_t = cleaned_pairs(cc_text, 0, 1, "CC")
    cce_t = cleaned_pairs([(c, t, w) for t, c, w in cce_text], 0, 1, "CC exclusion")
    if has_lists:
        mcc_l = cleaned_pairs(read_dat(lists_dir / "MCC.dat", problems), 0, 1, "MCC.dat")
        cc_l = cleaned_pairs(read_dat(lists_dir / "CC.dat", problems), 0, 1, "CC.dat")
        cce_l = cleaned_pairs(read_dat(lists_dir / "CCE.dat", problems), 0, 1, "CCE.dat")
        for what, a_rows, b_rows in (("MCC", mcc_l, mcc_t), ("CC", cc_l, cc_t), ("CC exclusions", cce_l, cce_t)):
            a_set = {(c, "" if t == "999" else t) for c, t, _ in a_rows}
            b_set = {(c, t) for c, t, _ in b_rows}
            only_l, only_t = sorted(a_set - b_set), sorted(b_set - a_set)
            log.append(f"cross-check {what}: lists/ {len(a_set)} rows, rule text {len(b_set)} rows; only in lists/ "
                       f"{len(only_l)}{': ' + str(only_l[:10]) if only_l else ''}; only in rule text {len(only_t)}"
                       f"{': ' + str(only_t[:10]) if only_t else ''}")
        mcc_use, cc_use, cce_use, cc_source = mcc_l, cc_l, cce_l, "lists/MCC.dat, lists/CC.dat, lists/CCE.dat"
    else:
        mcc_use, cc_use, cce_use, cc_source = mcc_t, cc_t, cce_t, "rules/5_MCC.txt, 6_CC.txt, 7_CCE.txt"

    def unique_code_table(rows, what):
        seen: dict[str, str] = {}
        for c, t, where in rows:
            t = "" if t == "999" else t  # lists/ write 999 for the rule text's 无: no exclusion table
            if c in seen and seen[c] != t:
                problems.append(f"{where}: {what} code {c} in exclusion tables {seen[c]} and {t}")
            seen.setdefault(c, t)
        return seen

    mcc = unique_code_table(mcc_use, "MCC")
    cc = unique_code_table(cc_use, "CC")
    both = sorted(set(mcc) & set(cc))
    if both:
        warnings.append(f"{len(both)} codes are on both the MCC and the CC list (kept in both): {both[:10]}")
    cce = sorted({(t, c) for c, t, _ in cce_use}, key=lambda r: (int(r[0]), r[1]))
    cce_tables = {t for t, _ in cce}
    for what, table_map in (("MCC", mcc), ("CC", cc)):
        missing_t = sorted({t for t in table_map.values() if t and t not in cce_tables}, key=int)
        if missing_t:
            problems.append(f"{what} refers to exclusion tables missing from the exclusion list: {missing_t}")
    log.append(f"MCC/CC/exclusions from {cc_source}: {len(mcc)} MCC, {len(cc)} CC, {len(cce)} exclusion rows in "
               f"{len(cce_tables)} tables")

    # -- OR procedures
    if or_file is None:
        or_file = lists_dir / OR_LIST
        if not or_file.is_file():
            or_file = src.parent / DEFAULT_SCHEME / "lists" / OR_LIST
    if not or_file.is_file():
        raise BuildError(f"OR procedure list not found: {or_file} (use --or-procedures)")
    or_pairs = [(c, w) for c, _, w in read_dat(or_file, problems)]
    or_codes = sorted({c for c, _ in clean_codes(or_pairs, "icd9", or_file.name, stats, problems)})
    or_borrowed = or_file.resolve().parent.parent != src.resolve()

    # -- dictionary coverage (warn only: the rule tables may use codes outside the 医保版 2.0 dictionary)
    icd10, icd9 = load_icd10(), load_icd9()
    dx_codes = sorted({r[2] for r in code_rows if r[1] in DX_LISTS} | {c for _, c in principal_rows}
                      | set(mcc) | set(cc) | {c for _, c in cce})
    px_codes = sorted({r[2] for r in code_rows if r[1] not in DX_LISTS} | set(or_codes))
    dx_missing = [c for c, ok in zip(dx_codes, icd10.contains(pa.array(dx_codes, pa.string()))) if not ok]
    px_missing = [c for c, ok in zip(px_codes, icd9.contains(pa.array(px_codes, pa.string()))) if not ok]
    warnings.append(f"{len(dx_missing)} of {len(dx_codes)} distinct diagnosis codes and {len(px_missing)} of "
                    f"{len(px_codes)} distinct procedure codes are not in the 医保版 2.0 dictionaries (kept); e.g. "
                    f"{dx_missing[:5]} {px_missing[:5]}")

    log.append("cleaning:")
    log.extend(stats.describe())
    if problems:
        raise BuildError("\n".join([*problems, f"{len(problems)} problems"]))

    # -- write
    outputs = write_tables(out, log, [(m, n) for m, n, _ in mdc_rows], principal_rows, site_rows, adrg_out,
                           code_rows, drg_out, mcc, cc, cce, or_codes)
    adrg_rows = {a: [a, a[0], adrg_names[a]] for a in adrg_names}
    special_text = special_rules_text(scheme, adrg_rows, drg_info, principal, rules, sites).encode("utf-8")
    write(out / "special_rules.toml", special_text)
    outputs.append({"file": "special_rules.toml", "sha256": hashlib.sha256(special_text).hexdigest()})
    shutil.copyfile(src / "LICENSE", out / "LICENSE")
    sources = [{"file": f"rules/{f}", "sha256": sha256_file(rules_dir / f)} for f in RULE_FILES]
    if has_lists:
        sources += [{"file": f"lists/{f}", "sha256": sha256_file(lists_dir / f)} for f in LIST_FILES]
    # Named by scheme, not by where the reference folder sits on this machine: the sha256 pins the content.
    or_label = f"lists/{OR_LIST}" if not or_borrowed else f"{or_file.parent.parent.name}/lists/{or_file.name}"
    sources.append({"file": or_label, "sha256": sha256_file(or_file)})
    sources.append({"file": "LICENSE", "sha256": sha256_file(src / "LICENSE")})
    notes = [f"MCC / CC / exclusion tables from {cc_source}"
             + ("; cross-checked against the rule text 5/6/7 (differences printed by the build)" if has_lists else
                " (no clean lists/ for this scheme: parsed from the rule text, run-together records split)")]
    if anchored:
        notes.append(f"ADRGs {', '.join(anchored)} combine procedure lists (手术表 N / 同时包含): their logic is "
                     "`px & (…)` with `px` = the union of those lists, so the principal procedure anchors them")
    if orphans:
        notes.append(f"mdc_principal.csv adds {len(orphans)} principal diagnoses that no MDC 主诊表 in "
                     "4_ADRG_DETAIL.txt lists but the dx list of an ADRG of exactly one (non pre-MDC) MDC names "
                     "(e.g. L04.002 急性颈部淋巴结炎 in DZ1): the MDC tables of the PDF text miss them")
    if or_borrowed:
        notes.append(f"or_procedures.csv is a copy of the {DEFAULT_SCHEME} OR procedure list ({or_label}): this "
                     "scheme publishes none")
    manifest = {
        "version": scheme,
        "scheme": scheme,
        "effective_date": effective_date or SCHEME_META.get(scheme, ("", None))[0],
        "counts": {"mdc": counts[0], "adrg": counts[1], "drg": counts[2]},
        "built_by": "tools/build_drg_tables.py",
        "built_on": dt.date.today().isoformat(),
        "licence": LICENCE,
        "source_dir": source_dir_label(src),
        "notes": notes,
        "sources": sources,
        "outputs": outputs,
    }
    write(out / "manifest.toml", tomli_w.dumps(manifest).encode("utf-8"))
    log.append(f"wrote special_rules.toml, LICENSE, manifest.toml to {out}")
    log.extend(f"WARNING: {w}" for w in warnings)
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default=DEFAULT_SCHEME, help=f"default: {DEFAULT_SCHEME}")
    parser.add_argument("--source", type=Path, default=None, help="default: <repo>/../shared/reference/<scheme>")
    parser.add_argument("--out", type=Path, default=None, help="default: <repo>/grouper_tables/<scheme>")
    parser.add_argument("--or-procedures", type=Path, default=None, help="default: <source>/lists/SS_VALID.dat")
    parser.add_argument("--effective-date", default=None, help="for a scheme not known to the script (e.g. 2024)")
    args = parser.parse_args(argv)
    src = args.source or REPO.parent / "shared" / "reference" / args.scheme
    out = args.out or REPO / "grouper_tables" / args.scheme
    return run("build_drg_tables", lambda: build(args.scheme, src, out, args.or_procedures, args.effective_date))


if __name__ == "__main__":
    sys.exit(main())
