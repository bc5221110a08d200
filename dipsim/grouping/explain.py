"""Explain one case's grouping in words: its codes with their Chinese names, then every rule that decided it."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.compute as pc

from dipsim.codes import load_icd9, load_icd10
from dipsim.io.errors import InputError
from dipsim.io.readers import RawCases, read_cases_raw
from dipsim.io.validate import validate_cases
from dipsim.schema import SEXES

from .reference import (
    CC_LABELS,
    UNGROUPABLE,
    Case,
    Grouping,
    adrg_logic_text,
    band_facts,
    band_text,
    cc_level,
    drg_band,
    group_case,
    qy_group,
    rule_misses,
    sex_banned_mdcs,
    trial_order,
    with_ventilation_procedure,
    x1_x5_option,
    x1_x5_option_decides,
)
from .tables import Adrg, DrgBand, DrgScheme, band_age, load_scheme


def case_from_row(row: dict) -> Case:
    """A grouping Case from one accepted row (CASE_SCHEMA names)."""
    return Case(row["diagnoses"] or [], row["procedures"] or [], row["sex"] or 0, row["age_years"],
                row["age_days"], row["birth_weight_g"], row["ventilation_hours"], row.get("los_days"))


def find_case(path, case_id: str, **read_options) -> dict:
    """Read `path` and validate only the rows of `case_id` (a large file is not validated whole)."""
    raw = read_cases_raw(path, **read_options)
    if "case_id" not in raw.table.column_names:
        raise InputError(f"{path}: no case id column to look {case_id!r} up in")
    ids = pc.utf8_trim_whitespace(pc.cast(raw.table["case_id"], pa.string()))
    mask = pc.fill_null(pc.equal(ids, case_id), False)
    subset = RawCases(raw.table.filter(mask), raw.rows[mask.to_numpy(zero_copy_only=False)], raw.source,
                      raw.encoding, raw.header_map, raw.unmapped)
    if subset.table.num_rows == 0:
        raise InputError(f"{path}: no case with id {case_id!r}")
    result = validate_cases(subset)
    if result.n_accepted == 0:
        reasons = "; ".join(f"{r['field']}: {r['reason']}" for r in result.rejects.to_pylist())
        raise InputError(f"{path}: case {case_id!r} is rejected by validation ({reasons})")
    return result.accepted.slice(0, 1).to_pylist()[0]


def explain_case(row: dict, scheme: str | DrgScheme = "chs-drg-1.1") -> tuple[Grouping, str]:
    """Group one row with the reference grouper and describe each step."""
    scheme = load_scheme(scheme) if isinstance(scheme, str) else scheme
    scheme_name = scheme.name
    grouping = group_case(case_from_row(row), scheme)
    icd10, icd9 = load_icd10(), load_icd9()
    lines = [f"case {row['case_id']} under {scheme_name}", "  " + _person_text(row)]
    for label, codes, dictionary in (("diagnoses", row["diagnoses"], icd10), ("procedures", row["procedures"], icd9)):
        lines.append(f"  {label} (principal first):" if codes else f"  {label}: none")
        for code in codes or []:
            lines.append(f"    {code}  {dictionary.name(code) or '(not in 医保版 2.0)'}")
    lines.append("steps:")
    lines += [f"  {step}" for step in grouping.trace]
    if grouping.drg.startswith("0000"):
        lines.append(f"result: ungroupable (0000): {grouping.reason}")
    else:
        lines.append(f"result: DRG {grouping.drg} {scheme.drg_names.get(grouping.drg, '')} (ADRG {grouping.adrg}, "
                     f"MDC{grouping.mdc}, CC level {CC_LABELS[grouping.cc_level]})")
    lines += insurer_lines(row, grouping, scheme)
    return grouping, "\n".join(lines)


def _person_text(row: dict) -> str:
    """Sex, age, stay and ventilation, missing values as "not recorded"; the newborn fields (age in days, birth
    weight) only for a case under one year or with a birth weight, where MDCP reads them."""
    age_days = row.get("age_days")
    newborn = (row.get("birth_weight_g") is not None or row.get("age_years") == 0
               or (age_days is not None and age_days <= 364))
    sex = row.get("sex") or 0
    parts = [f"sex {sex} ({SEXES.get(sex, '?')})", _measure("age", row.get("age_years"), "y")]
    if newborn:
        parts[-1] += " / " + ("days not recorded" if age_days is None else f"{age_days} d")
        parts.append(_measure("birth weight", row.get("birth_weight_g"), "g"))
    parts += [_measure("LOS", row.get("los_days"), "d"), _measure("ventilation", row.get("ventilation_hours"), "h")]
    return ", ".join(parts)


def _measure(label: str, value, unit: str) -> str:
    return f"{label} {_value(value)}" + ("" if value is None else f" {unit}")


# ---------------------------------------------------------------- why not the insurer's group

# What a DRG of each severity (drg.csv, grouper_tables/README.md) takes.
_SEVERITY_TAKES = {"mcc": "a case with an MCC", "cc": "a CC without an MCC", "cc_or_mcc": "an MCC or a CC",
                   "none": "a case without MCC or CC", "no_mcc": "a case without an MCC", "all": "every case"}


def insurer_lines(row: dict, grouping: Grouping, scheme: DrgScheme) -> list[str]:
    """When the row carries the insurer's group (医保实际分组结果, `insurer_drg`): `insurer: same DRG`, or
    `insurer: <DRG> <name>; dipsim: <DRG>.` and `Why not <DRG>: <the deciding difference>`; [] without one."""
    insurer = (row.get("insurer_drg") or "").strip().upper()
    if not insurer:
        return []
    if insurer == grouping.drg:
        return [f"insurer: same DRG ({insurer})"]
    name = scheme.drg_names.get(insurer, "")
    ours = grouping.drg + (" (ungroupable)" if grouping.drg.startswith(UNGROUPABLE) else "")
    return [f"insurer: {insurer}{' ' + name if name else ''}; dipsim: {ours}.",
            f"Why not {insurer}: {why_not(case_from_row(row), grouping, insurer, scheme)}"]


def why_not(case: Case, grouping: Grouping, target: str, scheme: DrgScheme) -> str:
    """Why `group_case` did not give the DRG `target`: at the first step where the two part (the MDC, the ADRG,
    the DRG within the ADRG), what the case lacks for the target or what took it first."""
    case = with_ventilation_procedure(case, scheme, [])
    if target.startswith(UNGROUPABLE):
        return f"dipsim groups the case ({_decisive_step(grouping)})"
    is_qy = target[:1] in scheme.mdc_names and target == qy_group(target[:1], scheme)
    place = _drg_places(scheme).get(target)
    if is_qy and not scheme.qy_procedures:
        return (f"{target} is an xQY group (与主要诊断无关的手术), which {scheme.name} does not pay ([qy] enabled = "
                f"false in its special_rules.toml; `--qy on` groups as xQY an operation no surgical ADRG takes)")
    if place is None and not is_qy:
        adrg = scheme.adrgs.get(target[:3])
        its = f"; ADRG {adrg.code} here has {', '.join(_drgs_of(adrg))}" if adrg else ""
        return (f"{target} is not a DRG of {scheme.name} (a code of another version or a local one: group under "
                f"the insurer's version with --scheme){its}")
    mdc = target[0] if is_qy else place[0].mdc
    adrg = None if is_qy else place[0]
    if mdc != grouping.mdc:
        return _why_not_mdc(case, grouping, mdc, adrg, scheme)
    if adrg is None or adrg.code != grouping.adrg:
        return _why_not_adrg(case, grouping, mdc, adrg, scheme)
    return _why_not_drg(case, grouping, target, place, scheme)


def _drg_places(scheme: DrgScheme) -> dict[str, tuple[Adrg, str, DrgBand | None]]:
    """Each DRG of the scheme -> its ADRG, severity and age / length-of-stay band (None: no band)."""
    places = {}
    for adrg in scheme.adrgs.values():
        places |= {drg: (adrg, severity, None) for severity, drg in adrg.drgs.items()}
        places |= {drg: (adrg, severity, band) for band in adrg.bands for severity, drg in band.drgs.items()}
    return places


def _drgs_of(adrg: Adrg) -> list[str]:
    return sorted({*adrg.drgs.values(), *(d for band in adrg.bands for d in band.drgs.values())})


def _decisive_step(grouping: Grouping) -> str:
    """The trace line that chose the case's MDC or ADRG (pre-MDC, ADRG rule, xQY), else its ungroupable reason."""
    return grouping.reason or next((t for t in reversed(grouping.trace) if t.startswith(
        ("ADRG", "principal operation", "MDCP", "MDCY", "MDCZ"))), "")


