"""The settlement point value (结算点值) of a pool and the hospitals' fund payouts, to the fen (docs/domain.md §12-13).

In a pool (统筹区 x insurance type) hospital h has case points P_h, cost billed by item C_h and patient-paid amounts
U_h. At point value V its group payment is G_h = V x P_h. Settlement bands (结余留用、超支分担) act on q = G / C:

* q >= 1: the hospital keeps the whole surplus up to q = `surplus_keep_ratio`, and `surplus_share_above` of the
  surplus beyond it;
* `deficit_lower_ratio` <= q < 1: the fund covers `deficit_fund_share` of the deficit;
* q < `deficit_lower_ratio`: the fund covers that share of the deficit between the lower ratio and 1 only; the
  hospital bears the rest.

So the hospital is paid A_h(G) (piecewise linear, continuous, non-decreasing) and the fund pays A_h - U_h. V is the
value at which the fund payouts sum to the pool's available budget, B x (1 - reserve share):

    sum_h (A_h(V x P_h) - U_h) = B_available.

The sum is piecewise linear in V with breakpoints where a hospital crosses a band ratio, so V is found exactly:
sort the breakpoints, accumulate the slope, and solve the one linear segment that reaches the budget (no
iteration, no tolerance). A floor and cap on V (a band around the budget point value) may bind: at the cap, money
is left in the fund (`unspent_fen`); at the floor, the payouts exceed the budget (`overrun_fen`, said in `status`).
Hospital amounts are rounded to the fen by the largest-remainder method so that they sum exactly to the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa

from dipsim.io.errors import InputError
from dipsim.money import largest_remainder, to_fen, to_fen_array
from dipsim.payment.terms import PoolTerms, SettlementBands


class SettlementError(InputError):
    """A pool's inputs admit no point value (said with the amounts that show why): bad input or policy, exit 1."""


def hospital_payment(group_payment: np.ndarray, cost: np.ndarray, bands: SettlementBands | None) -> np.ndarray:
    """A_h: what the hospital is paid for a group payment G under the bands (G itself without bands, or where the
    hospital billed nothing)."""
    g = np.asarray(group_payment, dtype=np.float64)
    if bands is None:
        return g.copy()
    c = np.asarray(cost, dtype=np.float64)
    lower, keep = bands.deficit_lower_ratio * c, bands.surplus_keep_ratio * c
    f, k = bands.deficit_fund_share, bands.surplus_share_above
    paid = np.where(g < lower, g + f * (c - lower),  # below the lower ratio: the fund covers f of (C - lower C)
           np.where(g < c, g + f * (c - g),  # deficit shared
           np.where(g <= keep, g,  # surplus kept
                    keep + k * (g - keep))))  # surplus above the keep ratio: a share kept
    return np.where(c > 0, paid, g)


@dataclass
class PoolSettlement:
    """One pool's point value and the hospitals' amounts (fen, int64, in the input order)."""

    point_value: float  # yuan per point
    status: str  # balanced | capped (V at its cap, money left in the fund) | floored (V at its floor, overrun) |
    #              fixed (V set in advance: DRG rate mode)
    budget_available_fen: int
    fund_payout_fen: np.ndarray  # A - U
    payment_fen: np.ndarray  # A: what the hospital is paid (fund + patients)
    group_payment_fen: np.ndarray  # G = V x P
    band_adjustment_fen: np.ndarray  # A - G
    unspent_fen: int = 0  # left in the fund when V is capped
    overrun_fen: int = 0  # paid beyond the budget when V is floored

    @property
    def fund_payout_total_fen(self) -> int:
        return int(self.fund_payout_fen.sum())


