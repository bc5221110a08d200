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
    8  hospital growth cap  budget.hospital_cap_*: a hospital's points above its cap count at lower weights
    9  pool point value     budget.*, bands.*: the value that spends each pool's available budget
   10  fen rounding         amounts to the fen, summing exactly to the budget (largest remainder)
   11  year cycle           cycle.*: prepayment, quality deposit and its release, clearing

Steps 1-7 act on cases, with the case-level terms in force on each case's discharge date; step 8 on each hospital's
points of the period (`payment.caps`: its factor multiplies its cases' points), steps 9-11 on pools, with the terms
of the settlement day (`payment.terms`). Each step's outcome is a column of the case table
(`PaymentRun.case_table`), so a hospital's points are the sum of its cases' final points, to the last digit.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.budget import RegionSettlement, SettlementFrame, settle_frame
from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.payment.caps import hospital_factors
from dipsim.payment.terms import Terms, resolve, settlement_day
from dipsim.pricing import OUTLIER_CLASSES, CaseHospitals, price
from dipsim.review import Review, apply_review
from dipsim.schema import float_column
from dipsim.supervise import consequences, screens_for

if TYPE_CHECKING:
    from dipsim.policy import Policy

# the case table's columns with (nearly) a value per case, and its text columns (`PaymentRun.case_table_options`)
CONTINUOUS_COLUMNS = ("r", "outlier_factor", "priced_points", "supervised_points", "reviewed_points", "case_points")
TEXT_COLUMNS = ("case_id", "hospital_id", "pool", "group")
# the outlier column's categories, as pandas wrote them before
OUTLIER_DICTIONARY = pa.array(OUTLIER_CLASSES, pa.large_string())

STEPS = (
    ("group points", "DIP points, or the DRG's RW x payment.drg_points_per_rw"),
    ("outlier factor", "r = cost / standard cost; low, high, extreme (outlier.*)"),
    ("hospital coefficient", "coefficient.* (level, hospital, history)"),
    ("TCM bonus", "coefficient.tcm_hospital_bonus, tcm.case_bonus, tcm.same_price"),
    ("auxiliary factor", "the auxiliary catalogue (辅助目录), 1 without one"),
    ("supervision cuts", "supervision.*_factor, supervision.deduction_points on screened cases"),
    ("special-case review", "review.* (特例单议): approved cases paid by item or reset to cost"),
    ("hospital growth cap", "budget.hospital_cap_*: a hospital's points above its cap count at lower weights"),
    ("pool point value", "budget.*, bands.*: the value that spends each pool's available budget"),
    ("fen rounding", "amounts to the fen, summing exactly to the budget (largest remainder)"),
    ("year cycle", "cycle.*: prepayment, quality deposit and its release, clearing"),
)


def rules() -> list[str]:
    """The chain's steps in order, one line each."""
    return [f"{number:>2}  {name:<21}{what}" for number, (name, what) in enumerate(STEPS, start=1)]


def case_pool_codes(cases: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per case its settlement pool, 统筹区-险种 (pool and insurance type), as an integer code (int64) into the
    distinct pools (object). Cases must have both (`region.settleable` rejects the others): a missing part would
    make a phantom pool ("-resident", "990100-"). Each column is hashed once; the text is joined, and checked,
    once per distinct (pool, insurance type)."""
    parts = []
    for name in ("pool", "insurance_type"):
        text = pc.cast(cases[name], pa.string())
        encoded = pc.dictionary_encode(text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text)
        # null: code 0, so a null part and an empty one are told apart only by the text below (both are blank)
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
        parts.append((codes, pa.concat_arrays([pa.nulls(1, pa.string()), encoded.dictionary])))
    (pool, pools), (insurance, insurances) = parts
    combination = pool * len(insurances) + insurance
    counts = np.bincount(combination, minlength=len(pools) * len(insurances))
    present = np.flatnonzero(counts)
    pool_text = pools.take(pa.array(present // len(insurances)))
    insurance_text = insurances.take(pa.array(present % len(insurances)))
    joined = pc.binary_join_element_wise(pool_text, insurance_text, "-")  # null where a part is null
    blank = pc.or_kleene(
        pc.is_null(joined),
        pc.or_(pc.equal(pc.utf8_length(pool_text), 0), pc.equal(pc.utf8_length(insurance_text), 0)),
    ).to_numpy(zero_copy_only=False)
    if blank.any():
        raise InputError(
            f"{int(counts[present[blank]].sum()):,} case(s) without a settlement pool (统筹区 or 险种 missing): "
            "settle only the cases region.settleable keeps"
        )
    names = pc.dictionary_encode(joined)  # two combinations may join to the same text: one pool
    code_of = np.zeros(len(counts), dtype=np.int64)
    code_of[present] = names.indices.to_numpy(zero_copy_only=False)
    return code_of[combination], names.dictionary.to_numpy(zero_copy_only=False).astype(object)


def case_pools(cases: pa.Table) -> np.ndarray:
    """Per case its settlement pool: 统筹区-险种 (`case_pool_codes`), as text."""
    codes, names = case_pool_codes(cases)
    return names[codes]


def discharge_months(dates) -> np.ndarray:
    """Per discharge date its month as year x 12 + month (0 without a date): the months of the monthly
    prepayment and of the nightly year to date."""
    return pc.fill_null(pc.add(pc.multiply(pc.year(dates), 12), pc.month(dates)), 0).to_numpy(zero_copy_only=False)


def by_day(days: np.ndarray, function) -> np.ndarray:
    """`function(days)` (elementwise on days since 1970-01-01, int64) computed once per day of the days' range and
    looked up: a year's million cases are discharged on a few hundred days (numpy's calendar conversions are slow)."""
    days = np.asarray(days, dtype=np.int64)
    if not len(days):
        return np.asarray(function(days))
    low, high = int(days.min()), int(days.max())
    if high - low >= len(days):  # fewer cases than days: computed case by case
        return np.asarray(function(days))
    return np.asarray(function(np.arange(low, high + 1, dtype=np.int64)))[days - low]


def months_of_days(days: np.ndarray) -> np.ndarray:
    """`discharge_months` of discharge days since 1970-01-01 (-1 without a date, as `discharge_days` gives them)."""

    def months(day: np.ndarray) -> np.ndarray:
        since = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)  # months since 1970-01
        return np.where(day == -1, 0, (since // 12 + 1970) * 12 + since % 12 + 1)

    return by_day(days, months)


def discharge_days(cases: pa.Table) -> np.ndarray | None:
    """Per case its discharge date as days since 1970-01-01 (-1 without one); None without the column."""
    if "discharge_date" not in cases.column_names:
        return None
    days = pc.cast(pc.cast(cases["discharge_date"], pa.date32()), pa.int32())
    return pc.fill_null(days, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _stay_columns(cases: pa.Table) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The cases' stay (days) and ventilation hours, None for a column they do not have (`CaseSet.of`)."""
    los, ventilation = (
        float_column(cases, n) if n in cases.column_names else None for n in ("los_days", "ventilation_hours")
    )
    return los, ventilation


def _taken_stay_columns(case_set: CaseSet, rows: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """`case_set`'s stay and ventilation hours taken by `rows` (`CaseSet.taken`)."""
    los, ventilation = (None if v is None else v[rows] for v in (case_set.los_days, case_set.ventilation_hours))
    return los, ventilation


@dataclass(frozen=True)
class CaseSet:
    """The cases of a run as the chain reads them, built once (a sweep of scenarios reuses it): the validated
    cases (`table`, for the screens), each case's hospital, pool, cost, patient payments, discharge day, stay and
    ventilation, and the (pool, hospital) rows they settle in (`frame`, by discharge month)."""

    # the validated cases, or a function that makes them when `table` is first read (a case set `taken` from another
    # one's arrays: a projected year's table of a million cases is made only when the screens or `case_table` read it)
    cases: pa.Table | Callable[[], pa.Table]
    hospitals: CaseHospitals
    pool_text: np.ndarray | None  # each case's pool as text (`pool`); None: read from `pool_codes` when needed
    cost: np.ndarray
    patient_paid: np.ndarray
    discharge_days: np.ndarray | None
    month: np.ndarray | None  # year x 12 + month of discharge (0 without a date)
    # the special-case review's columns, (stay, ventilation hours) (None: not in the cases), made when first read
    # (`los_days`, `ventilation_hours`): only a policy with review reads them
    stay_columns: Callable[[], tuple[np.ndarray | None, np.ndarray | None]]
    # `pool` as (int64 code per case, the pools it codes into) when made from the cases (`case_pool_codes`)
    pool_codes: tuple[np.ndarray, np.ndarray] | None = None
    # makes `frame` from another case set's (`taken`: SettlementFrame.taken), None when it cannot
    frame_from: Callable[[], SettlementFrame | None] | None = None

    @functools.cached_property
    def pool(self) -> np.ndarray:
        """Each case's settlement pool, 统筹区-险种, as text."""
        if self.pool_text is not None:
            return self.pool_text
        assert self.pool_codes is not None
        return self.pool_codes[1][self.pool_codes[0]]

    @functools.cached_property
    def _stay(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self.stay_columns()

    @property
    def los_days(self) -> np.ndarray | None:
        """Each case's length of stay (days), None without the column."""
        return self._stay[0]

    @property
    def ventilation_hours(self) -> np.ndarray | None:
        """Each case's hours of ventilation, None without the column."""
        return self._stay[1]

    @functools.cached_property
    def table(self) -> pa.Table:
        """The validated cases (what the screens and `case_table` read), made when first read if not given."""
        return self.cases if isinstance(self.cases, pa.Table) else self.cases()

    @functools.cached_property
    def frame(self) -> SettlementFrame:
        """The (pool, hospital) rows, by discharge month: built when first settled (a chunked run sums its own)."""
        made = self.frame_from() if self.frame_from is not None else None
        if made is not None:
            return made
        return SettlementFrame.of(
            None,
            self.pool if self.pool_codes is None else None,
            self.cost,
            self.patient_paid,
            self.month,
            hospital_codes=(self.hospitals.codes, self.hospitals.ids),
            pool_codes=self.pool_codes,
        )

    @functools.cached_property
    def pools(self) -> list[str]:
        """The settlement pools of the cases, sorted."""
        if self.pool_codes is None:
            return sorted(set(self.pool))
        codes, names = self.pool_codes
        return sorted(set(names[np.bincount(codes, minlength=len(names)) > 0]))  # a `taken` set may miss some

    @functools.cached_property
    def last_day(self) -> dt.date | None:
        """The latest discharge date (None without dates): the settlement day without --on (`terms`)."""
        return settlement_day(self.discharge_days)

    def settlement_day(self, on=None) -> dt.date | None:
        """The day pool-level parameters are read on (`terms.settlement_day`): `on`, else the last discharge."""
        return settlement_day(None, on) if on is not None else self.last_day

    @classmethod
    def of(cls, cases: pa.Table, pool: np.ndarray | None = None) -> CaseSet:
        """`pool`: each case's 统筹区-险种 when already made (`case_pool_codes` of the cases otherwise)."""
        pool_codes = case_pool_codes(cases) if pool is None else None  # the text made when read (`pool`)
        pool = None if pool is None else np.asarray(pool, dtype=object)
        # the cost writable, as the pricing kernel takes it (Arrow's zero-copy arrays are read-only): copied once
        cost = np.require(float_column(cases, "total_cost", 0.0), requirements=("C", "W"))
        paid = float_column(cases, "patient_paid", 0.0)
        days = discharge_days(cases)
        month = None if days is None else discharge_months(cases["discharge_date"])

        return cls(
            cases=cases,
            hospitals=CaseHospitals.of(cases["hospital_id"]),
            pool_text=pool,
            cost=cost,
            patient_paid=paid,
            discharge_days=days,
            month=month,
            stay_columns=functools.partial(_stay_columns, cases),
            pool_codes=pool_codes,
        )

    def taken(
        self,
        rows: np.ndarray,
        table: Callable[[], pa.Table],
        cost: np.ndarray | None = None,
        patient_paid: np.ndarray | None = None,
        discharge_days: np.ndarray | None = None,
        years_on: int = 0,
    ) -> CaseSet:
        """The cases at `rows` (a case may be taken more than once) as a case set made from this one's arrays, not
        from a table: `cost`, `patient_paid` and `discharge_days` (-1 without a date) replace the taken ones when
        given (one per row; the month follows the day), `table()` makes the rows' table when first read
        (`table`). It must make the cases these arrays are read from (`CaseSet.of` of it reads the same).
        `years_on`: the given days are the taken ones moved that many whole years on (`projection.years.shift_days`:
        the same month), so each case's month is its base case's that many years on, and its settlement frame this
        set's frame taken by `rows` (`SettlementFrame.taken`: no factorising again)."""
        rows = np.asarray(rows, dtype=np.int64)

        def take(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[rows]

        month_values, same_months = self.frame.month_values, True
        if discharge_days is None:
            days, month = take(self.discharge_days), take(self.month)
        elif years_on and self.month is not None and month_values is not None:
            days, month = np.asarray(discharge_days, dtype=np.int64), self.month[rows]
            np.add(month, 12 * years_on, out=month, where=month != 0)  # 0: no discharge date
            month_values = np.where(month_values == 0, 0, month_values + 12 * years_on)
        else:  # other days: their months made afresh, and the frame
            days, month = np.asarray(discharge_days, dtype=np.int64), months_of_days(discharge_days)
            same_months = False
        pool_codes = None if self.pool_codes is None else (self.pool_codes[0][rows], self.pool_codes[1])
        cost = np.require(self.cost[rows] if cost is None else cost, np.float64, ("C", "W"))
        patient_paid = self.patient_paid[rows] if patient_paid is None else np.asarray(patient_paid, np.float64)
        frame_from = (
            functools.partial(self.frame.taken, rows, cost, patient_paid, month_values) if same_months else None
        )
        return CaseSet(
            cases=table,
            hospitals=CaseHospitals(self.hospitals.codes[rows], self.hospitals.ids),
            pool_text=None if pool_codes is not None else self.pool[rows],
            cost=cost,
            patient_paid=patient_paid,
            discharge_days=days,
            month=month,
            stay_columns=functools.partial(_taken_stay_columns, self, rows),
            pool_codes=pool_codes,
            frame_from=frame_from,
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
        """Each case's final points (after every case step and its hospital's growth cap): what the pools settle."""
        return self.columns["case_points"]

    @staticmethod
    def case_table_options(table: pa.Table) -> dict:
        """How `case_table` is written to Parquet (`pyarrow.parquet.write_table` options): dictionary pages for
        every column but the continuous ones (`CONTINUOUS_COLUMNS`: a dictionary of a million distinct floats
        would be built and dropped), no min / max statistics for the text columns (one row group: nothing to skip
        by them; comparing a million strings costs more than the rest of the statistics)."""
        return {
            "use_dictionary": [name for name in table.column_names if name not in CONTINUOUS_COLUMNS],
            "write_statistics": [name for name in table.column_names if name not in TEXT_COLUMNS],
        }

    def case_table(self) -> pa.Table:
        """case_id, hospital_id, pool, group, policy_day (the day its case-level terms were read on) and every
        step's column: the table `explain --case-id` reads. The text columns are taken from their distinct values
        by code, not converted case by case."""
        c = self.case_set
        days = pa.array([t.day for t in self.terms.periods], pa.date32())
        items = []
        for name, values in self.columns.items():
            if name == "outlier":  # int8 codes into OUTLIER_CLASSES
                items.append((name, pa.DictionaryArray.from_arrays(pa.array(values, pa.int8()), OUTLIER_DICTIONARY)))
            elif name == "item_share":
                share = np.ascontiguousarray(values, dtype=np.float64)
                items += [(name, pa.array(share)), ("item_paid", pa.array(c.cost * share))]  # yuan paid by item
            else:
                items.append((name, pa.array(np.ascontiguousarray(values))))
        if c.pool_codes is not None:
            pool = pc.take(pa.array(c.pool_codes[1], pa.string()), pa.array(c.pool_codes[0]))
        else:
            pool = pa.array(c.pool, pa.string())
        return pa.table(
            {
                "case_id": pc.cast(c.table["case_id"], pa.string()),
                "hospital_id": pc.take(pa.array(c.hospitals.ids, pa.string()), pa.array(c.hospitals.codes)),
                "pool": pool,
                "group": self.grouped.group_array(),
                "policy_day": days.take(pa.array(self.terms.case_period)),
                **dict(items),
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
    hospitals: pa.Table | None = None,
) -> RegionSettlement:
    """Step 8, the hospitals' growth caps (`payment.caps`: each hospital's points over all its rows of `frame`,
    against its reference in `hospitals`), then steps 9-11 (`budget.settle_frame`) on the capped points, under the
    pool terms of the settlement day. The factor per row is the settlement's `cap_factor` (None without a cap)."""
    factor = None
    if terms.pool.hospital_cap_tiers:
        if hospitals is None:
            raise ValueError("budget.hospital_cap_tiers is in force: settle_pools needs the hospitals table")
        monthly = None if row_sums is None else np.asarray(row_sums[0], dtype=np.float64).reshape(len(frame.pools), -1)
        points = frame.sum(case_points) if monthly is None else monthly.sum(axis=1)
        factor = hospital_factors(
            frame.hospitals, points, hospitals, terms.pool.hospital_cap_growth, terms.pool.hospital_cap_tiers
        )
        if monthly is None:
            case_points = np.asarray(case_points, dtype=np.float64) * factor[frame.codes]
        else:
            row_sums = (monthly * factor[:, None], row_sums[1])  # type: ignore[index]
    settlement = settle_frame(frame, case_points, terms.pool, quality, item_share, reserve_funding, row_sums)
    settlement.cap_factor = factor
    return settlement


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
    priced (steps 1-7), the hospitals capped (8), the pools settled (9-11). `quality`: hospital_id -> quality score
    (100 when absent).
    A sweep passes the same `screens_cache` (screens run once per set of their thresholds) and `workspace` (the
    pricing columns written into arrays allocated once: the next run with it overwrites this run's columns)."""
    if len(grouped) != len(case_set):
        raise ValueError(f"{len(grouped)} grouped cases for {len(case_set)} cases")
    terms = resolve(policy, case_set.discharge_days, len(case_set), on, case_set.last_day)
    columns = price_cases(case_set, grouped, hospitals, terms, aux_factor, screens_cache, workspace)
    outcome = columns.pop("_review")
    settlement = settle_pools(
        case_set.frame,
        columns["case_points"],
        columns["item_share"],
        terms,
        quality,
        outcome.reserve_funding if outcome is not None else None,
        hospitals=hospitals,
    )
    # step 8's columns: the review's points, the hospital's factor (the product settle_pools settled), the final
    reviewed = columns.pop("case_points")
    columns["reviewed_points"] = reviewed
    if settlement.cap_factor is None:
        columns.update(cap_factor=np.broadcast_to(1.0, (len(case_set),)), case_points=reviewed)
    else:
        factor = settlement.cap_factor[case_set.frame.codes]
        columns.update(cap_factor=factor, case_points=np.asarray(reviewed, dtype=np.float64) * factor)
    return PaymentRun(case_set, grouped, columns, settlement, outcome.review if outcome is not None else None, terms)
