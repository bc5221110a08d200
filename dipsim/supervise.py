"""Fund supervision screens (基金监管筛查, docs/domain.md §10) over grouped cases, and what they cost a hospital.

Each screen is a rule with its parameters in the policy (`supervision.*`); it flags cases, each with a reason a
reviewer can check by hand, and the flags are summed per hospital:

- `split_readmission` (分解住院): the same patient admitted again to the same group (and, by default, the same
  hospital) within `supervision.readmission_days` of a discharge. The *earlier* stay is flagged (its points are
  the ones cut), with the later stay's id; stays for radiotherapy or chemotherapy cycles are exempt.
- `low_standard` (低标入院): a stay of at most `low_standard_los_days` costing below `low_standard_cost_ratio` of
  its group's median, not ending in death or a transfer.
- `long_stay` (超长住院): LOS above `long_stay_ratio` x the group's median LOS and at least `long_stay_min_days`.
- `five_same` ("五同"住院): same patient, hospital, principal diagnosis and principal procedure, admitted again
  within `five_same_days`; the later stay is flagged.
- `upcoding` (高套编码): a hospital whose MCC/CC share, or MCC share, is `upcoding_excess` x what the region codes
  for the same principal diagnoses (indirect standardisation) and `upcoding_z` standard errors above it. Its
  cases coded MCC/CC where the region codes them in under half the stays of that diagnosis are flagged.
- `low_risk_death` (低风险组死亡): a death in a group whose ln(mortality) z-score is below `low_risk_z`.

Group medians and mortality come from the screened cases themselves (groups with `min_group_cases` or more).
`consequences` turns the flags into the payment consequences the policy sets (step 6 of `dipsim.payment`).
These functions hold the cases in memory; `dipsim screen` runs the same screens over its input piece by piece in
memory that does not grow with the cases (`dipsim.supervise_stream`, tested to give these flags line for line).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.schema import DISCHARGE_DEATH, float_column

SCREENS = ("split_readmission", "low_standard", "long_stay", "five_same", "upcoding", "low_risk_death")
TRANSFER_MODES = (2, 3)  # 离院方式 2 医嘱转院, 3 医嘱转社区: a short stay that ends in a transfer is not low-standard
FLAG_COLUMNS = ("case_id", "hospital_id", "patient_id", "screen", "reason", "related_case_id")


@dataclass
class Screens:
    """Per flag (one row per case and screen): `flags`; per case and screen: `masks`; per hospital: `hospitals`
    (cases, one count per screen, the upcoding indicators and flag)."""

    flags: pd.DataFrame  # FLAG_COLUMNS
    masks: dict[str, np.ndarray]  # screen -> bool per case, in the cases' order
    hospitals: pd.DataFrame  # hospital_id, cases, one count per screen, upcoding indicators and flag
    skipped: dict[str, str]  # screen -> why it did not run (a column the cases lack)


def _days(column) -> np.ndarray:
    """A date column as days since 1970 (float, NaN when missing)."""
    days = pc.cast(pc.cast(column, pa.date32()), pa.int32())
    return pc.cast(days, pa.float64()).to_numpy(zero_copy_only=False)


@dataclass
class _Coded:
    """A text column as integer codes (-1: missing) and the labels they index."""

    codes: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, column) -> _Coded:
        """Codes of a text column; an empty text is missing."""
        column = pa.chunked_array([column]) if isinstance(column, pa.Array) else column
        text = pc.cast(column, pa.string())
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        encoded = pc.dictionary_encode(text).combine_chunks()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(codes, encoded.dictionary.to_numpy(zero_copy_only=False))

    def label(self, idx: np.ndarray) -> np.ndarray:
        c = self.codes[idx]
        return np.where(c >= 0, self.labels[np.maximum(c, 0)] if len(self.labels) else None, None)


def first_codes(column) -> pa.Array:
    """The first code of each code list (principal diagnosis / procedure); null for an empty or missing list."""
    lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    has = pc.fill_null(pc.greater(pc.list_value_length(lists), 0), False)
    firsts = pc.list_element(lists.filter(has), 0)
    if not len(firsts):
        return pa.nulls(len(lists), firsts.type)
    index = np.cumsum(has.to_numpy(zero_copy_only=False)) - 1  # each row's place among the non-empty lists
    return pc.if_else(has, firsts.take(pa.array(np.maximum(index, 0))), pa.scalar(None, firsts.type))


@dataclass
class _Cases:
    """What the screens read, one numpy array per column (text as integer codes)."""

    case_id: pa.Array
    hospital: _Coded
    patient: _Coded
    group: _Coded
    dx: _Coded
    px: _Coded
    admission: np.ndarray
    discharge: np.ndarray
    los: np.ndarray
    cost: np.ndarray
    mode: np.ndarray
    cc: np.ndarray | None
    points: np.ndarray | None

    @classmethod
    def of(cls, cases: pa.Table, group, cc_level, points=None) -> _Cases:
        n, names = cases.num_rows, cases.column_names

        def number(name: str, missing=np.nan) -> np.ndarray:
            return float_column(cases, name, missing)

        def coded(name: str, values=None) -> _Coded:
            if values is None and name not in names:
                return _Coded(np.full(n, -1, np.int64), np.array([], dtype=object))
            return _Coded.of(values if values is not None else cases[name])

        return cls(
            case_id=pc.cast(cases["case_id"], pa.string()).combine_chunks(), hospital=coded("hospital_id"),
            patient=coded("patient_id"), group=_Coded.of(pa.array(np.asarray(group, dtype=object), pa.string())),
            dx=coded("diagnoses", first_codes(cases["diagnoses"])),
            px=coded("procedures", first_codes(cases["procedures"]) if "procedures" in names else None),
            admission=_days(cases["admission_date"]) if "admission_date" in names else np.full(n, np.nan),
            discharge=_days(cases["discharge_date"]) if "discharge_date" in names else np.full(n, np.nan),
            los=number("los_days"), cost=number("total_cost"), mode=number("discharge_mode", 0).astype(np.int16),
            cc=None if cc_level is None else np.asarray(cc_level, dtype=np.float64),
            points=None if points is None else np.asarray(points, dtype=np.float64))


def _group_median(values: np.ndarray, group: np.ndarray, min_cases: int) -> np.ndarray:
    """Each case's group median of `values` (NaN without a group or in a group under `min_cases` cases)."""
    series = pd.Series(values).groupby(group)
    median = series.transform("median").to_numpy()
    return np.where((group >= 0) & (series.transform("size").to_numpy() >= min_cases), median, np.nan)


