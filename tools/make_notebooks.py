"""Write the notebooks in notebooks/ (unexecuted) from the cells below: `python tools/make_notebooks.py`.

Each notebook starts from a synthetic region it makes itself, of DIPSIM_NOTEBOOK_CASES cases (default 200,000) in
DIPSIM_NOTEBOOK_DIR (default ./notebook_work); the tests run them on a small region (tests/test_notebooks.py).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]

SETUP = '''import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from dipsim.io import load_cases
from dipsim.synth import synthesize_region

CASES = int(os.environ.get("DIPSIM_NOTEBOOK_CASES", "200000"))
WORK = Path(os.environ.get("DIPSIM_NOTEBOOK_DIR", "notebook_work"))
region = WORK / f"region_{CASES}"
if not (region / "manifest.json").exists():
    synthesize_region(region, cases=CASES, hospitals=max(10, min(100, CASES // 300)), seed=20250101)
cases = load_cases(region / "cases").accepted
hospitals = pq.read_table(region / "hospitals.parquet")
print(f"{cases.num_rows:,} cases in {hospitals.num_rows} hospitals")'''

CATALOG_AND_BUDGET = '''from dipsim.catalog import CatalogOptions, build_catalog
from dipsim.grouping.dip import DipCatalog
from dipsim.grouping.grouped_cases import group_dip
from dipsim.region import budgets_from_cost

catalog = build_catalog(cases, CatalogOptions(threshold=15))
dip = DipCatalog(catalog.groups, catalog.options, "notebook", catalog.keys)
grouped = group_dip(cases, dip)
budgets = budgets_from_cost(cases, 0.6)
print(f"{catalog.groups.num_rows:,} DIP groups, core coverage {catalog.coverage:.1%}; budgets {budgets}")'''

NOTEBOOKS = {
    "01_explore_region.ipynb": [
        "# 01 Explore a region\nCases, hospitals, CHS-DRG groups and costs of a synthetic pooling region.",
        SETUP,
        '''frame = cases.select(["hospital_id", "total_cost", "los_days", "insurance_type"]).to_pandas()
frame = frame.merge(hospitals.select(["hospital_id", "level", "type"]).to_pandas(), on="hospital_id")
frame.groupby("level").agg(cases=("hospital_id", "size"), mean_cost=("total_cost", "mean"),
                           mean_los=("los_days", "mean")).round(1)''',
        '''from dipsim.grouping.drg import group_table

groups = group_table(cases, "chs-drg-1.1").to_pandas()
groups["drg"].value_counts().head(10)''',
        '''from dipsim.report.fonts import cjk_font
import matplotlib.pyplot as plt

plt.rcParams["font.family"] = cjk_font()[0]
ax = frame["total_cost"].clip(upper=frame["total_cost"].quantile(0.99)).plot.hist(bins=60, figsize=(8, 3))
ax.set(title="住院费用分布（99% 分位截尾）", xlabel="元")''',
    ],
    "02_point_value_and_settlement.ipynb": [
        "# 02 Point value and settlement\nA DIP catalogue from the region, the settlement point value of every "
        "pool and each hospital's payout, to the fen.",
        SETUP,
        CATALOG_AND_BUDGET,
        '''from dipsim.policy import load_policy
from dipsim.paths import scenarios_dir
from dipsim.payment.chain import CaseSet, rules, run_chain

print("\\n".join(rules()))  # the payment chain's steps, in order
policy = load_policy(scenarios_dir() / "baseline.toml").overlay({"budget.total": budgets})
run = run_chain(CaseSet.of(cases), grouped, hospitals, policy)
run.pools.to_pandas()''',
        '''h = run.hospitals.to_pandas()
for pool_id, rows in h.groupby("pool"):
    paid = sum(rows["fund_payout"])  # exact decimals: the sum is the budget to the fen
    print(pool_id, paid, budgets[pool_id])
h.sort_values("fund_payout", ascending=False).head(10)''',
    ],
    "03_tcm_weighting.ipynb": [
        "# 03 TCM weighting\nWho gains and who pays when TCM hospitals get a bonus coefficient (中医加成) under a "
        "fixed budget.",
        SETUP,
        CATALOG_AND_BUDGET,
        '''from dipsim.paths import scenarios_dir
from dipsim.scenarios import load_scenarios, run_scenarios

scenario_set = load_scenarios(scenarios_dir() / "tcm_weighting.toml")
scenario_set.baseline = scenario_set.baseline.overlay({"budget.total": budgets})
results = run_scenarios(cases, hospitals, scenario_set, grouped)
results.summary''',
        '''from IPython.display import Image
from dipsim.report.plots import figures

images = figures(results, "zh")
Image(images["payout_change"])''',
        '''results.by_level[results.by_level["scenario"].str.contains("0.15")]''',
    ],
    "04_special_case_review.ipynb": [
        "# 04 Special-case review\n特例单议: hospitals apply for their worst-paid cases up to a quota; a share is "
        "approved (one county: 143 of 219, 65.29%).",
        SETUP,
        CATALOG_AND_BUDGET,
        '''from dipsim.payment.chain import CaseSet, run_chain
from dipsim.policy import Policy

policy = Policy(values={}).overlay({"budget.total": budgets, "review.in_effect": True})
run = run_chain(CaseSet.of(cases), grouped, hospitals, policy)
run.review.hospitals.sort_values("amount", ascending=False).head(10)''',
        '''from dipsim.review import simulate

mc = simulate(run.review, cases["hospital_id"].to_numpy(), draws=500, seed=1)
mc.sort_values("amount_mean", ascending=False).head(10)''',
        '''from dipsim.paths import scenarios_dir
from dipsim.scenarios import load_scenarios, run_scenarios

scenario_set = load_scenarios(scenarios_dir() / "special_case_review.toml")
scenario_set.baseline = scenario_set.baseline.overlay({"budget.total": budgets})
run_scenarios(cases, hospitals, scenario_set, grouped).summary''',
    ],
}


def main() -> None:
    folder = REPO / "notebooks"
    folder.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        notebook = new_notebook(cells=[new_markdown_cell(c) if i == 0 else new_code_cell(c)
                                       for i, c in enumerate(cells)])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, folder / name)
        print(f"wrote notebooks/{name}")


if __name__ == "__main__":
    main()
