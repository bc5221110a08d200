"""The Numba pricing kernel: the chain of `dipsim.pricing.case_points` in one pass over the cases (Numba only; the
policy is read and per-hospital values are prepared by `pricing.py`). A sweep of scenarios re-prices a million
cases per variant, so one loop instead of a dozen numpy passes matters."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CODE_LOW, CODE_NORMAL, CODE_HIGH, CODE_EXTREME = 0, 1, 2, 3


@njit(cache=True, parallel=True)
def price_cases(group_points, cost, standard, hospital, no_low_cut, tcm_treated, aux,
                low_h, high_h, coefficient_h, tcm_hospital_h, extreme, hospital_bonus, case_bonus, by_item_codes,
                out_r, out_factor, out_code, out_coefficient, out_bonus, out_points, out_by_item):
    """Per case i with hospital code h = hospital[i]: r = cost / standard (NaN without a positive standard);
    factor r below low_h[h] (unless no_low_cut), (r - high_h[h]) + 1 above it, else 1; class low / normal / high /
    extreme (r > extreme); coefficient_h[h] x (1 + the larger of the hospital and case TCM bonuses) x aux; points
    0 for a class in `by_item_codes` (paid by item)."""
    for i in prange(group_points.shape[0]):
        h = hospital[i]
        s = standard[i]
        c = cost[i]
        factor = 1.0
        code = CODE_NORMAL
        r = np.nan
        if s > 0 and np.isfinite(s) and np.isfinite(c):
            r = c / s
            if r < low_h[h] and not no_low_cut[i]:
                factor = r
                code = CODE_LOW
            elif r > high_h[h]:
                factor = r - high_h[h] + 1.0
                code = CODE_EXTREME if r > extreme else CODE_HIGH
            elif r > extreme:
                code = CODE_EXTREME
        bonus = hospital_bonus if tcm_hospital_h[h] else 0.0
        if tcm_treated[i] and case_bonus > bonus:
            bonus = case_bonus
        by_item = False
        for k in range(by_item_codes.shape[0]):
            if by_item_codes[k] == code:
                by_item = True
        points = group_points[i]
        if not np.isfinite(points):
            points = 0.0
        out_r[i] = r
        out_factor[i] = factor
        out_code[i] = code
        out_coefficient[i] = coefficient_h[h]
        out_bonus[i] = bonus
        out_by_item[i] = by_item
        out_points[i] = 0.0 if by_item else points * factor * coefficient_h[h] * (1.0 + bonus) * aux[i]