def _flag(c: _Cases, idx: np.ndarray, screen: str, reasons: list[str], related: np.ndarray | None = None
          ) -> pd.DataFrame:
    """The flag rows of the cases at `idx`, with their reasons (and related cases) in the same order."""
    return pd.DataFrame({
        "case_id": c.case_id.take(pa.array(idx, pa.int64())).to_numpy(zero_copy_only=False),
        "hospital_id": c.hospital.label(idx), "patient_id": c.patient.label(idx), "screen": screen,
        "reason": np.asarray(reasons, dtype=object), "related_case_id": (
            c.case_id.take(pa.array(related, pa.int64())).to_numpy(zero_copy_only=False) if related is not None
            else np.full(len(idx), None, object))})


def _repeats(c: _Cases, keys: list[_Coded], days: int, exempt: np.ndarray | None = None):
    """Consecutive stays of a patient (by admission) with equal `keys` (both missing counts as equal, but a stay
    without a group matches none): the earlier and later stay of each pair whose gap, from the earlier discharge
    to the later admission, is 0 to `days` days; and that gap."""
    order = np.lexsort((c.discharge, c.admission, c.patient.codes))
    pat = c.patient.codes[order]
    same = (pat[:-1] >= 0) & (pat[:-1] == pat[1:])
    for key in keys:
        k = key.codes[order]
        same &= k[:-1] == k[1:]
        if key is c.group:
            same &= k[:-1] >= 0
    gap = c.admission[order][1:] - c.discharge[order][:-1]
    hit = same & (gap >= 0) & (gap <= days)
    if exempt is not None:
        ex = exempt[order]
        hit &= ~ex[:-1] & ~ex[1:]
    at = np.flatnonzero(hit)
    return order[at], order[at + 1], gap[at]


