"""DIP speed (issue 4): catalogue building and grouping.

    python benchmarks/bench_dip.py --cases 1000000 [--tile 10] [--repeats 3]

Synthesises a region (or reuses benchmarks/_work/region_N, as bench_load.py does) and reports:

1. catalogue build of the region's accepted cases in process (`build_catalog`, cases already loaded), best of
   --repeats; and `dipsim catalog build` in a fresh process (read + validate + build + write), wall and peak RSS;
2. the DIP kernel (`dip_kernel.match_cases`) on the region's cases matched against a catalogue built from its first
   20% without their keys (so many keys are new and go through the best-match search), tiled --tile times, one
   thread and all threads;
3. `group_dip_table` of the region against its own catalogue (keys, kernel, decode), best of --repeats;
4. the kernel's cold start in a fresh process with an empty NUMBA_CACHE_DIR.

Prints markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import arguments, best_of, child, cores, machine_line, tile_csr
from bench_load import ensure_region

COLD = r"""
import json, time
start = time.perf_counter()
import pyarrow as pa
from dipsim.grouping.dip import DipCatalog, group_dip_table
from dipsim.catalog import build_catalog, CatalogOptions
imported = time.perf_counter()
cases = pa.table({"case_id": ["1", "2"], "diagnoses": pa.array([["J18.900"], ["J18.900"]], pa.list_(pa.string())),
                  "total_cost": [1000.0, 2000.0]})
built = build_catalog(cases, CatalogOptions(threshold=1), names=False)
out = group_dip_table(cases, DipCatalog(built.groups, built.options, "cold", built.keys))
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_call_s": done - imported, "total_s": done - start}))
"""


def kernel_arrays(cases, catalog, times: int) -> tuple:
    """The kernel's inputs for `cases` against `catalog`, tiled `times` times."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from dipsim.catalog import key_parts
    from dipsim.grouping import dip

    c = dip._compile(catalog)
    parts = key_parts(cases, catalog.options)

    def index(values, vocabulary):
        return pc.fill_null(pc.index_in(values, value_set=vocabulary), -1).to_numpy(zero_copy_only=False)

    comp = index(parts.comprehensive, c.comprehensive_ids)
    px, px_offsets = dip._encode_sets(pc.split_pattern(parts.procedures, "+"), c.procedures)
    cost = pc.fill_null(pc.cast(cases["total_cost"], pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    px, offsets = tile_csr(px, px_offsets, times)
    n = cases.num_rows * times
    return (np.tile(index(parts.key, c.core_ids).astype(np.int32), times),
            np.tile(np.where(comp >= 0, comp + len(c.core_ids), -1).astype(np.int32), times),
            np.zeros(n, dtype=bool), np.tile(index(parts.diagnosis, c.diagnoses).astype(np.int32), times),
            px, offsets, np.tile(cost, times), c.diag_offsets, c.diag_groups, c.group_px,
            c.group_px_offsets, c.group_mean, c.group_points, np.empty(n, np.int32), np.empty(n, np.int8))


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--tile", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import numba

    from dipsim.catalog import CatalogOptions, build_catalog
    from dipsim.grouping import dip_kernel
    from dipsim.grouping.dip import DipCatalog, group_dip_table
    from dipsim.io import load_cases

    region = ensure_region(args.cases, args.seed)
    cases = load_cases(region / "cases").accepted
    build_s = best_of(args.repeats, lambda: build_catalog(cases, CatalogOptions()))
    built = build_catalog(cases, CatalogOptions())

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "dipsim.cli", "catalog", "build",
                               str(region / "cases"), "-o", str(Path(tmp) / "cat"), "-q"],
                              capture_output=True, text=True, check=True)
        cli_s = time.perf_counter() - start
        cli_rss_mb = int(done.stderr.strip().splitlines()[-1]) / 1024

    part = build_catalog(cases.slice(0, cases.num_rows // 5), CatalogOptions(), names=False)
    arrays = kernel_arrays(cases, DipCatalog(part.groups, part.options, "bench", None), args.tile)
    dip_kernel.match_cases(*arrays)
    match = np.bincount(arrays[-1], minlength=4)
    kernel = []
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        kernel.append((threads, best_of(args.repeats, lambda: dip_kernel.match_cases(*arrays))))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    n_kernel = len(arrays[0])

    own = DipCatalog(built.groups, built.options, "own", built.keys)
    group_dip_table(cases.slice(0, 100), own)
    group_s = best_of(args.repeats, lambda: group_dip_table(cases, own))
    with tempfile.TemporaryDirectory() as cache:
        cold = child(COLD, env={"NUMBA_CACHE_DIR": cache})

    n, n_cores = cases.num_rows, cores()
    print(machine_line(f"python benchmarks/bench_dip.py --cases {args.cases} --tile {args.tile} "
                       f"--repeats {args.repeats}") + f" · numba {numba.__version__}")
    print()
    print("| step | cases | threads | seconds | cases/s | cases/s per core |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| catalogue build (`build_catalog`, cases loaded; {built.groups.num_rows:,} groups, core coverage "
          f"{built.coverage:.1%}) | {n:,} | 1 | {build_s:.2f} | {n / build_s:,.0f} | {n / build_s:,.0f} |")
    print(f"| `dipsim catalog build` (read + validate + build + write; peak RSS {cli_rss_mb:,.0f} MB) | {n:,} | "
          f"{n_cores} | {cli_s:.2f} | {n / cli_s:,.0f} | {n / cli_s / n_cores:,.0f} |")
    for threads, seconds in kernel:
        print(f"| DIP kernel, {args.tile}x tiled, against a catalogue of the first 20% (exact {match[1]:,}, best "
              f"{match[2]:,}, comprehensive {match[3]:,}, none {match[0]:,}) | {n_kernel:,} | {threads} | "
              f"{seconds:.3f} | {n_kernel / seconds:,.0f} | {n_kernel / seconds / threads:,.0f} |")
    print(f"| `group_dip_table` against its own catalogue (keys + kernel + decode) | {n:,} | {n_cores} | "
          f"{group_s:.2f} | {n / group_s:,.0f} | {n / group_s / n_cores:,.0f} |")
    print(f"| cold start: import + tiny build + first grouping, empty NUMBA_CACHE_DIR (first call "
          f"{cold['first_call_s']:.2f} s) | 2 | | {cold['total_s']:.2f} | | |")


if __name__ == "__main__":
    main()