def _segments(points: np.ndarray, cost: np.ndarray, bands: SettlementBands | None):
    """The pool's total payment sum_h A_h(V P_h) as F0 + piecewise slopes: (F at V = 0, slope just above 0, sorted
    breakpoints in V, slope change at each)."""
    p, c = points, cost
    f0 = float(hospital_payment(np.zeros_like(p), c, bands).sum())
    if bands is None:
        return f0, float(p.sum()), np.zeros(0), np.zeros(0)
    banded = (c > 0) & (p > 0)
    f, k = bands.deficit_fund_share, bands.surplus_share_above
    pb, cb = p[banded], c[banded]
    # slope of A in G: 1 below the lower ratio, 1 - f up to 1, 1 up to the keep ratio, k above; times P in V
    with np.errstate(over="ignore"):
        breaks = np.concatenate([bands.deficit_lower_ratio * cb / pb, cb / pb, bands.surplus_keep_ratio * cb / pb])
    deltas = np.concatenate([-f * pb, f * pb, (k - 1.0) * pb])
    reached = np.isfinite(breaks)  # a hospital with vanishing points crosses its ratios only at infinite V
    breaks, deltas = breaks[reached], deltas[reached]
    order = np.argsort(breaks, kind="stable")
    slope0 = float(p[~banded & (c <= 0)].sum() + pb.sum())  # unbanded hospitals (no cost) have slope P
    return f0, slope0, breaks[order], deltas[order]


def settle_pool(points, cost, patient_paid, budget_available: float, bands: SettlementBands | None = None,
                point_value_floor: float | None = None, point_value_cap: float | None = None,
                point_value_fixed: float | None = None, item_cost=None) -> PoolSettlement:
    """Solve one pool: the point value at which the fund payouts sum to `budget_available` (yuan, 2 decimals),
    within [floor, cap] when given, and each hospital's amounts to the fen. With `point_value_fixed` (DRG rate mode,
    费率法) the value is not solved: the payouts are what it gives, and the budget shows unspent or overrun.
    `item_cost` (per hospital, part of `cost`): cases paid by item (按项目付费), paid their cost outside the points;
    the bands then act on the rest of the cost."""
    p = np.asarray(points, dtype=np.float64)
    item = np.zeros(len(p)) if item_cost is None else np.asarray(item_cost, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64) - item
    u = np.asarray(patient_paid, dtype=np.float64) - item  # the item-paid cases' cost comes first out of the budget
    if np.any(p < 0) or np.any(c < 0) or not np.all(np.isfinite(p + c + u)):
        raise SettlementError("points and costs must be finite and non-negative")
    target_fen = to_fen(budget_available)
    target = target_fen / 100 + float(u.sum())  # what the payments A must sum to
    f0, slope, breaks, deltas = _segments(p, c, bands)
    if point_value_fixed is None and f0 > target + 1e-9 * max(1.0, abs(target)):
        raise SettlementError(
            f"even at point value 0 the pool pays {f0 - u.sum():,.2f} yuan (the fund's share of the hospitals' "
            f"deficits under the bands, less patient payments) > the available budget {target_fen / 100:,.2f}")
    value = _solve(f0, slope, breaks, deltas, target) if point_value_fixed is None else point_value_fixed
    status = "balanced" if point_value_fixed is None else "fixed"
    if point_value_fixed is None and point_value_cap is not None and (value is None or value > point_value_cap):
        value, status = point_value_cap, "capped"
    elif value is None:
        raise SettlementError(f"the budget {target_fen / 100:,.2f} cannot be paid out: under the bands every "
                              f"hospital's payment stops growing before it is reached (surplus_share_above = 0)")
    if point_value_fixed is None and point_value_floor is not None and value < point_value_floor:
        value, status = point_value_floor, "floored"
    group = value * p
    paid = hospital_payment(group, c, bands)
    fund = paid - u
    total_fen = target_fen if status == "balanced" else to_fen(float(fund.sum()))
    fund_fen = largest_remainder(fund, total_fen)
    payment_fen = fund_fen + to_fen_array(u + item)  # (A + item) - U = fund
    # the band effect rounded on its own; the group payment takes the fen the exact split gave the payment
    band_fen = to_fen_array(paid - group)  # the item-paid amounts sit in the group payment column
    return PoolSettlement(
        point_value=float(value), status=status, budget_available_fen=target_fen, fund_payout_fen=fund_fen,
        payment_fen=payment_fen, group_payment_fen=payment_fen - band_fen, band_adjustment_fen=band_fen,
        unspent_fen=max(target_fen - total_fen, 0) if status in ("capped", "fixed") else 0,
        overrun_fen=max(total_fen - target_fen, 0) if status in ("floored", "fixed") else 0)


