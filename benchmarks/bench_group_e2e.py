"""`dipsim group` end to end (issue 17), beside its physical limit: read, validate, group and write 1M raw cases,
each run a fresh process, timed with the same clock as a bare pyarrow read of the same columns plus a write of the
output columns.

    python benchmarks/bench_group_e2e.py --cases 1000000 [--repeats 3]

Inputs: the region's 12 monthly Parquet partitions (benchmarks/_work/region_N/cases), the same cases in one Parquet
file (`cases_one.parquet`, made once), the GB18030 CSV with Chinese headers of bench_load.py, and the output of
`dipsim validate` of the one file (timed too). The Parquet baseline reads the columns `dipsim group` reads
(`GROUPING_INPUT_COLUMNS`), the code lists dictionary-encoded as dipsim reads them, with
`pyarrow.parquet.read_table`, and writes a table shaped like the group output (case id, DRG, ADRG, MDC, CC level,
reason) with the same writer settings; for the CSV, a bare `pyarrow.csv.read_csv` of the file as GB18030 stands in
for the read. A last row groups a 100-case file: the fixed cost of a run (imports, loading the cached kernel and the
code dictionaries). Wall seconds of the whole child process as the parent sees it (interpreter start and exit
included: what a user waits for), and its peak RSS; then the one file grouped in a process that has grouped
once before (what a notebook or a server pays).
"""

from __future__ import annotations

from pathlib import Path

from _machine import arguments, child, machine_line
from bench_load import ensure_csv, ensure_region

WARM = r"""
import json, sys, time
from dipsim.cli import main
main(["group", sys.argv[3], "--scheme", "chs-drg-1.1", "-o", sys.argv[2], "-q"])  # imports, kernel, dictionaries
start = time.perf_counter()
code = main(["group", sys.argv[1], "--scheme", "chs-drg-1.1", "-o", sys.argv[2], "-q"])
elapsed = time.perf_counter() - start
assert code == 0, code
print(json.dumps({"seconds": elapsed}))
"""

VALIDATE = r"""
import json, resource, shutil, sys, time
shutil.rmtree(sys.argv[2], ignore_errors=True)
start = time.perf_counter()
from dipsim.cli import main
code = main(["validate", sys.argv[1], "-o", sys.argv[2], "-q"])
elapsed = time.perf_counter() - start
assert code == 0, code
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

GROUP = r"""
import json, resource, sys, time
start = time.perf_counter()
from dipsim.cli import main
code = main(["group", sys.argv[1], "--scheme", "chs-drg-1.1", "-o", sys.argv[2], "-q"])
elapsed = time.perf_counter() - start
assert code == 0, code
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = r"""
import json, resource, sys, time
start = time.perf_counter()
import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pacsv, pyarrow.parquet as pq
source = sys.argv[1]
columns = ["case_id", "diagnoses", "procedures", "sex", "age_years", "age_days", "birth_weight_g",
           "ventilation_hours", "los_days", "admission_date", "discharge_date"]  # GROUPING_INPUT_COLUMNS
if source.endswith(".csv"):
    table = pacsv.read_csv(source, read_options=pacsv.ReadOptions(encoding="gb18030"))
    ids = table.column(0)
else:
    table = pq.read_table(source, columns=columns,
                          read_dictionary=["diagnoses.list.element", "procedures.list.element"])
    ids = table["case_id"]
n = table.num_rows
labels = pa.array(["FR29", "GD19", "ES31"] * 4)
pick = pa.array(np.arange(n) % 12)
out = pa.table({"case_id": ids, "drg": labels.take(pick), "adrg": labels.take(pick), "mdc": labels.take(pick),
                "cc_level": pa.array(np.zeros(n, np.int8)), "reason": labels.take(pick)})
pq.write_table(out, sys.argv[2], compression="zstd")
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def ensure_one_file(region: Path) -> Path:
    """The region's partitions as one Parquet file (the layout of one big export)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    path = region / "cases_one.parquet"
    if not path.exists():
        pq.write_table(ds.dataset(region / "cases", format="parquet").to_table(), path, compression="zstd")
    return path


def ensure_small(region: Path, one: Path) -> Path:
    """The first 100 cases of the one file: a run whose time is the fixed cost."""
    import pyarrow.parquet as pq

    path = region / "cases_100.parquet"
    if not path.exists():
        pq.write_table(pq.read_table(one).slice(0, 100), path)
    return path


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    region = ensure_region(args.cases, args.seed)
    one = ensure_one_file(region)
    validated = region / "_validated"
    print(machine_line(f"python benchmarks/bench_group_e2e.py --cases {args.cases} --repeats {args.repeats}"))
    print()
    runs = [child(VALIDATE, str(one), str(validated)) for _ in range(args.repeats)]
    best = min(runs, key=lambda r: r["process_seconds"])
    print(f"`dipsim validate` of the one file: {best['process_seconds']:.2f} s (best of {args.repeats}), "
          f"peak RSS {max(r['peak_rss_mb'] for r in runs):,.0f} MB")
    print()
    inputs = [("Parquet, 12 monthly partitions", region / "cases", region / "cases"),
              ("Parquet, one file", one, one),
              ("`dipsim validate` output (accepted/)", validated / "accepted", one),
              ("CSV GB18030, Chinese headers", ensure_csv(region), ensure_csv(region)),
              ("Parquet, 100 cases (fixed cost)", ensure_small(region, one), ensure_small(region, one))]
    out = region / "_group_out.parquet"
    print(f"| input | `dipsim group` s (best of {args.repeats}) | peak RSS MB | bare read + write s | ratio | "
          "cases/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, path, bare in inputs:
        runs, limits = [], []
        for _ in range(args.repeats):  # alternating, so that a busy spell of the machine hits both
            runs.append(child(GROUP, str(path), str(out)))
            limits.append(child(BASELINE, str(bare), str(out))["process_seconds"])
        best, limit = min(runs, key=lambda r: r["process_seconds"]), min(limits)
        cases = 100 if "100 cases" in label else args.cases
        print(f"| {label} | {best['process_seconds']:.2f} | {max(r['peak_rss_mb'] for r in runs):,.0f} | "
              f"{limit:.2f} | {best['process_seconds'] / limit:.1f}x | {cases / best['process_seconds']:,.0f} |")
    warm = min(child(WARM, str(one), str(out), str(ensure_small(region, one)))["seconds"]
               for _ in range(args.repeats))
    print()
    print(f"The one file again, in a process that has grouped once already (a notebook, a server): {warm:.2f} s, "
          f"{args.cases / warm:,.0f} cases/s.")
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
