"""How a stay ends: discharge mode (离院方式, death included) and hours of mechanical ventilation."""

from __future__ import annotations

import numpy as np

from dipsim.synth.parameters import (
    DEATH_FACTOR,
    MODE_SHARE,
    SEVERE_LOG_COST,
    TIERS,
    VENTILATION_LOG_SD,
    VENTILATION_MEDIAN_HOURS,
    VENTILATION_SHARE_DEATH,
    VENTILATION_SHARE_SEVERE,
)
from dipsim.synth.patterns import Patterns

ROUTINE, DEATH = 1, 5  # 离院方式 1 医嘱离院, 5 死亡


def draw_discharge_modes(rng: np.random.Generator, p: Patterns, pattern: np.ndarray, tier_code: np.ndarray,
                         planned: np.ndarray) -> np.ndarray:
    """离院方式 per stay: death by the pattern's death share and the tier, then transfers and others by tier.

    ``planned`` rows (the first half of a split stay) are routine discharges.
    """
    death_p = p.death_share[pattern] * np.array([DEATH_FACTOR[t] for t in TIERS])[tier_code]
    u = rng.random(len(pattern))
    mode = np.full(len(pattern), ROUTINE, dtype=np.int8)
    mode[u < death_p] = DEATH
    edge = death_p.copy()
    for code in (2, 3, 4, 9):
        share = np.array([MODE_SHARE[t][code] for t in TIERS])[tier_code]
        mode[(u >= edge) & (u < edge + share)] = code
        edge += share
    mode[planned] = ROUTINE
    return mode


def draw_ventilation(rng: np.random.Generator, p: Patterns, pattern: np.ndarray, mode: np.ndarray,
                     los: np.ndarray) -> np.ndarray:
    """Ventilation hours (to the half hour, at most the stay's length) for deaths and severe patterns; NaN if none."""
    n = len(pattern)
    vent_p = np.where(mode == DEATH, VENTILATION_SHARE_DEATH,
                      np.where(p.cost_mu[pattern] > SEVERE_LOG_COST, VENTILATION_SHARE_SEVERE, 0.0))
    ventilated = rng.random(n) < vent_p
    hours = np.rint(np.exp(np.log(VENTILATION_MEDIAN_HOURS) + VENTILATION_LOG_SD * rng.standard_normal(n)) * 2) / 2
    hours = np.minimum(np.maximum(hours, 1.0), np.maximum(los, 1) * 24.0)
    return np.where(ventilated, hours, np.nan)
