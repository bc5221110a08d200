"""One settlement run (docs/domain.md §7-14): group, price and settle a year of cases under a policy.

    group (DIP catalogue or CHS-DRG scheme) -> case points (pricing.case_points) -> pools settled (budget.settle)

The pool of a case is its 统筹区 and insurance type (`990100-employee`); cases without one, or without a hospital,
are rejected before (`region.settleable`). In DRG point mode the group points are RW x `payment.drg_points_per_rw`,
with RW from a published table or calibrated on the cases' own costs; the group's standard cost for outliers is its
mean cost (the DIP catalogue's, or the calibration's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.budget import SettlementFrame, settle_frame
from dipsim.io.errors import InputError
from dipsim.policy import Policy
from dipsim.pricing import case_points
from dipsim.supervise import supervised_points


@dataclass
class SettlementRun:
    cases: pa.Table  # case_id, hospital_id, pool, group, the pricing columns
    hospitals: pa.Table
    pools: pa.Table
    review: object = None  # per hospital: candidates, applied, approved, rate, amount (special-case review)


def case_pools(cases: pa.Table) -> np.ndarray:
    """Per case its settlement pool: 统筹区-险种 (pool and insurance type). Cases must have both
    (`region.settleable` rejects the others): a missing part would make a phantom pool ("-resident", "990100-")."""
    pool, insurance = (pc.cast(cases[name], pa.string()) for name in ("pool", "insurance_type"))
    pools = pc.binary_join_element_wise(pool, insurance, "-")  # null where a part is null
    blank = pc.sum(pc.or_kleene(pc.is_null(pools), pc.or_(pc.equal(pc.utf8_length(pool), 0),
                                                          pc.equal(pc.utf8_length(insurance), 0)))).as_py()
    if blank:
        raise InputError(f"{blank:,} case(s) without a settlement pool (统筹区 or 险种 missing): settle only the "
                         "cases region.settleable keeps")
    return pools.to_numpy(zero_copy_only=False)


def budgets_from_cost(cases: pa.Table, share: float, budgets: dict | None = None) -> dict[str, float]:
    """`budgets` with every pool of the cases that has none set to `share` x its total cost billed by item (a
    convenience for synthetic regions and what-ifs: a bureau sets its budgets itself)."""
    out = dict(budgets or {})
    pool = case_pools(cases)
    cost = _float(cases, "total_cost")
    for p in sorted(set(pool) - set(out)):
        out[p] = round(float(cost[pool == p].sum()) * share, 2)
    return out


def case_months(cases: pa.Table) -> np.ndarray | None:
    """Per case its discharge month as year x 12 + month (0 without a date); None without a discharge_date column."""
    if "discharge_date" not in cases.column_names:
        return None
    day = cases["discharge_date"]
    return pc.fill_null(pc.add(pc.multiply(pc.year(day), 12), pc.month(day)), 0).to_numpy(zero_copy_only=False)


def _float(cases: pa.Table, name: str) -> np.ndarray:
    return pc.fill_null(pc.cast(cases[name], pa.float64()), 0.0).to_numpy(zero_copy_only=False)


def dip_inputs(cases: pa.Table, catalog) -> dict:
    """Group points, standard cost, TCM flags and group ids of every case under a DIP catalogue."""
    from dipsim.grouping.dip import group_dip_table
    from dipsim.tcm import tcm_flag, tcm_treated

    groups = group_dip_table(cases, catalog)
    mean = dict(zip(catalog.groups["group_id"].to_pylist(), catalog.groups["mean_cost"].to_pylist()))
    group = groups["dip_group"].to_numpy(zero_copy_only=False)
    rule = catalog.options.tcm
    treated = tcm_treated(cases, rule) if rule else tcm_flag(cases)
    return {"group": group, "group_points": pc.fill_null(groups["dip_points"], 0.0).to_numpy(zero_copy_only=False),
            "standard_cost": np.array([mean.get(g, np.nan) if g else np.nan for g in group], dtype=np.float64),
            "tcm_group_case": groups["match"].to_numpy(zero_copy_only=False) == "tcm", "tcm_treated": treated}


def drg_inputs(cases: pa.Table, scheme: str, policy: Policy, weights=None) -> dict:
    """Group points (RW x points per RW) and standard cost of every case under a CHS-DRG scheme; RW from
    `weights` (a DataFrame with drg, rw[, mean_cost]) or calibrated on the cases' costs."""
    from dipsim.grouping.drg import group_table
    from dipsim.tcm import tcm_flag
    from dipsim.weights import calibrate_weights

    drg = group_table(cases, scheme)["drg"].to_numpy(zero_copy_only=False)
    cost = _float(cases, "total_cost")
    table = weights if weights is not None else calibrate_weights(drg, cost)
    rw = dict(zip(table["drg"], table["rw"]))
    mean = dict(zip(table["drg"], table["mean_cost"])) if "mean_cost" in table else {}
    scale = policy.get("payment.drg_points_per_rw")
    return {"group": drg, "group_points": np.array([rw.get(d, np.nan) for d in drg], dtype=np.float64) * scale,
            "standard_cost": np.array([mean.get(d, np.nan) for d in drg], dtype=np.float64),
            "tcm_group_case": np.zeros(cases.num_rows, bool), "tcm_treated": tcm_flag(cases)}


