"""The payment chain: one ordered list of steps from a grouped case to a hospital's money (docs/domain.md §7-14).

Every command that pays (settle, each scenario variant, nightly's three engines, demo) and a notebook runs
`run_chain`, or, for a chunked year, `price_cases` then `settle_pools` on the sums: the same steps, in this order
(`rules()` prints them):

    1  group points         DIP points, or the DRG's RW x payment.drg_points_per_rw
    2  outlier factor       r = cost / standard cost; low, high, extreme (outlier.*)
    3  hospital coefficient coefficient.* (level, hospital, history)
    4  TCM bonus            coefficient.tcm_hospital_bonus, tcm.case_bonus, tcm.same_price
    5  auxiliary factor     the auxiliary catalogue (辅助目录), 1 without one
    6  supervision cuts     supervision.*_factor, supervision.deduction_points on screened cases
    7  special-case review  review.* (特例单议): approved cases paid by item or reset to cost
    8  pool point value     budget.*, bands.*: the value that spends each pool's available budget
    9  fen rounding         amounts to the fen, summing exactly to the budget (largest remainder)
   10  year cycle           cycle.*: prepayment, quality deposit and its release, clearing

Steps 1-7 act on cases, with the case-level terms in force on each case's discharge date; steps 8-10 on pools,
with the terms of the settlement day (`payment.terms`). Each step's outcome is a column of the case table
(`PaymentRun.case_table`), so a hospital's points are the sum of its cases' final points, to the last digit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.budget import RegionSettlement, SettlementFrame, settle_frame
from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.payment.terms import Terms, resolve
from dipsim.pricing import OUTLIER_CLASSES, CaseHospitals, price
from dipsim.review import Review, apply_review
from dipsim.schema import float_column
from dipsim.supervise import consequences, screens_for

if TYPE_CHECKING:
    from dipsim.policy import Policy

STEPS = (
    ("group points", "DIP points, or the DRG's RW x payment.drg_points_per_rw"),
    ("outlier factor", "r = cost / standard cost; low, high, extreme (outlier.*)"),
    ("hospital coefficient", "coefficient.* (level, hospital, history)"),
    ("TCM bonus", "coefficient.tcm_hospital_bonus, tcm.case_bonus, tcm.same_price"),
    ("auxiliary factor", "the auxiliary catalogue (辅助目录), 1 without one"),
    ("supervision cuts", "supervision.*_factor, supervision.deduction_points on screened cases"),
    ("special-case review", "review.* (特例单议): approved cases paid by item or reset to cost"),
    ("pool point value", "budget.*, bands.*: the value that spends each pool's available budget"),
    ("fen rounding", "amounts to the fen, summing exactly to the budget (largest remainder)"),
    ("year cycle", "cycle.*: prepayment, quality deposit and its release, clearing"),
)


def rules() -> list[str]:
    """The chain's steps in order, one line each."""
    return [f"{number:>2}  {name:<21}{what}" for number, (name, what) in enumerate(STEPS, start=1)]


def case_pools(cases: pa.Table) -> np.ndarray:
    """Per case its settlement pool: 统筹区-险种 (pool and insurance type). Cases must have both
    (`region.settleable` rejects the others): a missing part would make a phantom pool ("-resident", "990100-")."""
    pool, insurance = (pc.cast(cases[name], pa.string()) for name in ("pool", "insurance_type"))
    pools = pc.binary_join_element_wise(pool, insurance, "-")  # null where a part is null
    blank = pc.sum(
        pc.or_kleene(
            pc.is_null(pools), pc.or_(pc.equal(pc.utf8_length(pool), 0), pc.equal(pc.utf8_length(insurance), 0))
        )
    ).as_py()
    if blank:
        raise InputError(
            f"{blank:,} case(s) without a settlement pool (统筹区 or 险种 missing): settle only the "
            "cases region.settleable keeps"
        )
    return pools.to_numpy(zero_copy_only=False)


def discharge_months(dates) -> np.ndarray:
    """Per discharge date its month as year x 12 + month (0 without a date): the months of the monthly
    prepayment and of the nightly year to date."""
    return pc.fill_null(pc.add(pc.multiply(pc.year(dates), 12), pc.month(dates)), 0).to_numpy(zero_copy_only=False)


def discharge_days(cases: pa.Table) -> np.ndarray | None:
    """Per case its discharge date as days since 1970-01-01 (-1 without one); None without the column."""
    if "discharge_date" not in cases.column_names:
        return None
    days = pc.cast(pc.cast(cases["discharge_date"], pa.date32()), pa.int32())
    return pc.fill_null(days, -1).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass(frozen=True)
