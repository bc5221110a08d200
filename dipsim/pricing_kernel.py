"""The Numba pricing kernel: steps 2-5 of the payment chain (`dipsim.pricing.price`) in one pass over the cases.
The policy is read and the values of each cell, a (period, hospital) pair, are prepared by `pricing.price`; a period
is a span of discharge dates with the same case-level parameters (`payment.terms`). A sweep of scenarios re-prices
a million cases per variant, so one loop instead of a dozen numpy passes matters."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CODE_LOW, CODE_NORMAL, CODE_HIGH, CODE_EXTREME = 0, 1, 2, 3


@njit(cache=True, parallel=True)
def price_cases(group_points, cost, standard, cell, no_low_cut, tcm_treated, aux,
                low_c, high_c, coefficient_c, extreme_c, hospital_bonus_c, case_bonus_c, by_item_c,
                out_group_points, out_r, out_factor, out_code, out_coefficient, out_bonus, out_points, out_by_item):
    """Per case i in cell c = cell[i] (its period x the number of hospitals + its hospital): r = cost / standard
    (NaN without a finite positive standard or a finite cost); factor r below low_c[c] (unless no_low_cut),
    (r - high_c[c]) + 1 above high_c[c], else 1; class low / normal / high / extreme (r > extreme_c[c], which is at
    least the high ratio: the policy's rule); coefficient_c[c] x (1 + the larger of the hospital's TCM bonus
    hospital_bonus_c[c] (0 for a hospital that is not 中医) and, for a TCM-treated case, case_bonus_c[c]) x aux;
    points 0 without finite group points (out_group_points: the group points, 0 when not finite), or for a class
    paid by item (by_item_c[c, class])."""
    for i in prange(group_points.shape[0]):
        c = cell[i]
        s = standard[i]
        x = cost[i]
        factor = 1.0
        code = CODE_NORMAL
        r = np.nan
        if s > 0 and np.isfinite(s) and np.isfinite(x):
            r = x / s
            if r < low_c[c] and not no_low_cut[i]:
                factor = r
                code = CODE_LOW
            elif r > high_c[c]:
                factor = r - high_c[c] + 1.0
                code = CODE_EXTREME if r > extreme_c[c] else CODE_HIGH
        bonus = hospital_bonus_c[c]
        if tcm_treated[i] and case_bonus_c[c] > bonus:
            bonus = case_bonus_c[c]
        by_item = by_item_c[c, code]
        points = group_points[i]
        if not np.isfinite(points):
            points = 0.0
        coefficient = coefficient_c[c]
        out_group_points[i] = points
        out_r[i] = r
        out_factor[i] = factor
        out_code[i] = code
        out_coefficient[i] = coefficient
        out_bonus[i] = bonus
        out_by_item[i] = by_item
        out_points[i] = 0.0 if by_item else points * factor * coefficient * (1.0 + bonus) * aux[i]
