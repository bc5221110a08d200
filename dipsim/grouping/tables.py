"""Load a CHS-DRG scheme folder of grouper_tables/ (format: grouper_tables/README.md) into a `DrgScheme`.

The scheme keeps the rules as plain Python sets and parsed logic formulas: the reference grouper reads them as
they are, and the Numba kernel is built from the same object, so both follow one source of truth.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from dipsim.paths import tables_dir

# Logic formula AST: ("list", name) | ("and", [..]) | ("or", [..]); built-ins are list names without codes.
BUILTIN_LISTS = ("all_or", "mdcz_no_surgery")
_TOKEN = re.compile(r"\s*(?:([a-z][a-z0-9_]*)|(.))")


def parse_logic(text: str) -> tuple:
    """Parse `dx & table_1 | dx & table_2` (& binds tighter than |) into a small AST."""
    tokens = [m.group(1) or m.group(2) for m in _TOKEN.finditer(text) if (m.group(1) or m.group(2))]
    position = 0

    def take() -> str | None:
        nonlocal position
        position += 1
        return tokens[position - 1] if position <= len(tokens) else None

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def expr() -> tuple:
        terms = [term()]
        while peek() == "|":
            take()
            terms.append(term())
        return terms[0] if len(terms) == 1 else ("or", terms)

    def term() -> tuple:
        factors = [factor()]
        while peek() == "&":
            take()
            factors.append(factor())
        return factors[0] if len(factors) == 1 else ("and", factors)

    def factor() -> tuple:
        token = take()
        if token == "(":
            inner = expr()
            if take() != ")":
                raise ValueError(f"logic {text!r}: missing ')'")
            return inner
        if token is None or not re.fullmatch(r"[a-z][a-z0-9_]*", token):
            raise ValueError(f"logic {text!r}: unexpected {token!r}")
        return ("list", token)

    tree = expr()
    if position != len(tokens):
        raise ValueError(f"logic {text!r}: unexpected {tokens[position]!r}")
    return tree


def list_reads(name: str) -> str:
    """Which of a case's codes an ADRG list is matched against (grouper_tables/README.md, list names): `dx` the
    principal diagnosis (`dx`, `dx_N`), `px` the principal procedure (`px`, `main_px_N`), `any_dx` any diagnosis,
    `other_dx` a secondary diagnosis (`other_dx`, `other_dx_N`), `any_px` any procedure (`any_px`, `table_N`, and
    the pair `px_1` / `px_2` of 同时包含)."""
    if name == "px" or re.fullmatch(r"main_px_[0-9]+", name):
        return "px"
    base = re.sub(r"_[0-9]+$", "", name)
    return base if base in ("dx", "any_dx", "other_dx") else "any_px"


@dataclass(frozen=True)
class DrgBand:
    """DRGs of an ADRG that hold only for an age or length-of-stay band written in their names (Beijing:
    CD1D 小于等于6岁, RC16 2-5天): `special_rules.toml [drg_conditions.XXXX]`. Bounds are inclusive; None = open."""

    age_years_max: int | None
    los_days_min: int | None
    los_days_max: int | None
    text: str
    drgs: dict[str, str]  # severity -> DRG code

    def holds(self, age_years: int | None, los_days: int | None) -> bool:
        if self.age_years_max is not None and (age_years is None or age_years > self.age_years_max):
            return False
        if self.los_days_min is None and self.los_days_max is None:
            return True
        if los_days is None:
            return False
        los = max(los_days, 1)  # a same-day stay counts as one day (入院当天与出院当天合计一天)
        return ((self.los_days_min is None or los >= self.los_days_min)
                and (self.los_days_max is None or los <= self.los_days_max))


@dataclass(frozen=True)
class Adrg:
    code: str
    mdc: str
    name: str
    kind: str  # surgical | non_or | medical
    logic: tuple
    lists: dict[str, frozenset[str]]
    drgs: dict[str, str]  # severity -> DRG code, for DRGs without an age / stay condition
    bands: tuple[DrgBand, ...] = ()  # DRGs with one, in DRG code order: the first band that holds is used


@dataclass
class DrgScheme:
    """One CHS-DRG version: MDCs, ADRGs in official order, severity lists and the special rules."""

    name: str
    mdc_order: list[str]
    mdc_names: dict[str, str]
    principal_mdcs: dict[str, tuple[str, ...]]  # principal diagnosis -> MDCs (official order)
    adrgs: dict[str, Adrg]  # official order (dict order)
    drg_names: dict[str, str]
    mcc: dict[str, str]  # code -> exclusion table ("" = none)
    cc: dict[str, str]
    exclusions: dict[str, frozenset[str]]  # table -> principal diagnoses that cancel it
    or_procedures: frozenset[str]  # or_procedures.csv: the 全部手术 built-in (all_or)
    qy_procedures: frozenset[str]  # procedures of the [qy] procedure_kinds (手术): they make a case QY
    mdcz_sites: dict[str, str]  # diagnosis -> trauma site
    rules: dict = field(repr=False)
    invalid_principal: frozenset[str] = frozenset()  # invalid_principal.csv (2.0): not valid as principal

    def adrgs_of(self, mdc: str) -> list[Adrg]:
        return [a for a in self.adrgs.values() if a.mdc == mdc]


def _csv(folder: Path, name: str) -> dict[str, list[str]]:
    """A table's columns as lists of Python strings (every cell text; empty cells stay "")."""
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"grouper table missing: {path} (see grouper_tables/README.md)")
    with path.open(encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={n: pa.string() for n in header}, strings_can_be_null=False))
    return {n: table[n].to_pylist() for n in table.column_names}


