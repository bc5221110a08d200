"""CHS-DRG grouping speed: the Numba kernel, `group_table` from Parquet, and the plain-Python reference.

    python benchmarks/bench_drg.py --cases 1000000 [--tile 10] [--reference-cases 50000]

Synthesises a region (or reuses benchmarks/_work/region_N, as bench_load.py does) and reports:

1. cold start: the first `group_table` call in a fresh process whose Numba cache folder (NUMBA_CACHE_DIR) and
   compiled-scheme cache (DIPSIM_CACHE_DIR) are empty temporary folders (import, scheme load and compile, kernel
   compile), and the same with those caches filled;
2. kernel throughput on the region's encoded arrays tiled `--tile` times (>= 10M cases), one thread
   (numba.set_num_threads(1)) and all threads, in cases/s and cases/s per core;
3. `dipsim group`-equivalent wall time: read the Parquet folder with pyarrow, encode, kernel, decode (group_table),
   in a fresh process after a warm-up call (kernel compiled and cached), with its peak RSS;
4. the plain-Python reference grouper (`reference.group_case`) on the first `--reference-cases` cases,
   extrapolated linearly to the region, for the speed-up ratio.

Prints markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import arguments, best_of, child, cores, machine_line, tile_csr
from bench_load import ensure_region

HERE = Path(__file__).resolve().parent
COLUMNS = ["case_id", "diagnoses", "procedures", "sex", "age_years", "age_days", "birth_weight_g",
           "ventilation_hours", "los_days"]

COLD = r"""
import json, sys, time
start = time.perf_counter()
import pyarrow as pa
from dipsim.grouping.drg import group_table
imported = time.perf_counter()
cases = pa.table({"case_id": ["1"], "diagnoses": pa.array([["J18.900"]], pa.list_(pa.string()))})
out = group_table(cases, sys.argv[1])
done = time.perf_counter()
assert out["mdc"][0].as_py() == "E" and out["drg"][0].as_py() not in ("", "0000"), out  # ES35 (1.1, 2.0), ES45 (3.0)
print(json.dumps({"import_s": imported - start, "first_call_s": done - imported, "total_s": done - start}))
"""

FROM_PARQUET = r"""
import json, resource, sys, time
import pyarrow as pa
import pyarrow.dataset as pads
from dipsim.grouping.drg import group_table
columns = json.loads(sys.argv[3])
warm = pa.table({"case_id": ["1"], "diagnoses": pa.array([["J18.900"]], pa.list_(pa.string()))})
group_table(warm, sys.argv[2])  # scheme loaded and compiled, kernel loaded from the cache
start = time.perf_counter()
cases = pads.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table(columns=columns)
read = time.perf_counter()
out = group_table(cases, sys.argv[2])
done = time.perf_counter()
print(json.dumps({"rows": out.num_rows, "read_s": read - start, "group_s": done - read, "total_s": done - start,
                  "ungroupable": int((out["drg"].to_numpy(zero_copy_only=False) == "0000").sum()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cold_start(scheme: str) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory(prefix="dipsim-cold-") as cache:
        # both caches empty: Numba's compiled kernel and dipsim's compiled scheme tables
        env = {"NUMBA_CACHE_DIR": str(Path(cache) / "numba"), "DIPSIM_CACHE_DIR": str(Path(cache) / "dipsim")}
        cold = child(COLD, scheme, env=env)
        warm = child(COLD, scheme, env=env)
    return cold, warm


def tiled(encoded, times: int):
    """The encoded arrays repeated `times` times (offsets rebuilt), as a new EncodedCases."""
    from dipsim.grouping.drg import EncodedCases

    dx, dx_offsets = tile_csr(encoded.dx, encoded.dx_offsets, times)
    px, px_offsets = tile_csr(encoded.px, encoded.px_offsets, times)
    return EncodedCases(dx, dx_offsets, px, px_offsets,
                        *(np.tile(getattr(encoded, f), times)
                          for f in ("sex", "age_years", "age_days", "birth_weight", "ventilation_hours",
                                    "los_days")))


def kernel_throughput(cases_path: Path, scheme: str, times: int, repeats: int = 3) -> list[tuple[int, float, int]]:
    import numba
    import pyarrow.dataset as pads

    from dipsim.grouping.compiled import compile_scheme
    from dipsim.grouping.drg import encode_table, group_encoded
    from dipsim.grouping.tables import load_scheme

    compiled = compile_scheme(load_scheme(scheme))
    table = pads.dataset(cases_path, format="parquet", partitioning="hive").to_table(columns=COLUMNS)
    big = tiled(encode_table(table, compiled), times)
    del table
    group_encoded(tiled(encode_table(_small(), compiled), 1), compiled)  # compile / load from the cache
    rows = []
    all_threads = numba.config.NUMBA_NUM_THREADS
    for threads in sorted({1, all_threads}):
        numba.set_num_threads(threads)
        rows.append((threads, best_of(repeats, lambda: group_encoded(big, compiled)), len(big)))
    numba.set_num_threads(all_threads)
    return rows


def _small():
    import pyarrow as pa

    return pa.table({"case_id": ["1"], "diagnoses": pa.array([["J18.900"]], pa.list_(pa.string()))})


def reference_speed(cases_path: Path, scheme: str, n: int) -> tuple[int, float]:
    import pyarrow.dataset as pads

    from dipsim.grouping.explain import case_from_row
    from dipsim.grouping.reference import group_case
    from dipsim.grouping.tables import load_scheme

    table = pads.dataset(cases_path, format="parquet", partitioning="hive").head(n, columns=COLUMNS[1:])
    rows = table.to_pylist()
    s = load_scheme(scheme)
    start = time.perf_counter()
    for c in rows:
        group_case(case_from_row(c), s)
    return len(rows), time.perf_counter() - start


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--scheme", default="chs-drg-1.1")
    parser.add_argument("--tile", type=int, default=10, help="kernel throughput on the region tiled this many times")
    parser.add_argument("--reference-cases", type=int, default=50_000)
    args = parser.parse_args()
    region = ensure_region(args.cases, args.seed)
    cases_path = region / "cases"

    cold, warm = cold_start(args.scheme)
    kernel = kernel_throughput(cases_path, args.scheme, args.tile)
    parquet = child(FROM_PARQUET, str(cases_path), args.scheme, json.dumps(COLUMNS))
    ref_n, ref_s = reference_speed(cases_path, args.scheme, args.reference_cases)

    import numba

    print(machine_line(f"python benchmarks/bench_drg.py --cases {args.cases} --scheme {args.scheme} --tile "
                       f"{args.tile} --reference-cases {args.reference_cases}") + f" · numba {numba.__version__}")
    print()
    print("| step | cases | threads | seconds | cases/s | cases/s per core |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| cold start: import + scheme + compile, empty Numba and scheme caches (first call "
          f"{cold['first_call_s']:.2f} s) | 1 | | {cold['total_s']:.2f} | | |")
    print(f"| warm start: same, caches filled (first call {warm['first_call_s']:.2f} s) | 1 | | "
          f"{warm['total_s']:.2f} | | |")
    for threads, seconds, n in kernel:
        print(f"| kernel only, region tiled {args.tile}x | {n:,} | {threads} | {seconds:.2f} | {n / seconds:,.0f} | "
              f"{n / seconds / threads:,.0f} |")
    total = parquet["total_s"]
    print(f"| Parquet -> group_table (read {parquet['read_s']:.2f} s + encode/kernel/decode "
          f"{parquet['group_s']:.2f} s; peak RSS {parquet['peak_rss_mb']:,.0f} MB) | {parquet['rows']:,} | "
          f"{cores()} | {total:.2f} | {parquet['rows'] / total:,.0f} | {parquet['rows'] / total / cores():,.0f} |")
    ref_full = ref_s / ref_n * parquet["rows"]
    print(f"| reference grouper (plain Python), {ref_n:,} cases timed, extrapolated to {parquet['rows']:,} | "
          f"{parquet['rows']:,} | 1 | {ref_full:,.0f} (est.) | {ref_n / ref_s:,.0f} | {ref_n / ref_s:,.0f} |")
    print()
    print(f"group_table from Parquet is {ref_full / total:,.0f}x the reference's estimated time; "
          f"{parquet['ungroupable']:,} of {parquet['rows']:,} cases ungroupable.")


if __name__ == "__main__":
    main()
