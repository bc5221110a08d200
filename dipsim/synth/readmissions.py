"""Legitimate readmissions (再入院): a share of each month's stays follow an earlier stay of the same patient.

Earlier stays wait in a reservoir capped at ``RESERVOIR_CAP`` entries, so memory stays bounded however many cases
are generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from dipsim.synth.outcomes import DEATH
from dipsim.synth.parameters import (
    READMISSION_LOS_ALLOWANCE,
    READMISSION_MIN_GAP,
    READMISSION_PICK_ROUNDS,
    READMISSION_SHARE,
    RESERVOIR_CAP,
)
from dipsim.synth.splits import SplitPairs
from dipsim.synth.table import Claims


@dataclass
class Reservoir:
    """Earlier stays that may be followed by a readmission: one entry per patient (the latest stay), sorted by
    discharge day."""

    patient: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    hospital: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    pattern: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    sex: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    age: np.ndarray = field(default_factory=lambda: np.empty(0, np.int16))
    insurance: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    discharge: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))

    def __len__(self) -> int:
        return len(self.patient)

    def keep(self, mask: np.ndarray) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[mask])

    def extend(self, rows: np.ndarray, claims: Claims) -> None:
        """Append these rows of the month in discharge order, dropping the oldest entries beyond the cap."""
        order = rows[np.argsort(claims.discharge[rows], kind="stable")]
        for f in fields(self):
            old = getattr(self, f.name)
            setattr(self, f.name, np.concatenate([old, getattr(claims, f.name)[order].astype(old.dtype)]))
        if len(self) > RESERVOIR_CAP:
            self.keep(np.arange(len(self)) >= len(self) - RESERVOIR_CAP)


def pick_readmissions(rng: np.random.Generator, reservoir: Reservoir, discharge: np.ndarray) -> np.ndarray:
    """Per row, the reservoir index of the earlier stay it readmits, or -1 for a new patient.

    The earlier discharge is at least ``READMISSION_MIN_GAP`` days before this admission, and each earlier stay is
    followed at most once a month.
    """
    src = np.full(len(discharge), -1, dtype=np.int64)
    if not len(reservoir):
        return src
    cand = np.flatnonzero(rng.random(len(discharge)) < READMISSION_SHARE)
    cutoff = discharge[cand] - READMISSION_MIN_GAP - READMISSION_LOS_ALLOWANCE
    n_eligible = np.searchsorted(reservoir.discharge, cutoff, side="right")
    ok = n_eligible > 0
    cand, n_eligible = cand[ok], n_eligible[ok]
    taken = np.zeros(len(reservoir), dtype=bool)
    for _ in range(READMISSION_PICK_ROUNDS):
        # Biased towards recent stays: readmissions cluster in the weeks after a discharge.
        pick = n_eligible - 1 - np.floor(n_eligible * rng.random(len(cand)) ** 2).astype(np.int64)
        _, first = np.unique(pick, return_index=True)
        accept = np.zeros(len(cand), dtype=bool)
        accept[first] = True
        accept &= ~taken[pick]
        src[cand[accept]] = pick[accept]
        taken[pick[accept]] = True
        cand, n_eligible = cand[~accept], n_eligible[~accept]
        if not len(cand):
            break
    return src


def refill_reservoir(reservoir: Reservoir, rng: np.random.Generator, src: np.ndarray, claims: Claims,
                     pairs: SplitPairs) -> None:
    """After a month: drop the stays just followed up and add this month's stays that may be readmitted.

    Those are stays that ended alive, of patients aged 1 or more (the reservoir keeps no age in days or birth
    weight), outside split pairs.  A readmitted patient's latest stay replaces the one removed; new patients are
    subsampled to a twelfth of the cap so that the reservoir spans the year.
    """
    followed = src[src >= 0]
    if len(followed):
        keep = np.ones(len(reservoir), dtype=bool)
        keep[followed] = False
        reservoir.keep(keep)
    eligible = (claims.mode != DEATH) & (claims.age >= 1)
    eligible[pairs.first] = False
    eligible[pairs.second] = False
    is_readmit = src >= 0
    again = np.flatnonzero(eligible & is_readmit)
    fresh = np.flatnonzero(eligible & ~is_readmit)
    quota = RESERVOIR_CAP // 12
    if len(fresh) > quota:
        fresh = np.sort(rng.choice(fresh, quota, replace=False))
    reservoir.extend(np.concatenate([again, fresh]), claims)
