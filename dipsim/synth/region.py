"""The hospitals of the 统筹区: levels, types, names, case volumes, cost levels and the behaviour hospitals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from dipsim.schema import HOSPITAL_SCHEMA
from dipsim.synth.names import (
    county_hospital_name,
    county_name,
    grassroots_name,
    tertiary_name,
    town_names,
)
from dipsim.synth.parameters import (
    HOSPITAL_EFFECT_SD,
    LEVEL_COST,
    SIZE_SD,
    TCM_SHARE,
    TIER_HOSPITAL_SHARE,
    TIER_SHARE,
    TIERS,
)

POOL_CODE = "990100"  # fictional 统筹区 code (99 is no province) for "示例市"
POOL_NAME = "示例市"
HOSPITAL_ID_PREFIX = "H"

# Tertiary and secondary hospitals in the order they appear as the region grows: (level, type, kind, size weight).
# Each county gets a 人民医院 first, then a 中医院, a 妇幼保健院 ... as the list unfolds.
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
ROW_COLUMNS = ["tier", "level", "type", "kind", "size", "name"]


@dataclass
class Region:
    table: pd.DataFrame  # HOSPITAL_SCHEMA columns + tier, kind, size, volume_share, cost_effect, tcm_share, profile
    upcoding: np.ndarray  # hospital indices of the 高套编码 hospitals
    split: np.ndarray  # hospital indices of the 分解住院 hospitals
    profiles: list[tuple[str, str]]  # (tier, kind) per profile index
    tier_code: np.ndarray  # per hospital: index into TIERS

    def column(self, name: str) -> np.ndarray:
        return self.table[name].to_numpy()

    def hospital_ids(self, idx: np.ndarray) -> list[str]:
        return self.table["hospital_id"].iloc[idx].tolist()


def build_region(hospitals: int, rng: np.random.Generator) -> Region:
    if hospitals < 5:
        raise ValueError(f"hospitals must be >= 5 (got {hospitals})")
    n_t = max(1, round(TIER_HOSPITAL_SHARE["tertiary"] * hospitals))
    n_s = max(1, round(TIER_HOSPITAL_SHARE["secondary"] * hospitals))
    rows = _tertiary_rows(n_t) + _secondary_rows(n_s) + _grassroots_rows(hospitals - n_t - n_s)
    df = pd.DataFrame(rows, columns=ROW_COLUMNS)
    width = max(4, len(str(hospitals)))
    df.insert(0, "hospital_id", [f"{HOSPITAL_ID_PREFIX}{i + 1:0{width}d}" for i in range(hospitals)])
    df["pool"] = POOL_CODE
    df["coefficient_override"] = np.nan
    df["volume_share"] = _volume_shares(df, rng)
    df["cost_effect"] = df["level"].map(LEVEL_COST).to_numpy() * np.exp(rng.normal(0.0, HOSPITAL_EFFECT_SD, hospitals))
    df["tcm_share"] = np.where(df["kind"] == "tcm", TCM_SHARE["tcm"],
                               np.where(df["tier"] == "primary", TCM_SHARE["primary"], TCM_SHARE["other"]))
    profiles = sorted(set(zip(df["tier"], df["kind"])))
    df["profile"] = [profiles.index(x) for x in zip(df["tier"], df["kind"])]
    upcoding, split = _behaviour_hospitals(df, rng)
    tier_code = df["tier"].map({t: i for i, t in enumerate(TIERS)}).to_numpy().astype(np.int8)
    return Region(table=df, upcoding=upcoding, split=split, profiles=profiles, tier_code=tier_code)


def _tertiary_rows(n: int) -> list[tuple]:
    rows = []
    for i in range(n):
        level, typ, kind, size = TERTIARY_TEMPLATE[i % len(TERTIARY_TEMPLATE)]
        rows.append(("tertiary", level, typ, kind, size, tertiary_name(i)))
    return rows


def _secondary_rows(n: int) -> list[tuple]:
    """County hospitals, dealt round the counties (about three per county)."""
    n_counties = max(1, round(n / 3))
    seen: dict[tuple[int, str], int] = {}
    rows = []
    for i in range(n):
        level, typ, kind, size = SECONDARY_TEMPLATE[i % len(SECONDARY_TEMPLATE)]
        c = i % n_counties
        k = seen.get((c, kind), 0)
        seen[(c, kind)] = k + 1
        rows.append(("secondary", level, typ, kind, size, county_hospital_name(county_name(c), kind, k)))
    return rows


def _grassroots_rows(n: int) -> list[tuple]:
    """Seven in ten grassroots hospitals are 乡镇卫生院, the rest (smaller) urban 社区卫生服务中心."""
    towns = town_names(n)
    rows = []
    for i in range(n):
        township = i % 10 < 7
        rows.append(("primary", "一级", "综合", "general", 1.0 if township else 0.7,
                     grassroots_name(i, towns[i], township)))
    return rows


def _volume_shares(df: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Each hospital's share of the region's cases: its tier's share split by randomly perturbed size."""
    size = df["size"].to_numpy() * np.exp(rng.normal(0.0, df["tier"].map(SIZE_SD).to_numpy()))
    share = np.zeros(len(df))
    for tier, tier_share in TIER_SHARE.items():
        m = (df["tier"] == tier).to_numpy()
        if m.any():
            share[m] = size[m] / size[m].sum() * tier_share
    return share / share.sum()


def _behaviour_hospitals(df: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sets of upcoding and split-stay hospitals, 2 to 4 each (one in 35 hospitals): second/third-level
    general hospitals, specialist ones if too few."""
    general = np.flatnonzero(((df["tier"] != "primary") & (df["kind"] == "general")).to_numpy())
    eligible = general if len(general) >= 4 else np.flatnonzero(
        ((df["tier"] != "primary") & (df["kind"] != "tcm")).to_numpy())
    eligible = rng.permutation(eligible)
    n = int(np.clip(round(len(df) / 35), 2, 4))
    n = min(n, len(eligible) // 2) if len(eligible) >= 2 else 0
    return np.sort(eligible[:n]), np.sort(eligible[n:2 * n])


def hospitals_table(region: Region) -> pa.Table:
    df = region.table
    return pa.Table.from_pandas(df[[f.name for f in HOSPITAL_SCHEMA]], schema=HOSPITAL_SCHEMA, preserve_index=False)