def run_settlement(cases: pa.Table, hospitals: pa.Table, policy: Policy, grouped: dict,
                   aux_factor: np.ndarray | None = None, quality: dict[str, float] | None = None,
                   on=None) -> SettlementRun:
    """Price every case from `grouped` (dip_inputs / drg_inputs) and settle every pool with the policy values in
    force on `on` (default: the latest value of each); the monthly prepayment follows the cases' discharge months,
    the deposit release the hospitals' `quality` scores (100 when absent)."""
    hospital_id = pc.cast(cases["hospital_id"], pa.string()).to_numpy(zero_copy_only=False)
    cost = _float(cases, "total_cost")
    priced = case_points(grouped["group_points"], cost, grouped["standard_cost"], hospital_id, hospitals, policy,
                         tcm_group_case=grouped["tcm_group_case"], tcm_treated=grouped["tcm_treated"],
                         aux_factor=aux_factor, on=on)
    pool = case_pools(cases)
    frame = SettlementFrame.of(hospital_id, pool, cost, _float(cases, "patient_paid"), case_months(cases))
    priced["case_points"] = supervised_points(priced["case_points"], cases, grouped["group"], policy, on=on)
    case_pts, item, extra, review = priced["case_points"], priced["paid_by_item"], None, None
    if policy.get("review.in_effect", on):
        from dipsim.review import apply_review

        case_pts, item, extra, review = apply_review(priced, cases, grouped, frame, policy, on)
    hospital_table, pool_table = settle_frame(frame, case_pts, policy, on, quality, item, extra).tables()
    case_table = pa.table({"case_id": cases["case_id"], "hospital_id": hospital_id, "pool": pool,
                           "group": pa.array(grouped["group"], pa.string()), **{
                               name: pa.array(values) for name, values in priced.items()}})
    return SettlementRun(case_table, hospital_table, pool_table,
                         review.hospitals if review is not None else None)


def explain_hospital(out_dir, hospital_id: str) -> str:
    """How a hospital's amounts in a `dipsim settle` output folder were built, step by step, in words."""
    import json
    from pathlib import Path

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from dipsim.io.errors import InputError

    out = Path(out_dir)
    if not (out / "hospitals.csv").is_file():
        raise InputError(f"{out}: not a `dipsim settle` output folder (no hospitals.csv)")
    as_text = pacsv.ConvertOptions(column_types={"hospital_id": pa.string(), "pool": pa.string()})
    hospitals = pacsv.read_csv(out / "hospitals.csv", convert_options=as_text).to_pylist()
    rows = [r for r in hospitals if r["hospital_id"] == hospital_id]
    if not rows:
        raise InputError(f"{out}: no hospital {hospital_id!r}")
    pools = {r["pool"]: r for r in pacsv.read_csv(out / "pools.csv", convert_options=pacsv.ConvertOptions(
        column_types={"pool": pa.string()})).to_pylist()}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    cases = pq.read_table(out / "cases.parquet", filters=[("hospital_id", "=", hospital_id)])
    lines = [f"hospital {hospital_id} under policy {manifest['policy_name']} ({manifest['policy']}, sha256 "
             f"{manifest['policy_sha256'][:12]}), {manifest['mode'].upper()} mode"]
    for row in rows:
        pool = pools[row["pool"]]
        mine = cases.filter(pc.equal(cases["pool"], row["pool"]))
        kinds = {k["values"]: k["counts"] for k in pc.value_counts(mine["outlier"]).to_pylist()}
        lines += [
            f"pool {row['pool']}: {row['cases']:,} cases",
            "  case points = group points x outlier factor x coefficient x (1 + bonus) x auxiliary factor:",
            f"    group points {pc.sum(mine['group_points']).as_py():,.4f}; outliers "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
            + f"; coefficient {pc.min(mine['coefficient']).as_py():g}"
            + (f"-{pc.max(mine['coefficient']).as_py():g}" if pc.min(mine['coefficient']).as_py()
               != pc.max(mine['coefficient']).as_py() else "")
            + f"; bonus up to {pc.max(mine['bonus']).as_py():.0%}",
            f"    total {row['points']:,.4f} points",
            f"  point value {pool['point_value']:.6f} yuan ({pool['status']}; the pool's {pool['total_points']:,.4f} "
            f"points share its available budget {pool['budget_available']:,.2f} yuan)",
            f"  group payment = {pool['point_value']:.6f} x {row['points']:,.4f} = {row['group_payment']:,.2f}; cost "
            f"billed {row['cost']:,.2f}, q = {row['payment_ratio']}",
            f"  band adjustment {row['band_adjustment']:,.2f} -> payment {row['payment']:,.2f}",
            f"  fund payout = payment - patient paid {row['patient_paid']:,.2f} = {row['fund_payout']:,.2f} (to "
            f"the fen by largest remainder within the pool)",
            f"  prepaid {row['prepaid']:,.2f}; quality deposit {row['deposit']:,.2f}, released "
            f"{row['deposit_released']:,.2f}; clearing = {row['fund_payout']:,.2f} - {row['prepaid']:,.2f} - "
            f"{row['deposit']:,.2f} + {row['deposit_released']:,.2f} = {row['clearing']:,.2f}",
        ]
    return "\n".join(lines)