def _why_not_mdc(case: Case, grouping: Grouping, mdc: str, adrg: Adrg | None, scheme: DrgScheme) -> str:
    """The target is in another MDC: a pre-MDC rule took the case first, the target's pre-MDC rule does not hold,
    or the principal diagnosis is not in the target MDC's table (or a sex rule bars it, or an MDC before it takes
    it); then whether the target ADRG's own rule would hold."""
    pre = scheme.rules.get("pre_mdc", {}).get("order", ["A", "P", "Y", "Z"])
    principal = case.diagnoses[0] if case.diagnoses else ""
    ours = grouping.mdc
    if ours in pre and (mdc not in pre or pre.index(mdc) > pre.index(ours)):
        return f"the pre-MDC rule MDC{ours} takes the case first ({_decisive_step(grouping)})"
    if mdc in pre:
        reason = _pre_mdc_miss(case, mdc, adrg, scheme)
        if mdc == "A":
            return reason  # MDCA has no principal table: its ADRGs' rules are the whole entry rule
    elif not principal:
        return "the case has no principal diagnosis"
    else:
        mdcs = scheme.principal_mdcs.get(principal, ())
        banned = sex_banned_mdcs(case.sex, scheme)
        if mdc not in mdcs:
            where = (f"it is in {', '.join('MDC' + m for m in mdcs)}" if mdcs
                     else "it is not valid as principal (invalid_principal.csv)"
                     if principal in scheme.invalid_principal else "it is in no MDC's table")
            reason = f"the principal diagnosis {principal} is not in MDC{mdc}'s table ({where})"
        elif mdc in banned:
            men = mdc in scheme.rules.get("sex", {}).get("male_only", [])
            reason = (f"MDC{mdc} is for {'men' if men else 'women'} only ([sex] in special_rules.toml) "
                      f"and the case's sex is {case.sex} ({SEXES.get(case.sex, '?')})")
        else:
            reason = (f"the principal diagnosis {principal} is in MDC{mdc}'s table and in MDC{ours}'s, which comes "
                      f"first in the official MDC order")
    if adrg is None:
        return reason
    misses = rule_misses(case, adrg, scheme)
    rule = f"{adrg.code}'s own rule `{adrg_logic_text(adrg)}`"
    return reason + (f"; and {rule} fails: {'; '.join(misses)}" if misses else f" ({rule} holds)")


