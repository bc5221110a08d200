"""Monte Carlo projections (issue 20): a 5-year projection of a 1M-case region with 100 draws, the issue's target
<= 60 s on this machine, with its baselines measured in the same run.

    python benchmarks/bench_project.py [--cases 1000000] [--years 5] [--draws 100] [--scheduler processes]
                                       [--case fixed|drawn|both]

The region is benchmarks/_work/region_N (as bench_load.py makes it), validated; a DIP catalogue is built from it
(threshold 200), budgets are 60% of each pool's cost, the policy scenarios/baseline.toml. The projection: coding
drift share uniform(0, 4%) a year, factor 1.1, the budget growing by a normal(5%, 2%) truncated to [0, 10%] a year
(drawn), and
- case "fixed": volume +3% and cost +4% a year, fixed: the first draw builds the years' case sets, the others
  reuse them (`project`'s cache);
- case "drawn": volume growth uniform(0, 6%) and cost growth uniform(2%, 6%) drawn too: every draw builds its own
  years' case sets from the base year (`dipsim.projection.years`: index arrays, nothing reused between draws);
- case "moves" (only when asked, --case moves): as "fixed" but the drift is moves between groups
  (`dipsim.projection.moves`): severity share uniform(0, 4%) a year (the auxiliary catalogue
  examples/dip_auxiliary.toml's severity levels) and intensity share 1% a year with elasticity 0.5 to the point
  value's change (the group table and the aux table built once, before the timings).

The projection kernels' (`dipsim.projection.kernels`, `payment.frame_kernel`) Numba compile time is measured
apart, in a fresh process with an empty cache, then with the cache it wrote.

Reported: run_chain alone on the base year (the floor of a settled year); building the last year's case set from
the base year as index arrays (`year_case_set`), against the baseline of making the year's table and reading it
(`CaseSet.of(year_table(...))`, what every projected year did before); one deterministic projection; the draws of
each case: the cold start (the first draw: the base year's case set, drift ranks and settlement), the others, the
time per draw. Wall seconds, and the process's CPU seconds (all threads) next to them: on a shared machine the wall
time includes waiting for a core.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pyarrow.parquet as pq

from _machine import arguments, best_of, machine_line
from bench_load import ensure_region

HERE = Path(__file__).resolve().parent
CASES = ("fixed", "drawn")


class Clock:
    """Wall and CPU seconds since the start (`lap`: since the last lap; `tick`, a progress callback, keeps them)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.laps: list[tuple[float, float]] = []

    def tick(self, done: int, total: int) -> None:
        self.laps.append(self.lap())

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


COMPILE = """
import time
import numpy as np
t = time.perf_counter()
from dipsim.payment.frame_kernel import taken_rows
from dipsim.projection import kernels
rows, x, n = np.zeros(2, np.int64), np.ones(2), np.zeros(2, np.int64)
kernels.take_grown(x, rows, 1.1)
kernels.take_scaled_where(x, rows, np.zeros(2, bool), 1.1); kernels.take_looked_up(n, rows, n, 0, -1)
u = n.astype(np.uint64)
kernels.take_copy_ranks(u, rows, n); kernels.lowest_ranks(u, np.array([0, 2]), n[:1])
taken_rows(n, n, rows, x, x, 1, 1)
print(time.perf_counter() - t)
"""


