"""Load throughput: read + map headers + validate, in cases/s and peak RSS, for Parquet and GB18030 CSV.

    python benchmarks/bench_load.py --cases 1000000

Synthesises a region (or reuses benchmarks/_work/region_N), writes one month-free copy of its cases as a
GB18030 CSV with Chinese headers (the way bureaus export them), then times `dipsim.io.load_cases` on the Parquet
folder and on the CSV, each in a fresh child process so that peak RSS is the load's own, beside a bare pyarrow
read of the same input in a fresh process (the physical limit).
Prints markdown rows for benchmarks/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

from _machine import arguments, child, machine_line

HERE = Path(__file__).resolve().parent
CHILD = r"""
import json, resource, sys, time
from dipsim.io import load_cases
start = time.perf_counter()
result = load_cases(sys.argv[1])
elapsed = time.perf_counter() - start
print(json.dumps({"rows": result.rows_read, "accepted": result.n_accepted, "rejected": result.n_rejected,
                  "warnings": result.n_warnings, "seconds": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# The physical limit beside each load (issue 17): a bare pyarrow read of the same input, whole, in a fresh process.
BARE = r"""
import json, resource, sys, time
import pyarrow.csv as pacsv, pyarrow.parquet as pq
start = time.perf_counter()  # after the imports, as the load's own timing
path = sys.argv[1]
if path.endswith(".csv"):
    encoding = "gb18030" if "gb18030" in path else "utf8"
    table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=encoding))
else:
    table = pq.read_table(path)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

# Chinese headers of a typical 结算清单 export, for the CSV copy.
CSV_HEADERS = {
    "case_id": "病案号", "patient_id": "人员编号", "hospital_id": "定点医疗机构编码", "pool": "统筹区",
    "insurance_type": "险种类型", "admission_date": "入院日期", "discharge_date": "出院日期", "los_days": "住院天数",
    "age_years": "年龄", "age_days": "新生儿年龄天", "birth_weight_g": "新生儿出生体重", "sex": "性别",
    "discharge_mode": "离院方式", "diagnoses": "诊断编码", "procedures": "手术操作编码",
    "ventilation_hours": "有创呼吸机使用时间", "total_cost": "医疗总费用", "fund_paid": "统筹基金支付",
    "patient_paid": "个人支付", "tcm_cost": "中医治疗费用", "tcm_treated": "中医治疗标识",
}


def ensure_region(cases: int, seed: int) -> Path:
    region = HERE / "_work" / f"region_{cases}"
    if not (region / "manifest.json").exists():
        from dipsim.synth import synthesize_region

        synthesize_region(region, cases=cases, seed=seed)
    return region


def ensure_csv(region: Path) -> Path:
    path = region / "cases_gb18030.csv"
    if path.exists():
        return path
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    table = pads.dataset(region / "cases", format="parquet", partitioning="hive").to_table(
        columns=list(CSV_HEADERS))
    frame = table.to_pandas()
    for name in ("diagnoses", "procedures"):
        frame[name] = pc.binary_join(table[name], ",").to_pandas()
    frame = frame.rename(columns=CSV_HEADERS)
    frame.to_csv(path, index=False, encoding="gb18030")
    return path


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    region = ensure_region(args.cases, args.seed)
    csv_path = ensure_csv(region)
    print(machine_line(f"python benchmarks/bench_load.py --cases {args.cases}"))
    print("| input | rows | accepted | rejected | seconds | cases/s | peak RSS MB | bare pyarrow read s | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    inputs = [("Parquet, 12 monthly partitions", region / "cases"),
              (f"CSV GB18030, Chinese headers ({csv_path.stat().st_size / 1e6:.0f} MB)", csv_path)]
    real = HERE.parent.parent / "shared" / "reference" / "cases"  # the real files, when this checkout has them
    inputs += [(f"real cases `{p.name}` (UTF-8)", p) for p in sorted(real.glob("*.csv"))]
    for label, path in inputs:
        r = child(CHILD, str(path))
        bare = child(BARE, str(path))["seconds"]
        print(f"| {label} | {r['rows']:,} | {r['accepted']:,} | {r['rejected']:,} | {r['seconds']:.2f} | "
              f"{r['rows'] / r['seconds']:,.0f} | {r['peak_rss_mb']:,.0f} | {bare:.2f} | {r['seconds'] / bare:.1f}x |")


if __name__ == "__main__":
    main()
