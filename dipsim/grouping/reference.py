"""A plain-Python CHS-DRG grouper: one case at a time, written to be read against the rules (docs/domain.md §5).

It is the reference the Numba kernel is tested against, and it records every step in a trace so that
`dipsim explain` can say why a case got its MDC, ADRG and suffix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .tables import BUILTIN_LISTS, Adrg, DrgBand, DrgScheme, band_age, list_reads

CC_NONE, CC_CC, CC_MCC = 0, 1, 2
CC_LABELS = {CC_NONE: "none", CC_CC: "CC", CC_MCC: "MCC"}
UNGROUPABLE = "0000"


@dataclass
class Case:
    """The grouping fields of one stay; codes in 医保版 2.0 spelling, principal first."""

    diagnoses: list[str]
    procedures: list[str] = field(default_factory=list)
    sex: int = 0
    age_years: int | None = None
    age_days: int | None = None
    birth_weight_g: int | None = None
    ventilation_hours: float | None = None
    los_days: int | None = None  # length of stay: some schemes split DRGs by it (Beijing RC1, RE1)


@dataclass
class Grouping:
    drg: str
    adrg: str = ""
    mdc: str = ""
    cc_level: int = CC_NONE
    reason: str = ""  # why a case is ungroupable (drg 0000)
    trace: list[str] = field(default_factory=list)


class _Facts:
    """What the rules ask of a case, computed once."""

    def __init__(self, case: Case, scheme: DrgScheme):
        self.case = case
        self.principal = case.diagnoses[0] if case.diagnoses else ""
        self.secondary = case.diagnoses[1:]
        self.all_dx = set(case.diagnoses)
        self.principal_px = case.procedures[0] if case.procedures else ""
        # 全部手术 (all_or) and 无手术 (mdcz_no_surgery) look at the principal procedure, as every surgical ADRG
        # rule does (主要手术): a secondary operation does not make a case surgical (real 1.1 cases, MDCS).
        self.or_px = {self.principal_px} & scheme.or_procedures if self.principal_px else set()
        self.qy_px = {self.principal_px} & scheme.qy_procedures  # QY looks at the principal procedure only

    def holds(self, node: tuple, adrg: Adrg) -> bool:
        kind, value = node
        if kind == "and":
            return all(self.holds(n, adrg) for n in value)
        if kind == "or":
            return any(self.holds(n, adrg) for n in value)
        return self.in_list(value, adrg)

    def in_list(self, name: str, adrg: Adrg) -> bool:
        """The list holds: at least its minimum count (`[list_min_count]`, default 1) of the case's codes, counted
        by position (the same code twice counts twice), in the positions it reads are in it."""
        if name in BUILTIN_LISTS:
            return self._builtin(name)
        return len(self.matches(name, adrg)) >= adrg.min_counts.get(name, 1)

    def _builtin(self, name: str) -> bool:
        return bool(self.or_px) if name == "all_or" else not self.or_px  # mdcz_no_surgery

    def matches(self, name: str, adrg: Adrg) -> list[str]:
        """The case's codes that are in list `name` of the ADRG (what `explain` shows), one per position."""
        if name in BUILTIN_LISTS:
            return sorted(self.or_px) if name == "all_or" else []
        codes = adrg.lists.get(name, frozenset())
        candidates = {"dx": [self.principal], "px": [self.principal_px], "any_dx": self.case.diagnoses,
                      "other_dx": self.secondary, "any_px": self.case.procedures}[list_reads(name)]
        return [c for c in candidates if c in codes]


