"""A region in the server's data folder, and what the server loads of it.

    DIR/regions/<id>/validated/   the validated cases (`dipsim validate`'s output: accepted/ parts and manifest)
    DIR/regions/<id>/hospitals.parquet
    DIR/regions/<id>/catalog/     the DIP catalogue (`dipsim catalog build`'s output; DIP regions)
    DIR/regions/<id>/policy.toml  the baseline policy, budgets included
    DIR/regions/<id>/baseline/    the baseline's settlement (`dipsim settle`'s files: what `explain` reads)

The same region on the command line:

    dipsim scenarios run FILE.toml --cases DIR/regions/<id>/validated/accepted \\
        --hospitals DIR/regions/<id>/hospitals.parquet --catalog DIR/regions/<id>/catalog

with FILE.toml's `baseline` naming DIR/regions/<id>/policy.toml.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.io.errors import InputError
from dipsim.money import to_fen, to_fen_array

CASES_DIR = Path("validated") / "accepted"
HOSPITALS_FILE = "hospitals.parquet"
CATALOG_DIR = "catalog"
POLICY_FILE = "policy.toml"
BASELINE_DIR = "baseline"
DEMO_BUDGET_SHARE = 0.6  # `dipsim demo`'s budgets: 60% of each pool's billed cost


def yuan(fen: int) -> str:
    """Whole fen as yuan with exactly 2 decimals, e.g. -1234.50: the API's money (exact, no float)."""
    return str(Decimal(int(fen)).scaleb(-2))


def fen_of(amount) -> int:
    """Yuan (an exact Decimal of the settlement tables, or a float of yuan to the fen) as whole fen."""
    if isinstance(amount, Decimal):
        return int(amount.scaleb(2).to_integral_value())
    return to_fen(float(amount))


@dataclass
class Assembled:
    """What `assemble_region` made of its inputs: the row accounting (rows read = accepted + rejected, the rejected
    counting validation's and settlement's), the rejects (REJECT_SCHEMA, one line per reason), the warnings for
    the user, the policy's mode and the index record's fields."""

    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    rejected_at_settlement: int = 0
    validation_warnings: int = 0
    rejects: pa.Table | None = None
    warnings: list[str] = field(default_factory=list)
    mode: str = "dip"
    hospitals: int = 0

    def counts(self) -> dict:
        return {"read": self.rows_read, "accepted": self.accepted, "rejected": self.rejected,
                "rejected_at_settlement": self.rejected_at_settlement,
                "reject_lines": 0 if self.rejects is None else self.rejects.num_rows,
                "validation_warnings": self.validation_warnings}


def budget_warning(pools: list[str], share: float = DEMO_BUDGET_SHARE) -> str:
    return (f"预算未给出，按医疗总费用的 {share:.0%} 假定 / budget not given: assumed {share:.0%} of the billed cost "
            f"for pool(s) {', '.join(pools)}; upload a policy with budget.total to set it")


