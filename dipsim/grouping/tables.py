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

import pandas as pd

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


@dataclass(frozen=True)
class Adrg:
    code: str
    mdc: str
    name: str
    kind: str  # surgical | non_or | medical
    logic: tuple
    lists: dict[str, frozenset[str]]
    drgs: dict[str, str]  # severity -> DRG code


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

    def adrgs_of(self, mdc: str) -> list[Adrg]:
        return [a for a in self.adrgs.values() if a.mdc == mdc]


def _csv(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"grouper table missing: {path} (see grouper_tables/README.md)")
    return pd.read_csv(path, dtype=object, keep_default_na=False)  # Python strings: iterated below


@functools.lru_cache(maxsize=8)
def load_scheme(scheme: str = "chs-drg-1.1", root: str | None = None, qy: bool | None = None) -> DrgScheme:
    """Load grouper_tables/<scheme>/ (cached); raises FileNotFoundError naming what is missing.

    `qy` switches the xQY rule (与主要诊断无关的手术) on or off against the scheme's `[qy] enabled`; the
    returned scheme is then named e.g. `chs-drg-1.1+qy` so the two variants never share a cache entry."""
    folder = (Path(root) if root else tables_dir()) / scheme
    if not folder.is_dir():
        known = sorted(p.name for p in folder.parent.iterdir() if (p / "adrg.csv").is_file())
        raise FileNotFoundError(f"no grouper tables for scheme {scheme!r} in {folder.parent} (have: {known})")
    mdc = _csv(folder, "mdc.csv").sort_values("order", key=lambda s: s.astype(int))
    order = {m: i for i, m in enumerate(mdc["mdc"])}
    principal: dict[str, list[str]] = defaultdict(list)
    for m, code in _csv(folder, "mdc_principal.csv").itertuples(index=False):
        principal[code].append(m)
    lists: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for adrg, name, code in _csv(folder, "adrg_codes.csv").itertuples(index=False):
        lists[adrg][name].add(code)
    drgs: dict[str, dict[str, str]] = defaultdict(dict)
    drg_table = _csv(folder, "drg.csv")
    for row in drg_table.itertuples(index=False):
        drgs[row.adrg][row.severity] = row.drg
    adrg_table = _csv(folder, "adrg.csv").sort_values("order", key=lambda s: s.astype(int))
    adrgs = {
        row.adrg: Adrg(row.adrg, row.mdc, row.name, row.kind, parse_logic(row.logic),
                       {k: frozenset(v) for k, v in lists[row.adrg].items()}, dict(drgs[row.adrg]))
        for row in adrg_table.itertuples(index=False)
    }
    rules = tomllib.loads((folder / "special_rules.toml").read_text(encoding="utf-8"))
    exclusions: dict[str, set[str]] = defaultdict(set)
    for table, code in _csv(folder, "cc_exclusions.csv").itertuples(index=False):
        exclusions[table].add(code)
    qy_rules = rules.get("qy", {})
    qy_on = qy_rules.get("enabled", True) if qy is None else qy
    return DrgScheme(
        name=scheme if qy is None or qy == qy_rules.get("enabled", True) else f"{scheme}{'+qy' if qy else '-qy'}",
        mdc_order=list(mdc["mdc"]),
        mdc_names=dict(zip(mdc["mdc"], mdc["name"])),
        principal_mdcs={c: tuple(sorted(ms, key=order.get)) for c, ms in principal.items()},
        adrgs=adrgs,
        drg_names=dict(zip(drg_table["drg"], drg_table["name"])),
        mcc=dict(_csv(folder, "mcc.csv").itertuples(index=False)),
        cc=dict(_csv(folder, "cc.csv").itertuples(index=False)),
        exclusions={k: frozenset(v) for k, v in exclusions.items()},
        or_procedures=frozenset(_csv(folder, "or_procedures.csv")["code"]),
        qy_procedures=_procedures_of_kinds(qy_rules.get("procedure_kinds", ["手术"])) if qy_on else frozenset(),
        mdcz_sites={code: site for site, code in _csv(folder, "mdcz_sites.csv").itertuples(index=False)},
        rules=rules,
    )


def _procedures_of_kinds(kinds: list[str]) -> frozenset[str]:
    """ICD-9-CM-3 医保版 2.0 codes whose kind (手术 / 介入治疗 / 治疗性操作 / 诊断性操作) is one of `kinds`."""
    from dipsim.codes import load_icd9

    dictionary = load_icd9()
    wanted = dictionary.table["kind"].isin(kinds).to_numpy()
    return frozenset(c for c, keep in zip(dictionary.codes.to_pylist(), wanted) if keep)
