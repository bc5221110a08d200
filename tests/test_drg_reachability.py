"""Every DRG of CHS-DRG 2.0 and 3.0 is reachable: one synthetic case per DRG, built from the grouper tables alone.

For each DRG of grouper_tables/<scheme>/drg.csv a deterministic, bounded search builds a case that
- satisfies one conjunction of its ADRG's entry rule (the rule in disjunctive normal form: a principal diagnosis in
  every `dx` list, a principal procedure in every `px` list, a secondary diagnosis per `other_dx` list, a procedure
  per `table_N` list, ...),
- reaches the ADRG's MDC (principal diagnosis of that MDC, sex for MDCM / MDCN, newborn age and birth weight for
  MDCP, a second trauma site for MDCZ),
- carries the secondary diagnosis its severity needs (an MCC or a CC the principal does not cancel, or none),
- and, for a DRG of a band (3.0: `[drg_conditions]`), what the band asks: an age inside its bounds, one of its
  procedures (robot-assisted surgery); a DRG without a band gets an adult age (40) that no age band takes.
Codes that fewer of the ADRGs tried before the target name are tried first, so that an earlier ADRG does not catch
the case; the reference grouper decides whether an attempt lands in the target DRG. The Numba kernel must then put
every case in the same DRG. A DRG no attempt reaches is collected, never skipped: the test asserts the list is empty.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from dataclasses import dataclass

import pytest

from dipsim.grouping.reference import Case, group_case
from dipsim.grouping.tables import (
    Adrg,
    DrgScheme,
    list_reads,
    load_scheme,
    scheme_folder,
)

from case_tables import grouping_table

SCHEMES = {"chs-drg-2.0": (409, 634), "chs-drg-3.0": (492, 825)}  # ADRGs and DRGs of each scheme's official list
PRE_MDC_TABLES = ("P", "Y", "Z")  # pre-MDC groups entered through the principal diagnosis
CANDIDATES = 40  # codes tried per slot (principal diagnosis, principal procedure, each secondary code)
ATTEMPTS = 300  # cases grouped per DRG at most (all conjunctions of its rule together)
ADULT_AGE, STAY_DAYS, NEWBORN_DAYS = 40, 5, 10


@functools.cache
def _scheme(name: str) -> DrgScheme:
    """The scheme, or a clean skip when its grouper tables are absent."""
    try:
        scheme_folder(name)
    except FileNotFoundError:
        pytest.skip(f"grouper_tables/{name} is absent")
    return load_scheme(name)


# ----------------------------------------------------------------------------------------------------------------
# Reading the rules


def _dnf(node: tuple) -> list[tuple[str, ...]]:
    """The logic AST as a disjunction of conjunctions of list names, in formula order: the ways into the ADRG."""
    kind, value = node
    if kind == "list":
        return [(value,)]
    parts = [_dnf(child) for child in value]
    if kind == "or":
        return [conj for part in parts for conj in part]
    return [tuple(name for conj in combo for name in conj) for combo in itertools.product(*parts)]


def _competitors(scheme: DrgScheme, target: Adrg) -> list[Adrg]:
    """The ADRGs the grouper tries before `target` for a case of the target's MDC: MDCA (all of it when the target
    is elsewhere), then the target's MDC in official order, surgical and non-OR ADRGs before the medical ones (MDCA
    is tried in plain official order)."""
    pre_a = [a for a in scheme.adrgs_of("A") if target.mdc != "A"]
    same = scheme.adrgs_of(target.mdc)
    if target.mdc == "A":
        ordered = same
    else:
        ordered = [a for a in same if a.kind != "medical"] + [a for a in same if a.kind == "medical"]
    return pre_a + ordered[:ordered.index(target)]


@functools.cache
def _named_by(name: str, adrg_code: str) -> frozenset[str]:
    """Every code an ADRG's rule can match: the union of its lists, plus all OR procedures for `all_or`."""
    adrg = _scheme(name).adrgs[adrg_code]
    codes = frozenset().union(*adrg.lists.values())
    if any("all_or" in conj for conj in _dnf(adrg.logic)):
        codes |= _scheme(name).or_procedures
    return codes


@functools.cache
def _usage(name: str) -> Counter:
    """How many ADRG lists, MDCZ site lists and the MDCY table name each diagnosis: a secondary diagnosis named
    nowhere cannot move a case into another ADRG or pre-MDC group."""
    scheme = _scheme(name)
    usage = Counter(code for adrg in scheme.adrgs.values() for codes in adrg.lists.values() for code in codes)
    usage.update(list(scheme.mdcz_sites))
    usage.update(code for code, mdcs in scheme.principal_mdcs.items() if "Y" in mdcs)
    return usage


