"""Steps 2-5 of the payment chain (`dipsim.payment.chain`, docs/domain.md §7-9): case points (病例分值) = group points
x outlier factor x hospital coefficient x (1 + TCM bonus) x auxiliary factor, each factor its own column.

2. **outlier factor** on r = case cost / the group's standard cost (its mean cost): r < `outlier.low_ratio` pays r
   (the case is paid about its cost), r > `outlier.high_ratio` pays (r - high) + 1, otherwise 1 (both ratios may
   differ by hospital level, `outlier.*_ratio_by_level`); r above `outlier.extreme_ratio` (at least the high ratio)
   is extreme, a candidate for special-case review (特例单议). A TCM case of a TCM group (同病同价,
   `tcm.same_price`) is never cut as a low outlier. Without a usable standard cost (no group, a group without a
   mean cost) r is unknown: the case is normal, factor 1;
3. **hospital coefficient** (医疗机构系数): `coefficient.hospital` for the hospital, else the hospitals table's
   coefficient_override, else `coefficient.level` for its level (every hospital 1.0 when that table is empty), or
   with `coefficient.mode = "history"` the hospital's cost ratio blended with its level's (`history_coefficients`);
4. **TCM bonus**: 1 + the larger of the TCM hospital bonus (a 中医 hospital) and the TCM case bonus (a TCM-treated
   case): bonuses do not stack;
5. **auxiliary factor** (辅助目录, `dipsim.auxiliary`), 1.0 when not given.

With `outlier.pay_by_item`, outlier cases get no points and are paid their cost by item (`paid_by_item`): the
settlement pays them out of the pool's budget first (`budget.settle_frame`). Each case is priced with the
case-level terms of its discharge date (`payment.terms.CaseTerms`).

What pricing reads of a hospital must be there (`hospital_problems`, checked before a case is priced): the hospital
in the hospitals table; a level listed in `coefficient.level` unless the hospital has its own coefficient (an
unknown or empty level used to get 1.0, the 三甲 rate, silently); a level at all where outlier ratios go by level or
history coefficients blend the level's ratio; a type of `HOSPITAL_TYPES` where TCM hospitals get a bonus.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.io.errors import InputError
from dipsim.payment.terms import CaseTerms
from dipsim.policy import Policy
from dipsim.schema import HOSPITAL_TYPES

OUTLIER_LOW, OUTLIER_NORMAL, OUTLIER_HIGH, OUTLIER_EXTREME = "low", "normal", "high", "extreme"
OUTLIER_CLASSES = (OUTLIER_LOW, OUTLIER_NORMAL, OUTLIER_HIGH, OUTLIER_EXTREME)  # the codes 0-3 of `outlier`
# `outlier.pay_by_item` -> the classes paid their cost by item instead of points
PAID_BY_ITEM = {"none": (), "high": (OUTLIER_HIGH, OUTLIER_EXTREME),
                "high_and_low": (OUTLIER_LOW, OUTLIER_HIGH, OUTLIER_EXTREME)}


def _some(items: list[str], limit: int = 10) -> str:
    """The first `limit` items, and how many more."""
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _own_coefficient(row: dict, by_hospital: dict) -> float | None:
    """The hospital's own coefficient: the policy's per-hospital value, else the table's coefficient_override."""
    if row["hospital_id"] in by_hospital:
        return float(by_hospital[row["hospital_id"]])
    override = row.get("coefficient_override")
    return None if override is None or np.isnan(override) else float(override)


def _blank(text) -> bool:
    return text is None or not str(text).strip()


