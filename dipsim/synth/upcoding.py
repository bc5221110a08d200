"""Upcoding (高套编码): 1-2 MCC/CC severity codes added to a share of an upcoding hospital's cases, cost unchanged.

An added code is one the pattern does not have and its principal diagnosis does not exclude (CC 排除表), so the
case groups into a higher-paying severity level while nothing else about it changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dipsim.synth.parameters import UPCODE_SHARE, UPCODE_TWO_CODES
from dipsim.synth.patterns import Patterns
from dipsim.synth.region import Region
from dipsim.synth.sampling import sample_cdf


@dataclass
class Upcoding:
    rows: np.ndarray  # upcoded rows, ascending
    code1: np.ndarray  # severity code index (row of severity_codes.parquet)
    code2: np.ndarray  # second severity code index, -1 for one code only

    def __len__(self) -> int:
        return len(self.rows)


def draw_upcoding(rng: np.random.Generator, p: Patterns, region: Region, hospital: np.ndarray,
                  pattern: np.ndarray) -> Upcoding:
    none = np.empty(0, dtype=np.int64)
    if not len(region.upcoding):
        return Upcoding(none, none, none)
    at = np.flatnonzero(np.isin(hospital, region.upcoding) & (rng.random(len(hospital)) < UPCODE_SHARE))
    mask = p.severity_mask[pattern[at]]
    sev_cdf = np.cumsum(p.severity_weight)
    code1 = _pick_severity(rng, sev_cdf, mask)
    ok = code1 >= 0
    at, mask, code1 = at[ok], mask[ok], code1[ok]
    code2 = _pick_severity(rng, sev_cdf, mask & ~(np.uint64(1) << code1.astype(np.uint64)))
    code2 = np.where(rng.random(len(at)) < UPCODE_TWO_CODES, code2, -1)
    return Upcoding(at, code1, code2)


def _pick_severity(rng: np.random.Generator, cdf: np.ndarray, mask: np.ndarray, tries: int = 8) -> np.ndarray:
    """A severity code index per row, drawn by frequency among the codes allowed by the row's bitmask; -1 if none."""
    out = np.full(len(mask), -1, dtype=np.int64)
    todo = np.arange(len(mask))
    for _ in range(tries):
        j = sample_cdf(cdf, rng.random(len(todo)))
        ok = ((mask[todo] >> j.astype(np.uint64)) & np.uint64(1)).astype(bool)
        out[todo[ok]] = j[ok]
        todo = todo[~ok]
        if not len(todo):
            break
    return out


def added_code_ids(up: Upcoding, p: Patterns, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows after sorting, first code id, second code id or -1) in ascending row order, ids in the dx vocabulary."""
    new_rows = position[up.rows]
    o = np.argsort(new_rows)
    code2 = up.code2[o]
    return (new_rows[o], p.severity_dx_ids[up.code1[o]],
            np.where(code2 >= 0, p.severity_dx_ids[np.maximum(code2, 0)], -1))
