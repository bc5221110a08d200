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
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.optimize import brentq

from dipsim.budget import SettlementBands, hospital_payment, settle_pool
from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.money import largest_remainder, to_fen
from dipsim.payment.chain import CaseSet, run_chain
from dipsim.policy import Policy

from _machine import arguments, best_of, machine_line

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


def main() -> None:
    parser = arguments(__doc__, seed=False)
    parser.add_argument("--hospitals", type=int, default=500)
    parser.add_argument("--pools", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
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