def _sex_for(scheme: DrgScheme, principal: str, mdc: str) -> int | None:
    """A sex (1 male, 2 female) with which `principal` leads the grouper to MDC `mdc`, or None when none does."""
    mdcs = scheme.principal_mdcs.get(principal, ())
    sex_rules = scheme.rules.get("sex", {})
    female_only, male_only = set(sex_rules.get("female_only", [])), set(sex_rules.get("male_only", []))
    natural = 2 if female_only & set(mdcs) or "O" in mdcs or mdc == "O" else 1  # MDCO: pregnancy
    if mdc == "A":  # MDCA takes the case on its procedures, whatever the principal
        return natural
    if mdc in PRE_MDC_TABLES:
        return natural if mdc in mdcs else None
    if "Y" in mdcs:  # MDCY takes every case with such a principal before its MDC is chosen
        return None
    for sex in (natural, 3 - natural):
        banned = female_only if sex == 1 else male_only
        first = next((m for m in mdcs if m not in PRE_MDC_TABLES and m not in banned), None)
        if first == mdc:
            return sex
    return None


def _ranked(codes, avoid: list[frozenset[str]], *extra_keys, last: frozenset[str] = frozenset()) -> list[str]:
    """`codes` sorted by how many of the `avoid` sets hold them (then by each function of `extra_keys`, then by
    code), the codes of `last` after all others: the first ones are the least likely to be caught by an earlier
    ADRG."""
    return sorted(codes, key=lambda c: (c in last, sum(c in s for s in avoid), *(k(c) for k in extra_keys), c))


# ----------------------------------------------------------------------------------------------------------------
# Building cases


@dataclass
class _Plan:
    """One conjunction of an ADRG's rule as code slots, each a ranked candidate list."""

    conj: tuple[str, ...]
    principals: list[str]  # principal diagnoses (each with a sex that reaches the MDC)
    principal_px: list[str | None]  # principal procedures ([None]: the table slots or nothing give the procedures)
    secondary_dx: list[tuple[frozenset[str], list[str]]]  # (list, candidates): one secondary per other_dx / any_dx
    procedures: list[tuple[frozenset[str], list[str], int]]  # (list, candidates, how many): table_N / any_px


@functools.cache
def _plans(name: str, adrg_code: str) -> list[_Plan]:
    """The ranked slots of every conjunction of the ADRG's rule, for cases of its MDC."""
    scheme = _scheme(name)
    adrg = scheme.adrgs[adrg_code]
    competitors = _competitors(scheme, adrg)
    # a principal procedure that an earlier ADRG whose whole rule is one principal-procedure list names is caught
    # there, whatever else the case has: such codes go last (3.0 RQ1's chemotherapy codes before RL5's 92.2x)
    caught = frozenset().union(*(a.lists[a.logic[1]] for a in competitors
                                 if a.logic[0] == "list" and list_reads(a.logic[1]) == "px"))
    avoid = [_named_by(name, a.code) for a in competitors]
    all_principals = (scheme.principal_mdcs if adrg.mdc == "A"
                      else [c for c, mdcs in scheme.principal_mdcs.items() if adrg.mdc in mdcs])

    def counts_severity(code: str) -> bool:  # secondaries that are no MCC / CC are tried first
        return code in scheme.mcc or code in scheme.cc

    def pre_tables(code: str) -> int:  # principals that could also open another pre-MDC group come last
        return sum(m in PRE_MDC_TABLES and m != adrg.mdc for m in scheme.principal_mdcs.get(code, ()))

    plans = []
    for conj in _dnf(adrg.logic):
        lists = {name: adrg.lists.get(name, frozenset()) for name in conj}
        reads = {name: list_reads(name) for name in conj if name not in ("all_or", "mdcz_no_surgery")}
        dx_lists = [lists[n] for n, r in reads.items() if r == "dx"]
        pool = frozenset.intersection(*dx_lists) if dx_lists else all_principals
        principals = _ranked([c for c in pool if _sex_for(scheme, c, adrg.mdc)], avoid, pre_tables)
        px_lists = [lists[n] for n, r in reads.items() if r == "px"]
        if "all_or" in conj:
            px_lists.append(scheme.or_procedures)
        principal_px = (_ranked(frozenset.intersection(*px_lists), avoid, last=caught)[:CANDIDATES]
                        if px_lists else [None])
        secondary_dx = [(lists[n], _ranked(lists[n], avoid, counts_severity)[:CANDIDATES])
                        for n, r in reads.items() if r in ("other_dx", "any_dx")]
        min_count = scheme.rules.get("list_min_count", {}).get(adrg.code, {})
        procedures = [(lists[n], _ranked(lists[n], avoid)[:CANDIDATES], int(min_count.get(n, 1)))
                      for n, r in reads.items() if r == "any_px"]
        plans.append(_Plan(conj, principals[:CANDIDATES], principal_px, secondary_dx, procedures))
    return plans