def assemble_region(folder: Path, cases_input: Path, hospitals_file: Path, policy: dict | None = None,
                    policy_name: str | None = None, budget_share: float = DEMO_BUDGET_SHARE,
                    step=None, rows_progress=None, result: Assembled | None = None,
                    source: str = "the claims") -> Assembled:
    """A region folder (the layout above) from claims and a hospitals table through the command line's loader:
    the claims validated (`io.pipeline.validate_to_dir`: a file, or a folder of Parquet), the hospitals table
    checked (`region.load_hospitals`: Parquet, CSV or Excel) and kept as Parquet, the cases split into settleable
    ones and rejects (`region.Region.of`), a DIP catalogue built from them (`catalog.build_catalog`; DIP policies),
    and the policy (`policy`: a policy TOML's parsed content, else the shipped DIP baseline scenarios/baseline.toml)
    with `budget_share` of each pool's cost as the budget of every pool it has none for (said in the warnings).

    `step(name)` is told each step, `rows_progress(rows)` the rows read so far; `source` names the claims in
    messages. `result` (an Assembled) is filled
    as the steps go, so that the counts and rejects known when a later step fails are there. InputError (the
    loader's messages) when the inputs cannot make a region."""
    import tomli_w

    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.io.pipeline import validate_to_dir
    from dipsim.io.toml_files import read_toml
    from dipsim.io.validate import load_cases
    from dipsim.io.writers import write_parquet
    from dipsim.paths import scenarios_dir
    from dipsim.policy import load_policy
    from dipsim.region import SETTLEMENT_COLUMNS, Region, budgets_from_cost, load_hospitals, settleable
    from dipsim.region import settlement_columns as read_columns

    def tell(name: str) -> None:
        if step is not None:
            step(name)

    out = result if result is not None else Assembled()
    folder.mkdir(parents=True, exist_ok=True)
    tell("hospitals")  # first: a bad hospitals table is said before the claims are read
    hospitals = load_hospitals(hospitals_file)
    write_parquet(hospitals, folder / HOSPITALS_FILE)
    out.hospitals = hospitals.num_rows
    tell("validate")
    validation_rejects, settlement_rejects = [], []

    def piece(validated) -> None:
        """Each piece of the claims as validated: its rejects, and its accepted cases that cannot be settled (no
        pool or hospital: `region.settleable`, as `Region.of` splits them below), with the upload's rows."""
        validation_rejects.append(validated.rejects)
        if set(SETTLEMENT_COLUMNS) <= set(read_columns(validated)):
            settlement_rejects.append(settleable(validated.accepted, validated.accepted_rows,
                                                 validated.accepted_sources))
        out.rows_read += validated.rows_read
        if rows_progress is not None:
            rows_progress(out.rows_read)

    out.rows_read = 0
    summary = validate_to_dir(cases_input, folder / "validated", on_piece=piece)
    at_settlement = sum(s.n_rejected for s in settlement_rejects)
    out.rows_read, out.rejected_at_settlement = summary.rows_read, at_settlement
    out.accepted, out.rejected = summary.accepted - at_settlement, summary.rejected + at_settlement
    out.rejects = pa.concat_tables(validation_rejects + [s.rejects for s in settlement_rejects]) \
        if validation_rejects else None
    out.validation_warnings = summary.warnings
    if summary.warnings:
        out.warnings.append(f"{summary.warnings:,} 条校验提示 / validation warnings (rows kept): "
                            + "; ".join(f"{why} ({n:,})" for why, n in list(summary.warning_reasons.items())[:5]))
    tell("settle")
    cases = load_cases(folder / CASES_DIR, dictionary_codes=True)
    region = Region.of(cases, hospitals, source)
    if region.cases.num_rows != out.accepted:  # the same split of the same rows: never otherwise
        raise AssertionError(f"settleable cases {region.cases.num_rows} != {out.accepted} counted as validated")
    tell("policy")
    data = dict(policy) if policy is not None else read_toml(scenarios_dir() / "baseline.toml", "policy")
    if policy_name or "name" not in data.get("meta", {}):
        data.setdefault("meta", {})["name"] = policy_name or "uploaded policy"
    budgets = data.setdefault("budget", {})
    given = budgets.get("total", {})
    if not isinstance(given, dict):
        raise InputError(f"budget.total: a table of pool = yuan, not {given!r}")
    assumed = sorted(set(region.pools()) - set(given))
    if assumed:
        budgets["total"] = budgets_from_cost(region.cases, budget_share, dict(given), case_set=region.case_set)
        out.warnings.append(budget_warning(assumed, budget_share))
    (folder / POLICY_FILE).write_text(tomli_w.dumps(data), encoding="utf-8")
    checked = load_policy(folder / POLICY_FILE)  # every problem of the policy at once, as the command line says
    out.mode = checked.get("payment.mode")
    if out.mode == "dip":
        tell("catalog")
        catalog = build_catalog(cases.accepted, CatalogOptions())
        write_catalog(catalog, folder / CATALOG_DIR, [{"path": str(CASES_DIR), "accepted": cases.accepted.num_rows}])
    return out