def cc_level(case: Case, scheme: DrgScheme, trace: list[str] | None = None, adrg: str | None = None) -> int:
    """MCC > CC > none from the secondary diagnoses; a code does not count when the principal diagnosis is in
    its exclusion table (表 7-n). In an ADRG of `[principal_mcc] adrgs` (3.0 OB1, OB2) a principal diagnosis in
    principal_mcc.csv (高危妊娠) is an MCC itself; `adrg` None (no ADRG: the DIP catalogue's severity, xQY) or any
    other ADRG: it does nothing."""
    principal = case.diagnoses[0] if case.diagnoses else ""
    level = CC_NONE
    if adrg in scheme.principal_mcc_adrgs and principal in scheme.principal_mcc:
        if trace is not None:
            what = scheme.rules.get("principal_mcc", {}).get("text", "high-risk pregnancy")
            trace.append(f"principal diagnosis {principal} is a {what} (principal_mcc.csv): counted as an MCC in "
                         f"{adrg}")
        level = CC_MCC
    for code in case.diagnoses[1:]:
        for table, this_level in ((scheme.mcc, CC_MCC), (scheme.cc, CC_CC)):
            if code not in table:
                continue
            exclusion = table[code]
            if exclusion and principal in scheme.exclusions.get(exclusion, ()):
                if trace is not None:
                    trace.append(f"{code} would be {CC_LABELS[this_level]} but the principal {principal} is in "
                                 f"its exclusion table {exclusion}")
                continue
            if trace is not None:
                cancel = f"exclusion table {exclusion} does not hold {principal}" if exclusion else "no exclusion table"
                trace.append(f"{code} is {CC_LABELS[this_level]} ({cancel})")
            level = max(level, this_level)
            break
    return level


def drg_band(adrg: Adrg, case: Case, level: int = CC_NONE) -> tuple[dict[str, str] | None, DrgBand | None]:
    """The ADRG's DRGs for the case (its age, length of stay, CC level `level` in this ADRG and procedures): the
    first band that holds, else the DRGs without a band (None when the ADRG has none: every DRG of RC1 is a
    length-of-stay band)."""
    age = band_age(case.age_years, case.age_days)
    for band in adrg.bands:
        if band.holds(age, case.los_days, level, case.procedures):
            return band.drgs, band
    return (adrg.drgs or None), None


def band_text(band: DrgBand) -> str:
    """The band's conditions in words: `大于等于70岁 (age >= 70)`, `stay 6-12 days (6-12天)` (the name's text after a
    stay band, as Beijing writes it; before the others), `CC level MCC`, `a procedure among 17.4100, ...`."""
    low, high = band.age_years_min, band.age_years_max
    parts = []
    if band.has_age:
        parts.append(f"age >= {low}" if high is None else f"age <= {high}" if low is None else f"age {low}-{high}")
    if band.cc_levels is not None:
        parts.append("CC level " + " or ".join(CC_LABELS[v] for v in sorted(band.cc_levels)))
    if band.procedures:
        parts.append(f"a procedure among {', '.join(sorted(band.procedures))}")
    if band.has_stay:
        days = (f">= {band.los_days_min}" if band.los_days_max is None
                else f"{band.los_days_min or 1}-{band.los_days_max}")
        parts.append(f"stay {days} days" + (f" ({band.text})" if band.text else ""))
        return ", ".join(parts)
    return f"{band.text} ({', '.join(parts)})" if band.text else ", ".join(parts)


def band_facts(band: DrgBand, case: Case, level: int) -> str:
    """What the case has of the band's conditions in words (`_band_fact_parts`, joined)."""
    return ", ".join(_band_fact_parts(band, case, level))


def _band_fact_parts(band: DrgBand, case: Case, level: int) -> list[str]:
    """What the case has of the band's conditions: `age 75 years`, `age 0 years (200 days)`, `CC level MCC`, `no
    procedure among them` / `procedure 17.4100`, `stay 3 days` (not recorded where missing)."""
    parts = []
    if band.has_age:
        age = band_age(case.age_years, case.age_days)
        from_days = (case.age_years is None or case.age_years < 0) and age is not None
        parts.append("age not recorded" if age is None
                     else f"age {age} years" + (f" ({case.age_days} days)" if from_days else ""))
    if band.cc_levels is not None:
        parts.append(f"CC level {CC_LABELS[level]}")
    if band.procedures:
        hits = [p for p in case.procedures if p in band.procedures]
        parts.append(f"procedure {hits[0]}" if hits else "no procedure among them")
    if band.has_stay:
        parts.append("stay not recorded" if case.los_days is None else f"stay {case.los_days} days")
    return parts


def x1_x5_option_decides(drgs: dict[str, str], level: int) -> bool:
    """A CC without an MCC in an ADRG split only into x1 (伴严重并发症或合并症) / x5 (不伴): no DRG of the ADRG is
    named for a CC, so `[options] cc_only_in_x1_x5_split` decides (grouper_tables/README.md, severity)."""
    return level == CC_CC and {"mcc", "none"} <= drgs.keys() and not {"cc", "cc_or_mcc", "no_mcc"} & drgs.keys()


