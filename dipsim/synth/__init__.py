"""Synthetic pooling region (统筹区): hospitals and a year of inpatient cases, with supervision ground truth.

``synthesize_region(out_dir, cases=1_000_000, hospitals=100, seed=0, year=2025)`` writes::

    out_dir/hospitals.parquet, hospitals.csv             HOSPITAL_SCHEMA (CSV in UTF-8 with BOM for Excel)
    out_dir/cases/discharge_month=YYYY-MM/part-0.parquet CASE_SCHEMA, one partition per discharge month (zstd)
    out_dir/ground_truth/upcoding_hospitals.csv          hospitals that add severity codes (高套编码)
    out_dir/ground_truth/split_stay_hospitals.csv        hospitals that split stays (分解住院)
    out_dir/ground_truth/upcoded_cases.parquet           case_id, hospital_id, added_codes (exact case-level truth)
    out_dir/ground_truth/split_stays.parquet             first_case_id, second_case_id, hospital_id, patient_id
    out_dir/manifest.json                                version, seed, parameters, counts, sha256 of every file

The region is one pool (统筹区 ``990100``, "示例市"): a few big tertiary hospitals with about half of the cases,
county hospitals (综合, 中医, 妇幼/儿童/肿瘤 专科) and grassroots 乡镇卫生院 / 社区卫生服务中心.  Cases are drawn from
the pattern library ``dipsim/data/patterns.parquet`` (real code combinations with smoothed age, LOS, death and cost
distributions, see ``dipsim/data/PATTERNS.md``), with a case mix that depends on the hospital's level and type, a
cost level by hospital level times a per-hospital random effect, TCM treatment, deaths, transfers, legitimate
readmissions (>= 21 days after the earlier discharge) and two behaviours recorded as ground truth for the supervision
screens: upcoding (1-2 MCC/CC codes added to a share of a hospital's cases, cost unchanged) and split stays (one stay
billed as two, the second admitted 1-10 days after the first's discharge, 1.1x the cost in total).

Generation is vectorised and streams month by month: memory is bounded by one month plus a capped readmission
reservoir, so 10M cases need no more memory than ~1M per month.  The same seed and arguments give byte-identical
case files.  Every file is written into a temporary folder inside ``out_dir`` and moved into place at the end.

Modules, in the order a month is drawn: ``region`` (hospitals), ``patterns`` and ``case_mix`` (the library),
``stays`` (discharge days, hospitals, patterns; with ``readmissions``, ``splits`` and ``people``), ``outcomes``,
``money``, ``upcoding``, ``table`` and ``truth`` (one month's files), ``month``, ``generate``; all the calibration
numbers are in ``parameters``.
"""

from dipsim.synth.case_mix import case_mix_weights
from dipsim.synth.code_lists import build_code_lists
from dipsim.synth.generate import SynthSummary, month_sizes, synthesize_region
from dipsim.synth.ids import case_ids, patient_ids
from dipsim.synth.month import MonthResult, generate_month
from dipsim.synth.patterns import PATTERNS_FILE, SEVERITY_FILE, Patterns, load_patterns
from dipsim.synth.readmissions import Reservoir
from dipsim.synth.region import (
    POOL_CODE,
    POOL_NAME,
    Region,
    build_region,
    hospitals_table,
)

__all__ = [
    "PATTERNS_FILE",
    "POOL_CODE",
    "POOL_NAME",
    "SEVERITY_FILE",
    "MonthResult",
    "Patterns",
    "Region",
    "Reservoir",
    "SynthSummary",
    "build_code_lists",
    "build_region",
    "case_ids",
    "case_mix_weights",
    "generate_month",
    "hospitals_table",
    "load_patterns",
    "month_sizes",
    "patient_ids",
    "synthesize_region",
]
