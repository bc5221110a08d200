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
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dipsim import __version__
from dipsim.schema import CASE_SCHEMA, HOSPITAL_SCHEMA

DATA_DIR = Path(__file__).resolve().parent / "data"
PATTERNS_FILE = DATA_DIR / "patterns.parquet"
SEVERITY_FILE = DATA_DIR / "severity_codes.parquet"

POOL_CODE = "990100"  # fictional 统筹区 code (99 is no province) for "示例市"
POOL_NAME = "示例市"

# --- region structure -----------------------------------------------------------------------------------------
TIER_SHARE = {"tertiary": 0.50, "secondary": 0.36, "primary": 0.14}  # share of the region's cases
TIER_HOSPITAL_SHARE = {"tertiary": 0.07, "secondary": 0.25}  # share of hospitals; the rest are primary
# Tertiary and secondary hospitals in the order they appear as the region grows: (level, type, kind, size weight).
TERTIARY_TEMPLATE = [
    ("三级甲等", "综合", "general", 1.00),
    ("三级甲等", "中医", "tcm", 0.45),
    ("三级甲等", "综合", "general", 0.95),
    ("三级甲等", "专科", "maternal", 0.35),
    ("三级甲等", "综合", "general", 0.85),
    ("三级乙等", "综合", "general", 0.55),
    ("三级甲等", "综合", "general", 0.80),
    ("三级甲等", "专科", "oncology", 0.35),
    ("三级乙等", "综合", "general", 0.50),
    ("三级", "专科", "children", 0.30),
]
SECONDARY_TEMPLATE = [
    ("二级甲等", "综合", "general", 1.00),
    ("二级甲等", "中医", "tcm", 0.50),
    ("二级甲等", "综合", "general", 1.00),
    ("二级乙等", "综合", "general", 0.60),
    ("二级甲等", "专科", "maternal", 0.35),
    ("二级甲等", "综合", "general", 0.95),
    ("二级甲等", "中医", "tcm", 0.45),
    ("二级乙等", "综合", "general", 0.60),
    ("二级甲等", "综合", "general", 0.90),
    ("二级", "专科", "children", 0.30),
    ("二级甲等", "中医", "tcm", 0.45),
    ("二级甲等", "综合", "general", 0.90),
    ("二级乙等", "综合", "general", 0.55),
    ("二级甲等", "专科", "maternal", 0.35),
    ("二级甲等", "中医", "tcm", 0.40),
    ("二级甲等", "综合", "general", 0.85),
    ("二级乙等", "综合", "general", 0.55),
    ("二级", "专科", "oncology", 0.30),
    ("二级甲等", "综合", "general", 0.85),
    ("二级甲等", "中医", "tcm", 0.40),
    ("二级乙等", "综合", "general", 0.50),
    ("二级甲等", "综合", "general", 0.80),
    ("二级乙等", "综合", "general", 0.50),
    ("二级甲等", "中医", "tcm", 0.40),
    ("二级", "专科", "maternal", 0.30),
]
SIZE_SD = {"tertiary": 0.25, "secondary": 0.35, "primary": 0.5}  # lognormal spread of hospital sizes

COUNTIES = ["青山", "平川", "临河", "石门", "清源", "长宁", "丰乐", "东林", "西坪", "南岭", "安平", "永和", "兴隆",
            "云溪", "桃源", "松阳", "柳江", "白沙", "金水", "玉泉", "宁远", "乐平", "新安", "凤台"]
DISTRICTS = ["城东区", "城西区", "城南区", "城北区", "高新区", "开发区"]
TOWN_FIRST = list("大小东西南北上下新老高黄白石红金马龙凤三双沙河李张王杨")
TOWN_SECOND = list("庄集桥店湾坪铺岭塘口坝山溪河园营寨圩埠")

# --- cost, payment, outcomes ----------------------------------------------------------------------------------
LEVEL_COST = {"三级甲等": 1.0, "三级乙等": 0.92, "三级": 0.90, "二级甲等": 0.76, "二级乙等": 0.72, "二级": 0.72,
              "一级": 0.50}
HOSPITAL_EFFECT_SD = 0.10  # per-hospital lognormal cost effect
TCM_COST_FACTOR = 0.85  # a TCM-treated stay costs less (the reason for 同病同效同价)
TCM_SHARE = {"tcm": 0.68, "primary": 0.10, "other": 0.08}  # before x0.6 for stays with a procedure
TCM_COST_SHARE = (0.10, 0.40)
MIN_COST = 80.0  # yuan
MAX_LOS = 365  # days; the sources have a few stays of more than a year
# Reimbursement (统筹基金支付比例) and deductible (起付线) by insurance type and tier.
FUND_RATIO = {"employee": {"tertiary": 0.82, "secondary": 0.87, "primary": 0.90},
              "resident": {"tertiary": 0.58, "secondary": 0.65, "primary": 0.72}}
DEDUCTIBLE = {"employee": {"tertiary": 1000.0, "secondary": 600.0, "primary": 300.0},
              "resident": {"tertiary": 800.0, "secondary": 500.0, "primary": 200.0}}
FUND_RATIO_SD = 0.04
# 离院方式 other than death, by tier: 2 医嘱转院, 3 转社区/乡镇, 4 非医嘱离院, 9 其他.
MODE_SHARE = {"tertiary": {2: 0.005, 3: 0.015, 4: 0.010, 9: 0.003},
              "secondary": {2: 0.012, 3: 0.008, 4: 0.010, 9: 0.003},
              "primary": {2: 0.030, 3: 0.002, 4: 0.010, 9: 0.003}}
DEATH_FACTOR = {"tertiary": 1.2, "secondary": 1.0, "primary": 0.5}
EMPLOYEE_SHARE_BY_AGE = ((18, 0.03), (60, 0.52), (200, 0.44))  # (upper age bound, share) before the tier factor
EMPLOYEE_TIER_FACTOR = {"tertiary": 1.10, "secondary": 0.85, "primary": 0.50}
VENTILATION_SHARE_DEATH = 0.40
VENTILATION_SHARE_SEVERE = 0.08  # patterns with a high cost
# Discharges by month (Spring Festival in February, National Day in October) and by weekday (Mon..Sun).
MONTH_SEASON = np.array([1.06, 0.82, 1.05, 1.00, 1.00, 0.96, 1.02, 1.02, 0.98, 0.93, 1.02, 1.08])
WEEKDAY_WEIGHT = np.array([1.0, 1.0, 1.0, 1.0, 1.05, 0.75, 0.60])

