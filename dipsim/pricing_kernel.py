"""The Numba pricing kernel: steps 2-5 of the payment chain (`dipsim.payment.steps.price`) in one pass over the
cases. The policy is read and the per-(period, hospital) values are prepared by `pricing.price`; a period is a
span of discharge dates with the same case-level parameters (`payment.terms`). A sweep of scenarios re-prices a
million cases per variant, so one loop instead of a dozen numpy passes matters."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CODE_LOW, CODE_NORMAL, CODE_HIGH, CODE_EXTREME = 0, 1, 2, 3


@njit(cache=True, parallel=True)
def price_cases(group_points, cost, standard, hospital, period, no_low_cut, tcm_treated, aux,
                low_ph, high_ph, coefficient_ph, tcm_hospital_h, extreme_p, hospital_bonus_p, case_bonus_p, by_item_pc,
                out_r, out_factor, out_code, out_coefficient, out_bonus, out_points, out_by_item):
    """Per case i with hospital h = hospital[i] and period p = period[i]: r = cost / standard (NaN without a finite
    positive standard or a finite cost); factor r below low_ph[p, h] (unless no_low_cut), (r - high_ph[p, h]) + 1
    above high_ph[p, h], else 1; class low / normal / high / extreme (r > extreme_p[p], which is at least every
    high ratio: the policy's rule); coefficient_ph[p, h] x (1 + the larger of the hospital's and the case's TCM
    bonus) x aux; points 0 without finite group points, or for a class paid by item (by_item_pc[p, class]).
    `period` of one value (a run without a dated case-level parameter) is every case's period."""
    every = period.shape[0] == 1
    for i in prange(group_points.shape[0]):
        h = hospital[i]
        p = period[0] if every else period[i]
        s = standard[i]
        c = cost[i]
        factor = 1.0
        code = CODE_NORMAL
        r = np.nan
        if s > 0 and np.isfinite(s) and np.isfinite(c):
            r = c / s
            if r < low_ph[p, h] and not no_low_cut[i]:
                factor = r
                code = CODE_LOW
            elif r > high_ph[p, h]:
                factor = r - high_ph[p, h] + 1.0
                code = CODE_EXTREME if r > extreme_p[p] else CODE_HIGH
        bonus = hospital_bonus_p[p] if tcm_hospital_h[h] else 0.0
        if tcm_treated[i] and case_bonus_p[p] > bonus:
            bonus = case_bonus_p[p]
        by_item = by_item_pc[p, code]
        points = group_points[i]
        if not np.isfinite(points):
            points = 0.0
        coefficient = coefficient_ph[p, h]
        out_r[i] = r
        out_factor[i] = factor
        out_code[i] = code
        out_coefficient[i] = coefficient
        out_bonus[i] = bonus
        out_by_item[i] = by_item
        out_points[i] = 0.0 if by_item else points * factor * coefficient * (1.0 + bonus) * aux[i]