def x1_x5_option(scheme: DrgScheme) -> str:
    """`x1` or `x5`: which group of an x1 / x5 split pays a CC without an MCC (`x1_x5_option_decides`)."""
    return scheme.rules.get("options", {}).get("cc_only_in_x1_x5_split", "x1")


def _choose_drg(drgs: dict[str, str], level: int, scheme: DrgScheme) -> str | None:
    """The DRG for the case's CC level among `drgs` (severity -> DRG: suffix 1/3/5/9 as the ADRG has them)."""
    if "all" in drgs:
        return drgs["all"]
    if level == CC_MCC:
        order = ("mcc", "cc_or_mcc", "cc", "none", "no_mcc")
    elif level == CC_CC:
        x1 = x1_x5_option(scheme) == "x1"
        order = ("cc", "cc_or_mcc", "no_mcc") + (("mcc", "none") if x1 else ("none", "mcc"))
    else:
        order = ("none", "no_mcc", "cc", "cc_or_mcc", "mcc")
    return next((drgs[s] for s in order if s in drgs), None)


def _newborn_bounds_ok(adrg: Adrg, case: Case, scheme: DrgScheme) -> bool:
    return not _newborn_bounds_misses(adrg, case, scheme)


def _match_adrg(facts: _Facts, adrgs: list[Adrg], scheme: DrgScheme, trace: list[str]) -> Adrg | None:
    for adrg in adrgs:
        if facts.holds(adrg.logic, adrg) and _newborn_bounds_ok(adrg, facts.case, scheme):
            found = "; ".join(f"{name}: {', '.join(facts.matches(name, adrg)) or 'yes'}{_min_count_text(name, adrg)}"
                              for name in dict.fromkeys(_list_names(adrg.logic)) if facts.in_list(name, adrg))
            trace.append(f"ADRG {adrg.code} {adrg.name}: its rule {adrg_logic_text(adrg)} holds ({found})")
            return adrg
    return None


def rule_misses(case: Case, adrg: Adrg, scheme: DrgScheme) -> list[str]:
    """What the case lacks for `adrg`'s entry rule, one phrase per list of the rule it is not in (a list already met
    is not named), then the newborn bounds (MDCP) and, for the ventilation ADRG (AH1, AH2), the hours; [] when it
    enters.

    This is the rule alone: whether the case reaches the ADRG's MDC, and whether an ADRG before it takes the case,
    is the grouping's order (`group_case`; `dipsim explain` says both)."""
    facts = _Facts(with_ventilation_procedure(case, scheme, []), scheme)
    misses = [_list_miss(name, facts, adrg) for name in dict.fromkeys(_failed_lists(adrg.logic, facts, adrg))]
    misses += _newborn_bounds_misses(adrg, case, scheme)
    vent = scheme.rules.get("ventilation", {})
    if misses and adrg.code == vent.get("adrg"):
        hours = case.ventilation_hours
        recorded = "not recorded" if hours is None else f"{hours:g} h"
        if vent.get("mode") != "procedure":
            if hours is not None and hours >= vent["hours_min"]:
                return []  # 1.1 AH1: the hours alone enter it
            misses.append(f"ventilation {recorded} (at least {vent['hours_min']} h enter it)")
        elif vent["procedures"][0] not in facts.case.procedures:
            misses.append(f"ventilation {recorded} (at least {vent['hours_min']} h count as {vent['procedures'][0]})")
    return misses


def _failed_lists(node: tuple, facts: _Facts, adrg: Adrg) -> list[str]:
    """The lists that make `node` fail: a missed list; the failing parts of an `&`; every branch of a failing `|`
    (a list in a branch that holds, or in a part of an `&` that holds, is not the reason)."""
    kind, value = node
    if facts.holds(node, adrg):
        return []
    if kind == "list":
        return [value]
    return [name for child in value for name in _failed_lists(child, facts, adrg)]


# What each kind of list of an ADRG rule holds (grouper_tables/README.md, list names), for `rule_misses`.
_LIST_LABELS = {"dx": "主要诊断", "px": "主要手术或操作", "any_dx": "主要诊断或其他诊断", "other_dx": "其他诊断",
                "any_px": "手术或操作"}