@functools.cache
def _severity_codes(name: str, severity: str) -> list[str]:
    """Secondary diagnoses that give a case the DRG severity `severity`, least used first: MCCs for `mcc`, CCs
    that are no MCC for `cc` / `cc_or_mcc`, none for `none`, `no_mcc` and `all` (an empty list)."""
    scheme = _scheme(name)
    if severity == "mcc":
        codes = scheme.mcc
    elif severity in ("cc", "cc_or_mcc"):
        codes = [c for c in scheme.cc if c not in scheme.mcc]
    else:
        return []
    return sorted(codes, key=lambda c: (_usage(name)[c], c))


def _counts_for(scheme: DrgScheme, code: str, principal: str) -> bool:
    """Whether an MCC / CC `code` counts beside `principal` (the principal is not in its exclusion table)."""
    table = scheme.mcc.get(code, scheme.cc.get(code, ""))
    return not table or principal not in scheme.exclusions.get(table, ())


def _nth(candidates, keep, n: int) -> str | None:
    """The n-th of `candidates` for which `keep` holds, or None."""
    return next(itertools.islice((c for c in candidates if keep(c)), n, None), None)


def _diagonal(sizes: list[int]):
    """Every index tuple below `sizes`, in order of their sum: first choices everywhere first, then one second
    choice, and so on, so that no slot is exhausted before the others are tried."""
    def compositions(total: int, sizes: list[int]):
        if len(sizes) == 1:
            if total < sizes[0]:
                yield (total,)
            return
        for i in range(min(total, sizes[0] - 1) + 1):
            for rest in compositions(total - i, sizes[1:]):
                yield (i, *rest)

    for total in range(sum(s - 1 for s in sizes) + 1):
        yield from compositions(total, sizes)


def _case(scheme: DrgScheme, adrg: Adrg, target: _Target, plan: _Plan, choice: tuple[int, ...]) -> Case | None:
    """The case of one index tuple of the plan's slots (principal diagnosis, principal procedure, secondary
    diagnoses, procedures, trauma site, severity code), or None when a slot has no fitting code."""
    name = scheme.name
    i_dx, i_px, *rest = choice
    i_sec, rest = rest[:len(plan.secondary_dx)], rest[len(plan.secondary_dx):]
    i_proc, (i_site, i_sev) = rest[:len(plan.procedures)], rest[len(plan.procedures):]
    principal = plan.principals[i_dx]
    diagnoses = [principal]
    for (codes, candidates), i in zip(plan.secondary_dx, i_sec):
        if principal not in codes:  # an any_dx list the principal already meets needs no secondary
            diagnoses.append(candidates[i])
    px = plan.principal_px[i_px]
    procedures = [px] if px else []
    for (codes, candidates, times), i in zip(plan.procedures, i_proc):
        # a table the principal procedure already meets needs no other one; a list that needs N procedures
        # (`[list_min_count]`, 3.0 IC2: two joints) gets its code N times in all
        missing = times - sum(p in codes for p in procedures)
        procedures += [candidates[i]] * max(missing, 0)
    if adrg.mdc == "Z":  # 多发严重创伤: a second trauma diagnosis in another body site
        site = scheme.mdcz_sites.get(principal)
        other = _nth(sorted(scheme.mdcz_sites, key=lambda c: (_usage(name)[c], c)),
                     lambda c: scheme.mdcz_sites[c] != site, i_site)
        if other is None:
            return None
        diagnoses.append(other)
    if _severity_codes(name, target.severity):
        code = _nth(_severity_codes(name, target.severity), lambda c: _counts_for(scheme, c, principal), i_sev)
        if code is None:
            return None
        diagnoses.append(code)
    procedures = [p for p in procedures if p] + list(target.procedures)
    age_years, age_days, weight = target.age_years, None, None
    if adrg.mdc == "P":  # a newborn (or, with an age bound over 28 days, an infant of age 0 years)
        bounds = scheme.rules["mdcp"].get("adrg", {}).get(adrg.code, {})
        age_years, age_days = 0, max(bounds.get("age_days_min", NEWBORN_DAYS), NEWBORN_DAYS)
        low, high = bounds.get("weight_g_min"), bounds.get("weight_g_max")
        if low is not None or high is not None:  # PS1-PS4: a birth weight inside the band
            weight = (low + high) // 2 if low is not None and high is not None else (low + 500 if high is None
                                                                                      else high - 300)
    return Case(diagnoses=list(dict.fromkeys(diagnoses)), procedures=procedures,
                sex=_sex_for(scheme, principal, adrg.mdc), age_years=age_years, age_days=age_days,
                birth_weight_g=weight, los_days=STAY_DAYS)


