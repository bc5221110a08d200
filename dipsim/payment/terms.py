"""The policy's parameters resolved once per run into typed views, one per step of the chain (docs/domain.md §7).

A parameter may be dated (`{ "2025-01-01" = 2.0, "2026-01-01" = 1.5 }`). Which value a run applies is decided here,
once, by one rule for every command (settle, scenarios, nightly, demo, notebooks):

* a **case-level** parameter (`CASE_LEVEL`: group points per RW, outlier ratios, coefficients, TCM bonuses,
  supervision consequences) takes the value in force on the case's **discharge date**, so a change on 1 July
  applies to the discharges from 1 July on. A case without a discharge date takes the value of the settlement day;
* every other parameter is **pool-level** (budget, reserve, bands, point-value floor / cap, the year's cycle,
  special-case review, the supervision screens' thresholds, the payment mode): it takes its value on the
  **settlement day**, the last day of the period settled: the latest discharge date of the cases.

`--on DATE` overrides both: every parameter, of every case, takes its value on DATE (a what-if "as if the rules of
DATE applied all year").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from dipsim.io.errors import InputError
from dipsim.money import to_fen
from dipsim.policy import PARAMETERS, Policy

# The parameters that apply per case, on its discharge date (each a field of CaseTerms: `_case_field_paths` checks it
# at import). Every other parameter of the registry (POOL_LEVEL) applies on the settlement day.
CASE_LEVEL = (
    "payment.drg_points_per_rw",
    "outlier.low_ratio",
    "outlier.high_ratio",
    "outlier.extreme_ratio",
    "outlier.low_ratio_by_level",
    "outlier.high_ratio_by_level",
    "outlier.pay_by_item",
    "coefficient.level",
    "coefficient.hospital",
    "coefficient.mode",
    "coefficient.history_blend",
    "coefficient.tcm_hospital_bonus",
    "tcm.same_price",
    "tcm.case_bonus",
    "supervision.split_readmission_factor",
    "supervision.low_standard_factor",
    "supervision.deduction_points",
)
POOL_LEVEL = tuple(path for path in PARAMETERS if path not in CASE_LEVEL)

EPOCH = dt.date(1970, 1, 1)


def _day(value) -> dt.date | None:
    return None if value is None else value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


@dataclass(frozen=True)
class SettlementBands:
    """结余留用、超支分担: the ratios and shares of the bands on q = group payment / cost billed by item."""

    surplus_keep_ratio: float  # q up to this: the hospital keeps the whole surplus (e.g. 1.1)
    surplus_share_above: float  # the share of the surplus above that ratio the hospital keeps (0-1)
    deficit_lower_ratio: float  # between this and 1 the deficit is shared (e.g. 0.9)
    deficit_fund_share: float  # the share of that deficit the fund covers (0-1)

    def __post_init__(self):
        if not self.surplus_keep_ratio >= 1:
            raise ValueError("surplus_keep_ratio must be at least 1")
        if not 0 <= self.deficit_lower_ratio <= 1:
            raise ValueError("deficit_lower_ratio must be in [0, 1]")
        for name in ("surplus_share_above", "deficit_fund_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass(frozen=True)
class CaseTerms:
    """The case-level parameters in force on one day: what steps 1-6 of the chain read."""

    day: dt.date | None  # the day the values were read on (None: the latest of each)
    drg_points_per_rw: float
    low_ratio: float
    high_ratio: float
    extreme_ratio: float
    low_ratio_by_level: dict[str, float]
    high_ratio_by_level: dict[str, float]
    pay_by_item: str  # none | high | high_and_low
    coefficient_level: dict[str, float]
    coefficient_hospital: dict[str, float]
    coefficient_mode: str  # fixed | history
    history_blend: float
    tcm_hospital_bonus: float
    tcm_same_price: bool
    tcm_case_bonus: float
    split_readmission_factor: float
    low_standard_factor: float
    deduction_points: dict[str, float]

    @classmethod
    def of(cls, policy: Policy, day: dt.date | None) -> CaseTerms:
        return cls(
            day=day,
            drg_points_per_rw=float(policy.get("payment.drg_points_per_rw", day)),
            low_ratio=float(policy.get("outlier.low_ratio", day)),
            high_ratio=float(policy.get("outlier.high_ratio", day)),
            extreme_ratio=float(policy.get("outlier.extreme_ratio", day)),
            low_ratio_by_level=dict(policy.get("outlier.low_ratio_by_level", day)),
            high_ratio_by_level=dict(policy.get("outlier.high_ratio_by_level", day)),
            pay_by_item=str(policy.get("outlier.pay_by_item", day)),
            coefficient_level=dict(policy.get("coefficient.level", day)),
            coefficient_hospital=dict(policy.get("coefficient.hospital", day)),
            coefficient_mode=str(policy.get("coefficient.mode", day)),
            history_blend=float(policy.get("coefficient.history_blend", day)),
            tcm_hospital_bonus=float(policy.get("coefficient.tcm_hospital_bonus", day)),
            tcm_same_price=bool(policy.get("tcm.same_price", day)),
            tcm_case_bonus=float(policy.get("tcm.case_bonus", day)),
            split_readmission_factor=float(policy.get("supervision.split_readmission_factor", day)),
            low_standard_factor=float(policy.get("supervision.low_standard_factor", day)),
            deduction_points=dict(policy.get("supervision.deduction_points", day)),
        )

    @property
    def has_consequences(self) -> bool:
        """Whether the supervision screens change this day's payment (a factor below 1 or a deduction)."""
        return (
            self.split_readmission_factor != 1.0
            or self.low_standard_factor != 1.0
            or any(self.deduction_points.values())
        )