def _min_count_text(name: str, adrg: Adrg) -> str:
    """` (at least 2 of them: [list_min_count])` for a list that needs more than one code, else ""."""
    n = adrg.min_counts.get(name, 1)
    return f" (at least {n} of them: [list_min_count.{adrg.code}])" if n > 1 else ""


def _list_miss(name: str, facts: _Facts, adrg: Adrg) -> str:
    """`principal diagnosis I63.900 not in dx (主要诊断)`, `no procedure in table_2 (手术表 2)`, `only 1 procedure
    (81.5100) in any_px (手术或操作): IC2 needs at least 2 of them`..."""
    principal_px = facts.principal_px
    if name == "all_or":
        return (f"principal procedure {principal_px} is not an operating-room procedure (all_or, 全部手术)"
                if principal_px else "no procedure (all_or needs an operating-room procedure, 全部手术)")
    if name == "mdcz_no_surgery":
        return f"principal procedure {principal_px} is an operating-room procedure (mdcz_no_surgery: 无手术)"
    number = name.rsplit("_", 1)[-1] if name[-1].isdigit() else ""
    reads = list_reads(name)
    if name.startswith("table_"):
        label = f"手术表 {number}"
    elif name in ("px_1", "px_2"):
        label = f"同时包含, list {number}"
    else:
        label = _LIST_LABELS[reads] + (f" {number}" if number else "")
    found = facts.matches(name, adrg)
    if found:  # fewer than the list's minimum count
        kind = "diagnosis" if reads in ("dx", "any_dx", "other_dx") else "procedure"
        return (f"only {len(found)} {kind}{'s' if len(found) > 1 else ''} ({', '.join(found)}) in {name} ({label}): "
                f"{adrg.code} needs at least {adrg.min_counts[name]} of them ([list_min_count], the same code twice "
                f"counts twice)")
    if reads == "dx":
        what = f"principal diagnosis {facts.principal}"
    elif reads == "px":
        what = f"principal procedure {principal_px}" if principal_px else "no procedure"
    else:
        what = {"any_dx": "no diagnosis", "other_dx": "no secondary diagnosis", "any_px": "no procedure"}[reads]
    return f"{what} {'not ' if what.startswith('principal') else ''}in {name} ({label})"


def _newborn_bounds_misses(adrg: Adrg, case: Case, scheme: DrgScheme) -> list[str]:
    """The MDCP bounds of `adrg` (birth weight, age in days) the case is outside of, as phrases."""
    bounds = scheme.rules.get("mdcp", {}).get("adrg", {}).get(adrg.code, {})
    misses = []
    for label, value, unit in (("birth weight", case.birth_weight_g, "g"), ("age", case.age_days, "days")):
        key = "weight_g" if unit == "g" else "age_days"
        low, high = bounds.get(f"{key}_min"), bounds.get(f"{key}_max")
        if low is None and high is None:
            continue
        wanted = (f"{low}-{high} {unit}" if low is not None and high is not None
                  else f"<= {high} {unit}" if high is not None else f">= {low} {unit}")
        if value is None:
            misses.append(f"{label} not recorded ({adrg.code} needs {wanted})")
        elif (low is not None and value < low) or (high is not None and value > high):
            misses.append(f"{label} {value} {unit} outside {adrg.code}'s {wanted}")
    return misses


def qy_group(mdc: str, scheme: DrgScheme) -> str:
    """The MDC's xQY group code (与主要诊断无关的手术): `<MDC>` + `[qy] suffix` (QY)."""
    return f"{mdc}{scheme.rules.get('qy', {}).get('suffix', 'QY')}"


def procedure_and_medical_adrgs(mdc: str, scheme: DrgScheme) -> tuple[list[Adrg], list[Adrg]]:
    """The MDC's ADRGs in official order, split as `group_case` tries them: surgical (A-J) and non-OR procedure
    (K-Q) ones first, the medical (R-Z) ones after xQY."""
    candidates = scheme.adrgs_of(mdc)
    return [a for a in candidates if a.kind != "medical"], [a for a in candidates if a.kind == "medical"]


def trial_order(mdc: str, scheme: DrgScheme) -> list[str]:
    """The ADRG codes of `mdc` in the order `group_case` tries them: MDCA's all in official order; elsewhere the
    surgical and non-OR ones, then (where the scheme pays xQY) `<MDC>QY`, then the medical ones."""
    if mdc == "A":
        return [a.code for a in scheme.adrgs_of(mdc)]
    procedure, medical = procedure_and_medical_adrgs(mdc, scheme)
    qy = [qy_group(mdc, scheme)] if scheme.qy_procedures else []
    return [a.code for a in procedure] + qy + [a.code for a in medical]


