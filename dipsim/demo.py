"""`dipsim demo`'s steps past grouping, on the synthetic region it makes: the region by hospital level, the
settlement through the payment chain under the default policy, and every shipped DIP scenario file."""

from __future__ import annotations

from pathlib import Path

from dipsim.schema import DISCHARGE_DEATH, HOSPITAL_LEVELS


def demo_scenarios(cases, hospitals, grouped, budgets: dict, out: Path) -> list[tuple[Path, str]]:
    """Run every shipped DIP scenario file on the demo region with `budgets`, write its tables and report; per file
    the report and a line saying how much money the variants moved at most."""
    import pyarrow as pa

    from dipsim.io.writers import write_csv
    from dipsim.paths import scenarios_dir
    from dipsim.report.export import write_scenario_xlsx
    from dipsim.report.html import write_report
    from dipsim.scenarios import load_scenarios, run_scenarios

    reports = []
    for path in sorted(scenarios_dir().glob("*.toml")):
        if path.stem.startswith(("baseline", "projection")):  # policies and projection files (`dipsim project`)
            continue
        scenario_set = load_scenarios(path)
        if scenario_set.baseline.get("payment.mode") != "dip":
            continue
        scenario_set.baseline = scenario_set.baseline.overlay({"budget.total": budgets})
        results = run_scenarios(cases, hospitals, scenario_set, grouped)
        folder = out / "scenarios" / scenario_set.name
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in results.tables().items():
            write_csv(pa.Table.from_pandas(frame, preserve_index=False), folder / f"{name}.csv")
        write_scenario_xlsx(results, folder / "hospitals.xlsx")
        report = write_report(results, folder / "report.html", scenario_set.title)
        moved = results.summary.set_index("scenario")["moved"].drop("baseline")
        reports.append((report, f"scenarios {scenario_set.name}: {len(scenario_set.variants)} variants; most money "
                                f"moved {moved.max():,.2f} yuan ({moved.idxmax()})"))
    return reports


def demo_policy(budgets: dict):
    """The demo's policy: the defaults (DIP points, no bands) with `budgets`."""
    from dipsim.policy import Policy

    return Policy(values={}, name="defaults").overlay({"budget.total": budgets}, name="defaults, budget 60% of cost")


def settle_demo(cases, hospitals, grouped, policy, out: Path) -> tuple[Path, list[str]]:
    """Settle the demo region through the payment chain under `policy` (`demo_policy`: the defaults with budgets of
    60% of each pool's billed cost); write hospitals.csv, pools.csv, cases.parquet and manifest.json into
    OUT/settlement; the folder and a line per pool with its point value."""
    from dipsim.io.writers import OutputFolder
    from dipsim.payment.chain import CaseSet, run_chain

    run = run_chain(CaseSet.of(cases), grouped, hospitals, policy)
    folder = OutputFolder(out / "settlement")
    folder.csv(run.hospitals, "hospitals.csv")
    folder.csv(run.pools, "pools.csv")
    folder.parquet(run.case_table(), "cases.parquet")
    day = run.terms.settlement_day
    folder.manifest({"command": "demo", "policy": policy.source, "policy_name": policy.name,
                     "policy_sha256": policy.digest(), "policy_day": day.isoformat() if day else None, "mode": "dip"})
    return folder.path, [f"settlement {row['pool']}: budget {row['budget_available']:,} yuan over "
                         f"{row['total_points']:,.0f} points -> point value {row['point_value']:.4f} yuan, paid out to "
                         "the fen" for row in run.pools.to_pylist()]


def region_summary(cases, groups, weights, hospitals_path: Path) -> str:
    """Cases, cost, case-mix index (CMI = mean RW), TCM share and deaths by hospital level."""
    import pandas as pd

    frame = cases.select(["hospital_id", "total_cost", "tcm_treated", "discharge_mode"]).to_pandas()
    frame["rw"] = groups["drg"].to_pandas().map(weights.set_index("drg")["rw"])
    hospitals = pd.read_parquet(hospitals_path, columns=["hospital_id", "level"])
    merged = frame.merge(hospitals, on="hospital_id", how="left")
    table = merged.groupby("level", sort=False).agg(
        hospitals=("hospital_id", "nunique"), cases=("hospital_id", "size"), cost=("total_cost", "sum"),
        mean_cost=("total_cost", "mean"), cmi=("rw", "mean"), tcm=("tcm_treated", "mean"),
        deaths=("discharge_mode", lambda m: (m == DISCHARGE_DEATH).mean()))
    table = table.reindex([lvl for lvl in HOSPITAL_LEVELS if lvl in table.index])
    table["cost"] /= 1e4
    table.index.name = "等级"
    table.columns = ["医院数", "病例数", "总费用(万元)", "例均费用(元)", "CMI", "中医治疗占比", "死亡率"]
    formats = {"CMI": "{:.3f}".format, "中医治疗占比": "{:.1%}".format, "死亡率": "{:.1%}".format}
    with pd.option_context("display.unicode.east_asian_width", True):
        return table.to_string(formatters=formats, float_format=lambda v: f"{v:,.0f}")