def build_demo_region(folder: Path, cases: int, hospitals: int, seed: int = 20250101, year: int = 2025) -> dict:
    """The demo region (`dipsim demo`'s steps, with no set-up): a synthetic region (`synth.synthesize_region`)
    assembled as an upload is (`assemble_region`): validated, a DIP catalogue built from it, and the shipped DIP
    baseline (scenarios/baseline.toml) with budgets of 60% of each pool's cost. Returns the index record."""
    from dipsim.synth import synthesize_region

    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "synthetic"
    synthesize_region(raw, cases=cases, hospitals=hospitals, seed=seed, year=year)
    made = assemble_region(folder, raw / "cases", raw / "hospitals.parquet",
                           policy_name="demo baseline (scenarios/baseline.toml, budget 60% of cost)")
    shutil.rmtree(raw)
    return {"title": "示例区域 (synthetic demo region)", "mode": "dip", "demo": True,
            "cases": made.accepted, "hospitals": hospitals, "seed": seed, "year": year}


class LoadedRegion:
    """A region as the server reads it, once (`Server.region`): the validated cases (`io.validate.load_cases`) as
    `region.Region.of` keeps them, the hospitals table (`region.load_hospitals`), the baseline policy, the
    grouping (`scenarios.grouped_cached`, cached on disk) and the baseline run through the payment chain."""

    def __init__(self, folder: Path, record: dict):
        from dipsim.io.validate import load_cases
        from dipsim.io.writers import file_digests
        from dipsim.payment.chain import discharge_days, run_chain
        from dipsim.payment.terms import command_line_scheme, settlement_day
        from dipsim.policy import load_policy
        from dipsim.region import Region, load_hospitals
        from dipsim.scenarios import inputs_digest

        self.folder, self.record = folder, record
        self.policy = load_policy(folder / POLICY_FILE)
        self.mode = self.policy.get("payment.mode")
        self.hospitals = load_hospitals(folder / HOSPITALS_FILE)
        self.region = Region.of(load_cases(folder / CASES_DIR, dictionary_codes=True), self.hospitals,
                                "the region's cases")
        self.cases = self.region.cases
        self.day = settlement_day(discharge_days(self.cases), None)
        self.scheme = command_line_scheme(self.policy, self.day, None, "the baseline policy") \
            if self.mode == "drg" else None
        # the key the command line's grouping cache uses for the same files (`scenarios.inputs_digest`)
        self.inputs_sha256 = inputs_digest(file_digests(folder / CASES_DIR, folder / HOSPITALS_FILE))
        self._grouped: dict = {}
        self._funds: list[dict] | None = None  # `funds`: computed on first use, then kept
        self._lock = threading.Lock()
        self.catalog = None
        if self.mode == "dip":
            from dipsim.grouping.dip import load_catalog

            self.catalog = load_catalog(folder / CATALOG_DIR)
        problems = self.region.problems([("baseline", self.policy)], (), None, self.day)
        if problems:
            raise InputError(f"{folder}: the baseline: " + "; ".join(problems))
        self.baseline = run_chain(self.region.case_set, self.grouped(self.scheme), self.hospitals, self.policy)
        self.case_table = self.baseline.case_table()
        self.cost = self.region.case_set.cost
        table = self.hospitals.to_pandas()
        self.names = dict(zip(table["hospital_id"].astype(str),
                              table["name"].astype(str) if "name" in table else table["hospital_id"].astype(str)))
        self.hospital_ids = set(self.region.case_set.hospitals.ids.astype(str).tolist())
        self._write_baseline()

    def grouped(self, scheme: str | None):
        """The cases grouped (DIP: to the catalogue; DRG: under `scheme`), once per scheme, cached on disk."""
        from dipsim.scenarios import grouped_cached

        key = scheme or "dip"
        with self._lock:
            if key not in self._grouped:
                self._grouped[key] = grouped_cached(self.cases, self.inputs_sha256, self.mode, self.catalog,
                                                    *([scheme] if scheme else []))
            return self._grouped[key]

    def _write_baseline(self) -> None:
        """The baseline's settlement as `dipsim settle` writes it (cases.parquet, pools.csv, hospitals.csv,
        terms.json, manifest.json): what `payment.explain.explain_case` reads. Rewritten when the policy changed."""
        import json

        from dipsim.io.writers import OutputFolder
        from dipsim.payment.terms import terms_record

        out = self.folder / BASELINE_DIR
        digest = self.policy.digest()
        try:
            manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
            if manifest.get("policy_sha256") == digest and manifest.get("inputs_sha256") == self.inputs_sha256:
                return
        except (OSError, ValueError):
            pass
        folder = OutputFolder(out)
        folder.parquet(self.case_table, "cases.parquet")
        folder.csv(self.baseline.hospitals, "hospitals.csv")
        folder.csv(self.baseline.pools, "pools.csv")
        folder.json(terms_record(self.baseline.terms), "terms.json")
        day = self.baseline.terms.settlement_day
        folder.manifest({"command": "settle", "policy": POLICY_FILE, "policy_name": self.policy.name,
                         "policy_sha256": digest, "policy_day": day.isoformat() if day else None,
                         "mode": self.mode, "catalog": CATALOG_DIR if self.mode == "dip" else None,
                         "scheme": self.scheme, "inputs_sha256": self.inputs_sha256})

    # ------------------------------------------------------------ what the routes read

    def pools(self) -> list[dict]:
        """Per pool of the baseline: cases, cost, budget, available budget, point value, status, fund payout."""
        pools = self.baseline.pools.to_pylist()
        counts = self.baseline.hospitals.group_by("pool").aggregate([("cases", "sum"), ("cost", "sum")])
        per_pool = {r["pool"]: r for r in counts.to_pylist()}
        return [{"pool": r["pool"], "cases": int(per_pool[r["pool"]]["cases_sum"]),
                 "cost": yuan(fen_of(per_pool[r["pool"]]["cost_sum"])),
                 "budget": yuan(fen_of(r["budget"])),
                 "budget_available": yuan(fen_of(r["budget_available"])),
                 "point_value": float(r["point_value"]), "status": r["status"],
                 "fund_payout": yuan(fen_of(r["fund_payout"]))} for r in pools]

    def overview(self) -> dict:
        from dipsim.schema import HOSPITAL_LEVELS, HOSPITAL_TYPES

        table = self.hospitals.select(["hospital_id", "level", "type"]).to_pandas()
        table = table[table["hospital_id"].astype(str).isin(self.hospital_ids)]
        frame = self.case_table.select(["hospital_id"]).to_pandas().merge(table, on="hospital_id", how="left")

        def counted(column: str, order) -> list[dict]:
            hospitals, cases = table[column].value_counts(), frame[column].value_counts()
            keys = [k for k in order if k in hospitals.index] + sorted(set(hospitals.index) - set(order))
            return [{column: k, "hospitals": int(hospitals[k]), "cases": int(cases.get(k, 0))} for k in keys]

        pools = self.pools()
        return {"title": self.record.get("title"), "mode": self.mode, "scheme": self.scheme,
                "cases": self.cases.num_rows,
                # an uploaded region: its claims' rows and rejects (validation's and settlement's); else those of
                # the validated cases it was loaded from
                "rows_read": int(self.record.get("rows_read", getattr(self.region.result, "rows_read", 0))),
                "rejected": int(self.record.get("rejected", self.region.rejected)), "hospitals": len(table),
                "by_level": counted("level", HOSPITAL_LEVELS), "by_type": counted("type", HOSPITAL_TYPES),
                "pools": pools,
                "budget": yuan(sum(fen_of(r["budget"]) for r in self.baseline.pools.to_pylist())),
                "baseline": {"name": self.policy.name, "policy_sha256": self.policy.digest(),
                             "settlement_day": self.day.isoformat() if self.day else None}}

    def hospital_groups(self, hospital_id: str) -> dict:
        """病组盈亏 of one hospital under the baseline: per group its cases, cost, payment (final points x the
        pool's point value + the cost paid by item, before the hospital-level settlement bands), balance (payment -
        cost) and payment / cost, sorted by balance (the largest loss first). Money rounded to the fen per group."""
        import pandas as pd

        t = self.case_table
        mine = pc.equal(t["hospital_id"], hospital_id).to_numpy(zero_copy_only=False)
        values = {r["pool"]: float(r["point_value"]) for r in self.baseline.pools.to_pylist()}
        frame = pd.DataFrame({"group": t["group"].to_numpy(zero_copy_only=False)[mine],
                              "pool": t["pool"].to_numpy(zero_copy_only=False)[mine],
                              "points": t["case_points"].to_numpy()[mine],
                              "item_paid": t["item_paid"].to_numpy()[mine], "cost": self.cost[mine]})
        frame["payment"] = frame["points"] * frame["pool"].map(values).to_numpy(np.float64) + frame["item_paid"]
        groups = frame.groupby("group", sort=True).agg(cases=("cost", "size"), cost=("cost", "sum"),
                                                       payment=("payment", "sum"))
        cost_fen, pay_fen = to_fen_array(groups["cost"].to_numpy()), to_fen_array(groups["payment"].to_numpy())
        rows = [{"group": str(g), "cases": int(n), "cost": yuan(c), "payment": yuan(p), "balance": yuan(p - c),
                 "payment_ratio": round(p / c, 4) if c else None, "_balance": p - c}
                for g, n, c, p in zip(groups.index, groups["cases"], cost_fen, pay_fen)]
        rows.sort(key=lambda r: (r["_balance"], r["group"]))
        for r in rows:
            del r["_balance"]
        hospital = self.hospitals.filter(pc.equal(self.hospitals["hospital_id"], hospital_id)).to_pylist()
        info = hospital[0] if hospital else {}
        return {"hospital_id": hospital_id, "name": self.names.get(hospital_id), "level": info.get("level"),
                "type": info.get("type"), "cases": int(mine.sum()), "cost": yuan(int(cost_fen.sum())),
                "payment": yuan(int(pay_fen.sum())), "balance": yuan(int(pay_fen.sum() - cost_fen.sum())),
                "groups": rows}

    def case_hospital(self, case_id: str) -> str | None:
        """The hospital of case `case_id` (None when the region has no such case)."""
        found = self.case_table.filter(pc.equal(self.case_table["case_id"], pa.scalar(case_id, pa.string())))
        return found["hospital_id"][0].as_py() if found.num_rows else None

    def explain(self, case_id: str) -> str:
        from dipsim.payment.explain import explain_case

        return explain_case(self.folder / BASELINE_DIR, case_id)

    def funds(self) -> list[dict]:
        """The baseline's fund monitoring by pool and month (`monitor.fund_monitor`, as `dipsim scenarios run`'s
        funds.csv has it for the baseline): computed once per loaded region, on first use, then kept. Money as
        yuan strings to the fen, shares and point values as numbers. Empty when the cases have no discharge dates."""
        with self._lock:
            if self._funds is None:
                from dipsim.scenarios import _funds

                case_set = self.region.case_set
                frame = _funds(case_set, self.baseline) if case_set.discharge_days is not None else None
                rows = [] if frame is None else frame.to_dict("records")
                money = {"claims", "claims_to_date", "budget_to_date", "projected_balance"}
                self._funds = [{k: (yuan(to_fen(float(v))) if k in money else _plain(v)) for k, v in r.items()}
                               for r in rows]
            return self._funds

    def hospital_chain(self, hospital_id: str) -> dict:
        """One hospital's payment chain under the baseline (`payment.chain`'s steps, summed over its cases), per
        pool, read from the baseline's settlement files (`dipsim settle`'s cases.parquet, hospitals.csv, pools.csv,
        as `payment.explain.explain_hospital` reads them): the points after each case step (1 group points, 2 the
        outlier factor (cases paid by item: 0), 3 the hospital coefficient, 4 the TCM bonus, 5 the auxiliary factor
        = the priced points, 6 supervision cuts, 7 special-case review, 8 the hospital's growth cap = the final
        points, hospitals.csv's), the review's cases, then the pool's point value and the money of steps 9-11
        exactly as hospitals.csv has it
        (group payment, band adjustment, payment, patient paid, fund payout, prepaid, deposit, released, clearing),
        in yuan strings to the fen. Steps 2-4's sums are of the chain's per-case factors multiplied in chain order."""
        import csv

        import pyarrow.parquet as pq

        out = self.folder / BASELINE_DIR
        with open(out / "hospitals.csv", encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["hospital_id"] == hospital_id]
        with open(out / "pools.csv", encoding="utf-8-sig", newline="") as f:
            pools = {r["pool"]: r for r in csv.DictReader(f)}
        cases = pq.read_table(out / "cases.parquet", filters=[("hospital_id", "=", hospital_id)])
        money = ("cost", "group_payment", "band_adjustment", "payment", "patient_paid", "fund_payout", "prepaid",
                 "deposit", "deposit_released", "clearing")  # from cost to payout, in the chain's order
        chains, totals = [], dict.fromkeys(money, 0)
        for row in rows:
            mine = cases.filter(pc.equal(cases["pool"], row["pool"]))

            def col(name: str, mine=mine) -> np.ndarray:
                return mine[name].to_numpy(zero_copy_only=False).astype(np.float64)

            by_item = mine["paid_by_item"].to_numpy(zero_copy_only=False).astype(bool)
            outlier = col("group_points") * col("outlier_factor") * ~by_item
            coefficient = outlier * col("coefficient")
            bonus = coefficient * (1.0 + col("bonus"))
            priced, supervised, final = col("priced_points"), col("supervised_points"), col("case_points")
            reviewed = col("reviewed_points")
            applied = mine["review_applied"].to_numpy(zero_copy_only=False).astype(bool)
            kinds = {k["values"]: int(k["counts"]) for k in pc.value_counts(mine["outlier"]).to_pylist()}
            fen = {k: _fen_text(row[k]) for k in money}
            for k in money:
                totals[k] += fen[k]
            value = float(pools[row["pool"]]["point_value"])
            chains.append({
                "pool": row["pool"], "cases": int(row["cases"]), "outliers": kinds,
                "points": [{"step": step, "points": round(float(v.sum()), 4)} for step, v in (
                    ("group_points", col("group_points")), ("outlier", outlier), ("coefficient", coefficient),
                    ("tcm_bonus", bonus), ("priced", priced), ("supervised", supervised), ("reviewed", reviewed),
                    ("final", final))],
                "settled_points": float(row["points"]),
                "review": {"applied": int(applied.sum()), "approved": round(float(col("review_approval").sum()), 4),
                           "points_added": round(float(reviewed.sum() - supervised.sum()), 4),
                           "item_paid": yuan(to_fen(float(col("item_paid").sum())))},
                "paid_by_item": int(by_item.sum()),
                "point_value": value, "point_value_status": pools[row["pool"]]["status"],
                "points_value": yuan(to_fen(value * float(row["points"]))),
                "money": {k: yuan(fen[k]) for k in money}})
        return {"hospital_id": hospital_id, "name": self.names.get(hospital_id), "pools": chains,
                "total": {k: yuan(v) for k, v in totals.items()}}


def _fen_text(text: str) -> int:
    """A settlement file's yuan ("1234.56", "-0.01") as whole fen, exactly."""
    return fen_of(Decimal(text))


def _plain(value):
    """A table cell as JSON: numpy numbers as Python's, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