class CaseSet:
    """The cases of a run as the chain reads them, built once (a sweep of scenarios reuses it): the validated
    cases (`table`, for the screens), each case's hospital, pool, cost, patient payments, discharge day, stay and
    ventilation, and the (pool, hospital) rows they settle in (`frame`, by discharge month)."""

    table: pa.Table
    hospitals: CaseHospitals
    pool: np.ndarray
    cost: np.ndarray
    patient_paid: np.ndarray
    discharge_days: np.ndarray | None
    month: np.ndarray | None  # year x 12 + month of discharge (0 without a date)
    los_days: np.ndarray | None
    ventilation_hours: np.ndarray | None

    @functools.cached_property
    def frame(self) -> SettlementFrame:
        """The (pool, hospital) rows, by discharge month: built when first settled (a chunked run sums its own)."""
        return SettlementFrame.of(
            None,
            self.pool,
            self.cost,
            self.patient_paid,
            self.month,
            hospital_codes=(self.hospitals.codes, self.hospitals.ids),
        )

    @classmethod
    def of(cls, cases: pa.Table, pool: np.ndarray | None = None) -> CaseSet:
        """`pool`: each case's 统筹区-险种 when already made (`case_pools` of the cases otherwise)."""
        hospital_id = pc.cast(cases["hospital_id"], pa.string()).to_numpy(zero_copy_only=False)
        pool = case_pools(cases) if pool is None else np.asarray(pool, dtype=object)
        cost, paid = float_column(cases, "total_cost", 0.0), float_column(cases, "patient_paid", 0.0)
        days = discharge_days(cases)
        month = None if days is None else discharge_months(cases["discharge_date"])

        def optional(name: str) -> np.ndarray | None:
            return float_column(cases, name) if name in cases.column_names else None

        return cls(
            table=cases,
            hospitals=CaseHospitals.of(hospital_id),
            pool=pool,
            cost=cost,
            patient_paid=paid,
            discharge_days=days,
            month=month,
            los_days=optional("los_days"),
            ventilation_hours=optional("ventilation_hours"),
        )

    def __len__(self) -> int:
        return len(self.cost)


@dataclass
class PaymentRun:
    """One run of the chain: every step's column per case, the pools' settlement, the special-case review (per
    case and per hospital; None without review) and the terms applied."""

    case_set: CaseSet
    grouped: GroupedCases
    columns: dict  # name -> per-case values, in chain order (`case_table` adds the ids)
    settlement: RegionSettlement
    review: Review | None  # special-case review: per case and per hospital (`review.hospitals`)
    terms: Terms
    _tables: tuple = field(default=(), repr=False)

    def _settled(self) -> tuple:
        if not self._tables:
            self._tables = self.settlement.tables()
        return self._tables

    @property
    def hospitals(self) -> pa.Table:
        """Per (hospital, pool): points, cost, payments and the year's cycle, exact yuan (`RegionSettlement`)."""
        return self._settled()[0]

    @property
    def pools(self) -> pa.Table:
        return self._settled()[1]

    @property
    def case_points(self) -> np.ndarray:
        """Each case's final points (after every case step): what the pools settle."""
        return self.columns["case_points"]

    def case_table(self) -> pa.Table:
        """case_id, hospital_id, pool, group, policy_day (the day its case-level terms were read on) and every
        step's column: the table `explain --case-id` reads."""
        c = self.case_set
        days = pa.array([t.day for t in self.terms.periods], pa.date32())
        columns = {name: np.ascontiguousarray(values) for name, values in self.columns.items()}
        columns["outlier"] = pd.Categorical.from_codes(columns["outlier"], OUTLIER_CLASSES)
        columns["item_share"] = columns["item_share"].astype(np.float64)
        position = list(columns).index("item_share") + 1
        items = list(columns.items())
        items.insert(position, ("item_paid", c.cost * columns["item_share"]))  # yuan paid by item, outside points
        return pa.table(
            {
                "case_id": pc.cast(c.table["case_id"], pa.string()),
                "hospital_id": pa.array(c.hospitals.ids[c.hospitals.codes], pa.string()),
                "pool": pa.array(c.pool, pa.string()),
                "group": pa.array(self.grouped.group, pa.string()),
                "policy_day": days.take(pa.array(self.terms.case_period)),
                **{name: pa.array(values) for name, values in items},
            }
        )


def group_points(grouped: GroupedCases, terms: Terms) -> np.ndarray:
    """Step 1, group points (病组分值): a DIP group's points as the catalogue has them; a DRG's relative weight x
    `payment.drg_points_per_rw` in force on the case's discharge date (DRG point mode, 点数法; docs/domain.md §8)."""
    if grouped.unit == "points":
        return grouped.group_points
    return grouped.group_points * terms.per_case([t.drg_points_per_rw for t in terms.periods])