def _solve(f0: float, slope0: float, breaks: np.ndarray, deltas: np.ndarray, target: float) -> float | None:
    """The smallest V >= 0 with F(V) = target for F = f0 + slope0 V until the first breakpoint, the slope changing
    by `deltas` at the sorted `breaks`; None when F never reaches the target."""
    if target <= f0:
        return 0.0
    knots = np.concatenate([[0.0], breaks])
    slopes = slope0 + np.concatenate([[0.0], np.cumsum(deltas)])  # slope on [knots[i], knots[i + 1])
    with np.errstate(over="ignore", invalid="ignore"):  # knots of vanishing points lie far out: F is inf there
        rises = slopes[:-1] * np.diff(knots)
        values = f0 + np.concatenate([[0.0], np.cumsum(rises)])  # F at each knot
    i = int(np.searchsorted(values, target, side="left")) - 1  # the last knot below the target
    if i >= len(knots) - 1:  # beyond the last breakpoint
        i = len(knots) - 1
    if slopes[i] <= 0:
        return None
    v = knots[i] + (target - values[i]) / slopes[i]
    if i < len(knots) - 1:
        v = min(v, knots[i + 1])  # guard against rounding past the segment's end
    return float(v)


# ---------------------------------------------------------------------------------------------------------------
# All pools of a case table


def _yuan(fen) -> list[Decimal]:
    """Whole fen as exact yuan amounts (Decimal with 2 places) for the output tables."""
    return [Decimal(int(f)).scaleb(-2) for f in np.asarray(fen).tolist()]


