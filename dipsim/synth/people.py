"""Patients: sex, age, insurance type (职工/居民医保) and pseudonymous id, and infants' age in days and birth weight."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dipsim.synth.ids import patient_hashes
from dipsim.synth.parameters import EMPLOYEE_SHARE_BY_AGE, EMPLOYEE_TIER_FACTOR, TIERS
from dipsim.synth.patterns import Patterns

EMPLOYEE, RESIDENT = 0, 1  # insurance codes
INSURANCE_TYPES = ("employee", "resident")


@dataclass
class People:
    patient: np.ndarray  # uint64 pseudonymous hash
    sex: np.ndarray  # 1 male, 2 female
    age: np.ndarray  # years
    insurance: np.ndarray  # EMPLOYEE or RESIDENT


def draw_people(rng: np.random.Generator, p: Patterns, pattern: np.ndarray, tier_code: np.ndarray,
                patient_key: np.uint64, first_patient: int) -> People:
    """New patients for stays of these patterns in hospitals of these tiers, numbered from ``first_patient``."""
    n = len(pattern)
    sex = np.where(rng.random(n) < p.male_share[pattern], 1, 2).astype(np.int8)
    age = np.clip(np.rint(p.age_mean[pattern] + p.age_sd[pattern] * rng.standard_normal(n)),
                  p.age_lo[pattern], p.age_hi[pattern]).astype(np.int16)
    age[p.infant[pattern]] = 0
    emp_share = np.select([age < b for b, _ in EMPLOYEE_SHARE_BY_AGE], [s for _, s in EMPLOYEE_SHARE_BY_AGE])
    emp_share = emp_share * np.array([EMPLOYEE_TIER_FACTOR[t] for t in TIERS])[tier_code]
    insurance = np.where(rng.random(n) < emp_share, EMPLOYEE, RESIDENT).astype(np.int8)
    return People(patient_hashes(patient_key, first_patient, n), sex, age, insurance)


def draw_infant_fields(rng: np.random.Generator, p: Patterns, pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Age in days for infant patterns and birth weight (g) for newborn ones; -1 elsewhere."""
    n = len(pattern)
    age_days = np.full(n, -1, dtype=np.int32)
    birth_weight = np.full(n, -1, dtype=np.int32)
    inf = np.flatnonzero(p.infant[pattern])
    if not len(inf):
        return age_days, birth_weight
    pt = pattern[inf]
    d = np.rint(p.age_days_mean[pt] + p.age_days_sd[pt] * rng.standard_normal(len(inf)))
    nb = p.newborn[pt]
    age_days[inf] = np.where(nb, np.clip(d, 0, 28), np.clip(d, 29, 364))
    w = np.rint((p.bw_mean[pt] + p.bw_sd[pt] * rng.standard_normal(len(inf))) / 10) * 10
    birth_weight[inf[nb]] = np.clip(w[nb], 600, 5500)
    return age_days, birth_weight
