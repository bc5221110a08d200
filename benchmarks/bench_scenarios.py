"""A sweep of many scenarios over one grouped case set (issue 6): grouping once, then price + solve per variant.

    python benchmarks/bench_scenarios.py [--cases 1000000] [--variants 1000]

The region is benchmarks/_work/region_N (as bench_load.py makes it), validated; a DIP catalogue is built from it
(threshold 200, so a quarter of the cases are in comprehensive groups); budgets are 60% of each pool's cost. The
sweep is a grid over the TCM hospital bonus (0-19%, 20 values) and the high-outlier ratio (1.5 upwards in steps of
0.05) of scenarios/baseline.toml, `--variants` variants in all. Reports the grouping (DIP keys + kernel) once, the
whole sweep, and the time per variant.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq

from _machine import arguments, machine_line
from bench_load import ensure_region

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--variants", type=int, default=1000)
    args = parser.parse_args()

    from dipsim.catalog import CatalogOptions, build_catalog
    from dipsim.grouping.dip import DipCatalog
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.io import load_cases
    from dipsim.policy import load_policy
    from dipsim.region import budgets_from_cost
    from dipsim.scenarios import ScenarioSet, Variant, run_scenarios

    region = ensure_region(args.cases, args.seed)
    cases = load_cases(region / "cases").accepted
    hospitals = pq.read_table(region / "hospitals.parquet")
    built = build_catalog(cases, CatalogOptions(threshold=200), names=False)
    start = time.perf_counter()
    grouped = group_dip(cases, DipCatalog(built.groups, built.options, "bench", built.keys))
    group_s = time.perf_counter() - start
    budgets = budgets_from_cost(cases, 0.6)
    baseline = load_policy(HERE.parent / "scenarios" / "baseline.toml").overlay({"budget.total": budgets})
    variants = [Variant(f"v{i}", {"coefficient.tcm_hospital_bonus": (i % 20) / 100,
                                  "outlier.high_ratio": round(1.5 + (i // 20) * 0.05, 2)})
                for i in range(args.variants)]
    scenarios = ScenarioSet("sweep", "sweep", baseline, variants, "bench")
    start = time.perf_counter()
    results = run_scenarios(cases, hospitals, scenarios, grouped)
    sweep_s = time.perf_counter() - start
    runs = args.variants + 1
    print(machine_line(f"python benchmarks/bench_scenarios.py --cases {args.cases} --variants {args.variants}"))
    print()
    print("| step | cases | scenarios | seconds | per scenario |")
    print("|---|---:|---:|---:|---:|")
    print(f"| DIP grouping, once (keys + kernel + decode) | {cases.num_rows:,} | | {group_s:.2f} | |")
    print(f"| sweep: price + solve + compare, baseline and {args.variants:,} variants | {cases.num_rows:,} | "
          f"{runs:,} | {sweep_s:.1f} | {sweep_s / runs * 1000:.0f} ms |")
    print()
    print(f"{results.hospitals['hospital_id'].nunique():,} hospitals x {runs:,} scenarios = "
          f"{len(results.hospitals):,} rows compared with the baseline")


if __name__ == "__main__":
    main()
