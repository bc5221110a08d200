"""The nightly job at scale (issue 7): cold (every partition validated and grouped) and warm (all cached) runs of
`dipsim nightly`, per engine, with wall time, cases/s and peak RSS.

    python benchmarks/bench_nightly.py --cases 1000000 [--engines chunked,chunked/1,memory,dask]

`chunked/N`: the chunked engine in N processes (--processes N; `chunked`: its default, 2 worker processes from a
few million cases on).

The region is benchmarks/_work/region_N (12 monthly partitions, as bench_load.py makes it); the catalogue is built
from a sample of it (--catalog-cases, threshold 200) and the budgets are 60% of each pool's cost. Each run is a fresh
process; peak RSS is given for that process (exact, /usr/bin/time) and summed over all its processes (sampled every
0.1 s: with --engine dask the local cluster's scheduler, nannies and workers are processes of their own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from _machine import arguments, child, machine_line
from bench_load import ensure_region

# The physical limit beside the cold runs (issue 17): in a fresh process, every partition's columns the nightly
# job reads (`nightly.read_columns`, code lists dictionary-encoded) read by pyarrow and written back as one zstd
# Parquet file, a batch at a time (what the cache costs to write, without validating, grouping or pricing).
BARE = r"""
import json, sys, tempfile, time
from pathlib import Path
cpu = time.process_time()
import pyarrow.parquet as pq
from dipsim.nightly import BATCH_ROWS, read_columns
files = sorted(Path(sys.argv[1]).rglob("*.parquet"))
start = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    for number, path in enumerate(files):
        columns = read_columns(path)
        parquet = pq.ParquetFile(path, read_dictionary=["diagnoses.list.element", "procedures.list.element"])
        writer = None
        for batch in parquet.iter_batches(BATCH_ROWS, columns=columns):
            writer = writer or pq.ParquetWriter(Path(out) / f"{number}.parquet", batch.schema, compression="zstd")
            writer.write_batch(batch)
        if writer is not None:
            writer.close()
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}))
"""


def timed(args: list[str]) -> tuple[float, float, float, float]:
    """Wall seconds, peak RSS of the main process (exact, from /usr/bin/time) and peak RSS summed over it and its
    descendants (Dask's scheduler, nannies and workers; sampled every 0.1 s), both in MB, and the CPU seconds
    (user + system) of it and its descendants (what a shared machine's load does not inflate as much as the wall
    time)."""
    import resource

    import psutil

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(["/usr/bin/time", "-f", "%M", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    tree_peak = 0
    root = psutil.Process(process.pid)
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):  # a process ended while it was being read
            tree_peak = max(tree_peak, sum(p.memory_info().rss for p in root.children(recursive=True)))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    err = process.stderr.read()
    if process.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{err}")
    return seconds, int(err.strip().splitlines()[-1]) / 1024, tree_peak / 2**20, cpu


def pool_costs(cases: Path) -> dict[str, float]:
    """Each pool's (统筹区-险种) total cost, one partition at a time."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    costs: dict[str, float] = {}
    for path in sorted(cases.rglob("*.parquet")):
        part = pq.read_table(path, columns=["pool", "insurance_type", "total_cost"])
        key = pc.binary_join_element_wise(part["pool"], part["insurance_type"], "-")
        sums = pa.table({"key": key, "cost": part["total_cost"]}).group_by("key").aggregate([("cost", "sum")])
        for k, v in zip(sums["key"].to_pylist(), sums["cost_sum"].to_pylist()):
            costs[k] = costs.get(k, 0.0) + v
    return dict(sorted(costs.items()))


def sample(cases: Path, n: int) -> pa.Table:
    """The first n / 12 cases of each monthly partition: what the catalogue is built from (a year of 100M cases
    does not fit in memory, and a catalogue needs far fewer)."""
    import pyarrow.parquet as pq

    files = sorted(cases.rglob("*.parquet"))
    each = -(-n // len(files))
    columns = ["pool", "insurance_type", "total_cost", "diagnoses", "procedures", "discharge_date"]
    return pa.concat_tables(pa.Table.from_batches([next(pq.ParquetFile(f).iter_batches(each, columns=columns))])
                            for f in files)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--engines", default="chunked,memory,dask")
    parser.add_argument("--catalog-cases", type=int, default=2_000_000,
                        help="cases the DIP catalogue is built from (a sample of every month)")
    args = parser.parse_args()
    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog

    region = ensure_region(args.cases, args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    try:
        budgets = ", ".join(f'"{p}" = {round(v * 0.6, 2)}' for p, v in pool_costs(region / "cases").items())
        (work / "policy.toml").write_text(f'[payment]\nmode = "dip"\n[budget]\ntotal = {{ {budgets} }}\n',
                                          encoding="utf-8")
        write_catalog(build_catalog(sample(region / "cases", args.catalog_cases), CatalogOptions(threshold=200),
                                    names=False), work / "cat")
        rows = []
        bare_load = os.getloadavg()[0]
        bare = child(BARE, str(region / "cases"))
        for number, engine in enumerate(args.engines.split(",")):
            name, _, processes = engine.partition("/")
            command = [sys.executable, "-m", "dipsim.cli", "nightly", "--claims", str(region / "cases"),
                       "--policy", str(work / "policy.toml"), "--hospitals", str(region / "hospitals.parquet"),
                       "--catalog", str(work / "cat"), "--state", str(work / f"state-{number}"), "--out",
                       str(work / f"out-{number}"), "--engine", name, "-q"]
            if processes:
                command += ["--processes", processes]
            for kind in ("cold", "warm"):
                load = os.getloadavg()[0]  # the machine is shared: its load beside each figure
                rows.append((engine, kind, *timed(command), load))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(machine_line(f"python benchmarks/bench_nightly.py --cases {args.cases} --engines {args.engines}"))
    print()
    print("| engine | run | cases | seconds | cases/s | x bare read + write | CPU seconds | peak RSS, main process "
          "(MB) | peak RSS, all processes (MB) | load before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    limit = bare["seconds"]
    print(f"| bare pyarrow read + write | | {args.cases:,} | {limit:.1f} | {args.cases / limit:,.0f} | 1.0 | "
          f"{bare['cpu']:.1f} | | | {bare_load:.1f} |")
    for engine, kind, seconds, rss, tree, cpu, load in rows:
        print(f"| {engine} | {kind} | {args.cases:,} | {seconds:.1f} | {args.cases / seconds:,.0f} | "
              f"{seconds / limit:.1f} | {cpu:.1f} | {rss:,.0f} | {tree:,.0f} | {load:.1f} |")


if __name__ == "__main__":
    main()