def screen_cases(cases: pa.Table, group, policy, cc_level=None, points=None, on=None) -> Screens:
    """Run every screen over `cases` (the case schema) grouped into `group` (DIP group or DRG; '' or None when
    ungroupable); `cc_level` (0 none, 1 CC, 2 MCC, from the CHS-DRG grouper) feeds the upcoding screen, which is
    skipped without it; `points` (the cases' group points) adds the mean-points indicator to it."""
    def get(path: str):
        return policy.get(path, on)

    c = _Cases.of(cases, group, cc_level, points)
    n = cases.num_rows
    min_cases = get("supervision.min_group_cases")
    masks, parts, skipped = {}, [], {}

    def need(screen: str, **columns) -> bool:
        missing = [name for name, values in columns.items() if n and np.all(values < 0 if values.dtype.kind == "i"
                                                                             else np.isnan(values))]
        if missing:
            skipped[screen] = f"the cases have no {', '.join(missing)}"
        return not missing

    def record(screen: str, idx: np.ndarray, reasons, related=None) -> None:
        mask = np.zeros(n, bool)
        mask[idx] = True
        masks[screen] = mask
        parts.append(_flag(c, idx, screen, reasons, related))

    dated = dict(patient_id=c.patient.codes, admission_date=c.admission, discharge_date=c.discharge)
    # 分解住院: the earlier stay, when the patient's next stay is in the same group within N days
    if need("split_readmission", **dated):
        prefixes = tuple(p.strip() for p in get("supervision.readmission_exempt_diagnoses").split(",") if p.strip())
        exempt_code = np.array([str(d).startswith(prefixes) for d in c.dx.labels], bool) if prefixes else None
        exempt = exempt_code[c.dx.codes] & (c.dx.codes >= 0) if exempt_code is not None and len(exempt_code) \
            else None
        keys = [c.group, c.hospital] if get("supervision.readmission_same_hospital") else [c.group]
        earlier, later, gap = _repeats(c, keys, get("supervision.readmission_days"), exempt)
        record("split_readmission", earlier, [
            f"readmitted {g:.0f} days after discharge to the same group {grp}"
            for g, grp in zip(gap, c.group.label(earlier))], later)

    # 低标入院: a short, cheap stay that did not end in death or a transfer
    if need("low_standard", los_days=c.los):
        median_cost = _group_median(c.cost, c.group.codes, min_cases)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = c.cost / np.where(median_cost > 0, median_cost, np.nan)
        idx = np.flatnonzero((c.los <= get("supervision.low_standard_los_days"))
                             & (ratio < get("supervision.low_standard_cost_ratio"))
                             & (c.mode != DISCHARGE_DEATH) & ~np.isin(c.mode, TRANSFER_MODES))
        record("low_standard", idx, [f"LOS {d:.0f} days, cost {x:.2f} = {r:.0%} of the group's median {m:.2f}"
                                     for d, x, r, m in zip(c.los[idx], c.cost[idx], ratio[idx], median_cost[idx])])

    # 超长住院
    if need("long_stay", los_days=c.los):
        median_los = _group_median(c.los, c.group.codes, min_cases)
        idx = np.flatnonzero((c.los > get("supervision.long_stay_ratio") * median_los)
                             & (c.los >= get("supervision.long_stay_min_days")))
        record("long_stay", idx, [f"LOS {d:.0f} days = {d / m:.1f} x the group's median {m:g}"
                                  for d, m in zip(c.los[idx], median_los[idx])])

    # "五同"住院: the later stay, same patient, hospital, principal diagnosis and procedure within N days
    if need("five_same", **dated):
        earlier, later, gap = _repeats(c, [c.hospital, c.dx, c.px], get("supervision.five_same_days"))
        record("five_same", later, [
            f"same patient, hospital, diagnosis {dx} and procedure {px or '(none)'} again {g:.0f} days later"
            for g, dx, px in zip(gap, c.dx.label(later), c.px.label(later))], earlier)

    # 低风险组死亡: a death in a group whose ln(mortality) is far below the others'
    death = c.mode == DISCHARGE_DEATH
    grouped = c.group.codes >= 0
    size = np.bincount(c.group.codes[grouped], minlength=len(c.group.labels))
    rate = np.bincount(c.group.codes[grouped], weights=death[grouped], minlength=len(c.group.labels)) / \
        np.maximum(size, 1)
    usable = (size >= min_cases) & (rate > 0)
    low_risk = np.zeros(len(rate), bool)
    if usable.sum() > 1 and np.log(rate[usable]).std() > 0:
        log_rate = np.log(rate[usable])
        z = (log_rate - log_rate.mean()) / log_rate.std()
        low_risk[np.flatnonzero(usable)[z < get("supervision.low_risk_z")]] = True
    idx = np.flatnonzero(death & grouped & low_risk[np.maximum(c.group.codes, 0)])
    record("low_risk_death", idx, [f"death in the low-risk group {g} (regional mortality {r:.2%})"
                                   for g, r in zip(c.group.label(idx), rate[c.group.codes[idx]])])

    hospitals = pd.DataFrame({"hospital_id": c.hospital.labels,
                              "cases": np.bincount(c.hospital.codes[c.hospital.codes >= 0],
                                                   minlength=len(c.hospital.labels))})
    if c.cc is not None:
        indicators, idx, reasons = _upcoding(c, get("supervision.upcoding_excess"), get("supervision.upcoding_z"))
        hospitals = pd.concat([hospitals, indicators], axis=1)
        record("upcoding", idx, reasons)
    else:
        skipped["upcoding"] = "no MCC/CC levels (group the cases with a CHS-DRG scheme)"
    known = c.hospital.codes >= 0
    for screen in SCREENS:
        if screen in masks:
            hospitals[screen] = np.bincount(c.hospital.codes[known], weights=masks[screen][known],
                                            minlength=len(c.hospital.labels)).astype(np.int64)
    flags = pd.concat([p for p in parts if len(p)] or [pd.DataFrame(columns=list(FLAG_COLUMNS))],
                      ignore_index=True)
    return Screens(flags, masks, hospitals.sort_values("hospital_id", ignore_index=True), skipped)


