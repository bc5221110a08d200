"""Monte Carlo projections (issue 20): a 5-year projection of a 1M-case region with 100 draws, the issue's target
<= 60 s on this machine, with its baselines measured in the same run.

    python benchmarks/bench_project.py [--cases 1000000] [--years 5] [--draws 100] [--scheduler processes]
                                       [--draw-volume]

The region is benchmarks/_work/region_N (as bench_load.py makes it), validated; a DIP catalogue is built from it
(threshold 200), budgets are 60% of each pool's cost, the policy scenarios/baseline.toml. The projection: volume
+3% and cost +4% a year (fixed), coding drift share uniform(0, 4%) a year, factor 1.1, the budget growing by a
normal(5%, 2%) truncated to [0, 10%] a year (drawn). With --draw-volume the volume growth is drawn too
(uniform(0, 6%)): every draw then builds its own years' case sets (nothing reused between draws). With --moves the
drift is moves between groups instead (`dipsim.projection.moves`): severity share uniform(0, 4%) a year (the
auxiliary catalogue examples/dip_auxiliary.toml's severity levels) and intensity share 1% a year with elasticity
0.5 to the point value's change (the group table and the aux table built once, before the timings).

Reported: run_chain alone on the base year (the floor of a settled year), one deterministic projection (each year's
case set built from the base year and settled), the draws (the first builds and caches the years' case sets, the
others reuse them), and the time per draw.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq

from _machine import arguments, best_of, machine_line
from bench_load import ensure_region

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--scheduler", help="Dask: 'processes', 'synchronous' or an address (default: in process)")
    parser.add_argument("--draw-volume", action="store_true", help="draw the volume growth too (no reuse)")
    parser.add_argument("--moves", action="store_true", help="severity and intensity moves instead of drift_factor")
    args = parser.parse_args()

    from dipsim.catalog import CatalogOptions, build_catalog
    from dipsim.grouping.dip import DipCatalog
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.io import load_cases
    from dipsim.payment.chain import CaseSet, run_chain
    from dipsim.policy import load_policy
    from dipsim.project import project, project_draws, projection_of
    from dipsim.region import budgets_from_cost

    region = ensure_region(args.cases, args.seed)
    cases = load_cases(region / "cases").accepted
    hospitals = pq.read_table(region / "hospitals.parquet")
    built = build_catalog(cases, CatalogOptions(threshold=200), names=False)
    grouped = group_dip(cases, DipCatalog(built.groups, built.options, "bench", built.keys))
    policy = load_policy(HERE.parent / "scenarios" / "baseline.toml").overlay(
        {"budget.total": budgets_from_cost(cases, 0.6)})
    volume = {"dist": "uniform", "min": 0.0, "max": 0.06} if args.draw_volume else 0.03
    data = {"projection": {"years": args.years, "seed": 1},
            "demand": {"volume_growth": volume, "cost_growth": 0.04},
            "behaviour": {"drift_share": {"dist": "uniform", "min": 0.0, "max": 0.04}, "drift_factor": 1.1},
            "budget": {"rule": "growth",
                       "growth": {"dist": "normal", "mean": 0.05, "sd": 0.02, "min": 0.0, "max": 0.1}}}
    groups = aux_factor = None
    if args.moves:
        from dipsim.auxiliary import auxiliary_table, load_auxiliary
        from dipsim.projection.moves import dip_group_table

        aux = load_auxiliary(HERE.parent / "examples" / "dip_auxiliary.toml")
        aux_table = auxiliary_table(cases, aux)
        aux_factor = aux_table["aux_factor"].to_numpy()
        groups = dip_group_table(grouped, DipCatalog(built.groups, built.options, "bench", built.keys), aux_table, aux)
        data["behaviour"] = {"severity_share": {"dist": "uniform", "min": 0.0, "max": 0.04},
                             "intensity_share": 0.01, "intensity_elasticity_pv": 0.5}
    spec = projection_of(data)

    case_set = CaseSet.of(cases)
    run_chain(case_set, grouped, hospitals, policy)  # compiled, warm
    chain_s = best_of(3, lambda: run_chain(case_set, grouped, hospitals, policy))
    start = time.perf_counter()
    project(cases, hospitals, policy, spec, grouped, aux_factor, groups=groups)
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    drawn = project_draws(cases, hospitals, policy, spec, grouped, args.draws, seed=20250101,
                          scheduler=args.scheduler, aux_factor=aux_factor, groups=groups)
    draws_s = time.perf_counter() - start
    settled = args.draws * (args.years + 1)
    engine = args.scheduler or "in process"
    print(machine_line(f"python benchmarks/bench_project.py --cases {args.cases} --years {args.years} --draws "
                       f"{args.draws}" + (f" --scheduler {args.scheduler}" if args.scheduler else "")
                       + (" --draw-volume" if args.draw_volume else "") + (" --moves" if args.moves else "")))
    print()
    print("| step | cases | settled years | seconds | per settled year |")
    print("|---|---:|---:|---:|---:|")
    print(f"| run_chain alone, the base year (best of 3) | {cases.num_rows:,} | 1 | {chain_s:.3f} | {chain_s:.3f} |")
    print(f"| one deterministic projection, base year + {args.years} years | {cases.num_rows:,} | {args.years + 1} | "
          f"{one_s:.2f} | {one_s / (args.years + 1):.3f} |")
    print(f"| {args.draws} draws ({engine}{', volume drawn' if args.draw_volume else ''}), bands | "
          f"{cases.num_rows:,} | {settled} | {draws_s:.2f} | {draws_s / settled:.3f} |")
    print()
    print(f"{draws_s / args.draws:.3f} s a draw; target (issue 20): {args.draws} draws <= 60 s: "
          f"{'met' if draws_s <= 60 else 'NOT met'}; {len(drawn.bands):,} band rows")


if __name__ == "__main__":
    main()