# --- readmissions and behaviours ------------------------------------------------------------------------------
READMISSION_SHARE = 0.07  # of a month's rows (none in January: no history yet)
READMISSION_MIN_GAP = 21  # days between the earlier discharge and the readmission
READMISSION_LOS_ALLOWANCE = 14  # eligibility assumes a readmission stay of up to this many days
RESERVOIR_CAP = 1_500_000  # earlier stays kept as readmission candidates (~36 MB; bounds memory for any N)
READMISSION_PICK_ROUNDS = 4  # redraws for candidates whose earlier stay was already taken this month
UPCODE_SHARE = 0.35  # of an upcoding hospital's cases
UPCODE_TWO_CODES = 0.40  # of upcoded cases get two codes
SPLIT_SHARE = 0.12  # of a split-stay hospital's stays become two
SPLIT_GAP_DAYS = (1, 10)
SPLIT_COST_FACTOR = (1.05, 1.15)

HOSPITAL_ID_PREFIX = "H"
CASE_ID_PREFIX = "S"
PATIENT_ID_PREFIX = "P"


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


# =================================================================================================================
# Pattern library
# =================================================================================================================


@dataclass
class Patterns:
    n: int
    weight: np.ndarray  # n_cases
    dx_offsets: np.ndarray
    dx_ids: np.ndarray
    dx_vocab: pa.Array
    px_offsets: np.ndarray
    px_ids: np.ndarray
    px_vocab: pa.Array
    dept_ids: np.ndarray
    dept_vocab: pa.Array
    n_procedures: np.ndarray
    principal: np.ndarray  # principal diagnosis strings (numpy object), for case-mix rules
    male_share: np.ndarray
    age_mean: np.ndarray
    age_sd: np.ndarray
    age_lo: np.ndarray
    age_hi: np.ndarray
    infant: np.ndarray
    newborn: np.ndarray
    age_days_mean: np.ndarray
    age_days_sd: np.ndarray
    bw_mean: np.ndarray
    bw_sd: np.ndarray
    los_mu: np.ndarray
    los_sd: np.ndarray
    death_share: np.ndarray
    cost_mu: np.ndarray
    cost_sd: np.ndarray
    severity_mask: np.ndarray
    severity_weight: np.ndarray
    severity_dx_ids: np.ndarray  # id of each severity code in dx_vocab
    severity_codes: list[str]
    los_elasticity: float