def price_cases(
    case_set: CaseSet,
    grouped: GroupedCases,
    hospitals: pa.Table,
    terms: Terms,
    aux_factor: np.ndarray | None = None,
    screens_cache: dict | None = None,
    workspace: dict | None = None,
) -> dict:
    """Steps 1-7 for every case: the per-case columns, in chain order, ending in `item_share` (the share of the
    case's cost paid by item: 0 / 1 by outlier class, or the review's approved share) and `case_points` (final),
    and the review's outcome under "_review" (None without review). A step that changes nothing (no supervision
    cut, no review) gives its column as a constant view, not a copy: a sweep prices a million cases per variant."""
    points = group_points(grouped, terms)
    columns = price(
        points,
        case_set.cost,
        grouped.standard_cost,
        case_set.hospitals,
        hospitals,
        terms.periods,
        terms.case_period,
        grouped.tcm_group_case,
        grouped.tcm_treated,
        aux_factor,
        workspace,
    )
    columns["priced_points"] = columns.pop("case_points")
    # 6: supervision cuts, the screens run over the whole case set with the thresholds of the settlement day
    n = len(case_set)
    factor, deducted = np.broadcast_to(1.0, (n,)), np.broadcast_to(0.0, (n,))
    supervised = columns["priced_points"]
    if terms.has_consequences:
        screens = screens_for(case_set.table, grouped.group, terms.policy, terms.settlement_day, screens_cache)
        factor, deducted = consequences(screens, terms.periods, terms.case_period)
        supervised = np.maximum(supervised * factor - deducted, 0.0)
    columns.update(supervision_factor=factor, supervision_deduction=deducted, supervised_points=supervised)
    # 7: special-case review, in expected value
    item_share = columns["paid_by_item"]
    final, applied, approval, outcome = supervised, np.broadcast_to(False, (n,)), np.broadcast_to(0.0, (n,)), None
    if terms.review.in_effect:
        outcome = apply_review(
            supervised,
            item_share.astype(np.float64),
            columns["outlier"],
            columns["group_points"],
            grouped.group,
            case_set.los_days,
            case_set.ventilation_hours,
            case_set.frame,
            terms.review,
            terms.pool,
        )
        final, item_share = outcome.case_points, outcome.item_share
        applied, approval = outcome.review.applied, outcome.review.approval
    columns.update(
        review_applied=applied,
        review_approval=approval,
        item_share=item_share,
        case_points=final,
        _review=outcome,
    )
    return columns


def settle_pools(
    frame: SettlementFrame,
    case_points,
    item_share,
    terms: Terms,
    quality: dict | None = None,
    reserve_funding: dict | None = None,
    row_sums: tuple | None = None,
) -> RegionSettlement:
    """Steps 8-10 (`budget.settle_frame`) under the pool terms of the settlement day."""
    return settle_frame(frame, case_points, terms.pool, quality, item_share, reserve_funding, row_sums)


def run_chain(
    case_set: CaseSet,
    grouped: GroupedCases,
    hospitals: pa.Table,
    policy: Policy,
    on=None,
    aux_factor: np.ndarray | None = None,
    quality: dict[str, float] | None = None,
    screens_cache: dict | None = None,
    workspace: dict | None = None,
) -> PaymentRun:
    """Every step of the chain on a case set under a policy: the terms resolved once (`payment.terms.resolve`:
    each case's on its discharge date, the pools' on the settlement day, everything on `on` when given), the cases
    priced (steps 1-7), the pools settled (8-10). `quality`: hospital_id -> quality score (100 when absent).
    A sweep passes the same `screens_cache` (screens run once per set of their thresholds) and `workspace` (the
    pricing columns written into arrays allocated once: the next run with it overwrites this run's columns)."""
    if len(grouped) != len(case_set):
        raise ValueError(f"{len(grouped)} grouped cases for {len(case_set)} cases")
    terms = resolve(policy, case_set.discharge_days, len(case_set), on)
    columns = price_cases(case_set, grouped, hospitals, terms, aux_factor, screens_cache, workspace)
    outcome = columns.pop("_review")
    settlement = settle_pools(
        case_set.frame,
        columns["case_points"],
        columns["item_share"],
        terms,
        quality,
        outcome.reserve_funding if outcome is not None else None,
    )
    return PaymentRun(case_set, grouped, columns, settlement, outcome.review if outcome is not None else None, terms)