def compile_times() -> tuple[float, float]:
    """Seconds to import and first call the projection's kernels in a fresh process with an empty Numba cache
    (they compile), then again with the cache that run wrote."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "NUMBA_CACHE_DIR": folder, "PYTHONPATH": str(HERE.parent)}
        return tuple(float(subprocess.run([sys.executable, "-c", COMPILE], env=env, check=True, capture_output=True,
                                          text=True).stdout) for _ in range(2))  # type: ignore[return-value]


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--scheduler", help="Dask: 'processes', 'synchronous' or an address (default: in process)")
    parser.add_argument("--case", choices=[*CASES, "moves", "both"], default="both")
    args = parser.parse_args()
    compile_cold, compile_cached = compile_times()

    from dipsim.catalog import CatalogOptions, build_catalog
    from dipsim.grouping.dip import DipCatalog
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.io import load_cases
    from dipsim.payment.chain import CaseSet, run_chain
    from dipsim.policy import load_policy
    from dipsim.project import project, project_draws, projection_of, year_rows, year_table
    from dipsim.projection.years import year_case_set
    from dipsim.region import budgets_from_cost

    region = ensure_region(args.cases, args.seed)
    cases = load_cases(region / "cases").accepted
    hospitals = pq.read_table(region / "hospitals.parquet")
    built = build_catalog(cases, CatalogOptions(threshold=200), names=False)
    grouped = group_dip(cases, DipCatalog(built.groups, built.options, "bench", built.keys))
    policy = load_policy(HERE.parent / "scenarios" / "baseline.toml").overlay(
        {"budget.total": budgets_from_cost(cases, 0.6)})
    growth = {"fixed": {"volume_growth": 0.03, "cost_growth": 0.04},
              "drawn": {"volume_growth": {"dist": "uniform", "min": 0.0, "max": 0.06},
                        "cost_growth": {"dist": "uniform", "min": 0.02, "max": 0.06}}}
    specs = {case: projection_of(
        {"projection": {"years": args.years, "seed": 1}, "demand": growth[case],
         "behaviour": {"drift_share": {"dist": "uniform", "min": 0.0, "max": 0.04}, "drift_factor": 1.1},
         "budget": {"rule": "growth",
                    "growth": {"dist": "normal", "mean": 0.05, "sd": 0.02, "min": 0.0, "max": 0.1}}})
        for case in CASES}
    groups = aux_factor = None
    if args.case == "moves":
        from dipsim.auxiliary import auxiliary_table, load_auxiliary
        from dipsim.projection.moves import dip_group_table

        aux = load_auxiliary(HERE.parent / "examples" / "dip_auxiliary.toml")
        aux_table = auxiliary_table(cases, aux)
        aux_factor = aux_table["aux_factor"].to_numpy()
        groups = dip_group_table(grouped, DipCatalog(built.groups, built.options, "bench", built.keys), aux_table, aux)
        specs["moves"] = projection_of(
            {"projection": {"years": args.years, "seed": 1}, "demand": growth["fixed"],
             "behaviour": {"severity_share": {"dist": "uniform", "min": 0.0, "max": 0.04}, "intensity_share": 0.01,
                           "intensity_elasticity_pv": 0.5},
             "budget": {"rule": "growth",
                        "growth": {"dist": "normal", "mean": 0.05, "sd": 0.02, "min": 0.0, "max": 0.1}}})

    case_set = CaseSet.of(cases)
    run_chain(case_set, grouped, hospitals, policy)  # compiled, warm
    chain_s = best_of(3, lambda: run_chain(case_set, grouped, hospitals, policy))
    spec = specs["fixed"]
    info = {r.hospital_id: (r.level, r.type) for r in
            hospitals.select(["hospital_id", "level", "type"]).to_pandas().itertuples()}
    made = year_rows(case_set.hospitals.codes, case_set.hospitals.ids, info, spec, args.years)
    factor = math.prod(1 + g for g in spec.cost_growth)
    table_s = best_of(3, lambda: CaseSet.of(year_table(cases, made, args.years, factor)))
    arrays_s = best_of(3, lambda: year_case_set(case_set, made.rows, args.years, factor,
                                                lambda: year_table(cases, made, args.years, factor)))
    clock = Clock()
    project(cases, hospitals, policy, spec, grouped)
    one = clock.lap()
    draws = {}
    for case in CASES if args.case == "both" else [args.case]:
        clock = Clock()
        drawn = project_draws(cases, hospitals, policy, specs[case], grouped, args.draws, seed=20250101,
                              scheduler=args.scheduler, progress=clock.tick, aux_factor=aux_factor, groups=groups)
        clock.tick(args.draws, args.draws)  # the bands
        draws[case] = (clock.laps, len(drawn.bands))
    engine = args.scheduler or "in process"
    print(machine_line(f"python benchmarks/bench_project.py --cases {args.cases} --years {args.years} --draws "
                       f"{args.draws}" + (f" --scheduler {args.scheduler}" if args.scheduler else "")
                       + (f" --case {args.case}" if args.case != "both" else "")))
    print()
    print("| step | cases | settled years | seconds | CPU seconds | per settled year |")
    print("|---|---:|---:|---:|---:|---:|")
    n, last = f"{cases.num_rows:,}", f"{len(made.rows):,}"
    print(f"| run_chain alone, the base year (best of 3) | {n} | 1 | {chain_s:.3f} | | {chain_s:.3f} |")
    print(f"| year {args.years}'s case set: its table made and read, the baseline (best of 3) | {last} | | "
          f"{table_s:.3f} | | |")
    print(f"| year {args.years}'s case set: index arrays into the base year (best of 3) | {last} | | "
          f"{arrays_s:.3f} | | |")
    print(f"| one deterministic projection, base year + {args.years} years | {n} | {args.years + 1} | {one[0]:.2f} | "
          f"{one[1]:.2f} | {one[0] / (args.years + 1):.3f} |")
    settled = args.draws * (args.years + 1)
    for case, (laps, _) in draws.items():
        what = f"{engine}, {'volume and cost drawn' if case == 'drawn' else 'volume and cost fixed'}" + \
            (", moves between groups" if case == "moves" else "")
        wall, cpu = sum(w for w, _ in laps), sum(c for _, c in laps)
        if args.scheduler is None:  # the draws one by one in this process: the first apart
            rest = laps[1:-1]
            print(f"| {case}: the first draw, cold ({what}) | {n} | {args.years + 1} | {laps[0][0]:.2f} | "
                  f"{laps[0][1]:.2f} | {laps[0][0] / (args.years + 1):.3f} |")
            print(f"| {case}: the other {len(rest)} draws | {n} | {len(rest) * (args.years + 1)} | "
                  f"{sum(w for w, _ in rest):.2f} | {sum(c for _, c in rest):.2f} | "
                  f"{sum(w for w, _ in rest) / max(len(rest) * (args.years + 1), 1):.3f} |")
            print(f"| {case}: the bands | | | {laps[-1][0]:.2f} | {laps[-1][1]:.2f} | |")
        print(f"| **{case}: {args.draws} draws ({what}), with bands** | {n} | {settled} | **{wall:.2f}** | {cpu:.2f} | "
              f"{wall / settled:.3f} |")
    print()
    print(f"year {args.years}'s case set: {table_s / arrays_s:.1f}x faster as index arrays than as a table")
    print(f"projection kernels' Numba compile, cold start (empty cache): {compile_cold:.2f} s; from the cache: "
          f"{compile_cached:.2f} s")
    for case, (laps, bands) in draws.items():
        wall = sum(w for w, _ in laps)
        print(f"{case}: {wall / args.draws:.3f} s a draw; target (issue 20): {args.draws} draws <= 60 s: "
              f"{'met' if wall <= 60 else 'NOT met'}; {bands:,} band rows")


if __name__ == "__main__":
    main()