@dataclass
class SettlementFrame:
    """The (pool, hospital) rows of a case table, each case's row and month, and the sums that do not depend on
    the policy: computed once, reused by every scenario of a sweep (only the case points change)."""

    codes: np.ndarray  # case -> row
    cell: np.ndarray  # case -> row x months + month
    n_months: int
    pools: np.ndarray  # row -> pool id
    hospitals: np.ndarray  # row -> hospital_id
    cases: np.ndarray  # row -> number of cases
    cost: np.ndarray  # case cost billed by item (yuan)
    patient_paid: np.ndarray  # case patient payments (yuan)
    row_cost: np.ndarray
    row_patient_paid: np.ndarray
    monthly_patient_paid: np.ndarray  # rows x months
    pool_order: dict  # pool -> its rows, by hospital_id
    month_values: np.ndarray | None = None  # the month of each column of the monthly sums (None: one period)

    @classmethod
    def of(cls, hospital_id, pool, cost, patient_paid, month=None, hospital_codes=None,
           pool_codes=None) -> SettlementFrame:
        """`hospital_codes`: (codes, ids) of the cases' hospitals when already factorised (`hospital_id` unused);
        `pool_codes` the same of their pools (`pool` unused)."""
        # one integer per (pool, hospital): each column factorised on its own (hashing), then combined
        if pool_codes is None:
            pool_code, pool_names = pd.factorize(np.asarray(pool, dtype=object))
        else:
            pool_code, pool_names = pool_codes
        if hospital_codes is None:
            hospital_code, hospital_names = pd.factorize(np.asarray(hospital_id, dtype=object))
        else:
            hospital_code, hospital_names = hospital_codes
        dense = pool_code.astype(np.int64) * len(hospital_names) + hospital_code  # few pools x hospitals: no sort
        pairs = np.flatnonzero(np.bincount(dense, minlength=len(pool_names) * len(hospital_names)))
        renumber = np.full(len(pool_names) * len(hospital_names), -1, dtype=np.int64)
        renumber[pairs] = np.arange(len(pairs))
        codes = renumber[dense]
        if month is None:
            month_code, n_months, months = np.zeros(len(codes), dtype=np.int64), 1, None
        else:
            month_code, months = pd.factorize(np.asarray(month))
            n_months = len(months)
        cost = np.asarray(cost, dtype=np.float64)
        patient_paid = np.asarray(patient_paid, dtype=np.float64)
        pools = np.asarray(pool_names, dtype=object)[pairs // max(len(hospital_names), 1)]
        hospitals = np.asarray(hospital_names, dtype=object)[pairs % max(len(hospital_names), 1)]
        frame = cls(codes=codes, cell=codes * n_months + month_code, n_months=n_months, pools=pools,
                    hospitals=hospitals, cases=np.bincount(codes, minlength=len(pairs)), cost=cost,
                    patient_paid=patient_paid, row_cost=np.zeros(0), row_patient_paid=np.zeros(0),
                    monthly_patient_paid=np.zeros(0), pool_order=_pool_order(pools, hospitals),
                    month_values=None if months is None else np.asarray(months))
        frame.row_cost, frame.row_patient_paid = frame.sum(cost), frame.sum(patient_paid)
        frame.monthly_patient_paid = frame.monthly(patient_paid)
        return frame

    def taken(self, rows: np.ndarray, cost: np.ndarray, patient_paid: np.ndarray,
              month_values: np.ndarray | None) -> SettlementFrame | None:
        """The frame of this frame's cases at `rows` (a case may be taken more than once: a projected year,
        `CaseSet.taken`), with their own `cost` and `patient_paid` and the month columns' values `month_values`: this
        frame's rows and month columns, each case in its base case's row and month, no factorising again. None when
        a row would have no case (`of` would not make that row: the caller makes the frame with `of`). A month
        column left without a case stays, empty: it adds nothing to any sum."""
        from dipsim.payment.frame_kernel import taken_rows

        cost, patient_paid = np.asarray(cost, dtype=np.float64), np.asarray(patient_paid, dtype=np.float64)
        codes, cell, cases, row_cost, row_paid, cell_paid = taken_rows(
            self.codes, self.cell, np.asarray(rows, dtype=np.int64), cost, patient_paid, len(self.pools),
            len(self.pools) * self.n_months)
        if not cases.all():
            return None
        return replace(self, codes=codes, cell=cell, cases=cases, cost=cost, patient_paid=patient_paid,
                       month_values=month_values, row_cost=row_cost, row_patient_paid=row_paid,
                       monthly_patient_paid=cell_paid.reshape(len(self.pools), self.n_months))

    @classmethod
    def from_sums(cls, pools, hospitals, cases, cost, monthly_patient_paid) -> SettlementFrame:
        """A frame of (pool, hospital) rows already summed (a chunked run: no per-case arrays); patient payments
        per row and month (rows x months)."""
        pools, hospitals = np.asarray(pools, dtype=object), np.asarray(hospitals, dtype=object)
        monthly = np.asarray(monthly_patient_paid, dtype=np.float64).reshape(len(pools), -1)
        return cls(codes=np.zeros(0, np.int64), cell=np.zeros(0, np.int64), n_months=monthly.shape[1], pools=pools,
                   hospitals=hospitals, cases=np.asarray(cases), cost=np.zeros(0), patient_paid=np.zeros(0),
                   row_cost=np.asarray(cost, dtype=np.float64), row_patient_paid=monthly.sum(axis=1),
                   monthly_patient_paid=monthly, pool_order=_pool_order(pools, hospitals))

    def sum(self, case_values) -> np.ndarray:
        return np.bincount(self.codes, weights=np.asarray(case_values, dtype=np.float64), minlength=len(self.pools))

    def monthly(self, case_values) -> np.ndarray:
        return np.bincount(self.cell, weights=np.asarray(case_values, dtype=np.float64),
                           minlength=len(self.pools) * self.n_months).reshape(len(self.pools), self.n_months)


def _pool_order(pools: np.ndarray, hospitals: np.ndarray) -> dict:
    """Pool -> its rows, by hospital_id (pools in sorted order)."""
    out = {}
    for p in sorted(set(pools)):
        at = np.flatnonzero(pools == p)
        out[p] = at[np.argsort(hospitals[at], kind="stable")]
    return out


@dataclass
class RegionSettlement:
    """Every pool's settlement of one scenario, per row of the frame (fen, int64, in `frame` row order) and per
    pool; `tables()` gives the exact yuan tables."""

    frame: SettlementFrame
    points: np.ndarray
    amounts: dict  # name -> fen per row: group_payment, band_adjustment, payment, fund_payout, prepaid, ...
    pools: list  # one dict per pool
    cap_factor: np.ndarray | None = None  # per row, its hospital's growth-cap factor (step 8; None: no cap)
    # per pool, the money its points shared: available budget + patient payments - cost paid by item (yuan; what
    # the budget point value of the year's own figures divides by the points: `_spending_point_value`)
    spent_on_points: dict = field(default_factory=dict)

    def tables(self) -> tuple[pa.Table, pa.Table]:
        f = self.frame
        order = np.concatenate([f.pool_order[p] for p in sorted(f.pool_order)])
        cost_fen, paid_fen = to_fen_array(f.row_cost), to_fen_array(f.row_patient_paid)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(cost_fen > 0, self.amounts["group_payment"] / np.maximum(cost_fen, 1), np.nan)
        columns = {"hospital_id": f.hospitals[order], "pool": f.pools[order], "cases": f.cases[order],
                   "points": np.round(self.points[order], 4), "cost": _yuan(cost_fen[order]),
                   "patient_paid": _yuan(paid_fen[order])}
        for name in ("group_payment", "band_adjustment", "payment", "fund_payout"):
            columns[name] = _yuan(self.amounts[name][order])
        columns["payment_ratio"] = np.round(ratio[order], 6)
        for name in ("prepaid", "deposit", "deposit_released", "clearing"):
            columns[name] = _yuan(self.amounts[name][order])
        # point values to 10 decimals: the float sums of a chunked run differ from an in-memory one in the 15th
        pools = [{**row, **{k: _yuan([row[k]])[0] for k in ("budget", "budget_available", "fund_payout", "unspent",
                                                             "overrun")},
                  **{k: round(float(row[k]), 10) for k in ("point_value", "budget_point_value")}} for row in self.pools]
        return (_tidy(pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)),
                _tidy(pa.Table.from_pylist(pools)))