def _upcoding(c: _Cases, excess: float, z_min: float):
    """Per hospital: observed / expected MCC/CC share and MCC share, expected from the region's rate for each
    principal diagnosis (indirect standardisation), each with a z-score (O - E) / sqrt(sum p(1 - p)); and the
    mean group points against the region's for the same diagnoses, with its z-score (O - E) / sqrt(sum var)
    (reported, not used to flag: points also reflect procedures)."""
    known = (c.dx.codes >= 0) & (c.hospital.codes >= 0) & ~np.isnan(c.cc)
    dx, hospital = c.dx.codes[known], c.hospital.codes[known]
    n_dx, n_h = len(c.dx.labels), len(c.hospital.labels)
    per_dx = np.maximum(np.bincount(dx, minlength=n_dx), 1)
    out, share = {}, None
    for name, level in (("any_cc", 1), ("mcc", 2)):
        coded = c.cc[known] >= level
        p = (np.bincount(dx, weights=coded, minlength=n_dx) / per_dx)[dx]
        share = p if share is None else share
        o, e = (np.bincount(hospital, weights=w, minlength=n_h) for w in (coded, p))
        v = np.bincount(hospital, weights=p * (1 - p), minlength=n_h)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{name}_ratio"] = np.round(np.where(e > 0, o / e, np.nan), 4)
            out[f"{name}_z"] = np.round(np.where(v > 0, (o - e) / np.sqrt(v), np.nan), 2)
    if c.points is not None:  # mean group points against the region's for the same diagnoses (reported only)
        pts = c.points[known]
        has = np.isfinite(pts) & (pts > 0)
        count = np.maximum(np.bincount(dx[has], minlength=n_dx), 1)
        mean = np.bincount(dx[has], weights=pts[has], minlength=n_dx) / count
        var = np.maximum(np.bincount(dx[has], weights=pts[has] ** 2, minlength=n_dx) / count - mean ** 2, 0.0)
        o, e, v = (np.bincount(hospital[has], weights=w, minlength=n_h)
                   for w in (pts[has], mean[dx[has]], var[dx[has]]))
        with np.errstate(invalid="ignore", divide="ignore"):
            out["points_ratio"] = np.round(np.where(e > 0, o / e, np.nan), 4)
            out["points_z"] = np.round(np.where(v > 0, (o - e) / np.sqrt(v), np.nan), 2)
    table = pd.DataFrame(out)
    flagged = (((table["any_cc_ratio"] >= excess) & (table["any_cc_z"] >= z_min))
               | ((table["mcc_ratio"] >= excess) & (table["mcc_z"] >= z_min))).to_numpy()
    table["upcoding_flag"] = flagged
    rows = np.flatnonzero(known)
    pick = flagged[hospital] & (c.cc[known] >= 1) & (share < 0.5)
    idx = rows[pick]
    reasons = [f"MCC/CC coded for {d}, which the region codes with MCC/CC in {s:.0%} of its stays; the hospital "
               f"codes MCC/CC {r:.2f} x as often as expected" for d, s, r in
               zip(c.dx.label(idx), share[pick], table["any_cc_ratio"].to_numpy()[hospital[pick]])]
    return table, idx, reasons


# The supervision parameters `screen_cases` reads (which cases a screen flags), and those that turn a flag into
# money (`payment_factors`); together, the whole supervision section of the registry (tests/test_parameter_names.py).
SCREEN_PARAMETERS = (
    "supervision.five_same_days",
    "supervision.long_stay_min_days",
    "supervision.long_stay_ratio",
    "supervision.low_risk_z",
    "supervision.low_standard_cost_ratio",
    "supervision.low_standard_los_days",
    "supervision.min_group_cases",
    "supervision.readmission_days",
    "supervision.readmission_exempt_diagnoses",
    "supervision.readmission_same_hospital",
    "supervision.upcoding_excess",
    "supervision.upcoding_z",
)
CONSEQUENCES = ("supervision.split_readmission_factor", "supervision.low_standard_factor",
                "supervision.deduction_points")


