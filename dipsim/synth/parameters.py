"""Calibration of the synthetic region: every number the generator draws with, in one place.

None of these is a real city's rule: the pool is fictional.  They are set so that the region looks like a typical
Chinese prefecture-level 统筹区 (shares of cases by hospital level, cost gaps between levels, reimbursement ranges);
the case-level distributions (age, LOS, cost, deaths) come from the pattern library instead.
"""

from __future__ import annotations

import numpy as np

TIERS = ("tertiary", "secondary", "primary")  # tier codes 0, 1, 2

# --- region structure -----------------------------------------------------------------------------------------
# Big tertiary hospitals take about half of a region's inpatient cases although they are few.
TIER_SHARE = {"tertiary": 0.50, "secondary": 0.36, "primary": 0.14}  # share of the region's cases
TIER_HOSPITAL_SHARE = {"tertiary": 0.07, "secondary": 0.25}  # share of hospitals; the rest are primary
SIZE_SD = {"tertiary": 0.25, "secondary": 0.35, "primary": 0.5}  # lognormal spread of hospital sizes within a tier

# --- cost, payment, outcomes ----------------------------------------------------------------------------------
# Cost level by hospital level, relative to 三级甲等 (the sources' level): lower levels charge less for a case.
LEVEL_COST = {"三级甲等": 1.0, "三级乙等": 0.92, "三级": 0.90, "二级甲等": 0.76, "二级乙等": 0.72, "二级": 0.72,
              "一级": 0.50}
HOSPITAL_EFFECT_SD = 0.10  # per-hospital lognormal cost effect: same-level hospitals differ by about +-10%
TCM_COST_FACTOR = 0.85  # a TCM-treated stay costs less (the reason for 同病同效同价)
TCM_SHARE = {"tcm": 0.68, "primary": 0.10, "other": 0.08}  # share of stays with TCM, before x0.6 with a procedure
TCM_PROCEDURE_FACTOR = 0.6  # surgical stays get TCM less often
TCM_COST_SHARE = (0.10, 0.40)  # TCM items' share of a TCM-treated stay's cost (uniform)
MIN_COST = 80.0  # yuan; a floor on the lognormal cost draw
MAX_LOS = 365  # days; the sources have a few stays of more than a year
# Reimbursement (统筹基金支付比例) and deductible (起付线) by insurance type and tier: employee insurance pays more and
# lower levels have higher ratios and lower deductibles, to steer patients to grassroots care.
FUND_RATIO = {"employee": {"tertiary": 0.82, "secondary": 0.87, "primary": 0.90},
              "resident": {"tertiary": 0.58, "secondary": 0.65, "primary": 0.72}}
DEDUCTIBLE = {"employee": {"tertiary": 1000.0, "secondary": 600.0, "primary": 300.0},
              "resident": {"tertiary": 800.0, "secondary": 500.0, "primary": 200.0}}
FUND_RATIO_SD = 0.04  # case-level spread: 目录外 items and caps move the effective ratio
FUND_RATIO_RANGE = (0.3, 0.95)
# 离院方式 other than death, by tier: 2 医嘱转院, 3 转社区/乡镇, 4 非医嘱离院, 9 其他.  Primary hospitals refer up;
# tertiary ones send recovering patients down.
MODE_SHARE = {"tertiary": {2: 0.005, 3: 0.015, 4: 0.010, 9: 0.003},
              "secondary": {2: 0.012, 3: 0.008, 4: 0.010, 9: 0.003},
              "primary": {2: 0.030, 3: 0.002, 4: 0.010, 9: 0.003}}
DEATH_FACTOR = {"tertiary": 1.2, "secondary": 1.0, "primary": 0.5}  # the sickest patients are referred up
# 职工医保 share by age (children and most retirees of rural origin are 居民医保), before the tier factor (urban
# tertiary hospitals see more employees than township ones).
EMPLOYEE_SHARE_BY_AGE = ((18, 0.03), (60, 0.52), (200, 0.44))  # (upper age bound, share)
EMPLOYEE_TIER_FACTOR = {"tertiary": 1.10, "secondary": 0.85, "primary": 0.50}
VENTILATION_SHARE_DEATH = 0.40  # of stays ending in death
VENTILATION_SHARE_SEVERE = 0.08  # of stays of a high-cost pattern
SEVERE_LOG_COST = 11.0  # a pattern's cost_mu above this (about 60,000 yuan) is a high-cost pattern
VENTILATION_MEDIAN_HOURS = 48.0
VENTILATION_LOG_SD = 0.9
# Discharges by month (Spring Festival in February, National Day in October) and by weekday (Mon..Sun).
MONTH_SEASON = np.array([1.06, 0.82, 1.05, 1.00, 1.00, 0.96, 1.02, 1.02, 0.98, 0.93, 1.02, 1.08])
WEEKDAY_WEIGHT = np.array([1.0, 1.0, 1.0, 1.0, 1.05, 0.75, 0.60])

# --- readmissions and behaviours ------------------------------------------------------------------------------
READMISSION_SHARE = 0.07  # of a month's rows (none in January: no history yet)
# Readmissions start >= 21 days after the earlier discharge: a shorter gap is what the 分解住院 screen flags.
READMISSION_MIN_GAP = 21
READMISSION_LOS_ALLOWANCE = 14  # eligibility assumes a readmission stay of up to this many days
RESERVOIR_CAP = 1_500_000  # earlier stays kept as readmission candidates (~36 MB; bounds memory for any N)
READMISSION_PICK_ROUNDS = 4  # redraws for candidates whose earlier stay was already taken this month
UPCODE_SHARE = 0.35  # of an upcoding hospital's cases
UPCODE_TWO_CODES = 0.40  # of upcoded cases get two codes
SPLIT_SHARE = 0.12  # of a split-stay hospital's stays become two
SPLIT_FIRST_SHARE = (0.35, 0.65)  # the first stay's share of the original LOS
SPLIT_GAP_DAYS = (1, 10)  # days from the first discharge to the second admission
SPLIT_COST_FACTOR = (1.05, 1.15)  # two stays bill more than the one they replace
