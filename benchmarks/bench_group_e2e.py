"""`dipsim group` end to end (issue 17), beside its physical limit: read, validate, group and write 1M raw cases,
each run a fresh process, timed with the same clock as a bare pyarrow read of the columns grouping needs plus a
write of the output columns.

    python benchmarks/bench_group_e2e.py --cases 1000000 [--repeats 3]

Inputs: the region's 12 monthly Parquet partitions (benchmarks/_work/region_N/cases), the same cases in one Parquet
file (`cases_one.parquet`, made once) and the GB18030 CSV with Chinese headers of bench_load.py. The baseline reads
the same file(s) with `pyarrow.parquet.read_table` (the columns the CHS-DRG grouper reads) and writes a table shaped
like the group output (case id, DRG, ADRG, MDC, CC level, reason) with the same writer settings; for the CSV, a bare
`pyarrow.csv.read_csv` of the file as GB18030 stands in for the read. Wall seconds and peak RSS of the child.
"""

from __future__ import annotations

from pathlib import Path

from _machine import arguments, child, machine_line
from bench_load import ensure_csv, ensure_region

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
columns = ["case_id", "diagnoses", "procedures", "age_years", "age_days", "birth_weight_g", "sex", "los_days",
           "discharge_mode", "ventilation_hours"]
if source.endswith(".csv"):
    table = pacsv.read_csv(source, read_options=pacsv.ReadOptions(encoding="gb18030"))
    ids = table.column(0)
else:
    table = pq.read_table(source, columns=columns)
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


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    region = ensure_region(args.cases, args.seed)
    inputs = [("Parquet, 12 monthly partitions", region / "cases"), ("Parquet, one file", ensure_one_file(region)),
              ("CSV GB18030, Chinese headers", ensure_csv(region))]
    out = region / "_group_out.parquet"
    print(machine_line(f"python benchmarks/bench_group_e2e.py --cases {args.cases} --repeats {args.repeats}"))
    print()
    print(f"| input | `dipsim group` s (best of {args.repeats}) | peak RSS MB | bare read + write s | ratio | "
          "cases/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, path in inputs:
        runs = [child(GROUP, str(path), str(out)) for _ in range(args.repeats)]
        limit = min(child(BASELINE, str(path), str(out))["seconds"]
                    for _ in range(args.repeats))
        best = min(runs, key=lambda r: r["seconds"])
        print(f"| {label} | {best['seconds']:.2f} | {max(r['peak_rss_mb'] for r in runs):,.0f} | {limit:.2f} | "
              f"{best['seconds'] / limit:.1f}x | {args.cases / best['seconds']:,.0f} |")
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