def _list_names(node: tuple) -> list[str]:
    kind, value = node
    return [value] if kind == "list" else [n for child in value for n in _list_names(child)]


def adrg_logic_text(adrg: Adrg) -> str:
    def text(node: tuple) -> str:
        kind, value = node
        if kind == "list":
            return value
        return "(" + f" {'&' if kind == 'and' else '|'} ".join(text(n) for n in value) + ")"

    return text(adrg.logic)


def _pre_mdc(facts: _Facts, scheme: DrgScheme, trace: list[str]) -> tuple[str, Adrg | None] | None:
    """MDCA, MDCP, MDCY, MDCZ in order (先期分组)."""
    case = facts.case
    for mdc in scheme.rules.get("pre_mdc", {}).get("order", ["A", "P", "Y", "Z"]):
        if mdc == "A":
            hours = scheme.rules.get("ventilation", {})
            adrg = _match_adrg(facts, scheme.adrgs_of("A"), scheme, trace)
            if adrg is None and case.ventilation_hours is not None and hours and hours.get("mode") != "procedure" \
                    and case.ventilation_hours >= hours["hours_min"]:
                adrg = scheme.adrgs[hours["adrg"]]
                trace.append(f"ADRG {adrg.code}: invasive ventilation {case.ventilation_hours:g} h >= "
                             f"{hours['hours_min']} h")
            if adrg is not None:
                return "A", adrg
        elif mdc == "P":
            mdcp = scheme.rules["mdcp"]
            days = case.age_days if case.age_days is not None and case.age_days >= 0 else None  # negative: missing
            newborn = days is not None and days <= mdcp["age_days_max"]
            infant = days is not None and days <= mdcp["infant_age_days_max"] and case.age_years in (None, 0)
            if (newborn or infant) and "P" in scheme.principal_mdcs.get(facts.principal, ()):
                trace.append(f"MDCP: age {case.age_days} days and the principal diagnosis is in MDCP's table")
                return "P", None
        elif mdc == "Y":
            if "Y" in scheme.principal_mdcs.get(facts.principal, ()):
                trace.append("MDCY: the principal diagnosis is in MDCY's (HIV) table")
                return "Y", None
        elif mdc == "Z":
            rules = scheme.rules["mdcz"]
            sites = {scheme.mdcz_sites[c] for c in facts.all_dx if c in scheme.mdcz_sites}
            if "Z" in scheme.principal_mdcs.get(facts.principal, ()) and len(sites) >= rules["min_sites"]:
                trace.append(f"MDCZ: trauma in {len(sites)} body sites ({', '.join(sorted(sites))})")
                return "Z", None
    return None


def no_mdc_reason(principal: str, invalid_principal) -> str:
    """Why a principal diagnosis gave no MDC: the scheme bars it as principal (invalid_principal.csv), or no MDC
    table lists it."""
    if principal in invalid_principal:
        return f"principal diagnosis {principal} is not valid as principal (invalid_principal.csv), so in no MDC"
    return f"principal diagnosis {principal} is in no MDC"


def with_ventilation_procedure(case: Case, scheme: DrgScheme, trace: list[str]) -> Case:
    """2.0 (`[ventilation] mode = "procedure"`): recorded invasive ventilation of at least `hours_min` hours counts
    as the procedure 96.7201 (呼吸机治疗[大于等于 96 小时]), appended to the case's procedures."""
    vent = scheme.rules.get("ventilation", {})
    if vent.get("mode") == "procedure" and vent.get("procedures") and case.ventilation_hours is not None \
            and case.ventilation_hours >= vent["hours_min"] and vent["procedures"][0] not in case.procedures:
        case = dataclasses.replace(case, procedures=[*case.procedures, vent["procedures"][0]])
        trace.append(f"invasive ventilation {case.ventilation_hours:g} h >= {vent['hours_min']} h counts as "
                     f"{vent['procedures'][0]}")
    return case


