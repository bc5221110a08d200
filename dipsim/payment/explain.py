"""Explain a `dipsim settle` output in words, from its files only: one case's payment chain step by step, each
parameter's value on the case's discharge day and its source (`explain_case`, from terms.json), and a hospital's
amounts (`explain_hospital`), adding up to the fen."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dipsim.io.errors import InputError


def _manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_settle_folder(path) -> bool:
    """Whether `path` is the output folder of `dipsim settle`: cases.parquet and a manifest.json of command settle."""
    out = Path(path)
    if not (out.is_dir() and (out / "cases.parquet").is_file()):
        return False
    manifest = _manifest(out)
    return isinstance(manifest, dict) and manifest.get("command") == "settle"


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _num(value, digits: int = 4) -> str:
    return "none" if value is None else f"{value:,.{digits}f}"


def explain_case(settle_dir, case_id: str) -> str:
    """One case of a `dipsim settle` output folder through the payment chain (`chain.STEPS` 1-8, then the pool's
    point value), in words: each step's parameters by registry path with the value in force on the case's policy
    day (terms.json) and the registry's source, and the step's result from cases.parquet."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from dipsim.payment.chain import STEPS
    from dipsim.policy import PARAMETERS

    out = Path(settle_dir)
    if not is_settle_folder(out):
        raise InputError(
            f"{out}: not a `dipsim settle` output folder (no cases.parquet and manifest.json of command settle)"
        )
    if not (out / "terms.json").is_file():
        raise InputError(f"{out}: no terms.json (written by `dipsim settle` from this version on): settle again")
    manifest = _manifest(out) or {}
    terms = json.loads((out / "terms.json").read_text(encoding="utf-8"))
    table = pq.read_table(out / "cases.parquet", filters=[("case_id", "=", str(case_id))])
    if not table.num_rows:
        raise InputError(f"{out}: no case {case_id!r} in cases.parquet")
    case = table.to_pylist()[0]
    day = case["policy_day"].isoformat() if case["policy_day"] is not None else None
    period = next((p for p in terms["periods"] if p["day"] == day), None)
    if period is None:
        raise InputError(f"{out}: terms.json has no period of day {day} (case {case_id!r}): the folder is mixed")
    values = {**terms["settlement"], **period["values"]}
    on = day or "the settlement day"
    pools = pacsv.read_csv(
        out / "pools.csv", convert_options=pacsv.ConvertOptions(column_types={"pool": pa.string()})
    ).to_pylist()
    pool = next((r for r in pools if r["pool"] == case["pool"]), None)
    if pool is None:
        raise InputError(f"{out}: pools.csv has no pool {case['pool']!r} (case {case_id!r})")

    def param(path: str, note: str = "") -> list[str]:
        source = PARAMETERS[path].source if path in PARAMETERS else ""
        line = f"     {path} = {_value(values.get(path))}{note}"
        return [line] + ([f"       source: {source}"] if source else [])

    def step(number: int) -> str:
        name, _ = STEPS[number - 1]
        return f"{number}. {name}"

    mode = manifest.get("mode") or values.get("payment.mode")
    lines = [
        f"case {case_id}: hospital {case['hospital_id']}, pool {case['pool']}, group {case['group']}; policy "
        f"{manifest.get('policy_name')} ({manifest.get('policy')}), {str(mode).upper()} mode",
        f"case-level parameters as in force on the case's discharge day (read on {on}, the start of the period it "
        f"falls in: policy_day); pool and review parameters on the settlement day {terms['settlement_day']}",
    ]
    # 1 group points (分值)
    lines.append(f"{step(1)} (病组分值): group points {_num(case['group_points'])}")
    if mode == "drg":
        scheme = manifest.get("scheme")
        lines.append(f"     group {case['group']} under {scheme}, its RW calibrated on the region's costs")
        if values.get("payment.drg_scheme"):
            lines += param("payment.drg_scheme", " (the scheme the policy names)")
        lines += param("payment.drg_points_per_rw", " points per RW (the DRG's relative weight x this)")
    else:
        lines.append(f"     from the DIP catalogue {manifest.get('catalog')}")
    # 2 outlier
    r = case["r"]
    lines.append(
        f"{step(2)}: r = cost / standard cost = {_num(r)}; class {case['outlier']}, factor "
        f"{_num(case['outlier_factor'])}"
    )
    lines += param("outlier.low_ratio", " (below: factor r)")
    lines += param("outlier.high_ratio", " (above: factor (r - high_ratio) + 1)")
    lines += param("outlier.extreme_ratio", " (above: class extreme)")
    for path in ("outlier.low_ratio_by_level", "outlier.high_ratio_by_level"):
        if values.get(path):
            lines += param(path, " (a listed hospital level's own ratio, instead of the plain one)")
    if case["outlier"] in ("high", "extreme") and r is not None and not values.get("outlier.high_ratio_by_level"):
        high = values["outlier.high_ratio"]
        lines.append(f"     factor = ({_num(r)} - {_value(high)}) + 1 = {_num(case['outlier_factor'])}")
    # 3 coefficient
    lines.append(f"{step(3)}: coefficient {case['coefficient']:g}")
    lines += param("coefficient.mode")
    own = (values.get("coefficient.hospital") or {}).get(case["hospital_id"])
    if own is not None:
        lines.append(f"     coefficient.hospital[{case['hospital_id']}] = {_value(own)}")
    else:
        lines += param("coefficient.level", " (by the hospital's level)")
    if values.get("coefficient.mode") == "history":
        lines += param("coefficient.history_blend")
    # 4 TCM
    lines.append(f"{step(4)}: bonus {case['bonus']:.2%}")
    lines += param("coefficient.tcm_hospital_bonus") + param("tcm.case_bonus") + param("tcm.same_price")
    # 5 aux
    lines.append(
        f"{step(5)}: factor {case['aux_factor']:g}"
        + (
            f" (auxiliary catalogue {manifest['auxiliary']})"
            if manifest.get("auxiliary")
            else " (no auxiliary catalogue)"
        )
    )
    priced = case["priced_points"]
    if case["paid_by_item"]:
        lines.append(f"   priced points = 0: class {case['outlier']} is paid by item (按项目付费)")
        lines += param("outlier.pay_by_item")
    else:
        lines.append(
            f"   priced points = {_num(case['group_points'])} x {_num(case['outlier_factor'])} x "
            f"{case['coefficient']:g} x (1 + {case['bonus']:g}) x {case['aux_factor']:g} = {_num(priced)}"
        )
    # 6 supervision
    lines.append(
        f"{step(6)}: factor {case['supervision_factor']:g}, deduction {_num(case['supervision_deduction'])} points: "
        f"supervised points = max({_num(priced)} x {case['supervision_factor']:g} - "
        f"{_num(case['supervision_deduction'])}, 0) = {_num(case['supervised_points'])}"
    )
    lines += (
        param("supervision.split_readmission_factor")
        + param("supervision.low_standard_factor")
        + param("supervision.deduction_points")
    )
    # 7 review
    reviewed = case["reviewed_points"]
    if case["review_applied"]:
        review = (
            f"applied, approval {case['review_approval']:.2%}: reviewed points {_num(reviewed)}, "
            f"share paid by item {case['item_share']:.4f}, {case['item_paid']:,.2f} yuan by item"
        )
    else:
        review = f"not applied: reviewed points = supervised points = {_num(reviewed)}"
    lines.append(f"{step(7)} (特例单议): {review}")
    lines += param("review.in_effect")
    if values.get("review.in_effect"):
        lines += (
            param("review.rules")
            + param("review.quota_per_mille")
            + param("review.approval_rate")
            + param("review.payment")
            + param("review.funding")
        )
    if not case["review_applied"] and case["item_paid"]:
        lines.append(f"   paid by item: {case['item_paid']:,.2f} yuan")
    # 8 hospital growth cap
    lines.append(
        f"{step(8)}: the hospital's factor {case['cap_factor']:.6f} (its effective / raw points of the period, over "
        f"its pools): final points = {_num(reviewed)} x {case['cap_factor']:.6f} = {_num(case['case_points'])}"
    )
    lines += param("budget.hospital_cap_tiers", " ([from x the cap, weight]; empty: no cap)")
    if values.get("budget.hospital_cap_tiers"):
        lines += param("budget.hospital_cap_growth", " (cap = the hospital's reference_points x (1 + this))")
    # 9 pool point value
    share = pool["point_value"] * case["case_points"]
    lines += [
        f"{step(9)} (点值): pool {case['pool']}'s point value {pool['point_value']:.6f} yuan ({pool['status']}) x "
        f"final points {_num(case['case_points'])} = {share:,.4f} yuan: the case's share of its hospital's group "
        "payment,",
        "   before the settlement bands and the fen rounding, which act on the hospital's total (explain --hospital)",
    ]
    return "\n".join(lines)