def _pre_mdc_miss(case: Case, mdc: str, adrg: Adrg | None, scheme: DrgScheme) -> str:
    """Why the pre-MDC rule (先期分组) of `mdc` does not take the case."""
    principal = case.diagnoses[0] if case.diagnoses else ""
    in_table = mdc in scheme.principal_mdcs.get(principal, ())
    if mdc == "A" and adrg is not None:
        misses = rule_misses(case, adrg, scheme)
        return f"ADRG {adrg.code}'s rule `{adrg_logic_text(adrg)}` fails: {'; '.join(misses)}"
    if not in_table:
        return f"the principal diagnosis {principal or '(none)'} is not in MDC{mdc}'s table"
    if mdc == "P":
        rules = scheme.rules["mdcp"]
        days = case.age_days if case.age_days is not None and case.age_days >= 0 else None
        needs = (f"MDCP takes a newborn (age <= {rules['age_days_max']} days) or an infant (<= "
                 f"{rules['infant_age_days_max']} days, age in years 0 or missing)")
        return f"age in days {'not recorded' if days is None else days}, age {_value(case.age_years)} years: {needs}"
    if mdc == "Z":
        sites = sorted({scheme.mdcz_sites[c] for c in case.diagnoses if c in scheme.mdcz_sites})
        return (f"trauma in {len(sites)} body site(s) ({', '.join(sites) or 'none'}): MDCZ needs at least "
                f"{scheme.rules['mdcz']['min_sites']}")
    return f"the pre-MDC rule MDC{mdc} does not take the case"