def hospital_problems(hospitals: pa.Table, ids, terms: CaseTerms, rows: list[dict] | None = None) -> list[str]:
    """What pricing needs of the hospitals `ids` (those of the cases) and does not find, one line per kind: a
    hospital not in the table; a level not in a non-empty `coefficient.level` for a hospital without a coefficient
    of its own; an empty level where `outlier.*_ratio_by_level` or history coefficients read it; a type outside
    HOSPITAL_TYPES where `coefficient.tcm_hospital_bonus` is given. `rows`: `hospitals.to_pylist()` when already
    made."""
    by_id = {r["hospital_id"]: r for r in (hospitals.to_pylist() if rows is None else rows)}
    wanted = sorted(set(ids))
    problems = []
    unknown = [h for h in wanted if h not in by_id]
    if unknown:
        problems.append(f"{len(unknown)} hospital(s) of the cases are not in the hospitals table: {_some(unknown)}")
    by_level, by_hospital = terms.coefficient_level, terms.coefficient_hospital
    history = terms.coefficient_mode == "history"
    outlier_tables = [name for name, table in (("outlier.low_ratio_by_level", terms.low_ratio_by_level),
                                               ("outlier.high_ratio_by_level", terms.high_ratio_by_level)) if table]
    blends_level = history and terms.history_blend < 1
    tcm_bonus = terms.tcm_hospital_bonus > 0
    no_coefficient, no_type = [], []
    no_level: dict[str, list[str]] = {}
    for h in (h for h in wanted if h in by_id):
        row, level = by_id[h], by_id[h].get("level")
        if not history and by_level and _own_coefficient(row, by_hospital) is None and level not in by_level:
            no_coefficient.append(f"{h} (no level)" if _blank(level) else f"{h} (level {level!r})")
        elif _blank(level):
            readers = outlier_tables + (["coefficient.mode = history"] if blends_level and h not in by_hospital
                                        else [])
            if readers:
                no_level.setdefault(" and ".join(readers), []).append(h)
        if tcm_bonus and row.get("type") not in HOSPITAL_TYPES:
            no_type.append(f"{h} (type {row.get('type')!r})")
    if no_coefficient:
        problems.append(f"hospital(s) {_some(no_coefficient)}: the level is not in coefficient.level "
                        f"({', '.join(by_level)}), so the coefficient is unknown: correct the level in the hospitals "
                        "table, add it to coefficient.level, or give the hospital its own coefficient "
                        "(coefficient_override in the table, coefficient.hospital in the policy)")
    for names, hospital_ids in no_level.items():
        problems.append(f"hospital(s) {_some(hospital_ids)}: no level in the hospitals table, which {names} "
                        "read(s) by level: fill it in")
    if no_type:
        problems.append(f"hospital(s) {_some(no_type)}: the type is not one of {', '.join(HOSPITAL_TYPES)}, which "
                        "coefficient.tcm_hospital_bonus reads (中医 hospitals get the bonus): correct it")
    return problems


def hospital_coefficients(hospitals: pa.Table, terms: CaseTerms, ids=None,
                          rows: list[dict] | None = None) -> dict[str, float]:
    """hospital_id -> its coefficient before bonuses, for the hospitals `ids` (default: every row): its own
    (`coefficient.hospital`, else the table's coefficient_override), else `coefficient.level` for its level, or
    1.0 when that table is empty. InputError naming the hospitals without a coefficient (`hospital_problems`).
    `rows`: `hospitals.to_pylist()` when already made."""
    rows = hospitals.to_pylist() if rows is None else rows
    ids = [r["hospital_id"] for r in rows] if ids is None else ids
    problems = hospital_problems(hospitals, ids, terms, rows)
    if problems:
        raise InputError("; ".join(problems))
    by_level, by_hospital = terms.coefficient_level, terms.coefficient_hospital
    wanted = set(ids)
    out = {}
    for row in rows:
        if row["hospital_id"] in wanted:
            own = _own_coefficient(row, by_hospital)
            out[row["hospital_id"]] = own if own is not None else float(by_level[row["level"]]) if by_level else 1.0
    return out


def history_coefficients(codes: np.ndarray, ids, cost, standard_cost, level_of: dict,
                         terms: CaseTerms) -> dict[str, float]:
    """History mode (Zigong): a hospital's coefficient = blend x its cost ratio + (1 - blend) x its level's, the
    cost ratio being the cost of its cases over their groups' standard costs (cases with both known). A hospital
    with a per-hospital value (`coefficient.hospital`) keeps it; one without usable cases gets 1.0."""
    blend = terms.history_blend
    cost = np.asarray(cost, dtype=np.float64)
    standard = np.asarray(standard_cost, dtype=np.float64)
    usable = np.isfinite(cost) & np.isfinite(standard) & (standard > 0)
    spent = np.bincount(codes[usable], weights=cost[usable], minlength=len(ids))
    expected = np.bincount(codes[usable], weights=standard[usable], minlength=len(ids))
    levels = [level_of.get(h) for h in ids]
    level_spent: defaultdict[str | None, float] = defaultdict(float)
    level_expected: defaultdict[str | None, float] = defaultdict(float)
    for lv, s, e in zip(levels, spent, expected):
        level_spent[lv] += s
        level_expected[lv] += e
    out = {}
    for i, h in enumerate(ids):
        own = spent[i] / expected[i] if expected[i] > 0 else np.nan
        lv = levels[i]
        level = level_spent[lv] / level_expected[lv] if level_expected[lv] > 0 else np.nan
        value = blend * own + (1 - blend) * level
        out[h] = float(value) if np.isfinite(value) else 1.0
    for h, value in terms.coefficient_hospital.items():
        out[h] = float(value)
    return out