def budget_point_values(frame: SettlementFrame, case_points, terms: PoolTerms, paid_by_item=None) -> dict:
    """Per pool, the budget point value (预算点值): published (`budget.budget_point_value`), else the value that
    would spend the available budget without bands: (available + patient payments - item-paid costs) / points."""
    points_row = frame.sum(case_points)
    item_row = frame.sum(frame.cost * np.asarray(paid_by_item, dtype=np.float64)) if paid_by_item is not None \
        else np.zeros(len(frame.pools))
    out = {}
    for p, order in frame.pool_order.items():
        if p in terms.budget_point_value:
            out[p] = terms.budget_point_value[p]
        else:
            available = terms.available(p) if p in terms.budget_total else 0.0
            out[p] = _spending_point_value(available, frame.row_patient_paid[order], item_row[order],
                                           points_row[order])
    return out


def _spending_point_value(available: float, patient_paid: np.ndarray, item_cost: np.ndarray,
                          points: np.ndarray) -> float:
    """The point value that would spend the available budget without bands: what the points share (budget +
    patient payments - cost paid by item) over the points (0 without points)."""
    return _point_value_of(_spent_on_points(available, patient_paid, item_cost), points)


def _spent_on_points(available: float, patient_paid: np.ndarray, item_cost: np.ndarray) -> float:
    """What the points of a pool share: its available budget + patient payments - the cost paid by item."""
    return available + patient_paid.sum() - item_cost.sum()


def _point_value_of(spent: float, points: np.ndarray) -> float:
    return spent / points.sum() if points.sum() > 0 else 0.0