def consequences(screens: Screens, periods, case_period: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 6 of the payment chain, the supervision consequences per case under the case-level terms of its period
    (`payment.terms.CaseTerms`, `periods[case_period[i]]`): (points factor, points deducted). A split
    readmission's earlier stay keeps `supervision.split_readmission_factor` of its points, a low-standard admission
    `supervision.low_standard_factor`; `supervision.deduction_points` takes fixed points off each flagged case."""
    n = len(case_period)
    factor, deducted = np.ones(n), np.zeros(n)
    known = set(SCREENS)
    for terms in periods:
        unknown = set(terms.deduction_points) - known
        if unknown:
            raise ValueError(f"supervision.deduction_points: unknown screen(s) {sorted(unknown)}; known: "
                             f"{list(SCREENS)}")
        missing = {s for s, v in terms.deduction_points.items() if v and s not in screens.masks}
        if missing:
            raise ValueError(f"supervision.deduction_points: {sorted(missing)} did not run: "
                             + "; ".join(screens.skipped.get(s, "") for s in sorted(missing)))
    for screen, values in (("split_readmission", [t.split_readmission_factor for t in periods]),
                           ("low_standard", [t.low_standard_factor for t in periods])):
        if screen in screens.masks:
            mask = screens.masks[screen]
            factor[mask] *= np.asarray(values, dtype=np.float64)[case_period[mask]]
    for screen in sorted({s for t in periods for s in t.deduction_points}):
        mask = screens.masks.get(screen)
        if mask is not None:
            points = np.array([t.deduction_points.get(screen, 0.0) for t in periods], dtype=np.float64)
            deducted[mask] += points[case_period[mask]]
    return factor, deducted


def apply_consequences(case_points: np.ndarray, screens: Screens, policy, on=None) -> np.ndarray:
    """Case points after the supervision consequences of `policy` on the day `on` (never below zero): for a hand
    check; the payment chain applies each case's own terms (`consequences`)."""
    from dipsim.payment.terms import CaseTerms

    factor, deducted = consequences(screens, (CaseTerms.of(policy, on),), np.zeros(len(case_points), np.int64))
    return np.maximum(case_points * factor - deducted, 0.0)


def screens_for(cases: pa.Table, group, policy, on=None, cache: dict | None = None, cc_level=None) -> Screens:
    """`screen_cases` under the screens' thresholds on the settlement day `on`, run once per set of their values
    (`cache`, shared by the variants of a scenario run)."""
    cache = {} if cache is None else cache
    key = tuple(str(policy.get(p, on)) for p in SCREEN_PARAMETERS)
    if key not in cache:
        cache[key] = screen_cases(cases, group, policy, cc_level=cc_level, on=on)
    return cache[key]


def screen_region(cases: pa.Table, policy, scheme: str = "chs-drg-1.1", catalog=None, on=None) -> Screens:
    """Group the validated `cases` and screen them: under the CHS-DRG `scheme` for MCC/CC levels (and, without a
    DIP `catalog`, for the groups and their weights calibrated on the cases' costs), or to the catalogue's groups."""
    return screen_cases(cases, policy=policy, on=on, **screen_inputs(cases, scheme, catalog))


def screen_inputs(cases: pa.Table, scheme: str = "chs-drg-1.1", catalog=None) -> dict:
    """`screen_region`'s grouping: the `group`, `cc_level` and `points` arguments of `screen_cases`."""
    from dipsim.grouping.drg import group_table

    drg = group_table(cases, scheme)
    codes = drg["drg"].to_numpy(zero_copy_only=False)
    if catalog is not None:
        from dipsim.grouping.grouped_cases import group_dip

        grouped = group_dip(cases, catalog)
        group, points = grouped.group, grouped.group_points
    else:
        from dipsim.weights import calibrate_weights

        cost = float_column(cases, "total_cost", 0.0)
        weights = calibrate_weights(codes, cost)
        group = np.where(codes == "0000", None, codes)
        points = pd.Series(codes).map(dict(zip(weights["drg"], weights["rw"]))).to_numpy(dtype=np.float64)
    return {"group": group, "cc_level": drg["cc_level"].to_numpy(zero_copy_only=False), "points": points}