@dataclass(frozen=True)
class CaseHospitals:
    """Each case's hospital as an integer code into `ids` (factorised once; a sweep of scenarios reuses it)."""

    codes: np.ndarray
    ids: np.ndarray

    @classmethod
    def of(cls, hospital_id) -> CaseHospitals:
        """The codes in order of first appearance; an Arrow column is encoded by Arrow's hash, its ids cast to text.
        InputError when a case has no hospital (`region.settleable` rejects such cases)."""
        if isinstance(hospital_id, (pa.Array, pa.ChunkedArray)):
            text = pc.cast(hospital_id, pa.string())
            encoded = pc.dictionary_encode(text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text)
            codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
            ids = encoded.dictionary.to_numpy(zero_copy_only=False)
        else:
            codes, ids = pd.factorize(np.asarray(hospital_id, dtype=object))
        if (codes < 0).any():
            raise InputError(f"{int((codes < 0).sum()):,} case(s) without hospital_id: price only the cases "
                             "region.settleable keeps")
        return cls(codes, np.asarray(ids, dtype=object))


def _price_cases(group_points, cost, standard, cell, no_low_cut, tcm_treated, aux, low_c, high_c, coefficient_c,
                 extreme_c, hospital_bonus_c, case_bonus_c, by_item_c, *outputs) -> None:
    """`pricing_kernel.price_cases` on writable C arrays of fixed dtypes (a copy only of an input that is not one
    already): Numba compiles (and caches) one signature, the one `warm_up` loads."""
    from dipsim.pricing_kernel import price_cases

    def arr(a, dtype):
        return np.require(a, dtype=dtype, requirements=("C", "W"))

    price_cases(arr(group_points, np.float64), arr(cost, np.float64), arr(standard, np.float64),
                arr(cell, np.int64), arr(no_low_cut, np.bool_), arr(tcm_treated, np.bool_), arr(aux, np.float64),
                arr(low_c, np.float64), arr(high_c, np.float64), arr(coefficient_c, np.float64),
                arr(extreme_c, np.float64), arr(hospital_bonus_c, np.float64), arr(case_bonus_c, np.float64),
                arr(by_item_c, np.bool_), *outputs)


def warm_up() -> threading.Thread:
    """Load the pricing kernel from Numba's cache in a background thread (pricing one case), while the caller
    reads its cases; a later call waits for the load if it is not finished."""
    def run() -> None:
        one, flag = np.ones(1), np.zeros(1, np.bool_)
        _price_cases(one, one, one, np.zeros(1, np.int64), flag, flag, one, one, one, one, one, one, one,
                     np.zeros((1, len(OUTLIER_CLASSES)), np.bool_), np.empty(1), np.empty(1), np.empty(1),
                     np.empty(1, np.int8), np.empty(1), np.empty(1), np.empty(1), np.empty(1, np.bool_))

    thread = threading.Thread(target=run, name="dipsim-pricing-kernel-warm-up", daemon=True)
    thread.start()
    return thread