def settle_frame(frame: SettlementFrame, case_points, terms: PoolTerms, quality: dict[str, float] | None = None,
                 paid_by_item=None, budget_extra: dict | None = None, row_sums: tuple | None = None
                 ) -> RegionSettlement:
    """Steps 9-11 of the payment chain for every pool of `frame`: the settlement point value (结算点值) that spends
    the pool's available budget (`PoolTerms.available`), with the bands and the point-value floor / cap; the
    amounts to the fen; the year's cycle (`year_cycle`). `budget_extra` (pool -> yuan) is added to a pool's
    available budget (special cases funded from the reserve). `row_sums` = (points, item-paid cost) per row and
    month (rows x months), already summed (a chunked run; `case_points` is then None)."""
    if row_sums is not None:
        monthly_points, monthly_item = (np.asarray(x, dtype=np.float64).reshape(len(frame.pools), -1)
                                        for x in row_sums)
        points_row, item_row = monthly_points.sum(axis=1), monthly_item.sum(axis=1)
    else:
        # by row and month in one pass, the rows' sums from those (as a chunked run adds its monthly sums)
        monthly_points = frame.monthly(case_points)
        points_row = monthly_points.sum(axis=1)
        if paid_by_item is None or not np.any(paid_by_item):
            item_row, monthly_item = np.zeros(len(frame.pools)), np.zeros((len(frame.pools), frame.n_months))
        else:  # a bool per case, or a share (special-case review in expected value)
            monthly_item = frame.monthly(frame.cost * np.asarray(paid_by_item, dtype=np.float64))
            item_row = monthly_item.sum(axis=1)
    missing = sorted(set(frame.pool_order) - set(terms.budget_total))
    if missing:
        raise SettlementError(f"no budget (budget.total) for pool(s) {missing}")
    floor_ratio, cap_ratio = terms.point_value_floor, terms.point_value_cap
    names = ("group_payment", "band_adjustment", "payment", "fund_payout", "prepaid", "deposit", "deposit_released",
             "clearing")
    amounts = {name: np.zeros(len(frame.pools), dtype=np.int64) for name in names}
    pool_rows, spent = [], {}
    for p, order in frame.pool_order.items():
        available = terms.available(p, (budget_extra or {}).get(p, 0.0))
        points, paid_h, item_h = points_row[order], frame.row_patient_paid[order], item_row[order]
        spent[p] = _spent_on_points(available, paid_h, item_h)
        budget_value = terms.budget_point_value.get(p)
        if budget_value is None:
            budget_value = _point_value_of(spent[p], points)
        try:
            s = settle_pool(points, frame.row_cost[order], paid_h, available, terms.bands,
                            floor_ratio * budget_value if floor_ratio > 0 else None,
                            cap_ratio * budget_value if cap_ratio > 0 else None, terms.fixed_point_value or None,
                            item_h)
        except SettlementError as exc:
            raise SettlementError(f"pool {p}: {exc}") from exc
        due = budget_value * monthly_points[order] + monthly_item[order] - frame.monthly_patient_paid[order]
        scores = np.array([(quality or {}).get(h, 100.0) for h in frame.hospitals[order]], dtype=np.float64)
        cycle = year_cycle(due, s.fund_payout_fen, scores, terms)
        for name, values in (("group_payment", s.group_payment_fen), ("band_adjustment", s.band_adjustment_fen),
                             ("payment", s.payment_fen), ("fund_payout", s.fund_payout_fen), *cycle.items()):
            amounts[name][order] = values
        pool_rows.append({"pool": p, "budget": to_fen(terms.budget(p)), "budget_available": s.budget_available_fen,
                          "budget_point_value": budget_value, "point_value": s.point_value, "status": s.status,
                          "total_points": round(float(points.sum()), 4), "fund_payout": s.fund_payout_total_fen,
                          "unspent": s.unspent_fen, "overrun": s.overrun_fen})
    return RegionSettlement(frame=frame, points=points_row, amounts=amounts, pools=pool_rows, spent_on_points=spent)