def group_case(case: Case, scheme: DrgScheme) -> Grouping:
    """Group one case: pre-MDC, MDC by principal diagnosis, ADRG in official order, CC level, DRG suffix."""
    trace: list[str] = []
    case = with_ventilation_procedure(case, scheme, trace)
    facts = _Facts(case, scheme)
    if not facts.principal:
        return Grouping(UNGROUPABLE, reason="no principal diagnosis", trace=trace)
    pre = _pre_mdc(facts, scheme, trace)
    if pre is not None:
        mdc, adrg = pre
    else:
        mdc, adrg = _principal_mdc(facts, scheme, trace), None
        if mdc is None:
            return Grouping(UNGROUPABLE, reason=no_mdc_reason(facts.principal, scheme.invalid_principal), trace=trace)
    if adrg is None:
        # Surgical (A-J) then non-OR procedure (K-Q) ADRGs; a principal procedure that is an operation (手术)
        # none of them takes makes the case xQY (与主要诊断无关的手术) before the medical (R-Z) ADRGs are tried.
        procedure, medical = procedure_and_medical_adrgs(mdc, scheme)
        adrg = _match_adrg(facts, procedure, scheme, trace)
        if adrg is None and facts.qy_px:
            qy = qy_group(mdc, scheme)
            trace.append(f"principal operation {facts.principal_px} fits no surgical or non-OR ADRG of "
                         f"MDC{mdc}: {qy}")
            return Grouping(qy, adrg=qy, mdc=mdc, cc_level=cc_level(case, scheme, trace), trace=trace)
        if adrg is None:
            adrg = _match_adrg(facts, medical, scheme, trace)
    if adrg is None:
        return Grouping(UNGROUPABLE, mdc=mdc, reason=f"no ADRG of MDC{mdc} takes this case", trace=trace)
    level = cc_level(case, scheme, trace, adrg.code)
    drgs, band = drg_band(adrg, case, level)
    if band is not None:
        trace.append(f"{band_facts(band, case, level)}: {band_text(band)}")
    elif adrg.bands:
        has = ", ".join(dict.fromkeys(part for b in adrg.bands for part in _band_fact_parts(b, case, level)))
        trace.append(f"{has}: no condition of ADRG {adrg.code}'s DRGs holds (" + "; ".join(
            f"{'/'.join(sorted(b.drgs.values()))} {band_text(b)}" for b in adrg.bands) + ")")
    if drgs is None:
        return Grouping(UNGROUPABLE, adrg=adrg.code, mdc=mdc, cc_level=level,
                        reason=f"ADRG {adrg.code} has no DRG for this age / length of stay", trace=trace)
    drg = _choose_drg(drgs, level, scheme)
    if drg is None:
        return Grouping(UNGROUPABLE, adrg=adrg.code, mdc=mdc, cc_level=level,
                        reason=f"ADRG {adrg.code} has no DRG for CC level {CC_LABELS[level]}", trace=trace)
    trace.append(f"DRG {drg} {scheme.drg_names.get(drg, '')} for CC level {CC_LABELS[level]}")
    if x1_x5_option_decides(drgs, level):
        trace.append(f"a CC without an MCC in ADRG {adrg.code}, split only into {drgs['mcc']} / {drgs['none']}: "
                     f"the option [options] cc_only_in_x1_x5_split = {x1_x5_option(scheme)!r} pays it as {drg}")
    return Grouping(drg, adrg=adrg.code, mdc=mdc, cc_level=level, trace=trace)


def sex_banned_mdcs(sex: int, scheme: DrgScheme) -> set[str]:
    """MDCs a case of this sex cannot enter ([sex] in special_rules.toml): men's MDCs for a woman (2) and
    women's for a man (1); none for an unknown sex."""
    rules = scheme.rules.get("sex", {})
    return set(rules.get("male_only", [])) if sex == 2 else set(rules.get("female_only", [])) if sex == 1 else set()


def _principal_mdc(facts: _Facts, scheme: DrgScheme, trace: list[str]) -> str | None:
    banned = sex_banned_mdcs(facts.case.sex, scheme)
    pre = set(scheme.rules.get("pre_mdc", {}).get("order", []))
    for mdc in scheme.principal_mdcs.get(facts.principal, ()):
        if mdc in pre or mdc in banned:
            continue
        trace.append(f"MDC{mdc} {scheme.mdc_names[mdc]}: principal diagnosis {facts.principal}")
        return mdc
    return None
