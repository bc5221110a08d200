"""``synthesize_region``: the region, then twelve discharge months streamed to Parquet, then the ground truth."""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dipsim.schema import CASE_SCHEMA
from dipsim.synth.month import MonthResult, generate_month
from dipsim.synth.output import StagedOutput
from dipsim.synth.parameters import MONTH_SEASON
from dipsim.synth.patterns import load_patterns
from dipsim.synth.readmissions import Reservoir
from dipsim.synth.region import Region, build_region
from dipsim.synth.region_files import (
    write_ground_truth,
    write_hospitals,
    write_manifest,
)
from dipsim.synth.truth import EMPTY_SPLITS, EMPTY_UPCODED


@dataclass
class SynthSummary:
    """What ``synthesize_region`` wrote."""

    out_dir: Path
    cases: int
    hospitals: int
    seed: int
    year: int
    cases_by_month: dict[str, int]
    readmissions: int
    split_pairs: int
    upcoded_cases: int
    tcm_treated: int
    deaths: int
    upcoding_hospitals: list[str]
    split_stay_hospitals: list[str]
    files: list[Path] = field(default_factory=list)
    elapsed_s: float = 0.0


@dataclass
class YearTotals:
    """What the months add up to, for the ground truth, the manifest and the summary."""

    per_hospital: np.ndarray
    cases_by_month: dict[str, int] = field(default_factory=dict)
    upcoded_parts: list[pa.Table] = field(default_factory=list)
    split_parts: list[pa.Table] = field(default_factory=list)
    readmissions: int = 0
    tcm_treated: int = 0
    deaths: int = 0

    def add(self, label: str, n: int, res: MonthResult | None) -> None:
        self.cases_by_month[label] = n
        if res is None:
            return
        self.upcoded_parts.append(res.upcoded)
        self.split_parts.append(res.split_pairs)
        self.readmissions += res.readmissions
        self.tcm_treated += res.tcm_treated
        self.deaths += res.deaths
        self.per_hospital += res.per_hospital

    def upcoded(self) -> pa.Table:
        return pa.concat_tables(self.upcoded_parts) if self.upcoded_parts else EMPTY_UPCODED

    def splits(self) -> pa.Table:
        return pa.concat_tables(self.split_parts) if self.split_parts else EMPTY_SPLITS

    def counts(self, cases: int, hospitals: int, upcoded: int, split_pairs: int) -> dict:
        return {"cases": cases, "hospitals": hospitals, "cases_by_month": self.cases_by_month,
                "readmissions": self.readmissions, "split_pairs": split_pairs, "upcoded_cases": upcoded,
                "tcm_treated": self.tcm_treated, "deaths": self.deaths}


def month_sizes(cases: int, year: int, rng: np.random.Generator) -> np.ndarray:
    """Cases per discharge month: by the month's length and season."""
    days = np.array([calendar.monthrange(year, m)[1] for m in range(1, 13)], dtype=float)
    w = MONTH_SEASON * days
    return rng.multinomial(cases, w / w.sum())


def synthesize_region(out_dir: str | os.PathLike, cases: int = 1_000_000, hospitals: int = 100, seed: int = 0,
                      year: int = 2025, progress: Callable[[int, int], None] | None = None) -> SynthSummary:
    """Write a synthetic pooling region of ``cases`` inpatient stays in ``hospitals`` hospitals for ``year``.

    Deterministic for (cases, hospitals, seed, year).  ``progress(done, total)`` is called after each month.
    """
    started = time.perf_counter()
    if cases < 1:
        raise ValueError(f"cases must be >= 1 (got {cases})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    region_seq, *month_seqs = np.random.SeedSequence(seed).spawn(13)  # one stream per month: months independent
    rng = np.random.default_rng(region_seq)
    region = build_region(hospitals, rng)
    sizes = month_sizes(cases, year, rng)
    patient_key = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
    with StagedOutput(out) as stage:
        write_hospitals(stage, region)
        totals = _write_months(stage, region, year, sizes, month_seqs, patient_key, progress)
        upcoded, splits = totals.upcoded(), totals.splits()
        write_ground_truth(stage, region, upcoded, splits)
        write_manifest(stage, region, {"cases": cases, "hospitals": hospitals, "seed": seed, "year": year},
                       totals.counts(cases, hospitals, upcoded.num_rows, splits.num_rows), totals.per_hospital,
                       time.perf_counter() - started)
        files = stage.commit({f"discharge_month={label}" for label in totals.cases_by_month})
    return SynthSummary(
        out_dir=out, cases=cases, hospitals=hospitals, seed=seed, year=year, cases_by_month=totals.cases_by_month,
        readmissions=totals.readmissions, split_pairs=splits.num_rows, upcoded_cases=upcoded.num_rows,
        tcm_treated=totals.tcm_treated, deaths=totals.deaths,
        upcoding_hospitals=region.hospital_ids(region.upcoding), split_stay_hospitals=region.hospital_ids(region.split),
        files=files, elapsed_s=time.perf_counter() - started,
    )


def _write_months(stage: StagedOutput, region: Region, year: int, sizes: np.ndarray,
                  month_seqs: list[np.random.SeedSequence], patient_key: np.uint64,
                  progress: Callable[[int, int], None] | None) -> YearTotals:
    """Generate and stage the twelve case partitions, one month in memory at a time."""
    p = load_patterns()
    total = int(sizes.sum())
    width = max(8, len(str(total)))  # case-id digits
    reservoir = Reservoir()
    totals = YearTotals(per_hospital=np.zeros(len(region.table), dtype=np.int64))
    counter = done = 0
    for m in range(12):
        n = int(sizes[m])
        label = f"{year}-{m + 1:02d}"
        res = None
        if n:
            res, counter = generate_month(p, region, np.random.default_rng(month_seqs[m]), year, m + 1, n, done + 1,
                                          width, patient_key, counter, reservoir)
        table = res.table if res else CASE_SCHEMA.empty_table()
        stage.put(f"cases/discharge_month={label}/part-0.parquet",
                  lambda f, t=table: pq.write_table(t, f, compression="zstd", row_group_size=1 << 20), n)
        totals.add(label, n, res)
        done += n
        del res, table
        if progress:
            progress(done, total)
    return totals
