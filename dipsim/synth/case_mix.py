"""Case mix: which patterns a hospital of a given tier and kind treats, as sampling weights over the library."""

from __future__ import annotations

from functools import cache

import numpy as np

from dipsim.synth.patterns import Patterns, load_patterns

# The sources are two big hospitals' cases, so their frequencies are the tertiary case mix; lower tiers tilt
# towards cheaper patterns (weight x exp(tilt x centred log cost)).
COST_TILT = {"tertiary": 0.20, "secondary": -0.45, "primary": -0.90}
ONCOLOGY = ("C", "D0", "D1", "D2", "D3", "D4", "Z51")  # principal diagnoses of a 肿瘤医院
MATERNAL = ("O", "Z3", "P", "N7", "N8", "N9")  # of a 妇幼保健院 (with any child pattern)


def _starts(principal: np.ndarray, prefixes: tuple[str, ...]) -> np.ndarray:
    out = np.zeros(len(principal), dtype=bool)
    for p in prefixes:
        out |= np.char.startswith(principal, p)
    return out


def case_mix_weights(p: Patterns, tier: str, kind: str) -> np.ndarray:
    """Sampling weights of the patterns for a hospital of this tier and kind (general/tcm/maternal/children/oncology).

    Lower tiers do fewer procedures, grassroots hospitals no newborns, cancer or long stays; specialist hospitals
    keep the chapters they treat.
    """
    z = p.cost_mu - np.average(p.cost_mu, weights=p.weight)
    w = p.weight.copy()
    w *= np.exp(COST_TILT[tier] * z)
    oncology = _starts(p.principal, ONCOLOGY)
    if tier == "secondary":
        w *= np.where(p.n_procedures >= 3, 0.6, 1.0)
    if tier == "primary":
        w *= np.where(p.n_procedures >= 2, 0.1, np.where(p.n_procedures == 1, 0.4, 1.0))
        w *= np.where(oncology, 0.2, 1.0)
        w *= np.where(p.newborn, 0.0, 1.0)
        w *= np.where(p.los_mu > np.log1p(30), 0.1, 1.0)
    if kind == "tcm":
        w *= np.where(p.n_procedures >= 1, 0.5, 1.0)
    elif kind == "maternal":
        w *= _starts(p.principal, MATERNAL) | (p.age_hi < 15)
    elif kind == "children":
        w *= p.age_hi < 18
    elif kind == "oncology":
        w *= oncology
    if not np.any(w > 0):  # a specialty the library cannot serve: fall back to the tier's general mix
        return case_mix_weights(p, tier, "general")
    return w


@cache
def profile_cdf(tier: str, kind: str) -> np.ndarray:
    """Cumulative case-mix weights of the shipped library, for ``sample_cdf``."""
    return np.cumsum(case_mix_weights(load_patterns(), tier, kind))