def _case_field_paths() -> dict[str, str]:
    """Each CaseTerms field (but `day`) -> the registry path it is read from: the path whose last part, or whose
    dotted name with "_" for ".", is the field's name. Derived, so a field added to CaseTerms without its path in
    CASE_LEVEL fails here at import."""
    out = {}
    for f in fields(CaseTerms):
        if f.name == "day":
            continue
        paths = [p for p in CASE_LEVEL if f.name in (p.split(".")[-1], p.replace(".", "_"))]
        if len(paths) != 1:
            raise AssertionError(f"CaseTerms.{f.name}: {len(paths)} registry paths match ({paths})")
        out[f.name] = paths[0]
    if sorted(out.values()) != sorted(CASE_LEVEL):
        raise AssertionError(f"CASE_LEVEL paths without a CaseTerms field: {set(CASE_LEVEL) - set(out.values())}")
    return out


# CaseTerms field -> registry path (next to CaseTerms.of, derived from the names so the two cannot drift)
CASE_FIELD_PATHS = _case_field_paths()


def _plain(value: Any) -> Any:
    """A parameter value as JSON data: tuples to lists, dates to ISO text, numpy scalars to Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class ReviewTerms:
    """Special-case review (特例单议), decided at settlement: its parameters on the settlement day."""

    in_effect: bool
    rules: tuple[str, ...]
    long_stay_days: float
    ventilation_hours: float
    small_group_cases: int
    quota_per_mille: float
    approval_rate: float
    payment: str  # by_item | points
    funding: str  # budget | reserve

    @classmethod
    def of(cls, policy: Policy, day: dt.date | None) -> ReviewTerms:
        rules = tuple(x.strip() for x in str(policy.get("review.rules", day)).split(",") if x.strip())
        return cls(
            in_effect=bool(policy.get("review.in_effect", day)),
            rules=rules,
            long_stay_days=float(policy.get("review.long_stay_days", day)),
            ventilation_hours=float(policy.get("review.ventilation_hours", day)),
            small_group_cases=int(policy.get("review.small_group_cases", day)),
            quota_per_mille=float(policy.get("review.quota_per_mille", day)),
            approval_rate=float(policy.get("review.approval_rate", day)),
            payment=str(policy.get("review.payment", day)),
            funding=str(policy.get("review.funding", day)),
        )


@dataclass(frozen=True)
class PoolTerms:
    """A pool's settlement parameters on the settlement day: the hospitals' growth caps (step 8), budget, reserve,
    bands, point-value floor / cap, the year's cycle (steps 9-11)."""

    budget_total: dict[str, float]  # pool -> annual budget (yuan), before the scale
    scale: float
    reserve_share: float
    point_value_floor: float  # a multiple of the budget point value (0: none)
    point_value_cap: float
    fixed_point_value: float  # DRG rate mode (0: the point value is solved)
    budget_point_value: dict[str, float]  # pool -> published budget point value
    bands: SettlementBands | None
    prepay_share: float
    quality_deposit_share: float
    quality_schedule: tuple[tuple[float, float], ...]
    hospital_cap_growth: float  # step 8: a hospital's cap = its reference points x (1 + this)
    hospital_cap_tiers: tuple[tuple[float, float], ...]  # [from (x the cap), weight]; empty: no cap

    @classmethod
    def of(cls, policy: Policy, day: dt.date | None) -> PoolTerms:
        bands = None
        if policy.get("bands.in_effect", day):
            bands = SettlementBands(
                surplus_keep_ratio=policy.get("bands.surplus_keep_ratio", day),
                surplus_share_above=policy.get("bands.surplus_share_above", day),
                deficit_lower_ratio=policy.get("bands.deficit_lower_ratio", day),
                deficit_fund_share=policy.get("bands.deficit_fund_share", day),
            )
        return cls(
            budget_total=dict(policy.get("budget.total", day)),
            scale=float(policy.get("budget.scale", day)),
            reserve_share=float(policy.get("budget.reserve_share", day)),
            point_value_floor=float(policy.get("budget.point_value_floor", day)),
            point_value_cap=float(policy.get("budget.point_value_cap", day)),
            fixed_point_value=float(policy.get("budget.fixed_point_value", day)),
            budget_point_value=dict(policy.get("budget.budget_point_value", day)),
            bands=bands,
            prepay_share=float(policy.get("cycle.prepay_share", day)),
            quality_deposit_share=float(policy.get("cycle.quality_deposit_share", day)),
            quality_schedule=tuple((float(s), float(v)) for s, v in policy.get("cycle.quality_schedule", day)),
            hospital_cap_growth=float(policy.get("budget.hospital_cap_growth", day)),
            hospital_cap_tiers=tuple((float(s), float(w)) for s, w in policy.get("budget.hospital_cap_tiers", day)),
        )

    def budget(self, pool: str) -> float:
        """The pool's budget for the period: budget.total x budget.scale (yuan, unrounded)."""
        return self.budget_total[pool] * self.scale

    def available(self, pool: str, extra: float = 0.0) -> float:
        """可分配预算: the budget less the reserve, budget x (1 - budget.reserve_share), plus `extra` (special cases
        funded from the reserve), to the fen. The one place this formula is written."""
        return to_fen(self.budget(pool) * (1 - self.reserve_share) + extra) / 100


