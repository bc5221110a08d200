"""Pricing and the point-value solver (issue 5), beside a plain pandas implementation of the same rules.

    python benchmarks/bench_settle.py [--cases 1000000] [--hospitals 500] [--pools 4] [--repeats 5]

A random region (seeded): group points, group standard costs, costs, patient payments, hospitals in 7 levels with
some TCM hospitals, cases spread over the pools, and a budget per pool of 60% of its cost; settlement bands on.

1. the payment chain (`payment.chain.run_chain`, as `dipsim settle` runs it once the cases are read and grouped)
   against a pandas version: outlier factors with `Series.where`, coefficients by `merge`, a `groupby` per hospital
   and pool, and the point value by `scipy.optimize.brentq` on the banded payments (xtol 1e-12 relative), then fen
   by the same largest-remainder step;
2. the solve alone for all pools: `budget.settle_pool` against brentq on the same hospital sums.
Both give the same point values (checked to 1e-9 relative) before anything is timed.

    python benchmarks/bench_settle.py --end-to-end [--cases 1000000] [--hospitals 500] [--rounds 3] [--base TREE]

instead times `dipsim settle` end to end (issue 17), each run a fresh process, warm (page cache, Numba caches): a
synthetic region of --cases raw cases in --hospitals hospitals (benchmarks/_work/region_N_hH, `dipsim synth`, seed
--seed) in 12 monthly Parquet partitions, under scenarios/baseline.toml (DIP) with the region's own catalogue
(`dipsim catalog build` of the same cases) and --budget-share 0.6. Each run reports its stages (startup and
imports, load and validation, the checks and the DIP grouping (which may run side by side), the chain, the
outputs: case table, cases.parquet, CSVs, manifest) and peak RSS. With --base, a checkout of another commit
(`git worktree add TREE COMMIT`) runs alternately with this tree, each tree with its own PYTHONPATH, and both
outputs must agree (cases.parquet equal, the CSVs byte for byte). Best of --rounds by total wall, the stages of that
run. Beside them, in the same session, the physical limit: a bare pyarrow read of the partitions plus a write of
the case table (25 columns).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.optimize import brentq

from dipsim.budget import SettlementBands, hospital_payment, settle_pool
from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.money import largest_remainder, to_fen
from dipsim.payment.chain import CaseSet, run_chain
from dipsim.policy import Policy

from _machine import arguments, best_of, child, machine_line

LEVELS = ("三级甲等", "三级乙等", "三级", "二级甲等", "二级乙等", "二级", "一级")
COEFFICIENTS = {"三级甲等": 1.0, "三级乙等": 0.944, "三级": 0.944, "二级甲等": 0.889, "二级乙等": 0.889,
                "二级": 0.889, "一级": 0.677}
BANDS = SettlementBands(1.1, 0.5, 0.9, 0.5)


def region(n: int, n_hospitals: int, n_pools: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    hospital_ids = np.array([f"H{i:04d}" for i in range(n_hospitals)], dtype=object)
    hospitals = pa.table({"hospital_id": hospital_ids, "level": rng.choice(LEVELS, n_hospitals),
                          "type": rng.choice(["综合", "中医", "专科"], n_hospitals, p=[0.8, 0.1, 0.1]),
                          "coefficient_override": pa.nulls(n_hospitals, pa.float64())})
    standard = rng.lognormal(9, 0.8, n)
    cases = {
        "hospital_id": hospital_ids[rng.integers(0, n_hospitals, n)],
        "pool": np.array([f"P{i}" for i in range(n_pools)], dtype=object)[rng.integers(0, n_pools, n)],
        "group_points": standard / 10,
        "standard_cost": standard,
        "cost": standard * rng.lognormal(0, 0.5, n),
    }
    cases["patient_paid"] = cases["cost"] * 0.3
    budgets = {p: round(float(cases["cost"][cases["pool"] == p].sum()) * 0.6, 2) for p in sorted(set(cases["pool"]))}
    policy = Policy(values={}).overlay({"coefficient.level": COEFFICIENTS, "coefficient.tcm_hospital_bonus": 0.1,
                                        "bands.in_effect": True, "budget.total": budgets})
    return cases, hospitals, policy, budgets


def chain_inputs(cases: dict) -> tuple[pa.Table, GroupedCases]:
    """The region as the payment chain reads it: a case table and its grouping."""
    n = len(cases["cost"])
    table = pa.table({"case_id": pa.array(np.arange(n).astype(str)), "hospital_id": cases["hospital_id"],
                      "total_cost": cases["cost"], "patient_paid": cases["patient_paid"]})
    grouped = GroupedCases(group=np.full(n, "G", dtype=object), group_points=cases["group_points"],
                           standard_cost=cases["standard_cost"], tcm_group_case=np.zeros(n, bool),
                           tcm_treated=np.zeros(n, bool))
    return table, grouped


def dipsim_run(chain, pool, hospitals, policy):
    """What `dipsim settle` runs once the cases are read and grouped: the payment chain (`run_chain`: terms, the
    case steps, the pools), the cases' (pool, hospital) rows factorised in it, and the exact yuan tables."""
    table, grouped = chain
    run = run_chain(CaseSet.of(table, pool), grouped, hospitals, policy)
    return run.hospitals, run.pools


