"""Who is discharged in a month, from which hospital, with which pattern, and how long they stayed.

A month's rows are of three sorts: readmissions (再入院, copied from an earlier stay of the same patient), second
halves of split stays (copied from the first half) and new stays, whose pattern and patient are drawn here.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

import numpy as np

from dipsim.synth.case_mix import profile_cdf
from dipsim.synth.parameters import MAX_LOS, READMISSION_MIN_GAP, WEEKDAY_WEIGHT
from dipsim.synth.patterns import Patterns
from dipsim.synth.people import draw_people
from dipsim.synth.readmissions import Reservoir, pick_readmissions
from dipsim.synth.region import Region
from dipsim.synth.sampling import sample_cdf
from dipsim.synth.splits import SplitPairs, draw_split_pairs

_EPOCH = dt.date(1970, 1, 1)


@dataclass
class MonthCalendar:
    first: dt.date
    start: int  # day number (days since 1970-01-01, as date32) of the 1st
    n_days: int

    @classmethod
    def of(cls, year: int, month: int) -> MonthCalendar:
        first = dt.date(year, month, 1)
        return cls(first, (first - _EPOCH).days, calendar.monthrange(year, month)[1])

    @property
    def end(self) -> int:
        return self.start + self.n_days - 1


@dataclass
class Cohort:
    """One month's stays in draw order (not yet sorted): one row per stay."""

    discharge: np.ndarray  # day number, before split stays are moved
    readmit_src: np.ndarray  # reservoir index of the earlier stay, -1 for a new patient
    pairs: SplitPairs
    hospital: np.ndarray
    pattern: np.ndarray
    patient: np.ndarray
    sex: np.ndarray
    age: np.ndarray
    insurance: np.ndarray

    @property
    def n_readmissions(self) -> int:
        return int((self.readmit_src >= 0).sum())

    @property
    def n_new_patients(self) -> int:
        return len(self.readmit_src) - self.n_readmissions - len(self.pairs)


def draw_cohort(rng: np.random.Generator, p: Patterns, region: Region, reservoir: Reservoir, cal: MonthCalendar,
                n: int, patient_key: np.uint64, first_patient: int) -> Cohort:
    """The month's ``n`` stays; new patients are numbered from ``first_patient`` in row order."""
    # Each step draws from ``rng`` in turn: reordering the steps changes every file (same seed, other cases).
    discharge = discharge_days(rng, cal, n)
    src = pick_readmissions(rng, reservoir, discharge)
    readmit, fresh = np.flatnonzero(src >= 0), np.flatnonzero(src < 0)
    earlier = src[readmit]
    fresh_hospital = sample_cdf(np.cumsum(region.column("volume_share")), rng.random(len(fresh)))
    pairs = draw_split_pairs(rng, region, fresh, fresh_hospital)
    hospital = _merge(n, fresh, fresh_hospital, readmit, reservoir.hospital[earlier], pairs)
    is_drawn = src < 0
    is_drawn[pairs.second] = False
    drawn = np.flatnonzero(is_drawn)  # rows whose pattern and patient are drawn now
    pattern = draw_patterns(rng, region, hospital[drawn])
    people = draw_people(rng, p, pattern, region.tier_code[hospital[drawn]], patient_key, first_patient)
    new = {"pattern": pattern, **vars(people)}
    cols = {k: _merge(n, drawn, v, readmit, getattr(reservoir, k)[earlier], pairs) for k, v in new.items()}
    return Cohort(discharge=discharge, readmit_src=src, pairs=pairs, hospital=hospital, **cols)


def _merge(n: int, rows: np.ndarray, values: np.ndarray, readmit: np.ndarray, earlier: np.ndarray,
           pairs: SplitPairs) -> np.ndarray:
    """A full column: ``values`` at ``rows``, the earlier stay's at readmissions, the first half's at second halves."""
    out = np.empty(n, dtype=earlier.dtype)
    out[rows] = values
    out[readmit] = earlier
    out[pairs.second] = out[pairs.first]
    return out


def discharge_days(rng: np.random.Generator, cal: MonthCalendar, n: int) -> np.ndarray:
    """Discharge day numbers within the month; fewer discharges at weekends."""
    day_cdf = np.cumsum(WEEKDAY_WEIGHT[(cal.first.weekday() + np.arange(cal.n_days)) % 7])
    return (cal.start + sample_cdf(day_cdf, rng.random(n))).astype(np.int32)


def draw_patterns(rng: np.random.Generator, region: Region, hospital: np.ndarray) -> np.ndarray:
    """A pattern per stay from its hospital's case mix."""
    profile = region.column("profile")[hospital]
    u = rng.random(len(hospital))
    pattern = np.empty(len(hospital), dtype=np.int32)
    for k, (tier, kind) in enumerate(region.profiles):
        m = profile == k
        if m.any():
            pattern[m] = sample_cdf(profile_cdf(tier, kind), u[m])
    return pattern


def draw_los(rng: np.random.Generator, p: Patterns, cohort: Cohort, reservoir: Reservoir) -> np.ndarray:
    """LOS in days from the pattern; a readmission is admitted at least the minimum gap after the earlier stay."""
    pattern = cohort.pattern
    los = np.rint(np.expm1(p.los_mu[pattern] + p.los_sd[pattern] * rng.standard_normal(len(pattern))))
    los = np.clip(los, 0, MAX_LOS).astype(np.int64)
    readmit = np.flatnonzero(cohort.readmit_src >= 0)
    if len(readmit):
        earlier = reservoir.discharge[cohort.readmit_src[readmit]]
        room = cohort.discharge[readmit] - earlier - READMISSION_MIN_GAP
        los[readmit] = np.clip(los[readmit], 0, room)
    return los
