"""The nightly job at scale (issue 7): cold (every partition validated and grouped) and warm (all cached) runs of
`dipsim nightly`, per engine, with wall time, cases/s and peak RSS.

    python benchmarks/bench_nightly.py --cases 1000000 [--engines chunked,memory,dask]

The region is benchmarks/_work/region_N (12 monthly partitions, as bench_load.py makes it); the catalogue is built
from it (threshold 200) and the budgets are 60% of each pool's cost. Each run is a fresh process under
/usr/bin/time (peak RSS of that process; Dask workers are separate processes and not counted).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_line
from bench_load import ensure_region


def timed(args: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engines", default="chunked,memory,dask")
    args = parser.parse_args()
    import pyarrow.parquet as pq

    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog

    region = ensure_region(args.cases, args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    try:
        table = pq.read_table(region / "cases", columns=["pool", "insurance_type", "total_cost", "diagnoses",
                                                         "procedures", "discharge_date"])
        frame = table.select(["pool", "insurance_type", "total_cost"]).to_pandas()
        cost = frame.groupby(frame["pool"] + "-" + frame["insurance_type"])["total_cost"].sum()
        budgets = ", ".join(f'"{p}" = {round(v * 0.6, 2)}' for p, v in cost.items())
        (work / "policy.toml").write_text(f'[payment]\nmode = "dip"\n[budget]\ntotal = {{ {budgets} }}\n',
                                          encoding="utf-8")
        write_catalog(build_catalog(table, CatalogOptions(threshold=200), names=False), work / "cat")
        del table, frame
        rows = []
        for engine in args.engines.split(","):
            command = [sys.executable, "-m", "dipsim.cli", "nightly", "--claims", str(region / "cases"),
                       "--policy", str(work / "policy.toml"), "--hospitals", str(region / "hospitals.parquet"),
                       "--catalog", str(work / "cat"), "--state", str(work / f"state-{engine}"), "--out",
                       str(work / f"out-{engine}"), "--engine", engine, "-q"]
            for kind in ("cold", "warm"):
                seconds, rss = timed(command)
                rows.append((engine, kind, seconds, rss))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(machine_line(f"python benchmarks/bench_nightly.py --cases {args.cases} --engines {args.engines}"))
    print()
    print("| engine | run | cases | seconds | cases/s | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|")
    for engine, kind, seconds, rss in rows:
        print(f"| {engine} | {kind} | {args.cases:,} | {seconds:.1f} | {args.cases / seconds:,.0f} | {rss:,.0f} |")


if __name__ == "__main__":
    main()