@dataclass(frozen=True)
class Terms:
    """Everything a run applies: the case-level terms of each period with cases (`periods[case_period[i]]` for case
    i), the review's and the pools' terms on the settlement day, and that day."""

    settlement_day: dt.date | None
    periods: tuple[CaseTerms, ...]
    case_period: np.ndarray  # int per case
    review: ReviewTerms
    pool: PoolTerms
    policy: Policy  # for the supervision screens' thresholds, read on the settlement day

    @property
    def has_consequences(self) -> bool:
        return any(t.has_consequences for t in self.periods)

    def per_case(self, values: list[Any], dtype=np.float64) -> np.ndarray:
        """A value per period spread to the cases."""
        return np.asarray(values, dtype=dtype)[self.case_period]


def settlement_day(discharge_days: np.ndarray | None, on=None) -> dt.date | None:
    """The day pool-level parameters are read on: `on` when given, else the latest discharge date (None without
    dates: the latest value of each parameter). `discharge_days` are days since 1970-01-01, negative for none."""
    if on is not None:
        return _day(on)
    if discharge_days is None or not len(discharge_days) or discharge_days.max() < 0:
        return None
    return EPOCH + dt.timedelta(days=int(discharge_days.max()))


DEFAULT_DRG_SCHEME = "chs-drg-1.1"