def pandas_price(cases, hospitals) -> pd.DataFrame:
    frame = pd.DataFrame(cases)
    r = frame["cost"] / frame["standard_cost"]
    factor = pd.Series(1.0, index=frame.index).where(~(r < 0.5), r).where(~(r > 2.0), r - 1.0)
    h = hospitals.to_pandas()
    h["coefficient"] = h["level"].map(COEFFICIENTS).fillna(1.0) * np.where(h["type"] == "中医", 1.1, 1.0)
    frame = frame.merge(h[["hospital_id", "coefficient"]], on="hospital_id", how="left")
    frame["case_points"] = frame["group_points"] * factor.to_numpy() * frame["coefficient"]
    return frame.groupby(["pool", "hospital_id"], sort=True)[["case_points", "cost", "patient_paid"]].sum()


def pandas_solve(sums: pd.DataFrame, budgets: dict) -> dict:
    values = {}
    for pool, rows in sums.groupby(level="pool"):
        p, c, u = rows["case_points"].to_numpy(), rows["cost"].to_numpy(), rows["patient_paid"].to_numpy()
        target = budgets[pool] + u.sum()

        def excess(v, p=p, c=c, target=target):
            return hospital_payment(v * p, c, BANDS).sum() - target

        hi = 1.0
        while excess(hi) < 0:
            hi *= 2
        v = brentq(excess, 0.0, hi, xtol=1e-12 * hi, rtol=1e-15)
        fund = hospital_payment(v * p, c, BANDS) - u
        largest_remainder(fund, to_fen(budgets[pool]))
        values[pool] = v
    return values


HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# `dipsim settle ARGS` in a fresh process with stage marks (the same functions in every tree since issue 16)
SETTLE = r"""
import json, resource, sys, time
start = time.perf_counter()
import dipsim.cli as cli
import dipsim.payment.chain as chain
marks = {}

def timed(name, fn):
    def wrapper(*args, **kwargs):
        marks[name] = [time.perf_counter(), None]
        try:
            return fn(*args, **kwargs)
        finally:
            marks[name][1] = time.perf_counter()
    return wrapper

cli._region = timed("load", cli._region)
cli._grouped = timed("grouping", cli._grouped)
chain.run_chain = timed("chain", chain.run_chain)
cli.cmd_settle = timed("settle", cli.cmd_settle)
code = cli.main(sys.argv[1:])
assert code == 0, code
m = {k: v for k, v in marks.items()}
print(json.dumps({"startup": m["settle"][0] - start, "load": m["load"][1] - m["load"][0],
                  "checks": m["chain"][0] - m["load"][1], "grouping": m["grouping"][1] - m["grouping"][0],
                  "chain": m["chain"][1] - m["chain"][0], "outputs": m["settle"][1] - m["chain"][1],
                  "after_load": m["settle"][1] - m["load"][1], "in_process": m["settle"][1] - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# The physical limit: the partitions read by pyarrow, and a case table of the same shape written (zstd), in a
# fresh process, timed after the imports (the case table read before the clock starts)
BARE = r"""
import json, sys, time
import pyarrow.dataset as pads, pyarrow.parquet as pq
table = pq.read_table(sys.argv[2])
start = time.perf_counter()
cases = pads.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table()
read = time.perf_counter()
pq.write_table(table, sys.argv[3], compression="zstd")
print(json.dumps({"read": read - start, "write": time.perf_counter() - read, "rows": cases.num_rows}))
"""

STAGES = [("startup", "interpreter start and imports"), ("load", "read and validate (`load_cases`)"),
          ("checks", "region checks, pools, budgets and DIP grouping"),
          ("grouping", "of which DIP grouping (catalogue, keys, kernel), its own time"),
          ("chain", "the chain: terms, steps 1-7, pools 8-10"),
          ("outputs", "case table, cases.parquet, CSVs, terms, manifest"), ("after_load", "everything after load")]


def ensure_dip_region(cases: int, hospitals: int, seed: int) -> Path:
    """benchmarks/_work/region_N_hH (`dipsim synth`) and its DIP catalogue (`dipsim catalog build`) in catalog/."""
    region = HERE / "_work" / f"region_{cases}_h{hospitals}"
    if not (region / "manifest.json").exists():
        from dipsim.synth import synthesize_region

        synthesize_region(region, cases=cases, hospitals=hospitals, seed=seed)
    if not (region / "catalog" / "manifest.json").exists():
        from dipsim.catalog import build_catalog, write_catalog
        from dipsim.io import load_cases

        write_catalog(build_catalog(load_cases(region / "cases").accepted), region / "catalog")
    return region


def settle_once(tree: Path, region: Path, out: Path) -> dict:
    """One `dipsim settle` of the region by the code in `tree`, in a fresh process: its stages, and the total wall
    as the caller sees it (interpreter start included)."""
    argv = ["settle", "-q", str(region / "cases"), "--policy", str(tree / "scenarios" / "baseline.toml"),
            "--hospitals", str(region / "hospitals.csv"), "--catalog", str(region / "catalog"),
            "--budget-share", "0.6", "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", SETTLE, *argv], capture_output=True, text=True, env=env, cwd=tree)
    total = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(done.stderr)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "total": total}


def same_outputs(a: Path, b: Path) -> None:
    """Two settle folders agree: cases.parquet equal (schema and values), the CSVs and terms.json byte for byte."""
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a / "cases.parquet"), pq.read_table(b / "cases.parquet")
    assert ta.schema.remove_metadata() == tb.schema.remove_metadata(), "cases.parquet: the schemas differ"
    for name in ta.column_names:  # NaN (r without a standard cost) equal to NaN
        x, y = ta[name], tb[name]
        same = (np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=True) if pa.types.is_floating(x.type)
                else x.equals(y))
        assert same, f"cases.parquet: {name} differs"
    for name in ("hospitals.csv", "pools.csv", "rejects.csv", "terms.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"


def end_to_end(args) -> None:
    region = ensure_dip_region(args.cases, args.hospitals, args.seed)
    trees = ([("base", Path(args.base).resolve())] if args.base else []) + [("this tree", REPO)]
    work = HERE / "_work" / "settle_e2e"
    runs: dict[str, list[dict]] = {label: [] for label, _ in trees}
    for label, tree in trees:  # a first run each: Numba caches and the page cache warm, not timed
        settle_once(tree, region, work / label)
    if args.base:
        same_outputs(work / "base", work / "this tree")
    bare = []
    for _ in range(args.rounds):
        for label, tree in trees:
            runs[label].append(settle_once(tree, region, work / label))
        bare.append(child(BARE, str(region / "cases"), str(work / "this tree" / "cases.parquet"),
                          str(work / "bare.parquet")))
    best = {label: min(r, key=lambda x: x["total"]) for label, r in runs.items()}
    limit = min(bare, key=lambda x: x["read"] + x["write"])
    command = (f"python benchmarks/bench_settle.py --end-to-end --cases {args.cases} --hospitals {args.hospitals} "
               f"--rounds {args.rounds}" + (f" --base {args.base}" if args.base else ""))
    print(machine_line(command))
    print()
    print(f"`dipsim settle` of {args.cases:,} raw cases (12 Parquet partitions), {args.hospitals} hospitals, DIP "
          f"(scenarios/baseline.toml, the region's own catalogue, --budget-share 0.6); best of {args.rounds} by "
          "total wall, each run a fresh process, the trees alternating; seconds")
    print()
    labels = [label for label, _ in trees]
    print("| stage | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    print("| **end to end (wall, as the shell sees it)** | "
          + " | ".join(f"**{best[label]['total']:.2f}**" for label in labels) + " |")
    for key, what in STAGES:
        print(f"| {what} | " + " | ".join(f"{best[label][key]:.3f}" for label in labels) + " |")
    print("| peak RSS (MB) | " + " | ".join(f"{best[label]['peak_rss_mb']:,.0f}" for label in labels) + " |")
    print("| all rounds, total wall | " + " | ".join(" / ".join(f"{r['total']:.2f}" for r in runs[label])
                                                      for label in labels) + " |")
    print()
    print(f"Physical limit in the same session (best of {args.rounds}): a bare pyarrow read of the partitions "
          f"{limit['read']:.3f} s + a write of the case table {limit['write']:.3f} s = "
          f"{limit['read'] + limit['write']:.3f} s.")
    if args.base:
        print("Outputs of the two trees agree (cases.parquet equal, hospitals.csv, pools.csv, rejects.csv and "
              "terms.json byte for byte).")


def main() -> None:
    parser = arguments(__doc__, seed=True)
    parser.add_argument("--hospitals", type=int, default=500)
    parser.add_argument("--pools", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--end-to-end", action="store_true", help="time `dipsim settle` end to end instead")
    parser.add_argument("--rounds", type=int, default=3, help="--end-to-end: rounds of alternating runs")
    parser.add_argument("--base", help="--end-to-end: a checkout of the commit to compare with (git worktree add)")
    args = parser.parse_args()
    if args.end_to_end:
        end_to_end(args)
        return
    cases, hospitals, policy, budgets = region(args.cases, args.hospitals, args.pools)
    chain = chain_inputs(cases)

    _, pools = dipsim_run(chain, cases["pool"], hospitals, policy)
    ours = dict(zip(pools["pool"].to_pylist(), pools["point_value"].to_pylist()))
    sums = pandas_price(cases, hospitals)
    theirs = pandas_solve(sums, budgets)
    for pool, v in ours.items():
        assert abs(v - theirs[pool]) <= 1e-9 * v, (pool, v, theirs[pool])

    full = best_of(args.repeats, lambda: dipsim_run(chain, cases["pool"], hospitals, policy))
    full_pd = best_of(args.repeats, lambda: pandas_solve(pandas_price(cases, hospitals), budgets))
    per_pool = [(sums.loc[p], budgets[p]) for p in sorted(budgets)]

    def solve_all():
        for rows, budget in per_pool:
            settle_pool(rows["case_points"].to_numpy(), rows["cost"].to_numpy(), rows["patient_paid"].to_numpy(),
                        budget, BANDS)

    solve = best_of(args.repeats * 4, solve_all)
    solve_pd = best_of(args.repeats * 4, lambda: pandas_solve(sums, budgets))
    n, h, k = args.cases, args.hospitals, args.pools
    print(machine_line(f"python benchmarks/bench_settle.py --cases {n} --hospitals {h} --pools {k} "
                       f"--repeats {args.repeats}"))
    print()
    print("| step | dipsim (s) | pandas + brentq (s) | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| pricing + solve, {n:,} cases, {h} hospitals, {k} pools, bands on | {full:.3f} | {full_pd:.3f} | "
          f"{full_pd / full:.1f}x |")
    print(f"| solve alone, {k} pools ({h * k:,} hospital-pool rows) | {solve * 1000:.2f} ms | "
          f"{solve_pd * 1000:.2f} ms | {solve_pd / solve:.1f}x |")
    print()
    print("point values agree to 1e-9 relative: " + ", ".join(f"{p} {v:.6f}" for p, v in ours.items()))


if __name__ == "__main__":
    main()