def price(group_points: np.ndarray, cost: np.ndarray, standard_cost: np.ndarray, index: CaseHospitals,
          hospitals: pa.Table, periods: tuple[CaseTerms, ...], period: np.ndarray,
          tcm_group_case: np.ndarray | None = None, tcm_treated: np.ndarray | None = None,
          aux_factor: np.ndarray | None = None, workspace: dict | None = None) -> dict:
    """Steps 2-5 of the payment chain (outlier factor, hospital coefficient, TCM bonus, auxiliary factor) for every
    case, each with the case-level terms of its period (`periods[period[i]]`): columns group_points, r, outlier
    (int8 codes into OUTLIER_CLASSES), outlier_factor, coefficient, bonus, aux_factor, paid_by_item, case_points
    (in the cases' order). `group_points` are the chain's step 1 (DIP points, or RW x points per RW); cases without
    them get 0 points. The values of each cell, a (period, hospital) pair, are prepared here; the Numba kernel
    (`pricing_kernel`) prices every case in one pass. `workspace` (a dict kept by the caller): the output columns
    are written into its arrays, allocated once, so a sweep does not allocate and fault in ~40 MB per million cases
    per variant; the columns returned are then overwritten by the next call with the same workspace."""
    n = len(group_points)
    codes, ids = index.codes, index.ids
    rows = hospitals.to_pylist()  # once: every period's coefficients and checks read these
    level_of = {r["hospital_id"]: r["level"] for r in rows}
    tcm_hospitals = {r["hospital_id"] for r in rows if r["type"] == "中医"}
    n_hospitals = len(ids)
    # each case's cell: its period x the number of hospitals + its hospital (its hospital alone with one period)
    cell = np.ascontiguousarray(codes, dtype=np.int64)
    if len(periods) > 1:
        cell = np.asarray(period, dtype=np.int64) * n_hospitals + cell

    def flags(values) -> np.ndarray:
        return np.zeros(n, bool) if values is None else np.ascontiguousarray(values, dtype=np.bool_)

    same_price = np.array([t.tcm_same_price for t in periods], dtype=np.bool_)
    if same_price.all():
        no_low_cut = flags(tcm_group_case)
    else:
        no_low_cut = flags(tcm_group_case) & same_price[period] if same_price.any() else flags(None)
    buffers = {} if workspace is None else workspace
    if aux_factor is not None:
        aux = np.ascontiguousarray(aux_factor, dtype=np.float64)
    else:  # a factor of 1 for every case, kept in the workspace: it never changes
        if "ones" not in buffers or len(buffers["ones"]) != n:
            buffers["ones"] = np.ones(n)
        aux = buffers["ones"]
    tcm_hospital = np.array([h in tcm_hospitals for h in ids], dtype=np.bool_)

    def per_level(by_level: dict, plain: float) -> np.ndarray:
        """A ratio per hospital: its level's entry of the `*_by_level` table, else the plain ratio."""
        return np.array([by_level.get(level_of.get(h), plain) for h in ids], dtype=np.float64)

    def coefficients(terms: CaseTerms) -> np.ndarray:
        if terms.coefficient_mode == "history":
            problems = hospital_problems(hospitals, ids, terms, rows)
            if problems:
                raise InputError("; ".join(problems))
            values = history_coefficients(codes, ids, cost, standard_cost, level_of, terms)
        else:
            values = hospital_coefficients(hospitals, terms, ids, rows)
        return np.array([values[h] for h in ids], dtype=np.float64)

    def per_cell(values) -> np.ndarray:
        """One value per period, for each of its cells."""
        return np.repeat(np.asarray(values, dtype=np.float64), n_hospitals)

    by_item = np.zeros((len(periods) * n_hospitals, len(OUTLIER_CLASSES)), dtype=np.bool_)
    for p, terms in enumerate(periods):
        for kind in PAID_BY_ITEM[terms.pay_by_item]:
            by_item[p * n_hospitals:(p + 1) * n_hospitals, OUTLIER_CLASSES.index(kind)] = True
    out = {}
    for name, dtype in (("group_points", np.float64), ("r", np.float64), ("outlier", np.int8),
                        ("outlier_factor", np.float64), ("coefficient", np.float64), ("bonus", np.float64),
                        ("case_points", np.float64), ("paid_by_item", np.bool_)):
        if name not in buffers or len(buffers[name]) != n:
            buffers[name] = np.empty(n, dtype=dtype)
        out[name] = buffers[name]
    _price_cases(group_points, cost, standard_cost, cell, no_low_cut, flags(tcm_treated), aux,
                 np.concatenate([per_level(t.low_ratio_by_level, t.low_ratio) for t in periods]),
                 np.concatenate([per_level(t.high_ratio_by_level, t.high_ratio) for t in periods]),
                 np.concatenate([coefficients(t) for t in periods]),
                 per_cell([t.extreme_ratio for t in periods]),
                 np.concatenate([np.where(tcm_hospital, t.tcm_hospital_bonus, 0.0) for t in periods]),
                 per_cell([t.tcm_case_bonus for t in periods]), by_item, out["group_points"], out["r"],
                 out["outlier_factor"], out["outlier"], out["coefficient"], out["bonus"], out["case_points"],
                 out["paid_by_item"])
    return {"group_points": out["group_points"], "r": out["r"], "outlier": out["outlier"],
            "outlier_factor": out["outlier_factor"], "coefficient": out["coefficient"], "bonus": out["bonus"],
            "aux_factor": aux, "paid_by_item": out["paid_by_item"], "case_points": out["case_points"]}


def case_points(group_points: np.ndarray, cost: np.ndarray, standard_cost: np.ndarray, hospital_id,
                hospitals: pa.Table, policy: Policy, tcm_group_case: np.ndarray | None = None,
                tcm_treated: np.ndarray | None = None, aux_factor: np.ndarray | None = None, on=None) -> dict:
    """`price` with every case under the policy's case-level terms on one day `on` (the latest value of each when
    None), the outlier class as a categorical: for a notebook or a hand check of the pricing steps alone. A
    settlement runs the whole chain (`dipsim.payment.chain`), which reads each case's terms on its discharge date."""
    from dipsim.payment.terms import CaseTerms

    index = hospital_id if isinstance(hospital_id, CaseHospitals) else CaseHospitals.of(hospital_id)
    out = price(group_points, cost, standard_cost, index, hospitals, (CaseTerms.of(policy, on),),
                np.zeros(len(group_points), np.int64), tcm_group_case, tcm_treated, aux_factor)
    return {**out, "outlier": pd.Categorical.from_codes(out["outlier"], OUTLIER_CLASSES)}
