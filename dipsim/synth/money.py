"""Money, in fen (分) so that fund + patient = total exactly: TCM (中医) treatment and its cost, total cost, and the
fund's share after the deductible (起付线) and the reimbursement ratio (统筹基金支付比例)."""

from __future__ import annotations

import numpy as np

from dipsim.synth.parameters import (
    DEDUCTIBLE,
    FUND_RATIO,
    FUND_RATIO_RANGE,
    FUND_RATIO_SD,
    MIN_COST,
    TCM_COST_FACTOR,
    TCM_COST_SHARE,
    TCM_PROCEDURE_FACTOR,
    TIERS,
)
from dipsim.synth.patterns import Patterns
from dipsim.synth.people import INSURANCE_TYPES
from dipsim.synth.region import Region


def draw_tcm(rng: np.random.Generator, p: Patterns, region: Region, hospital: np.ndarray,
             pattern: np.ndarray) -> np.ndarray:
    """Whether each stay had TCM treatment: by hospital (中医院 mostly), less often with a procedure."""
    share = region.column("tcm_share")[hospital] * np.where(p.n_procedures[pattern] > 0, TCM_PROCEDURE_FACTOR, 1.0)
    return rng.random(len(hospital)) < share


def draw_costs(rng: np.random.Generator, p: Patterns, region: Region, hospital: np.ndarray, pattern: np.ndarray,
               los: np.ndarray, tcm: np.ndarray) -> np.ndarray:
    """Total cost (fen): the pattern's lognormal cost moved with the LOS, times the hospital's cost level."""
    log_cost = (p.cost_mu[pattern] + p.los_elasticity * (np.log1p(los) - p.los_mu[pattern])
                + p.cost_sd[pattern] * rng.standard_normal(len(pattern)))
    cost = np.exp(log_cost) * region.column("cost_effect")[hospital] * np.where(tcm, TCM_COST_FACTOR, 1.0)
    return np.rint(np.maximum(cost, MIN_COST) * 100).astype(np.int64)


def draw_tcm_costs(rng: np.random.Generator, tcm: np.ndarray, cost_fen: np.ndarray) -> np.ndarray:
    """The TCM items' part of a TCM-treated stay's cost (fen); 0 without TCM."""
    return np.where(tcm, np.rint(cost_fen * rng.uniform(*TCM_COST_SHARE, len(tcm))), 0).astype(np.int64)


def draw_fund_paid(rng: np.random.Generator, insurance: np.ndarray, tier_code: np.ndarray,
                   cost_fen: np.ndarray) -> np.ndarray:
    """The fund's payment (fen): cost above the deductible times a ratio by insurance type and tier, jittered."""
    ratio = np.array([[FUND_RATIO[i][t] for t in TIERS] for i in INSURANCE_TYPES])[insurance, tier_code]
    deductible = np.array([[DEDUCTIBLE[i][t] for t in TIERS] for i in INSURANCE_TYPES])[insurance, tier_code] * 100
    ratio = np.clip(ratio + FUND_RATIO_SD * rng.standard_normal(len(cost_fen)), *FUND_RATIO_RANGE)
    return np.rint(np.maximum(cost_fen - deductible, 0) * ratio).astype(np.int64)