def _why_not_adrg(case: Case, grouping: Grouping, mdc: str, adrg: Adrg | None, scheme: DrgScheme) -> str:
    """Same MDC, another ADRG (or the MDC's xQY): the ADRGs are tried in order (`trial_order`), the first whose rule
    holds takes the case. Either the target was tried first and its rule fails (which lists the case missed, and
    which ADRGs were tried), or ours comes before it and holds (and whether the target's rule would)."""
    qy = qy_group(mdc, scheme)
    order = trial_order(mdc, scheme)
    principal_px = case.procedures[0] if case.procedures else ""
    if adrg is None:  # the insurer paid xQY
        if grouping.adrg in order[:order.index(qy)]:
            return (f"ADRG {grouping.adrg} takes the case's principal procedure ({_decisive_step(grouping)}); "
                    f"{qy} is only for an operation no surgical or non-OR ADRG of MDC{mdc} takes")
        kinds = "/".join(scheme.rules.get("qy", {}).get("procedure_kinds", ["手术"]))
        return (f"the principal procedure {principal_px} is not an operation ({kinds}): {qy} needs one" if principal_px
                else f"the case has no procedure: {qy} needs a principal operation no surgical ADRG takes")
    ours = order.index(grouping.adrg) if grouping.adrg in order else len(order)
    misses = rule_misses(case, adrg, scheme)
    rule = f"{adrg.code} (rule `{adrg_logic_text(adrg)}`)"
    if order.index(adrg.code) < ours and misses:
        tried = [c for c in order[:ours] if c != qy]
        taken = (f"so {qy}: {_decisive_step(grouping)}" if grouping.adrg == qy
                 else f"{grouping.adrg} is the first whose rule holds" if ours < len(order)
                 else f"no ADRG of MDC{mdc} takes the case")
        return f"{rule} does not take the case: {'; '.join(misses)} (dipsim tried {', '.join(tried)}; {taken})"
    step = _decisive_step(grouping)
    first = (f"xQY is decided before the medical ADRGs: {step}" if grouping.adrg == qy
             else f"ADRG {grouping.adrg} comes before {adrg.code} in MDC{mdc}'s order"
                  + (" (surgical and non-OR ADRGs before medical ones)"
                     if adrg.kind == "medical" and scheme.adrgs[grouping.adrg].kind != "medical" else "")
                  + f" and takes the case: {step.split(': ', 1)[-1]}")
    return first + (f"; and {rule} does not take it: {'; '.join(misses)}" if misses else f"; {rule} would take it too")


def _why_not_drg(case: Case, grouping: Grouping, target: str, place: tuple[Adrg, str, DrgBand | None],
                 scheme: DrgScheme) -> str:
    """Same ADRG, another DRG: the age / length-of-stay band, or the CC level (which secondary code gave it,
    which exclusion table cancelled one), or the x1 / x5 option."""
    adrg, severity, band = place
    trace: list[str] = []
    level = cc_level(case, scheme, trace, adrg.code)
    drgs, our_band = drg_band(adrg, case, level)
    secondary = case.diagnoses[1:]
    codes = ("; ".join(trace) if trace else f"none of {', '.join(secondary)} is an MCC or a CC" if secondary
             else "no secondary diagnosis")
    if band != our_band:
        bands = [b for b in (band, our_band) if b is not None]
        case_is = f"the case: {_band_case_text(case, level, bands)}"
        if any(b.cc_levels is not None for b in bands):
            case_is += f" ({codes})"
        return (f"{target} is for {band_text(band)}; {case_is}" if band is not None
                else f"{case_is}: {band_text(our_band)} ({', '.join(sorted(our_band.drgs.values()))})")
    if drgs and x1_x5_option_decides(drgs, level):
        option = x1_x5_option(scheme)
        other = "x5" if option == "x1" else "x1"
        return (f"the case has a CC and no MCC ({codes}); ADRG {adrg.code} is split only into {drgs['mcc']} "
                f"(伴严重并发症或合并症) and {drgs['none']}, and the option [options] cc_only_in_x1_x5_split = "
                f"{option!r} pays a CC as {grouping.drg}, the {option} group (a scheme paying it as {other} sets "
                f"{other!r})")
    return f"{target} takes {_SEVERITY_TAKES[severity]}; the case's CC level is {CC_LABELS[level]}: {codes}"


def _band_case_text(case: Case, level: int, bands: list[DrgBand]) -> str:
    """The case's age and stay (as Beijing's bands have always been told), with where the bands read them its age
    from days, CC level and procedures: `age 75 years, stay 5 days`, `age not recorded (200 days: 0 years),
    stay 5 days`, `..., CC level MCC`, `..., procedure 17.4100`."""
    age = _measure("age", case.age_years, "years")
    if any(b.has_age for b in bands) and (case.age_years is None or case.age_years < 0):
        days = band_age(None, case.age_days)
        age += "" if days is None else f" ({case.age_days} days: {days} years)"
    parts = [age, _measure("stay", case.los_days, "days")]
    for b in bands:
        if b.cc_levels is not None or b.procedures:
            extra = band_facts(dataclasses.replace(b, age_years_min=None, age_years_max=None, los_days_min=None,
                                                   los_days_max=None), case, level)
            if extra not in parts:
                parts.append(extra)
    return ", ".join(parts)


def _value(value) -> str:
    return "not recorded" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