def _encode_lists(col: pa.ChunkedArray, extra: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    arr = col.combine_chunks()
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values
    if extra:
        values = pa.concat_arrays([values, pa.array(extra, pa.string())])
    enc = pc.dictionary_encode(values)
    ids = enc.indices.to_numpy().astype(np.int32)
    return offsets, ids, enc.dictionary


@lru_cache(maxsize=1)
def load_patterns() -> Patterns:
    """Load the shipped pattern library (``dipsim/data/patterns.parquet``) into arrays."""
    t = pq.read_table(PATTERNS_FILE)
    meta = json.loads(t.schema.metadata[b"dipsim.patterns"])
    sev = pq.read_table(SEVERITY_FILE).to_pandas()
    sev_codes = sev["code"].tolist()
    if sev_codes != meta["severity_codes"]:
        raise ValueError("severity_codes.parquet does not match patterns.parquet; rebuild with tools/build_patterns.py")
    dx_off, dx_ids_all, dx_vocab = _encode_lists(t["diagnoses"], sev_codes)
    n_dx_values = int(dx_off[-1])
    px_off, px_ids, px_vocab = _encode_lists(t["procedures"])
    dept = pc.dictionary_encode(t["department"].combine_chunks())

    def col(name, dtype=np.float64):
        return t[name].to_numpy().astype(dtype)

    def nullable(name, default):
        return np.nan_to_num(t[name].to_numpy(zero_copy_only=False).astype(np.float64), nan=default)

    age_min, age_max = col("age_min", np.int64), col("age_max", np.int64)
    principal = pc.list_element(t["diagnoses"], 0).to_numpy(zero_copy_only=False).astype(str)
    # Plausible age bounds around the pattern's observed ages: children stay children, adults adults, and
    # pregnancies within child-bearing ages.
    lo = np.maximum(age_min - 5, 0)
    hi = np.minimum(age_max + 5, 100)
    lo = np.where(age_min >= 1, np.maximum(lo, 1), lo)
    lo = np.where(age_min >= 18, np.maximum(lo, 18), lo)
    hi = np.where(age_max < 18, np.minimum(hi, 17), hi)
    obstetric = np.char.startswith(principal, "O")
    lo = np.where(obstetric, np.clip(lo, 15, 50), lo)  # a few source rows have impossible ages
    hi = np.where(obstetric, np.clip(hi, 15, 50), hi)
    infant = age_max < 1
    days_mean = nullable("age_days_mean", 180.0)
    newborn = infant & (days_mean <= 28)
    return Patterns(
        n=t.num_rows,
        weight=col("n_cases"),
        dx_offsets=dx_off,
        dx_ids=dx_ids_all[:n_dx_values],
        dx_vocab=dx_vocab,
        px_offsets=px_off,
        px_ids=px_ids,
        px_vocab=px_vocab,
        dept_ids=dept.indices.to_numpy().astype(np.int32),
        dept_vocab=dept.dictionary,
        n_procedures=np.diff(px_off),
        principal=principal,
        male_share=col("male_share"),
        age_mean=col("age_mean"),
        age_sd=col("age_sd"),
        age_lo=lo,
        age_hi=np.maximum(hi, lo),
        infant=infant,
        newborn=newborn,
        age_days_mean=days_mean,
        age_days_sd=np.maximum(nullable("age_days_sd", 0.0), np.where(newborn, 3.0, 30.0)),
        bw_mean=nullable("birth_weight_mean", 3200.0),
        bw_sd=np.maximum(nullable("birth_weight_sd", 0.0), 300.0),
        los_mu=col("los_mu"),
        los_sd=col("los_sd"),
        death_share=col("death_share"),
        cost_mu=col("cost_mu"),
        cost_sd=col("cost_sd"),
        severity_mask=t["severity_mask"].to_numpy().astype(np.uint64),
        severity_weight=sev["frequency"].to_numpy(np.float64) / sev["frequency"].sum(),
        severity_dx_ids=dx_ids_all[n_dx_values:],
        severity_codes=sev_codes,
        los_elasticity=float(meta["los_cost_elasticity"]),
    )


def _starts(principal: np.ndarray, prefixes: tuple[str, ...]) -> np.ndarray:
    out = np.zeros(len(principal), dtype=bool)
    for p in prefixes:
        out |= np.char.startswith(principal, p)
    return out


def case_mix_weights(p: Patterns, tier: str, kind: str) -> np.ndarray:
    """Sampling weights of the patterns for a hospital of this tier and kind (general/tcm/maternal/children/oncology).

    The sources are two big hospitals' cases, so their frequencies are the tertiary case mix; lower tiers tilt
    towards cheaper and non-surgical patterns, specialist hospitals keep the chapters they treat.
    """
    z = p.cost_mu - np.average(p.cost_mu, weights=p.weight)
    w = p.weight.copy()
    tilt = {"tertiary": 0.20, "secondary": -0.45, "primary": -0.90}[tier]
    w *= np.exp(tilt * z)
    oncology = _starts(p.principal, ("C", "D0", "D1", "D2", "D3", "D4", "Z51"))
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
        w *= _starts(p.principal, ("O", "Z3", "P", "N7", "N8", "N9")) | (p.age_hi < 15)
    elif kind == "children":
        w *= p.age_hi < 18
    elif kind == "oncology":
        w *= oncology
    if not np.any(w > 0):  # a specialty the library cannot serve: fall back to the tier's general mix
        return case_mix_weights(p, tier, "general")
    return w


# =================================================================================================================
# Hospitals
# =================================================================================================================


@dataclass
class Region:
    table: pd.DataFrame  # HOSPITAL_SCHEMA columns + tier, kind, volume_share, cost_effect, tcm_share, profile
    upcoding: np.ndarray  # hospital indices
    split: np.ndarray
    profiles: list[tuple[str, str]]  # (tier, kind) per profile index


def _town_names(n: int) -> list[str]:
    names = [a + b for a in TOWN_FIRST for b in TOWN_SECOND]
    order = np.random.default_rng(12345).permutation(len(names))  # a fixed, region-independent shuffle
    out = [names[i] for i in order]
    while len(out) < n:
        out += [f"{names[i]}{len(out) // len(names) + 1}" for i in order]
    return out[:n]


def build_region(hospitals: int, rng: np.random.Generator) -> Region:
    if hospitals < 5:
        raise ValueError(f"hospitals must be >= 5 (got {hospitals})")
    n_t = max(1, round(TIER_HOSPITAL_SHARE["tertiary"] * hospitals))
    n_s = max(1, round(TIER_HOSPITAL_SHARE["secondary"] * hospitals))
    n_p = hospitals - n_t - n_s
    rows = []
    tert_names = ["示例市第一人民医院", "示例市中医院", "示例医科大学附属医院", "示例市妇幼保健院", "示例市中心医院",
                  "示例市第二人民医院", "示例市第三人民医院", "示例市肿瘤医院", "示例市第四人民医院", "示例市儿童医院"]
    for i in range(n_t):
        level, typ, kind, size = TERTIARY_TEMPLATE[i % len(TERTIARY_TEMPLATE)]
        name = tert_names[i % len(tert_names)]
        if i >= len(tert_names):
            name = name.replace("示例市", f"示例市第{i // len(tert_names) + 1}院区")
        rows.append(("tertiary", level, typ, kind, size, name))
    # County hospitals: each county gets a 人民医院, then 中医院, 妇幼保健院 ... as the templates unfold.
    n_counties = max(1, round(n_s / 3))
    county_counts: dict[tuple[int, str], int] = {}
    kind_suffix = {"general": "人民医院", "tcm": "中医院", "maternal": "妇幼保健院", "children": "儿童医院",
                   "oncology": "肿瘤医院"}
    for i in range(n_s):
        level, typ, kind, size = SECONDARY_TEMPLATE[i % len(SECONDARY_TEMPLATE)]
        c = i % n_counties
        county = COUNTIES[c % len(COUNTIES)] + ("县" if c < len(COUNTIES) else f"{c // len(COUNTIES) + 1}县")
        k = county_counts.get((c, kind), 0)
        county_counts[(c, kind)] = k + 1
        prefix = ["", "第二", "第三", "第四", "第五"][k] if k < 5 else f"第{k + 1}"
        rows.append(("secondary", level, typ, kind, size, county + prefix + kind_suffix[kind]))
    towns = _town_names(n_p)
    for i in range(n_p):
        if i % 10 < 7:
            rows.append(("primary", "一级", "综合", "general", 1.0, f"{towns[i]}镇卫生院"))
        else:
            district = DISTRICTS[i % len(DISTRICTS)]
            rows.append(("primary", "一级", "综合", "general", 0.7, f"{district}{towns[i]}街道社区卫生服务中心"))

    df = pd.DataFrame(rows, columns=["tier", "level", "type", "kind", "size", "name"])
    width = max(4, len(str(hospitals)))
    df.insert(0, "hospital_id", [f"{HOSPITAL_ID_PREFIX}{i + 1:0{width}d}" for i in range(hospitals)])
    df["pool"] = POOL_CODE
    df["coefficient_override"] = np.nan
    size = df["size"].to_numpy() * np.exp(rng.normal(0.0, df["tier"].map(SIZE_SD).to_numpy()))
    share = np.zeros(hospitals)
    for tier, tier_share in TIER_SHARE.items():
        m = (df["tier"] == tier).to_numpy()
        if m.any():
            share[m] = size[m] / size[m].sum() * tier_share
    df["volume_share"] = share / share.sum()
    df["cost_effect"] = df["level"].map(LEVEL_COST).to_numpy() * np.exp(rng.normal(0.0, HOSPITAL_EFFECT_SD, hospitals))
    df["tcm_share"] = np.where(df["kind"] == "tcm", TCM_SHARE["tcm"],
                               np.where(df["tier"] == "primary", TCM_SHARE["primary"], TCM_SHARE["other"]))
    profiles = sorted(set(zip(df["tier"], df["kind"])))
    df["profile"] = [profiles.index(x) for x in zip(df["tier"], df["kind"])]

    # Behaviours: second/third-level general hospitals (specialist ones if too few), disjoint sets.
    general = np.flatnonzero(((df["tier"] != "primary") & (df["kind"] == "general")).to_numpy())
    eligible = general if len(general) >= 4 else np.flatnonzero(
        ((df["tier"] != "primary") & (df["kind"] != "tcm")).to_numpy())
    eligible = rng.permutation(eligible)
    n_behaviour = int(np.clip(round(hospitals / 35), 2, 4))
    n_behaviour = min(n_behaviour, len(eligible) // 2) if len(eligible) >= 2 else 0
    upcoding = np.sort(eligible[:n_behaviour])
    split = np.sort(eligible[n_behaviour:2 * n_behaviour])
    return Region(table=df, upcoding=upcoding, split=split, profiles=profiles)


def hospitals_table(region: Region) -> pa.Table:
    df = region.table
    return pa.Table.from_pandas(df[[f.name for f in HOSPITAL_SCHEMA]], schema=HOSPITAL_SCHEMA, preserve_index=False)


# =================================================================================================================
# Small vectorised helpers
# =================================================================================================================

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_PAIRS = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1)  # (256, 2)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _fixed_width_strings(chars: np.ndarray) -> pa.Array:
    """(n, w) uint8 ASCII matrix -> Arrow string array of n strings of width w, without Python objects."""
    n, w = chars.shape
    offsets = (np.arange(n + 1, dtype=np.int64) * w).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars))])