def explain_hospital(out_dir, hospital_id: str) -> str:
    """How a hospital's amounts in a `dipsim settle` output folder were built, step by step, in words: per pool the
    sums of its cases' priced, supervised and final points (the last equal to hospitals.csv points to 4 decimals),
    the point value, the payment and the year's cycle."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

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
        priced, supervised, reviewed, final = (
            float(pc.sum(mine[name]).as_py() or 0.0)
            for name in ("priced_points", "supervised_points", "reviewed_points", "case_points")
        )
        factor = pc.max(mine["cap_factor"]).as_py()
        lines += [
            f"pool {row['pool']}: {row['cases']:,} cases",
            "  priced points = group points x outlier factor x coefficient x (1 + bonus) x auxiliary factor:",
            f"    group points {pc.sum(mine['group_points']).as_py():,.4f}; outliers "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
            + f"; coefficient {pc.min(mine['coefficient']).as_py():g}"
            + (
                f"-{pc.max(mine['coefficient']).as_py():g}"
                if pc.min(mine["coefficient"]).as_py() != pc.max(mine["coefficient"]).as_py()
                else ""
            )
            + f"; bonus up to {pc.max(mine['bonus']).as_py():.0%}",
            f"    priced points {priced:,.4f}",
            f"  supervised points = priced points x supervision factor - deduction (floor 0): {priced:,.4f} "
            f"{supervised - priced:+,.4f} = {supervised:,.4f}",
            f"  reviewed points after special-case review (特例单议): {supervised:,.4f} {reviewed - supervised:+,.4f} "
            f"= {reviewed:,.4f}",
            f"  final points after the hospital's growth cap (its factor over its pools): {reviewed:,.4f} x "
            f"{factor if factor is not None else 1.0:.6f} = {final:,.4f}",
            f"    the hospital's points are the sum of its cases' final points: {final:,.4f} = hospitals.csv "
            f"points {row['points']:,.4f}" + ("" if round(final, 4) == round(row["points"], 4) else " (MISMATCH)"),
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