def drg_scheme(policy: Policy, day: dt.date | None = None, default: str | None = None) -> str:
    """The CHS-DRG scheme a DRG-mode run groups its cases under: the policy's `payment.drg_scheme` on `day` (the
    settlement day, as every pool-level parameter: one scheme for the period settled), else `default` (the command
    line's --scheme), else chs-drg-1.1. Its weights are calibrated on the cases' own costs (`group_drg`)."""
    return str(policy.get("payment.drg_scheme", day)) or default or DEFAULT_DRG_SCHEME


def command_line_scheme(policy: Policy, day: dt.date | None, scheme: str | None, what: str = "the policy") -> str:
    """`drg_scheme` for a policy given on the command line with --scheme `scheme` (None: not given): InputError when
    both name a scheme and they differ (neither silently wins)."""
    own = str(policy.get("payment.drg_scheme", day))
    if own and scheme and own != scheme:
        raise InputError(f"--scheme {scheme} and {what}'s payment.drg_scheme = {own!r} differ: give one of them")
    return drg_scheme(policy, day, scheme)


def every_case_terms(policy: Policy, on=None) -> list[CaseTerms]:
    """The case-level terms of every period of the policy (from each day a case-level parameter changes, and the
    latest), or of the day `on` alone: what a check before the cases' dates are known must cover."""
    if on is not None:
        return [CaseTerms.of(policy, _day(on))]
    out = [CaseTerms.of(policy, day) for day in policy.change_days(CASE_LEVEL)]
    return out or [CaseTerms.of(policy, None)]


def resolve(
    policy: Policy, discharge_days: np.ndarray | None, n: int, on=None, settlement: dt.date | None = None
) -> Terms:
    """The run's terms for `n` cases with these discharge days (days since 1970-01-01, negative for none; None when
    the cases have no dates), by the rule of the module's docstring. `settlement`: the settlement day when the
    cases are part of a larger period (a partition of the year: the year's last discharge day), else the cases'
    own last discharge day. InputError when a case falls on a day before a dated case-level parameter's first
    value."""
    day = settlement if settlement is not None and on is None else settlement_day(discharge_days, on)
    changes = policy.change_days(CASE_LEVEL)
    if on is not None or not changes or discharge_days is None:
        period = np.zeros(n, np.int64)
        days = [day]
    else:
        case_days = np.where(
            discharge_days >= 0, discharge_days, (day - EPOCH).days if day is not None else np.iinfo(np.int32).max
        )
        starts = np.array([(d - EPOCH).days for d in changes], np.int64)
        raw = np.searchsorted(starts, case_days, side="right")  # 0: before the first change
        used, period = np.unique(raw, return_inverse=True)
        days = [changes[k - 1] if k else changes[0] - dt.timedelta(days=1) for k in used]
        period = period.astype(np.int64)
    periods = []
    for k, d in enumerate(days):
        try:
            periods.append(CaseTerms.of(policy, d))
        except KeyError as exc:
            count = int((period == k).sum())
            raise InputError(
                f"{count:,} case(s) discharged on or before {d}: {exc.args[0]} (the policy's dated "
                "value starts later: give it a value for that time)"
            ) from exc
    return Terms(
        settlement_day=day,
        periods=tuple(periods),
        case_period=period,
        review=ReviewTerms.of(policy, day),
        pool=PoolTerms.of(policy, day),
        policy=policy,
    )


def terms_record(terms: Terms) -> dict:
    """The terms a run applied, as JSON data (`dipsim settle` writes it as terms.json; `explain --case-id` reads it):
    the settlement day, each period's day and its case-level values by registry path ({"outlier.high_ratio": 2.0,
    ...}), and every other parameter by path as read on the settlement day (the pool, review, supervision-screen
    and mode terms)."""
    day = terms.settlement_day
    settlement = {}
    for path in POOL_LEVEL:
        try:
            settlement[path] = _plain(terms.policy.get(path, day))
        except KeyError:  # a dated value not yet in force on that day: nothing was applied
            settlement[path] = None
    return {
        "settlement_day": day.isoformat() if day else None,
        "periods": [
            {
                "day": t.day.isoformat() if t.day else None,
                "values": {path: _plain(getattr(t, name)) for name, path in CASE_FIELD_PATHS.items()},
            }
            for t in terms.periods
        ],
        "settlement": settlement,
    }