def settle(hospital_id, pool, case_points, cost, patient_paid, policy, on=None, month=None,
           quality: dict[str, float] | None = None, paid_by_item=None) -> tuple[pa.Table, pa.Table]:
    """Settle every pool of a priced case table: per hospital and pool, the sums of case points, cost billed by
    item and patient payments; per pool, the point value that spends its available budget (`budget.total` x
    (1 - `budget.reserve_share`)), with the policy's bands and point-value floor / cap (multiples of the budget
    point value: `budget.budget_point_value`, else the value that would spend the budget without bands).

    Then the year's cycle (`year_cycle`): monthly prepayment at the budget point value (`month`: the case's month,
    any integers; one period when None), the quality deposit and its release by `quality` (hospital_id -> score
    0-100; 100 when not given), and the year-end clearing.

    Returns (hospitals, pools): hospitals has hospital_id, pool, cases, points, cost, patient_paid, group_payment,
    band_adjustment, payment, fund_payout, payment_ratio (group payment / cost), prepaid, deposit,
    deposit_released, clearing; pools has pool, budget, budget_available, budget_point_value, point_value, status,
    total_points, fund_payout, unspent, overrun. Money columns are exact yuan (decimal, 2 places); each pool's fund
    payouts sum to its budget to the fen. A sweep of scenarios builds the `SettlementFrame` once and calls
    `settle_frame` per scenario."""
    frame = SettlementFrame.of(hospital_id, pool, cost, patient_paid, month)
    return settle_frame(frame, case_points, PoolTerms.of(policy, on), quality, paid_by_item).tables()


def _tidy(table: pa.Table) -> pa.Table:
    """Money as decimal(18, 2), text as string."""
    def kind(t: pa.DataType) -> pa.DataType:
        if pa.types.is_decimal(t):
            return pa.decimal128(18, 2)
        return pa.string() if pa.types.is_large_string(t) else t

    return table.cast(pa.schema([pa.field(f.name, kind(f.type)) for f in table.schema]))


# ---------------------------------------------------------------------------------------------------------------
# The year's cycle: budget point value, monthly prepayment, quality deposit, clearing


def weighted_budget_point_value(costs: list[float], points: list[float], weights=(1.0, 2.0, 7.0)) -> float:
    """预算点值 = expected total cost / expected total points, each the weighted mean of the last years (oldest
    first; default 1:2:7 over three years; fewer years use the last weights)."""
    if len(costs) != len(points) or not costs:
        raise ValueError("give one cost and one points total per year, oldest first")
    w = np.asarray(weights[len(weights) - len(costs):] if len(costs) <= len(weights) else weights, dtype=float)
    c, p = np.asarray(costs[-len(w):], dtype=float), np.asarray(points[-len(w):], dtype=float)
    return float((w * c).sum() / w.sum()) / float((w * p).sum() / w.sum())


def release_share(score: float, schedule: list) -> float:
    """The share of the quality deposit released for a quality score: the schedule row with the highest score not
    above it (0 below every row)."""
    rows = sorted((float(s), float(v)) for s, v in schedule)
    held = [v for s, v in rows if s <= score]
    return held[-1] if held else 0.0


def year_cycle(monthly_due: np.ndarray, annual_fund_fen: np.ndarray, quality_score: np.ndarray,
               terms: PoolTerms) -> dict[str, np.ndarray]:
    """Per hospital (fen, int64): prepaid (the months' due at the budget point value x `cycle.prepay_share`, each
    month to the fen), deposit (the annual fund payout x `cycle.quality_deposit_share`), deposit_released (by the
    quality score and `cycle.quality_schedule`) and clearing = annual payout - prepaid - deposit + released (年终清算:
    positive, the fund pays the hospital; negative, the hospital pays back). The unreleased deposit stays in the fund.
    `monthly_due` is (hospitals x months) in yuan."""
    prepaid = to_fen_array(np.maximum(monthly_due, 0.0) * terms.prepay_share).sum(axis=1)
    deposit = to_fen_array(annual_fund_fen / 100 * terms.quality_deposit_share)
    shares = np.array([release_share(s, list(terms.quality_schedule)) for s in quality_score], dtype=np.float64)
    released = to_fen_array(deposit / 100 * shares)
    return {"prepaid": prepaid, "deposit": deposit, "deposit_released": released,
            "clearing": annual_fund_fen - prepaid - deposit + released}
