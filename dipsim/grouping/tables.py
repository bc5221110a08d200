"""Load a CHS-DRG scheme folder of grouper_tables/ (format: grouper_tables/README.md) into a `DrgScheme`.

The scheme keeps the rules as plain Python sets and parsed logic formulas: the reference grouper reads them as
they are, and the Numba kernel is built from the same object, so both follow one source of truth.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable
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


CC_LEVEL_NAMES = {"none": 0, "cc": 1, "mcc": 2}  # `cc_levels` of [drg_conditions]: the grouper's CC levels


def band_age(age_years: int | None, age_days: int | None) -> int | None:
    """The age in years an age band reads: age_years when recorded (>= 0), else age_days // 365 when recorded (an
    infant under one year is recorded in days: 0 years), else None (an age condition then fails)."""
    if age_years is not None and age_years >= 0:
        return age_years
    if age_days is not None and age_days >= 0:
        return age_days // 365
    return None


@dataclass(frozen=True)
class DrgBand:
    """DRGs of an ADRG that hold only under a condition written in their names: `special_rules.toml
    [drg_conditions.XXXX]` (grouper_tables/README.md). Beijing: an age or length-of-stay band (CD1D 小于等于6岁,
    RC16 2-5天); 3.0: an age band that may combine with a CC level (BV1E 伴严重合并症或并发症,大于等于70岁), a
    procedure (EB10 机器人辅助手术). Bounds are inclusive; None = open; `cc_levels` None = every level (0 none,
    1 CC, 2 MCC); `procedures` empty = no procedure condition. The band holds when every condition it has holds."""

    age_years_min: int | None
    age_years_max: int | None
    los_days_min: int | None
    los_days_max: int | None
    cc_levels: frozenset[int] | None
    procedures: frozenset[str]
    text: str
    drgs: dict[str, str]  # severity -> DRG code

    @property
    def has_age(self) -> bool:
        return self.age_years_min is not None or self.age_years_max is not None

    @property
    def has_stay(self) -> bool:
        return self.los_days_min is not None or self.los_days_max is not None

    def holds(self, age_years: int | None, los_days: int | None, cc_level: int = 0,
              procedures: Iterable[str] = ()) -> bool:
        """`age_years`: the age `band_age` gives (None: not recorded); `cc_level` the case's CC level in its ADRG;
        `procedures` all of the case's procedures."""
        if self.has_age:
            if age_years is None:
                return False
            if self.age_years_min is not None and age_years < self.age_years_min:
                return False
            if self.age_years_max is not None and age_years > self.age_years_max:
                return False
        if self.cc_levels is not None and cc_level not in self.cc_levels:
            return False
        if self.procedures and not any(p in self.procedures for p in procedures):
            return False
        if not self.has_stay:
            return True
        if los_days is None:
            return False
        los = max(los_days, 1)  # a same-day stay counts as one day (入院当天与出院当天合计一天)
        return ((self.los_days_min is None or los >= self.los_days_min)
                and (self.los_days_max is None or los <= self.los_days_max))


def _band_key(drg: str, c: dict) -> tuple:
    """A [drg_conditions] entry as the DrgBand fields before `drgs` (the DRGs of an ADRG with equal keys form one
    band)."""
    unknown = set(c) - {"age_years_min", "age_years_max", "los_days_min", "los_days_max", "cc_levels", "procedures",
                        "text", "source"}
    if unknown:
        raise ValueError(f"[drg_conditions.{drg}]: unknown keys {sorted(unknown)} (see grouper_tables/README.md)")
    levels = c.get("cc_levels")
    if levels is not None:
        bad = [v for v in levels if v not in CC_LEVEL_NAMES]
        if bad or not levels:
            raise ValueError(f"[drg_conditions.{drg}] cc_levels {levels!r}: each one of {list(CC_LEVEL_NAMES)}")
        levels = frozenset(CC_LEVEL_NAMES[v] for v in levels)
    return (c.get("age_years_min"), c.get("age_years_max"), c.get("los_days_min"), c.get("los_days_max"), levels,
            frozenset(c.get("procedures", ())), c.get("text", ""))


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
    # [list_min_count.<ADRG>]: list name -> how many of the case's codes (by position) it needs; absent = 1
    min_counts: dict[str, int] = field(default_factory=dict)


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
    # [principal_mcc] (3.0): a principal diagnosis in principal_mcc.csv gives CC level MCC in these ADRGs
    principal_mcc: frozenset[str] = frozenset()
    principal_mcc_adrgs: frozenset[str] = frozenset()

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
            band = _band_key(drg, c)
            banded[adrg].setdefault(band, {})[severity] = drg
    adrg_rows = sorted(_rows(_csv(folder, "adrg.csv"), "adrg", "mdc", "name", "kind", "logic", "order"),
                       key=lambda r: int(r[5]))
    min_counts = _min_counts(rules)
    adrgs = {
        code: Adrg(code, mdc_, name, kind, parse_logic(logic),
                   {k: frozenset(v) for k, v in lists[code].items()}, dict(drgs[code]),
                   tuple(DrgBand(*band, drgs=d) for band, d in banded[code].items()), min_counts.pop(code, {}))
        for code, mdc_, name, kind, logic, _ in adrg_rows
    }
    for a in adrgs.values():
        if set(a.min_counts) - set(a.lists):
            raise ValueError(f"[list_min_count.{a.code}]: {sorted(set(a.min_counts) - set(a.lists))} are not lists "
                             f"of {a.code}")
    principal_mcc = rules.get("principal_mcc")
    if min_counts or (principal_mcc and set(principal_mcc["adrgs"]) - set(adrgs)):
        raise ValueError(f"special_rules.toml names ADRGs the scheme lacks: [list_min_count] {sorted(min_counts)}, "
                         f"[principal_mcc] {sorted(set((principal_mcc or {}).get('adrgs', ())) - set(adrgs))}")
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
        principal_mcc=frozenset(_csv(folder, "principal_mcc.csv")["code"]) if principal_mcc else frozenset(),
        principal_mcc_adrgs=frozenset(principal_mcc["adrgs"]) if principal_mcc else frozenset(),
    )


def _min_counts(rules: dict) -> dict[str, dict[str, int]]:
    """`[list_min_count.<ADRG>] <list> = N`: ADRG -> list -> N (an int >= 1; `source` and other text skipped)."""
    out: dict[str, dict[str, int]] = {}
    for adrg, table in rules.get("list_min_count", {}).items():
        counts = {name: value for name, value in table.items() if not isinstance(value, str)}
        bad = {n: v for n, v in counts.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"[list_min_count.{adrg}]: counts must be integers >= 1, got {bad}")
        out[adrg] = counts
    return out


def scheme_folder(scheme: str, root: str | None = None) -> Path:
    """grouper_tables/<scheme>/, a CHS-DRG scheme folder (it has adrg.csv); FileNotFoundError listing the schemes
    there otherwise. A name is a folder's name, never a path (`../x`, `a/b` name no scheme): --scheme and a policy's
    payment.drg_scheme both come here."""
    parent = Path(root) if root else tables_dir()
    folder = parent / scheme
    if not scheme or scheme in (".", "..") or "/" in scheme or "\\" in scheme or not (folder / "adrg.csv").is_file():
        known = ", ".join(sorted(p.name for p in parent.iterdir() if (p / "adrg.csv").is_file()))
        raise FileNotFoundError(f"no grouper tables for {scheme!r} in {parent} (have: {known})")
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
