"""The region's files besides the case partitions: hospitals, ground truth and the manifest."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from dipsim import __version__
from dipsim.io.writers import sha256_file, write_csv
from dipsim.synth.output import StagedOutput
from dipsim.synth.parameters import SPLIT_SHARE, TIER_SHARE, UPCODE_SHARE
from dipsim.synth.patterns import PATTERNS_FILE, SEVERITY_FILE
from dipsim.synth.region import POOL_CODE, POOL_NAME, Region, hospitals_table


def write_hospitals(stage: StagedOutput, region: Region) -> None:
    """hospitals.parquet and hospitals.csv (UTF-8 with BOM, so that Excel reads the Chinese names)."""
    table = hospitals_table(region)
    n = table.num_rows
    stage.put("hospitals.parquet", lambda f: pq.write_table(table, f, compression="zstd"), n)
    stage.put("hospitals.csv", lambda f: write_csv(table, f), n)


def write_ground_truth(stage: StagedOutput, region: Region, upcoded: pa.Table, splits: pa.Table) -> None:
    """The exact upcoded cases and split pairs, and the hospitals given each behaviour with its share."""
    stage.put("ground_truth/upcoded_cases.parquet", lambda f: pq.write_table(upcoded, f, compression="zstd"),
              upcoded.num_rows)
    stage.put("ground_truth/split_stays.parquet", lambda f: pq.write_table(splits, f, compression="zstd"),
              splits.num_rows)
    for rel, idx, behaviour, share in (
        ("ground_truth/upcoding_hospitals.csv", region.upcoding, "upcoding", UPCODE_SHARE),
        ("ground_truth/split_stay_hospitals.csv", region.split, "split_stay", SPLIT_SHARE),
    ):
        df = region.table.iloc[idx][["hospital_id", "name", "level", "type"]].assign(behaviour=behaviour, share=share)
        stage.put(rel, lambda f, d=df: write_csv(pa.Table.from_pandas(d, preserve_index=False), f), len(df))


def write_manifest(stage: StagedOutput, region: Region, parameters: dict, counts: dict, per_hospital,
                   elapsed: float) -> None:
    """manifest.json: version, parameters, counts (with cases by tier and level), sha256 of every file."""
    hdf = region.table
    counts = {
        **counts,
        "cases_by_tier": {t: int(per_hospital[(hdf["tier"] == t).to_numpy()].sum()) for t in TIER_SHARE},
        "cases_by_level": {lv: int(per_hospital[(hdf["level"] == lv).to_numpy()].sum())
                           for lv in dict.fromkeys(hdf["level"])},
        "upcoding_hospitals": region.hospital_ids(region.upcoding),
        "split_stay_hospitals": region.hospital_ids(region.split),
    }
    manifest = {
        "generator": "dipsim.synth.synthesize_region",
        "dipsim_version": __version__,
        "parameters": parameters,
        "pool": {"code": POOL_CODE, "name": POOL_NAME},
        "counts": counts,
        "pattern_library": {"patterns.parquet": sha256_file(PATTERNS_FILE),
                            "severity_codes.parquet": sha256_file(SEVERITY_FILE)},
        "files": stage.files,
        "elapsed_s": round(elapsed, 3),
    }
    text = json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
    stage.put("manifest.json", lambda f: f.write_text(text, encoding="utf-8"))