def _rows(table: dict[str, list[str]], *names: str):
    return zip(*(table[n] for n in names))


@functools.lru_cache(maxsize=8)
def load_scheme(scheme: str = "chs-drg-1.1", root: str | None = None, qy: bool | None = None) -> DrgScheme:
    """Load grouper_tables/<scheme>/ (cached); raises FileNotFoundError naming what is missing.

    `qy` switches the xQY rule (与主要诊断无关的手术) on or off against the scheme's `[qy] enabled`; the
    returned scheme is then named e.g. `chs-drg-1.1+qy` so the two variants never share a cache entry."""
    folder = scheme_folder(scheme, root)
    mdc = _csv(folder, "mdc.csv")
    mdc_rows = sorted(_rows(mdc, "mdc", "name", "order"), key=lambda r: int(r[2]))
    order = {m: i for i, (m, _, _) in enumerate(mdc_rows)}
    principal: dict[str, list[str]] = defaultdict(list)
    for m, code in _rows(_csv(folder, "mdc_principal.csv"), "mdc", "code"):
        principal[code].append(m)
    lists: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for adrg, name, code in _rows(_csv(folder, "adrg_codes.csv"), "adrg", "list", "code"):
        lists[adrg][name].add(code)
    rules = tomllib.loads((folder / "special_rules.toml").read_text(encoding="utf-8"))
    conditions = rules.get("drg_conditions", {})
    drgs: dict[str, dict[str, str]] = defaultdict(dict)
    banded: dict[str, dict[tuple, dict[str, str]]] = defaultdict(dict)  # ADRG -> band -> severity -> DRG
    drg_table = _csv(folder, "drg.csv")
    for drg, adrg, severity in sorted(_rows(drg_table, "drg", "adrg", "severity")):
        c = conditions.get(drg)
        if c is None:
            drgs[adrg][severity] = drg
        else:
            band = (c.get("age_years_max"), c.get("los_days_min"), c.get("los_days_max"), c.get("text", ""))
            banded[adrg].setdefault(band, {})[severity] = drg
    adrg_rows = sorted(_rows(_csv(folder, "adrg.csv"), "adrg", "mdc", "name", "kind", "logic", "order"),
                       key=lambda r: int(r[5]))
    adrgs = {
        code: Adrg(code, mdc_, name, kind, parse_logic(logic),
                   {k: frozenset(v) for k, v in lists[code].items()}, dict(drgs[code]),
                   tuple(DrgBand(*band, drgs=d) for band, d in banded[code].items()))
        for code, mdc_, name, kind, logic, _ in adrg_rows
    }
    exclusions: dict[str, set[str]] = defaultdict(set)
    for table, code in _rows(_csv(folder, "cc_exclusions.csv"), "exclusion_table", "code"):
        exclusions[table].add(code)
    qy_rules = rules.get("qy", {})
    return DrgScheme(
        name=scheme_name(scheme, rules, qy),
        mdc_order=[m for m, _, _ in mdc_rows],
        mdc_names={m: n for m, n, _ in mdc_rows},
        principal_mdcs={c: tuple(sorted(ms, key=order.get)) for c, ms in principal.items()},
        adrgs=adrgs,
        drg_names=dict(_rows(drg_table, "drg", "name")),
        mcc=dict(_rows(_csv(folder, "mcc.csv"), "code", "exclusion_table")),
        cc=dict(_rows(_csv(folder, "cc.csv"), "code", "exclusion_table")),
        exclusions={k: frozenset(v) for k, v in exclusions.items()},
        or_procedures=frozenset(_csv(folder, "or_procedures.csv")["code"]),
        qy_procedures=(_procedures_of_kinds(qy_rules.get("procedure_kinds", ["手术"])) if qy_applies(rules, qy)
                       else frozenset()),
        mdcz_sites={code: site for site, code in _rows(_csv(folder, "mdcz_sites.csv"), "site", "code")},
        rules=rules,
        invalid_principal=frozenset(_csv(folder, "invalid_principal.csv")["code"])
        if (folder / "invalid_principal.csv").is_file() else frozenset(),
    )


def scheme_folder(scheme: str, root: str | None = None) -> Path:
    """grouper_tables/<scheme>/; FileNotFoundError lists the schemes there when it does not exist."""
    folder = (Path(root) if root else tables_dir()) / scheme
    if not folder.is_dir():
        known = sorted(p.name for p in folder.parent.iterdir() if (p / "adrg.csv").is_file())
        raise FileNotFoundError(f"no grouper tables for scheme {scheme!r} in {folder.parent} (have: {known})")
    return folder


def qy_applies(rules: dict, qy: bool | None) -> bool:
    """Whether the xQY rule is on: `qy` when given, else the scheme's `[qy] enabled` (default true)."""
    return rules.get("qy", {}).get("enabled", True) if qy is None else qy


def scheme_name(scheme: str, rules: dict, qy: bool | None) -> str:
    """`scheme`, or `scheme+qy` / `scheme-qy` when `qy` overrides the scheme's own `[qy] enabled`."""
    return scheme if qy is None or qy == qy_applies(rules, None) else f"{scheme}{'+qy' if qy else '-qy'}"


def _procedures_of_kinds(kinds: list[str]) -> frozenset[str]:
    """ICD-9-CM-3 医保版 2.0 codes whose kind (手术 / 介入治疗 / 治疗性操作 / 诊断性操作) is one of `kinds`."""
    from dipsim.codes import load_icd9

    dictionary = load_icd9()
    wanted = dictionary.table["kind"].isin(kinds).to_numpy()
    return frozenset(c for c, keep in zip(dictionary.codes.to_pylist(), wanted) if keep)
