"""The Numba pricing kernel (`dipsim.pricing_kernel.price_cases`, which `pricing.price` calls for steps 2-5 of the
payment chain) against a plain-Python reference on random cases, as the DRG and DIP kernels are tested
(test_drg_kernel.py, test_dip_grouping.py). Each case has a period (a span of discharge dates with its own
case-level parameters, `payment.terms`): its ratios, coefficient and bonuses are those of its period.

The reference below is written from the rule as documented (`dipsim.pricing`'s module docstring, the kernel's
docstring; docs/domain.md §7 and §9), one case at a time, not from the kernel's code:
- r = cost / the group's standard cost; unknown (NaN) without a finite positive standard cost or a finite cost;
- class: low when r < the hospital's low ratio, unless the case is a TCM case of a TCM group (同病同价: it is then
  neither cut nor a low outlier); high when r > the hospital's high ratio; extreme (special-case review, 特例单议)
  when r > the extreme ratio; normal otherwise, and when r is unknown;
- outlier factor: r for a low case, (r - high) + 1 for a high or extreme one, 1 otherwise;
- coefficient: the hospital's; bonus: the larger of the TCM hospital bonus (中医 hospitals) and the TCM case bonus
  (TCM-treated cases): bonuses do not stack;
- case points = group points x factor x coefficient x (1 + bonus) x aux factor; 0 for a case without finite group
  points, and 0 with paid_by_item for a class the policy pays by item (`outlier.pay_by_item`).

The random policies keep the rules `Policy` enforces (low < high <= extreme at every hospital); costs are
non-negative, as validation requires, or missing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipsim.pricing import OUTLIER_CLASSES
from dipsim.pricing_kernel import price_cases

# `outlier.pay_by_item` -> the classes paid by item (pricing.py's module docstring: "outlier cases")
PAID_BY_ITEM = {"none": (), "high": ("high", "extreme"), "high_and_low": ("low", "high", "extreme")}


def reference_case(group_points, cost, standard, no_low_cut, tcm_treated, aux, low, high, coefficient,
                   tcm_hospital, extreme, hospital_bonus, case_bonus, paid_classes):
    """One case priced by the documented rule: (r, factor, class, coefficient, bonus, points, paid_by_item)."""
    known = math.isfinite(standard) and standard > 0 and math.isfinite(cost)
    r = cost / standard if known else math.nan
    if known and r < low and not no_low_cut:
        kind, factor = "low", r
    elif known and r > extreme:
        kind, factor = "extreme", (r - high) + 1
    elif known and r > high:
        kind, factor = "high", (r - high) + 1
    else:
        kind, factor = "normal", 1.0
    bonus = max(hospital_bonus if tcm_hospital else 0.0, case_bonus if tcm_treated else 0.0)
    by_item = kind in paid_classes
    if by_item or not math.isfinite(group_points):
        points = 0.0
    else:
        points = group_points * factor * coefficient * (1 + bonus) * aux
    return r, factor, kind, coefficient, bonus, points, by_item


# ------------------------------------------------------------------------------------------ random cases and policies

SPECIAL_STANDARDS = [0.0, math.nan, math.inf, 1_000.0, 1.0]
# ratios on and around the usual thresholds (0.4-0.6 low, 1.5-3 high, 5 extreme) so that r hits them exactly
RATIOS = [0.0, 0.3, 0.4, 0.5, 0.6, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 6.0]


@st.composite
def hospitals(draw, n: int):
    """One period's per-hospital values: low < high for each, extreme >= every high (the policy's rules)."""
    low, high = [], []
    for _ in range(n):
        lo = draw(st.one_of(st.sampled_from([0.4, 0.5, 0.6]), st.floats(0.05, 0.95)))
        hi = draw(st.one_of(st.sampled_from([1.5, 2.0, 3.0]), st.floats(lo, 5.0, exclude_min=True)))
        low.append(lo)
        high.append(max(hi, math.nextafter(lo, math.inf)))
    extreme = max(high) + draw(st.one_of(st.just(0.0), st.sampled_from([1.0, 3.0]), st.floats(0.0, 5.0)))
    return {
        "low_h": np.array(low), "high_h": np.array(high),
        "coefficient_h": np.array(draw(st.lists(st.one_of(st.sampled_from([1.0, 0.889, 0.677]), st.floats(0.3, 2.0)),
                                                min_size=n, max_size=n))),
        "extreme": extreme,
        "hospital_bonus": draw(st.one_of(st.sampled_from([0.0, 0.05, 0.10]), st.floats(0.0, 0.3))),
        "case_bonus": draw(st.one_of(st.sampled_from([0.0, 0.05, 0.10]), st.floats(0.0, 0.3))),
        "pay_by_item": draw(st.sampled_from(sorted(PAID_BY_ITEM))),
    }


@st.composite
def one_case(draw, n_hospitals: int, n_periods: int):
    standard = draw(st.one_of(st.sampled_from(SPECIAL_STANDARDS), st.floats(1.0, 1e6)))
    base = standard if math.isfinite(standard) and standard > 0 else 1_000.0
    cost = draw(st.one_of(st.sampled_from(RATIOS).map(lambda ratio: ratio * base),
                          st.floats(0.0, 8.0).map(lambda ratio: ratio * base),
                          st.floats(0.0, 1e7), st.just(math.nan)))
    return (draw(st.one_of(st.floats(0.0, 5_000.0), st.sampled_from([0.0, math.nan, math.inf, 1_000.0]))),
            cost, standard, draw(st.integers(0, n_hospitals - 1)), draw(st.booleans()), draw(st.booleans()),
            draw(st.one_of(st.just(1.0), st.sampled_from([0.8, 1.2]), st.floats(0.5, 2.0))),
            draw(st.integers(0, n_periods - 1)))


@st.composite
def regions(draw):
    n = draw(st.integers(1, 5))
    periods = draw(st.lists(hospitals(n), min_size=1, max_size=3))
    tcm_hospital = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=np.bool_)
    rows = draw(st.lists(one_case(n, len(periods)), min_size=0, max_size=200))
    return periods, tcm_hospital, rows


def _kernel(periods: list, tcm_hospital: np.ndarray, rows: list) -> dict:
    n = len(rows)
    columns = list(zip(*rows)) if rows else [()] * 8
    group_points, cost, standard = (np.array(c, dtype=np.float64) for c in columns[:3])
    hospital = np.array(columns[3], dtype=np.int64)
    no_low_cut, tcm_treated = (np.array(c, dtype=np.bool_) for c in columns[4:6])
    aux = np.array(columns[6], dtype=np.float64)
    period = np.array(columns[7], dtype=np.int64)
    by_item = np.array([[k in PAID_BY_ITEM[p["pay_by_item"]] for k in OUTLIER_CLASSES] for p in periods])
    out = {name: np.empty(n, dtype=np.float64) for name in ("group_points", "r", "factor", "coefficient", "bonus",
                                                              "points")}
    out["code"], out["by_item"] = np.empty(n, dtype=np.int8), np.empty(n, dtype=np.bool_)

    # the kernel's cells: period x hospitals + hospital, each with its period's values
    n_hospitals = len(tcm_hospital)
    cell = period * n_hospitals + hospital

    def per_cell(name):
        return np.concatenate([np.broadcast_to(np.asarray(p[name], dtype=np.float64), n_hospitals) for p in periods])

    by_item_c = np.repeat(by_item, n_hospitals, axis=0)
    hospital_bonus = np.concatenate([np.where(tcm_hospital, p["hospital_bonus"], 0.0) for p in periods])
    price_cases(group_points, cost, standard, cell, no_low_cut, tcm_treated, aux, per_cell("low_h"),
                per_cell("high_h"), per_cell("coefficient_h"), per_cell("extreme"), hospital_bonus,
                per_cell("case_bonus"), by_item_c, out["group_points"], out["r"], out["factor"], out["code"],
                out["coefficient"], out["bonus"], out["points"], out["by_item"])
    return out


def _check(region, reached: set) -> None:
    periods, tcm_hospital, rows = region
    got = _kernel(periods, tcm_hospital, rows)
    want = [reference_case(gp, cost, standard, no_low_cut, tcm, aux, periods[p]["low_h"][k],
                           periods[p]["high_h"][k], periods[p]["coefficient_h"][k], bool(tcm_hospital[k]),
                           periods[p]["extreme"], periods[p]["hospital_bonus"], periods[p]["case_bonus"],
                           PAID_BY_ITEM[periods[p]["pay_by_item"]])
            for gp, cost, standard, k, no_low_cut, tcm, aux, p in rows]
    r, factor, kind, coefficient, bonus, points, by_item = (list(c) for c in zip(*want)) if want else [[]] * 7
    np.testing.assert_array_equal([OUTLIER_CLASSES[c] for c in got["code"]], np.array(kind, dtype=str))
    np.testing.assert_array_equal(got["by_item"], np.array(by_item, dtype=np.bool_))
    for name, values in (("r", r), ("factor", factor), ("coefficient", coefficient), ("bonus", bonus),
                         ("points", points)):
        np.testing.assert_allclose(got[name], np.array(values, dtype=np.float64), rtol=1e-12, atol=0, err_msg=name)
    finite = [gp if math.isfinite(gp) else 0.0 for gp, *_ in rows]  # the group points, 0 when not finite
    np.testing.assert_array_equal(got["group_points"], np.array(finite, dtype=np.float64))
    reached.update(zip(kind, by_item))


def test_kernel_agrees_with_the_reference_on_random_cases():
    reached: set = set()  # (class, paid by item) pairs the random cases hit

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(regions())
    def check(region):
        _check(region, reached)

    check()
    # the comparison is only useful if the random cases reach every class, with and without pay by item
    wanted = {(k, False) for k in OUTLIER_CLASSES} | {(k, True) for k in ("low", "high", "extreme")}
    assert wanted <= reached, wanted - reached


def test_the_reference_by_hand():
    """The reference itself on docs/domain.md §7's figures (low 0.5, high 2, extreme 5; group points 100, standard
    1,000): a case at r = 3 gets factor (3 - 2) + 1 = 2; r = 6 is extreme with factor 5; r = 0.4 pays 0.4 unless
    同病同价; TCM bonuses 0.10 (hospital) and 0.05 (case) do not stack."""
    def price(cost, standard=1_000.0, no_low_cut=False, tcm_hospital=False, tcm_treated=False, paid=(), gp=100.0):
        return reference_case(gp, cost, standard, no_low_cut, tcm_treated, 1.0, 0.5, 2.0, 1.0, tcm_hospital, 5.0,
                              0.10, 0.05, paid)

    assert price(3_000)[1:3] == (2.0, "high") and price(6_000)[1:3] == (5.0, "extreme")
    assert price(400)[1:3] == (0.4, "low") and price(400, no_low_cut=True)[1:3] == (1.0, "normal")
    assert price(500)[2] == "normal" and price(2_000)[2] == "normal"  # on the thresholds: not outliers
    assert price(1_000, tcm_hospital=True, tcm_treated=True)[4] == 0.10
    assert price(1_000, tcm_treated=True)[5] == pytest.approx(105.0)
    assert price(3_000, paid=("high", "extreme"))[5:] == (0.0, True)
    assert math.isnan(price(1_000, standard=0.0)[0]) and price(1_000, standard=0.0)[1:3] == (1.0, "normal")
    assert price(1_000, gp=math.nan)[5] == 0.0