def _prefixed(prefix: str, body: np.ndarray) -> pa.Array:
    n = body.shape[0]
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    return _fixed_width_strings(np.concatenate([np.broadcast_to(head, (n, len(head))), body], axis=1))


def patient_ids(hashes: np.ndarray) -> pa.Array:
    """'P' + 16 lowercase hex digits of a 64-bit pseudonymous hash."""
    b = hashes.astype(">u8").view(np.uint8).reshape(-1, 8)
    return _prefixed(PATIENT_ID_PREFIX, _HEX_PAIRS[b].reshape(-1, 16))


def case_ids(year: int, first: int, n: int, width: int) -> pa.Array:
    """'S' + year + zero-padded running number, e.g. S202500000001."""
    numbers = np.arange(first, first + n, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((numbers[:, None] // powers) % 10 + 48).astype(np.uint8)
    return _prefixed(f"{CASE_ID_PREFIX}{year}", digits)


def _sample_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)


def build_code_lists(offsets: np.ndarray, ids: np.ndarray, vocab: pa.Array, pidx: np.ndarray,
                     added: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> pa.Array:
    """list<string> column: each row the pattern's codes (by pattern index) plus up to two added code ids.

    ``added`` = (rows, first code id, second code id or -1), rows ascending.
    """
    lens = offsets[pidx + 1] - offsets[pidx]
    new_lens = lens.copy()
    if added is not None:
        rows, code1, code2 = added
        new_lens[rows] += 1 + (code2 >= 0)
    out_off = np.zeros(len(pidx) + 1, dtype=np.int64)
    np.cumsum(new_lens, out=out_off[1:])
    total_base = int(lens.sum())
    within = np.arange(total_base, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    src = np.repeat(offsets[pidx], lens) + within
    if added is None:
        out_ids = ids[src]
    else:
        out_ids = np.empty(int(out_off[-1]), dtype=np.int32)
        out_ids[np.repeat(out_off[:-1], lens) + within] = ids[src]
        end = out_off[rows] + lens[rows]
        out_ids[end] = code1
        two = code2 >= 0
        out_ids[end[two] + 1] = code2[two]
    values = vocab.take(pa.array(out_ids))
    return pa.ListArray.from_arrays(pa.array(out_off.astype(np.int32)), values)


# =================================================================================================================
# One month
# =================================================================================================================


@dataclass
class Reservoir:
    """Earlier stays that may be followed by a readmission: one entry per patient (the latest stay), sorted by
    discharge day, capped so that memory does not grow with the number of cases."""

    patient: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    hospital: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    pattern: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    sex: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    age: np.ndarray = field(default_factory=lambda: np.empty(0, np.int16))
    insurance: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    discharge: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))

    FIELDS = ("patient", "hospital", "pattern", "sex", "age", "insurance", "discharge")

    def keep(self, mask: np.ndarray) -> None:
        for f in self.FIELDS:
            setattr(self, f, getattr(self, f)[mask])

    def extend(self, **cols: np.ndarray) -> None:
        order = np.argsort(cols["discharge"], kind="stable")
        for f in self.FIELDS:
            setattr(self, f, np.concatenate([getattr(self, f), cols[f][order].astype(getattr(self, f).dtype)]))
        if len(self.patient) > RESERVOIR_CAP:
            self.keep(np.arange(len(self.patient)) >= len(self.patient) - RESERVOIR_CAP)


@dataclass
class MonthResult:
    table: pa.Table
    upcoded: pa.Table
    split_pairs: pa.Table
    readmissions: int
    tcm_treated: int
    deaths: int
    per_hospital: np.ndarray


_EPOCH = dt.date(1970, 1, 1)


def _day_number(d: dt.date) -> int:
    return (d - _EPOCH).days


def generate_month(p: Patterns, region: Region, rng: np.random.Generator, year: int, month: int, n: int,
                   first_case_number: int, case_id_width: int, patient_key: np.uint64, patient_counter: int,
                   reservoir: Reservoir) -> tuple[MonthResult, int]:
    """Generate one discharge month of ``n`` cases; updates the readmission reservoir.

    Returns the month and the next patient counter (fresh patients get pseudonymous ids from a seeded hash of it).
    """
    hosp = region.table
    n_hosp = len(hosp)
    tier_of = hosp["tier"].to_numpy()
    tier_code = np.select([tier_of == "tertiary", tier_of == "secondary"], [0, 1], 2).astype(np.int8)
    tiers = ("tertiary", "secondary", "primary")

    # ---- discharge day within the month (weekday effect) ----
    month_start = _day_number(dt.date(year, month, 1))
    n_days = calendar.monthrange(year, month)[1]
    month_end = month_start + n_days - 1
    weekday0 = dt.date(year, month, 1).weekday()
    day_cdf = np.cumsum(WEEKDAY_WEIGHT[(weekday0 + np.arange(n_days)) % 7])
    discharge = (month_start + _sample_cdf(day_cdf, rng.random(n))).astype(np.int32)

    # ---- readmissions: rows that follow an earlier stay of the same patient (>= 21 days later) ----
    readmit_src = np.full(n, -1, dtype=np.int64)
    if len(reservoir.patient):
        cand = np.flatnonzero(rng.random(n) < READMISSION_SHARE)
        cutoff = discharge[cand] - READMISSION_MIN_GAP - READMISSION_LOS_ALLOWANCE
        n_eligible = np.searchsorted(reservoir.discharge, cutoff, side="right")
        ok = n_eligible > 0
        cand, n_eligible = cand[ok], n_eligible[ok]
        taken = np.zeros(len(reservoir.patient), dtype=bool)  # one readmission per earlier stay per month
        for _ in range(READMISSION_PICK_ROUNDS):
            # Biased towards recent stays: readmissions cluster in the weeks after a discharge.
            pick = n_eligible - 1 - np.floor(n_eligible * rng.random(len(cand)) ** 2).astype(np.int64)
            _, first = np.unique(pick, return_index=True)
            accept = np.zeros(len(cand), dtype=bool)
            accept[first] = True
            accept &= ~taken[pick]
            readmit_src[cand[accept]] = pick[accept]
            taken[pick[accept]] = True
            cand, n_eligible = cand[~accept], n_eligible[~accept]
            if not len(cand):
                break
    is_readmit = readmit_src >= 0
    src = readmit_src[is_readmit]

    # ---- fresh rows: hospital by volume, then split-stay pairs inside split hospitals ----
    hospital = np.empty(n, dtype=np.int32)
    fresh = np.flatnonzero(~is_readmit)
    hospital[fresh] = _sample_cdf(np.cumsum(hosp["volume_share"].to_numpy()), rng.random(len(fresh)))
    hospital[is_readmit] = reservoir.hospital[src]
    pair_first = np.empty(0, dtype=np.int64)
    pair_second = np.empty(0, dtype=np.int64)
    if len(region.split):
        in_split = fresh[np.isin(hospital[fresh], region.split)]
        order = in_split[np.argsort(hospital[in_split], kind="stable")]
        h_sorted = hospital[order]
        starts = np.searchsorted(h_sorted, h_sorted, side="left")
        rank = np.arange(len(order)) - starts
        counts = np.bincount(h_sorted, minlength=n_hosp)
        # A stay split in two uses two rows: pairs = share x stays, rows = stays + pairs.
        n_pairs = rng.binomial(counts // 2, min(1.0, 2 * SPLIT_SHARE / (1 + SPLIT_SHARE)))
        in_pair = rank < 2 * n_pairs[h_sorted]
        pair_first = order[in_pair & (rank % 2 == 0)]
        pair_second = order[in_pair & (rank % 2 == 1)]
    single_fresh = np.ones(n, dtype=bool)
    single_fresh[is_readmit] = False
    single_fresh[pair_second] = False
    sampled = np.flatnonzero(single_fresh)  # rows whose pattern and patient are drawn now

    # ---- pattern by hospital profile ----
    pattern = np.empty(n, dtype=np.int32)
    profile = hosp["profile"].to_numpy()[hospital[sampled]]
    u = rng.random(len(sampled))
    for k, (tier, kind) in enumerate(region.profiles):
        m = profile == k
        if m.any():
            pattern[sampled[m]] = _sample_cdf(_profile_cdf(tier, kind), u[m])
    pattern[is_readmit] = reservoir.pattern[src]

    # ---- person: sex, age, insurance, patient id ----
    pi = pattern[sampled]
    sex = np.empty(n, dtype=np.int8)
    sex[sampled] = np.where(rng.random(len(sampled)) < p.male_share[pi], 1, 2)
    age = np.empty(n, dtype=np.int16)
    a = np.rint(p.age_mean[pi] + p.age_sd[pi] * rng.standard_normal(len(sampled)))
    age[sampled] = np.clip(a, p.age_lo[pi], p.age_hi[pi])
    age[sampled[p.infant[pi]]] = 0
    emp_share = np.select([age[sampled] < b for b, _ in EMPLOYEE_SHARE_BY_AGE], [s for _, s in EMPLOYEE_SHARE_BY_AGE])
    emp_share = emp_share * np.array([EMPLOYEE_TIER_FACTOR[t] for t in tiers])[tier_code[hospital[sampled]]]
    insurance = np.empty(n, dtype=np.int8)  # 0 employee, 1 resident
    insurance[sampled] = np.where(rng.random(len(sampled)) < emp_share, 0, 1)
    patient = np.empty(n, dtype=np.uint64)
    patient[sampled] = _splitmix64(np.arange(patient_counter, patient_counter + len(sampled), dtype=np.uint64)
                                   ^ patient_key)
    patient_counter += len(sampled)
    sex[is_readmit] = reservoir.sex[src]
    age[is_readmit] = reservoir.age[src]
    insurance[is_readmit] = reservoir.insurance[src]
    patient[is_readmit] = reservoir.patient[src]
    for arr in (hospital, pattern, sex, age, insurance, patient):
        arr[pair_second] = arr[pair_first]

    # ---- newborns and infants ----
    age_days = np.full(n, -1, dtype=np.int32)
    birth_weight = np.full(n, -1, dtype=np.int32)
    inf = np.flatnonzero(p.infant[pattern])
    if len(inf):
        pt = pattern[inf]
        d = np.rint(p.age_days_mean[pt] + p.age_days_sd[pt] * rng.standard_normal(len(inf)))
        nb = p.newborn[pt]
        age_days[inf] = np.where(nb, np.clip(d, 0, 28), np.clip(d, 29, 364))
        w = np.rint((p.bw_mean[pt] + p.bw_sd[pt] * rng.standard_normal(len(inf))) / 10) * 10
        birth_weight[inf[nb]] = np.clip(w[nb], 600, 5500)

    # ---- LOS and dates ----
    los = np.rint(np.expm1(p.los_mu[pattern] + p.los_sd[pattern] * rng.standard_normal(n)))
    los = np.clip(los, 0, MAX_LOS).astype(np.int64)
    if len(src):
        rows = np.flatnonzero(is_readmit)
        room = discharge[rows] - reservoir.discharge[src] - READMISSION_MIN_GAP
        los[rows] = np.clip(los[rows], 0, room)
    base_los = los.copy()  # the LOS the cost is computed at (a split pair is costed as the original stay)
    if len(pair_first):
        L = los[pair_first]
        frac = rng.uniform(0.35, 0.65, len(pair_first))
        l1 = np.rint(L * frac).astype(np.int64)
        l2 = np.maximum(L - l1, 1)
        gap = rng.integers(SPLIT_GAP_DAYS[0], SPLIT_GAP_DAYS[1] + 1, len(pair_first))
        l2 = np.minimum(l2, n_days - 1 - gap)
        d1 = discharge[pair_first].astype(np.int64)
        d2 = d1 + gap + l2
        shift = np.maximum(d2 - month_end, 0)
        d1 -= shift
        d2 -= shift
        los[pair_first], los[pair_second] = l1, l2
        discharge[pair_first], discharge[pair_second] = d1, d2
    admission = (discharge - los).astype(np.int32)

    # ---- outcomes: discharge mode, death, ventilation ----
    tc = tier_code[hospital]
    death_p = p.death_share[pattern] * np.array([DEATH_FACTOR[t] for t in tiers])[tc]
    u = rng.random(n)
    mode = np.ones(n, dtype=np.int8)
    mode[u < death_p] = 5
    edge = death_p.copy()
    for code in (2, 3, 4, 9):
        share = np.array([MODE_SHARE[t][code] for t in tiers])[tc]
        mode[(u >= edge) & (u < edge + share)] = code
        edge += share
    mode[pair_first] = 1  # the first half of a split stay is a planned discharge
    vent_p = np.where(mode == 5, VENTILATION_SHARE_DEATH,
                      np.where(p.cost_mu[pattern] > 11.0, VENTILATION_SHARE_SEVERE, 0.0))
    ventilated = rng.random(n) < vent_p
    hours = np.rint(np.exp(np.log(48.0) + 0.9 * rng.standard_normal(n)) * 2) / 2
    hours = np.minimum(np.maximum(hours, 1.0), np.maximum(los, 1) * 24.0)
    ventilation = np.where(ventilated, hours, np.nan)

    # ---- TCM and cost ----
    tcm = rng.random(n) < hosp["tcm_share"].to_numpy()[hospital] * np.where(p.n_procedures[pattern] > 0, 0.6, 1.0)
    log_cost = (p.cost_mu[pattern] + p.los_elasticity * (np.log1p(base_los) - p.los_mu[pattern])
                + p.cost_sd[pattern] * rng.standard_normal(n))
    cost = np.exp(log_cost) * hosp["cost_effect"].to_numpy()[hospital] * np.where(tcm, TCM_COST_FACTOR, 1.0)
    cost_fen = np.rint(np.maximum(cost, MIN_COST) * 100).astype(np.int64)
    if len(pair_first):
        total = np.rint(cost_fen[pair_first] * rng.uniform(*SPLIT_COST_FACTOR, len(pair_first))).astype(np.int64)
        share1 = (los[pair_first] + 1) / (los[pair_first] + los[pair_second] + 2)
        c1 = np.rint(total * share1).astype(np.int64)
        cost_fen[pair_first], cost_fen[pair_second] = c1, total - c1
        tcm[pair_second] = tcm[pair_first]
    tcm_fen = np.where(tcm, np.rint(cost_fen * rng.uniform(*TCM_COST_SHARE, n)), 0).astype(np.int64)

    # ---- payment split (to the fen: patient = total - fund) ----
    ins_name = ("employee", "resident")
    ratio = np.array([[FUND_RATIO[i][t] for t in tiers] for i in ins_name])[insurance, tc]
    deductible = np.array([[DEDUCTIBLE[i][t] for t in tiers] for i in ins_name])[insurance, tc] * 100
    ratio = np.clip(ratio + FUND_RATIO_SD * rng.standard_normal(n), 0.3, 0.95)
    fund_fen = np.rint(np.maximum(cost_fen - deductible, 0) * ratio).astype(np.int64)
    patient_fen = cost_fen - fund_fen

    # ---- upcoding: add 1-2 severity codes the pattern does not have and its principal does not exclude ----
    upcoded_rows = np.empty(0, dtype=np.int64)
    code1 = code2 = np.empty(0, dtype=np.int64)
    if len(region.upcoding):
        at = np.flatnonzero(np.isin(hospital, region.upcoding) & (rng.random(n) < UPCODE_SHARE))
        mask = p.severity_mask[pattern[at]]
        sev_cdf = np.cumsum(p.severity_weight)
        code1 = _pick_severity(rng, sev_cdf, mask)
        ok = code1 >= 0
        at, mask, code1 = at[ok], mask[ok], code1[ok]
        mask2 = mask & ~(np.uint64(1) << code1.astype(np.uint64))
        code2 = _pick_severity(rng, sev_cdf, mask2)
        code2 = np.where(rng.random(len(at)) < UPCODE_TWO_CODES, code2, -1)
        upcoded_rows = at

    # ---- order rows by discharge day then hospital, number them, build the Arrow table ----
    order = np.lexsort((hospital, discharge))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    ids = case_ids(year, first_case_number, n, case_id_width)

    def sorted_(x):
        return x[order]

    pattern_s = sorted_(pattern)
    added = None
    if len(upcoded_rows):
        new_rows = position[upcoded_rows]
        o = np.argsort(new_rows)
        added = (new_rows[o], p.severity_dx_ids[code1[o]],
                 np.where(code2[o] >= 0, p.severity_dx_ids[np.maximum(code2[o], 0)], -1))
    diagnoses = build_code_lists(p.dx_offsets, p.dx_ids, p.dx_vocab, pattern_s, added)
    procedures = build_code_lists(p.px_offsets, p.px_ids, p.px_vocab, pattern_s)

    age_days_s, bw_s = sorted_(age_days), sorted_(birth_weight)
    hosp_ids = pa.array(hosp["hospital_id"].tolist(), pa.string())
    arrays = {
        "case_id": ids,
        "patient_id": patient_ids(sorted_(patient)),
        "hospital_id": hosp_ids.take(pa.array(sorted_(hospital))),
        "pool": pa.repeat(POOL_CODE, n),
        "insurance_type": pa.array(["employee", "resident"]).take(pa.array(sorted_(insurance))),
        "admission_date": pa.array(sorted_(admission), pa.int32()).view(pa.date32()),
        "discharge_date": pa.array(sorted_(discharge), pa.int32()).view(pa.date32()),
        "los_days": pa.array(sorted_(los).astype(np.int32)),
        "age_years": pa.array(sorted_(age).astype(np.int16)),
        "age_days": pa.array(age_days_s, mask=age_days_s < 0),
        "birth_weight_g": pa.array(bw_s, mask=bw_s < 0),
        "sex": pa.array(sorted_(sex)),
        "discharge_mode": pa.array(sorted_(mode)),
        "diagnoses": diagnoses,
        "procedures": procedures,
        "ventilation_hours": pa.array(sorted_(ventilation), from_pandas=True),
        "total_cost": pa.array(sorted_(cost_fen) / 100.0),
        "fund_paid": pa.array(sorted_(fund_fen) / 100.0),
        "patient_paid": pa.array(sorted_(patient_fen) / 100.0),
        "tcm_diagnosis": pa.nulls(n, pa.string()),
        "tcm_cost": pa.array(sorted_(tcm_fen) / 100.0),
        "tcm_treated": pa.array(sorted_(tcm)),
        "department": p.dept_vocab.take(pa.array(p.dept_ids[pattern_s])),
        "insurer_drg": pa.nulls(n, pa.string()),
    }
    table = pa.Table.from_arrays([arrays[f.name] for f in CASE_SCHEMA], schema=CASE_SCHEMA)

    # ---- ground truth ----
    if added is not None:
        codes = np.stack([added[1], added[2]], axis=1).ravel()
        codes = codes[codes >= 0]
        off = np.zeros(len(added[0]) + 1, dtype=np.int32)
        np.cumsum(1 + (added[2] >= 0), out=off[1:])
        added_codes = pa.ListArray.from_arrays(pa.array(off), p.dx_vocab.take(pa.array(codes)))
        upcoded = pa.table({"case_id": ids.take(pa.array(added[0])),
                            "hospital_id": arrays["hospital_id"].take(pa.array(added[0])),
                            "added_codes": added_codes})
    else:
        upcoded = _EMPTY_UPCODED
    first_pos, second_pos = position[pair_first], position[pair_second]
    splits = pa.table({
        "first_case_id": ids.take(pa.array(first_pos)),
        "second_case_id": ids.take(pa.array(second_pos)),
        "hospital_id": arrays["hospital_id"].take(pa.array(first_pos)),
        "patient_id": arrays["patient_id"].take(pa.array(first_pos)),
    }) if len(pair_first) else _EMPTY_SPLITS

    # ---- reservoir: drop the stays just followed up, add this month's candidates ----
    if len(src):
        keep = np.ones(len(reservoir.patient), dtype=bool)
        keep[src] = False
        reservoir.keep(keep)
    eligible = (mode != 5) & (age >= 1)
    eligible[pair_first] = False
    eligible[pair_second] = False
    new = np.flatnonzero(eligible & is_readmit)  # a readmitted patient's latest stay replaces the one removed
    fresh_ok = np.flatnonzero(eligible & ~is_readmit)
    quota = RESERVOIR_CAP // 12
    if len(fresh_ok) > quota:
        fresh_ok = np.sort(rng.choice(fresh_ok, quota, replace=False))
    new = np.concatenate([new, fresh_ok])
    reservoir.extend(patient=patient[new], hospital=hospital[new], pattern=pattern[new], sex=sex[new],
                     age=age[new], insurance=insurance[new], discharge=discharge[new])

    result = MonthResult(table=table, upcoded=upcoded, split_pairs=splits, readmissions=int(is_readmit.sum()),
                         tcm_treated=int(tcm.sum()), deaths=int((mode == 5).sum()),
                         per_hospital=np.bincount(hospital, minlength=n_hosp))
    return result, patient_counter


_EMPTY_UPCODED = pa.table({"case_id": pa.array([], pa.string()), "hospital_id": pa.array([], pa.string()),
                           "added_codes": pa.array([], pa.list_(pa.string()))})
_EMPTY_SPLITS = pa.table({c: pa.array([], pa.string())
                          for c in ("first_case_id", "second_case_id", "hospital_id", "patient_id")})


def _pick_severity(rng: np.random.Generator, cdf: np.ndarray, mask: np.ndarray, tries: int = 8) -> np.ndarray:
    """A severity code index per row, drawn by frequency among the codes allowed by the row's bitmask; -1 if none."""
    out = np.full(len(mask), -1, dtype=np.int64)
    todo = np.arange(len(mask))
    for _ in range(tries):
        j = _sample_cdf(cdf, rng.random(len(todo)))
        ok = ((mask[todo] >> j.astype(np.uint64)) & np.uint64(1)).astype(bool)
        out[todo[ok]] = j[ok]
        todo = todo[~ok]
        if not len(todo):
            break
    return out


_PROFILE_CDFS: dict[tuple[str, str], np.ndarray] = {}


def _profile_cdf(tier: str, kind: str) -> np.ndarray:
    key = (tier, kind)
    if key not in _PROFILE_CDFS:
        _PROFILE_CDFS[key] = np.cumsum(case_mix_weights(load_patterns(), tier, kind))
    return _PROFILE_CDFS[key]


# =================================================================================================================
# The region
# =================================================================================================================


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def month_sizes(cases: int, year: int, rng: np.random.Generator) -> np.ndarray:
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
    p = load_patterns()
    root = np.random.SeedSequence(seed)
    region_seq, *month_seqs = root.spawn(13)
    rng = np.random.default_rng(region_seq)
    region = build_region(hospitals, rng)
    sizes = month_sizes(cases, year, rng)
    patient_key = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
    width = max(8, len(str(cases)))

    tmp = Path(tempfile.mkdtemp(prefix=".synth-tmp-", dir=out))
    written: dict[str, Path] = {}  # relative path -> temp path
    sha: dict[str, dict] = {}
    try:
        def put(rel: str, writer: Callable[[Path], None], rows: int | None = None) -> None:
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(path)
            written[rel] = path
            sha[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
            if rows is not None:
                sha[rel]["rows"] = rows

        hospitals_pa = hospitals_table(region)
        put("hospitals.parquet", lambda f: pq.write_table(hospitals_pa, f, compression="zstd"), hospitals)
        put("hospitals.csv", lambda f: hospitals_pa.to_pandas().to_csv(f, index=False, encoding="utf-8-sig"),
            hospitals)

        reservoir = Reservoir()
        counter = 0
        done = 0
        by_month: dict[str, int] = {}
        upcoded_parts, split_parts = [], []
        readmissions = tcm_treated = deaths = 0
        per_hospital = np.zeros(hospitals, dtype=np.int64)
        for m in range(12):
            n = int(sizes[m])
            label = f"{year}-{m + 1:02d}"
            month_rng = np.random.default_rng(month_seqs[m])
            res, counter = generate_month(p, region, month_rng, year, m + 1, n, done + 1, width, patient_key, counter,
                                          reservoir) if n else (None, counter)
            table = res.table if res else CASE_SCHEMA.empty_table()
            put(f"cases/discharge_month={label}/part-0.parquet",
                lambda f, t=table: pq.write_table(t, f, compression="zstd", row_group_size=1 << 20), n)
            if res:
                upcoded_parts.append(res.upcoded)
                split_parts.append(res.split_pairs)
                readmissions += res.readmissions
                tcm_treated += res.tcm_treated
                deaths += res.deaths
                per_hospital += res.per_hospital
            by_month[label] = n
            done += n
            del res, table
            if progress:
                progress(done, cases)

        upcoded = pa.concat_tables(upcoded_parts) if upcoded_parts else _EMPTY_UPCODED
        splits = pa.concat_tables(split_parts) if split_parts else _EMPTY_SPLITS
        put("ground_truth/upcoded_cases.parquet", lambda f: pq.write_table(upcoded, f, compression="zstd"),
            upcoded.num_rows)
        put("ground_truth/split_stays.parquet", lambda f: pq.write_table(splits, f, compression="zstd"),
            splits.num_rows)
        hdf = region.table
        for rel, idx, behaviour, share in (
            ("ground_truth/upcoding_hospitals.csv", region.upcoding, "upcoding", UPCODE_SHARE),
            ("ground_truth/split_stay_hospitals.csv", region.split, "split_stay", SPLIT_SHARE),
        ):
            df = hdf.iloc[idx][["hospital_id", "name", "level", "type"]].assign(behaviour=behaviour, share=share)
            put(rel, lambda f, d=df: d.to_csv(f, index=False, encoding="utf-8-sig"), len(df))

        elapsed = time.perf_counter() - started
        manifest = {
            "generator": "dipsim.synth.synthesize_region",
            "dipsim_version": __version__,
            "parameters": {"cases": cases, "hospitals": hospitals, "seed": seed, "year": year},
            "pool": {"code": POOL_CODE, "name": POOL_NAME},
            "counts": {
                "cases": cases, "hospitals": hospitals, "cases_by_month": by_month,
                "readmissions": readmissions, "split_pairs": splits.num_rows, "upcoded_cases": upcoded.num_rows,
                "tcm_treated": tcm_treated, "deaths": deaths,
                "cases_by_tier": {t: int(per_hospital[(hdf["tier"] == t).to_numpy()].sum()) for t in TIER_SHARE},
                "cases_by_level": {lv: int(per_hospital[(hdf["level"] == lv).to_numpy()].sum())
                                   for lv in dict.fromkeys(hdf["level"])},
                "upcoding_hospitals": hdf["hospital_id"].iloc[region.upcoding].tolist(),
                "split_stay_hospitals": hdf["hospital_id"].iloc[region.split].tolist(),
            },
            "pattern_library": {"patterns.parquet": _sha256(PATTERNS_FILE),
                                "severity_codes.parquet": _sha256(SEVERITY_FILE)},
            "files": sha,
            "elapsed_s": round(elapsed, 3),
        }
        put("manifest.json", lambda f: f.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                                    encoding="utf-8"))
        # Move into place; partitions of an earlier run that this one does not write are removed.
        cases_dir = out / "cases"
        if cases_dir.is_dir():
            keep = {f"discharge_month={label}" for label in by_month}
            for old in cases_dir.glob("discharge_month=*"):
                if old.name not in keep and old.is_dir():
                    shutil.rmtree(old)
        for rel, path in written.items():
            final = out / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    return SynthSummary(
        out_dir=out, cases=cases, hospitals=hospitals, seed=seed, year=year, cases_by_month=by_month,
        readmissions=readmissions, split_pairs=splits.num_rows, upcoded_cases=upcoded.num_rows,
        tcm_treated=tcm_treated, deaths=deaths,
        upcoding_hospitals=hdf["hospital_id"].iloc[region.upcoding].tolist(),
        split_stay_hospitals=hdf["hospital_id"].iloc[region.split].tolist(),
        files=[out / rel for rel in written], elapsed_s=time.perf_counter() - started,
    )
