"""Explain a `dipsim settle` output in words, from its files only: a hospital's amounts step by step
(`explain_hospital`), adding up to the fen."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


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
    pools = {
        r["pool"]: r
        for r in pacsv.read_csv(
            out / "pools.csv", convert_options=pacsv.ConvertOptions(column_types={"pool": pa.string()})
        ).to_pylist()
    }
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    cases = pq.read_table(out / "cases.parquet", filters=[("hospital_id", "=", hospital_id)])
    lines = [
        f"hospital {hospital_id} under policy {manifest['policy_name']} ({manifest['policy']}, sha256 "
        f"{manifest['policy_sha256'][:12]}), {manifest['mode'].upper()} mode"
    ]
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
            + (
                f"-{pc.max(mine['coefficient']).as_py():g}"
                if pc.min(mine["coefficient"]).as_py() != pc.max(mine["coefficient"]).as_py()
                else ""
            )
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