@dataclass(frozen=True)
class _Target:
    """What a DRG asks beyond its ADRG's rule: the severity (drg.csv) its CC level needs and, for a DRG of a band
    (`[drg_conditions]`), an age inside the band and one of its procedures."""

    severity: str
    age_years: int = ADULT_AGE
    procedures: tuple[str, ...] = ()


def _target(adrg: Adrg, drg: str) -> _Target | None:
    """The `_Target` of `drg` in its ADRG: its severity among the ADRG's DRGs without a band, or in the band that
    names it (an age bound: 70 for ">= 70", 6 for "<= 6": the boundary itself, inclusive by the table; one of the
    band's procedures); None when the ADRG does not name the DRG."""
    severity = next((s for s, d in adrg.drgs.items() if d == drg), None)
    if severity is not None:
        return _Target(severity)
    for band in adrg.bands:
        severity = next((s for s, d in band.drgs.items() if d == drg), None)
        if severity is None:
            continue
        age = ADULT_AGE
        if band.age_years_min is not None:
            age = band.age_years_min
        elif band.age_years_max is not None:
            age = band.age_years_max
        return _Target(severity, age, tuple(sorted(band.procedures))[:1])
    return None


def _search(scheme: DrgScheme, drg: str, adrg: Adrg, target: _Target) -> Case | None:
    """The first case (diagonal order over each conjunction's slots) that the reference grouper puts in `drg`,
    trying at most ATTEMPTS distinct cases; None when none does."""
    plans = _plans(scheme.name, adrg.code)
    per_plan = max(ATTEMPTS // len(plans), 1)
    site_slots = CANDIDATES if adrg.mdc == "Z" else 1
    severity_slots = CANDIDATES if _severity_codes(scheme.name, target.severity) else 1
    for plan in plans:
        if not plan.principals or not plan.principal_px:
            continue
        sizes = [len(plan.principals), len(plan.principal_px), *(len(c) for _, c in plan.secondary_dx),
                 *(len(c) for _, c, _ in plan.procedures), site_slots, severity_slots]
        if min(sizes) == 0:
            continue
        seen, tried = set(), 0
        for choice in itertools.islice(_diagonal(sizes), 20 * per_plan):
            case = _case(scheme, adrg, target, plan, choice)
            if case is None or (key := (tuple(case.diagnoses), tuple(case.procedures))) in seen:
                continue
            seen.add(key)
            if group_case(case, scheme).drg == drg:
                return case
            tried += 1
            if tried >= per_plan:
                break
    return None


@functools.cache
def _cases(name: str) -> tuple[dict[str, Case], list[str]]:
    """One case per reachable DRG of drg.csv (DRG -> case) and the DRGs no attempt reaches, in DRG code order."""
    scheme = _scheme(name)
    found, missing = {}, []
    for drg in sorted(scheme.drg_names):
        adrg = scheme.adrgs.get(drg[:3])
        target = _target(adrg, drg) if adrg else None
        case = _search(scheme, drg, adrg, target) if target else None
        if case is None:
            missing.append(drg)
        else:
            found[drg] = case
    return found, missing


# ----------------------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("name", SCHEMES)
def test_every_drg_and_adrg_is_reached_by_the_reference_grouper(name):
    """`_search` keeps a case only when the reference grouper puts it in its DRG, so what is left to check is that
    no DRG was missed and that the DRGs cover every ADRG."""
    scheme = _scheme(name)
    found, missing = _cases(name)
    assert (len(scheme.adrgs), len(scheme.drg_names)) == SCHEMES[name]
    assert missing == []
    assert {drg[:3] for drg in found} == set(scheme.adrgs)


@pytest.mark.parametrize("name", SCHEMES)
def test_the_kernel_puts_every_generated_case_in_its_drg(name):
    from dipsim.grouping.drg import group_table

    scheme = _scheme(name)
    found, _ = _cases(name)
    out = group_table(grouping_table(found.values(), found), scheme=name)
    assert out["case_id"].to_pylist() == list(found)
    wrong = [(target, drg) for target, drg in zip(out["case_id"].to_pylist(), out["drg"].to_pylist())
             if target != drg]
    assert wrong == []
    reference = [group_case(case, scheme) for case in found.values()]
    assert out["adrg"].to_pylist() == [g.adrg for g in reference]
    assert out["mdc"].to_pylist() == [g.mdc for g in reference]
    assert out["cc_level"].to_pylist() == [g.cc_level for g in reference]
    assert set(out["reason"].to_pylist()) == {""}
