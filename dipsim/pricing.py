"""Case points (病例分值) = group points x outlier factor x hospital coefficient x auxiliary factor (DOMAIN.md §7, 9).

One short pipeline, in this order, each factor kept as its own column so that `explain` can show the chain:

1. **group points**: the DIP group's points, or in DRG point mode the RW x `payment.drg_points_per_rw`;
2. **outlier factor** on r = case cost / the group's standard cost (its mean cost): r < `outlier.low_ratio` pays r
   (the case is paid about its cost), r > `outlier.high_ratio` pays (r - high) + 1, otherwise 1 (both ratios may
   differ by hospital level, `outlier.*_ratio_by_level`); r above `outlier.extreme_ratio` is flagged for
   special-case review (特例单议). A TCM case of a TCM group (同病同价, `tcm.same_price`) is never cut as a low
   outlier;
3. **hospital coefficient** (医疗机构系数): `coefficient.hospital` for the hospital, else the hospitals table's
   coefficient_override, else `coefficient.level` for its level (1.0 when not listed), or with
   `coefficient.mode = "history"` the hospital's cost ratio blended with its level's (`history_coefficients`);
   times 1 + the larger of the TCM hospital bonus (a 中医 hospital) and the TCM case bonus (a TCM-treated case):
   bonuses do not stack;
4. **auxiliary factor** (辅助目录, `dipsim.auxiliary`), 1.0 when not given.

With `outlier.pay_by_item`, outlier cases get no points and are paid their cost by item (`paid_by_item`): the
settlement pays them out of the pool's budget first (`budget.settle`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from dipsim.policy import Policy

OUTLIER_LOW, OUTLIER_NORMAL, OUTLIER_HIGH, OUTLIER_EXTREME = "low", "normal", "high", "extreme"


def outlier_factors(cost: np.ndarray, standard: np.ndarray, policy: Policy, no_low_cut: np.ndarray | None = None,
                    on=None, high: np.ndarray | float | None = None,
                    low: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per case: r, the outlier factor and the outlier class (low / normal / high / extreme). A case without a
    standard cost (or cost) keeps factor 1. `high` / `low`: the ratios per case (by its hospital's level), else
    `outlier.high_ratio` / `outlier.low_ratio`."""
    low = policy.get("outlier.low_ratio", on) if low is None else low
    high = policy.get("outlier.high_ratio", on) if high is None else high
    extreme = policy.get("outlier.extreme_ratio", on)
    cost = np.asarray(cost, dtype=np.float64)
    standard = np.asarray(standard, dtype=np.float64)
    known = (standard > 0) & np.isfinite(standard) & np.isfinite(cost)
    r = np.where(known, cost / np.where(known, standard, 1.0), np.nan)
    is_low = known & (r < low)
    if no_low_cut is not None:
        is_low &= ~no_low_cut
    is_high = known & (r > high)
    factor = np.where(is_low, r, np.where(is_high, r - high + 1.0, 1.0))
    code = np.where(is_low, 0, np.where(known & (r > extreme), 3, np.where(is_high, 2, 1)))
    return r, factor, np.array([OUTLIER_LOW, OUTLIER_NORMAL, OUTLIER_HIGH, OUTLIER_EXTREME])[code]


def hospital_coefficients(hospitals: pa.Table, policy: Policy, on=None) -> dict[str, float]:
    """hospital_id -> its coefficient before bonuses: the policy's per-hospital value, else the table's
    coefficient_override, else the policy's value for its level, else 1.0."""
    by_level = policy.get("coefficient.level", on)
    by_hospital = policy.get("coefficient.hospital", on)
    rows = hospitals.to_pylist()
    out = {}
    for row in rows:
        override = row.get("coefficient_override")
        base = by_level.get(row.get("level"), 1.0)
        if override is not None and not np.isnan(override):
            base = override
        out[row["hospital_id"]] = float(by_hospital.get(row["hospital_id"], base))
    return out


def history_coefficients(codes: np.ndarray, ids, cost, standard_cost, level_of: dict, fixed: dict[str, float],
                         policy: Policy, on=None) -> dict[str, float]:
    """History mode (Zigong): a hospital's coefficient = blend x its cost ratio + (1 - blend) x its level's, the
    cost ratio being the cost of its cases over their groups' standard costs (cases with both known). A hospital
    with a per-hospital value (`coefficient.hospital`) keeps it; one without usable cases gets 1.0."""
    blend = policy.get("coefficient.history_blend", on)
    cost = np.asarray(cost, dtype=np.float64)
    standard = np.asarray(standard_cost, dtype=np.float64)
    usable = np.isfinite(cost) & np.isfinite(standard) & (standard > 0)
    spent = np.bincount(codes[usable], weights=cost[usable], minlength=len(ids))
    expected = np.bincount(codes[usable], weights=standard[usable], minlength=len(ids))
    levels = np.array([level_of.get(h) for h in ids], dtype=object)
    out = {}
    for i, h in enumerate(ids):
        same = levels == levels[i]
        own = spent[i] / expected[i] if expected[i] > 0 else np.nan
        level = spent[same].sum() / expected[same].sum() if expected[same].sum() > 0 else np.nan
        value = blend * own + (1 - blend) * level
        out[h] = float(value) if np.isfinite(value) else 1.0
    for h, value in policy.get("coefficient.hospital", on).items():
        out[h] = float(value)
    return out


def case_points(group_points: np.ndarray, cost: np.ndarray, standard_cost: np.ndarray, hospital_id: np.ndarray,
                hospitals: pa.Table, policy: Policy, tcm_group_case: np.ndarray | None = None,
                tcm_treated: np.ndarray | None = None, aux_factor: np.ndarray | None = None, on=None) -> dict:
    """The pricing chain per case: columns group_points, r, outlier, outlier_factor, coefficient, bonus,
    aux_factor, case_points (numpy arrays, in the cases' order). Cases without group points get 0 points."""
    n = len(group_points)
    points = np.nan_to_num(np.asarray(group_points, dtype=np.float64), nan=0.0)
    tcm_group_case = np.zeros(n, bool) if tcm_group_case is None else np.asarray(tcm_group_case, bool)
    tcm_treated = np.zeros(n, bool) if tcm_treated is None else np.asarray(tcm_treated, bool)
    no_low_cut = tcm_group_case if policy.get("tcm.same_price", on) else None
    codes, ids = pd.factorize(np.asarray(hospital_id, dtype=object))
    level_of = dict(zip(hospitals["hospital_id"].to_pylist(), hospitals["level"].to_pylist()))
    def by_level(name: str):
        table, default = policy.get(f"outlier.{name}_ratio_by_level", on), policy.get(f"outlier.{name}_ratio", on)
        return np.array([table.get(level_of.get(h), default) for h in ids], dtype=np.float64)[codes] if n else None

    r, factor, kind = outlier_factors(cost, standard_cost, policy, no_low_cut, on, by_level("high"), by_level("low"))
    coefficients = hospital_coefficients(hospitals, policy, on)
    if policy.get("coefficient.mode", on) == "history":
        coefficients = history_coefficients(codes, ids, cost, standard_cost, level_of, coefficients, policy, on)
    unknown = sorted(set(ids) - set(coefficients))
    if unknown:
        raise ValueError(f"{len(unknown)} hospital(s) of the cases are not in the hospitals table, e.g. {unknown[:3]}")
    coefficient = np.array([coefficients[h] for h in ids], dtype=np.float64)[codes] if n else np.zeros(0)
    tcm_hospitals = {row["hospital_id"] for row in hospitals.to_pylist() if row.get("type") == "中医"}
    is_tcm_hospital = np.array([h in tcm_hospitals for h in ids], dtype=bool)[codes] if n else np.zeros(0, bool)
    bonus = np.maximum(np.where(is_tcm_hospital, policy.get("coefficient.tcm_hospital_bonus", on), 0.0),
                       np.where(tcm_treated, policy.get("tcm.case_bonus", on), 0.0))
    aux = np.ones(n) if aux_factor is None else np.asarray(aux_factor, dtype=np.float64)
    by_item = np.isin(kind, {"none": [], "high": [OUTLIER_HIGH, OUTLIER_EXTREME],
                             "high_and_low": [OUTLIER_HIGH, OUTLIER_EXTREME, OUTLIER_LOW]}[
                                 policy.get("outlier.pay_by_item", on)])
    return {"group_points": points, "r": r, "outlier": kind, "outlier_factor": factor,
            "coefficient": coefficient, "bonus": bonus, "aux_factor": aux, "paid_by_item": by_item,
            "case_points": np.where(by_item, 0.0, points * factor * coefficient * (1.0 + bonus) * aux)}
