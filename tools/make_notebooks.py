"""Write the notebooks in notebooks/ (unexecuted) from the cells below: `python tools/make_notebooks.py`.

Each notebook starts from a synthetic region it makes itself, of DIPSIM_NOTEBOOK_CASES cases (default 200,000) in
DIPSIM_NOTEBOOK_DIR (default ./notebook_work); the tests run them on a small region (tests/test_notebooks.py).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]


class Markdown(str):
    """A markdown cell after the first (each notebook's first cell is markdown, the others code unless marked)."""


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
    "05_years_and_levers.ipynb": [
        '''# 05 Years, not a year: point-value deflation (点值贬值) and the bureau's levers
Under a regional global budget (区域总额预算) the money of a pool is fixed before the year starts; the value of a
point is that money divided by every hospital's points. So a point one hospital adds is paid out of every other
hospital's money, and a hospital that does *not* add points while the others do loses. This notebook projects a
small synthetic region over several years with `dipsim.project` (the same payment chain as `dipsim settle`, every
year to the fen) to show, step by step:

1. one hospital drifting wins at the others' expense;
2. all hospitals drifting win nothing, and the point value falls (the race);
3. costs growing faster than the fund's income empty the fund;
4. the bureau's levers: a reserve, a point-value floor, tiered growth caps, re-weighting the catalogue;
5. uncertainty: drawn parameters give bands, not a line.

Every number below is an example value (no public source), chosen to make the mechanism visible; docs/projection.md
lists the parameters and their units.''',
        SETUP,
        '''from dipsim.catalog import CatalogOptions, build_catalog
from dipsim.grouping.dip import DipCatalog
from dipsim.grouping.grouped_cases import group_dip
from dipsim.paths import scenarios_dir
from dipsim.policy import load_policy
from dipsim.project import project, projection_of
from dipsim.region import budgets_from_cost

catalog = build_catalog(cases, CatalogOptions(threshold=15))
grouped = group_dip(cases, DipCatalog(catalog.groups, catalog.options, "notebook", catalog.keys))
budgets = budgets_from_cost(cases, 0.6)
policy = load_policy(scenarios_dir() / "baseline.toml").overlay({"budget.total": budgets})
first = hospitals["hospital_id"][0].as_py()  # the hospital that drifts alone below


def run(tables: dict):
    """A projection of the region from a projection file's tables (the same keys as a PROJECTION.toml)."""
    return project(cases, hospitals, policy, projection_of(tables), grouped)


def point_values(results):
    return results.years.pivot(index="year", columns="pool", values="point_value")


def payouts(results):
    return results.hospitals.pivot(index="year", columns="hospital_id", values="payment")''',
        Markdown('''\
## 0. Nothing changes: every year is the base year
With no growth and no behaviour, each projected year is the base year's cases with their dates moved on; the budget
stays the policy's. The point value and every hospital's payment are the base year's, to the fen (tested).'''),
        '''still = run({"projection": {"years": 3, "seed": 1}})
point_values(still)''',
        Markdown('''\
## 1. One hospital drifts: it wins, the others pay
Hospital `first` codes 10% more of its cases into a group of 20% more points each year (`drift_share_by_hospital`,
`drift_factor`); the budget is fixed. Its points rise, so the pool's point value falls, and every other hospital is
paid less for the same work. The pool's total payment does not move: only its split.'''),
        '''alone = run({"projection": {"years": 3, "seed": 1},
             "behaviour": {"drift_share_by_hospital": {first: 0.10}, "drift_factor": 1.2}})
paid = payouts(alone)
gain = (paid.iloc[-1] - paid.iloc[0]).sort_values()
print("point value by year:\\n", point_values(alone).round(6))
print(f"\\n{first}'s payment, year 3 less year 0: {gain[first]:,.2f} yuan")
print(f"all other hospitals together:        {gain.drop(first).sum():,.2f} yuan")
pd.DataFrame({"payment year 0": paid.iloc[0], "payment year 3": paid.iloc[-1], "change": gain}).round(2)''',
        Markdown('''\
The drifting hospital's gain and the others' loss are equal and opposite, to the fen: the budget is fixed, so the
split is zero-sum.

## 2. Everybody drifts: nobody wins, the point value falls
Now every hospital codes 10% more of its cases up each year. Each hospital's share of the points hardly moves, so
its payment hardly moves; but the points rise and the point value falls year after year. This is 点值贬值: each
hospital is pushed to drift to keep its share, and the measured case-mix index (CMI) rises with no change in the
patients. With drifted share D and factor f a pool's points grow by about 1 + D (f - 1), so the point value falls by
about that factor (outliers and cases paid by item aside).'''),
        '''race = run({"projection": {"years": 3, "seed": 1}, "behaviour": {"drift_share": 0.10, "drift_factor": 1.2}})
pv = point_values(race)
growth = pd.Series({year: 1 + min(1.0, 0.10 * year) * (1.2 - 1) for year in pv.index})
print("point value, projected:\\n", pv.round(6))
print("\\npoint value, base year's / (1 + D (f - 1)):\\n", (1 / growth.to_frame() @ pv.iloc[[0]].values).round(6))
cmi = race.hospitals.pivot(index="year", columns="hospital_id", values="cmi")
change = (payouts(race).iloc[-1] / payouts(race).iloc[0] - 1).abs().max()
print(f"\\nCMI of the hospitals, year 0 -> 3: {cmi.iloc[0].mean():.3f} -> {cmi.iloc[-1].mean():.3f}")
print(f"largest change of a hospital's payment: {change:.2%}")''',
        Markdown('''\
## 3. Costs grow faster than the fund
Cost per case +6% a year, volume +3%, while contributions grow 4% and the insured fall 1% a year. The budget follows
last year's by +5% but no faster than the fund's income (以收定支, `rule = "growth"`, `cap_by_income`). The fund's
balance (结余) is carried forward; months of payment capacity = balance / (fund payout / 12).'''),
        '''pools = sorted(budgets)
fund = {pool: {"insured": 100000, "contribution": 0.9 * budgets[pool] / 100000, "insured_growth": -0.01,
               "contribution_growth": 0.04, "balance": 0.75 * budgets[pool]} for pool in pools}
squeeze = run({"projection": {"years": 5, "seed": 1},
               "demand": {"volume_growth": 0.03, "cost_growth": 0.06},
               "budget": {"rule": "growth", "growth": 0.05, "cap_by_income": True}, "fund": fund})
squeeze.years[["year", "pool", "point_value", "budget", "income", "fund_payout", "balance",
               "months_of_capacity"]].round(4)''',
        Markdown('''\
The budget grows as fast as the fund's income allows (about 3% a year here), a little faster than the points, so
the point value even rises; but the cost per case grows 6% a year, so the payment falls behind the cost (the
hospitals' payment / cost ratio below), and the fund, paying out more than its income, runs its balance down: the
months of payment capacity fall year after year. A projection with a positive `drift_elasticity`
lets hospitals paid below cost drift more in response (PolicyEngine's pattern: behavioural responses are parameters
that default to zero).'''),
        '''ratio = squeeze.hospitals.groupby("year")[["payment", "cost"]].sum()
(ratio["payment"] / ratio["cost"]).rename("payment / cost, all hospitals").round(4)''',
        Markdown('''\
## 4. The bureau's levers
Each lever is a policy parameter, dated by year in the same policy file `dipsim settle` reads (docs/projection.md):
a value dated `{ "2026-01-01" = ... }` applies from that year's cases on. Here each is switched on from the first
projected year in a race where every hospital moves 10% more of its cases a year to the next DIP group up of the
same diagnosis (treatment intensity, `intensity_share`: a real move, priced at the target group's points and
standard cost, so the moved case costs what it costs), and the first hospital also grows its volume 8% a year:

- **reserve** (调剂金, `budget.reserve_share`): 5% of the budget held back; the point value falls by 5% more, and
  the money stays in the fund (for special cases, for the next year).
- **point-value floor** (`budget.point_value_floor`): the point value may not fall below the budget point value
  (预算点值), which the bureau sets at the start of each year from the years before (`budget_point_value =
  "history"`: 1:2:7 weighted money over points); a year whose points outgrow that expectation is floored and the
  pool pays more than its budget (the fund pays the overrun: `status` says "floored").
- **tiered growth caps** (`budget.hospital_cap_growth`, `budget.hospital_cap_tiers`): a hospital's points above 101%
  of what it was paid on the year before (its cap) count at 0.79, then above 1.05 x the cap at 0.53, above 1.10 x at
  0.26 (Taiwan's 2025 pilot: 0.95 / 0.75 / 0.5 / 0.25, divided by 0.95).
- **re-weighting** (`[catalogue] rule = "reweight"`): each year's group points from the last three years' costs,
  1:2:7; a group filled with moved, cheaper cases loses points, so the race pays less.'''),
        '''from dipsim.projection.moves import dip_group_table

groups = dip_group_table(grouped, DipCatalog(catalog.groups, catalog.options, "notebook", catalog.keys))
year1 = str(race.years.loc[race.years["year"] == 1, "settlement_day"].iloc[0].year)


def lever(changes=None, **tables):
    """The intensity race with policy `changes` from the first projected year on, and the file's `tables`."""
    dated = {parameter: {"2000-01-01": policy.get(parameter), f"{year1}-01-01": value}
             for parameter, value in (changes or {}).items()}
    spec = projection_of({"projection": {"years": 3, "seed": 1}, "behaviour": {"intensity_share": 0.10},
                          "demand": {"volume_growth_by_hospital": {first: 0.08}},
                          "budget": {"budget_point_value": "history"}, **tables})
    return project(cases, hospitals, policy.overlay(dated) if dated else policy, spec, grouped, groups=groups)


levers = {"none": lever(), "reserve 5%": lever({"budget.reserve_share": 0.05}),
          "floor 1.0": lever({"budget.point_value_floor": 1.0}),
          "tiered caps": lever({"budget.hospital_cap_growth": 0.01,
                                "budget.hospital_cap_tiers": [[0.0, 1.0], [1.0, 0.79], [1.05, 0.53], [1.10, 0.26]]}),
          "re-weighting": lever(catalogue={"rule": "reweight"})}
last = {name: r.years[r.years["year"] == 3].set_index("pool") for name, r in levers.items()}
pd.DataFrame({name: {**{f"point value {p}": y.loc[p, "point_value"] for p in y.index},
                     **{f"status {p}": y.loc[p, "status"] for p in y.index},
                     "fund payout": y["fund_payout"].sum()} for name, y in last.items()}).T''',
        Markdown('''\
The reserve lowers the point value and the payout by its share; the floor holds the point value up and the fund
pays for it; the caps move money from the hospitals that grew most to the others (below: the change of each
hospital's payment in year 3 against no lever); re-weighting answers the race at its source, the points of the
groups the cases moved to.'''),
        '''paid = pd.DataFrame({name: r.hospitals[r.hospitals["year"] == 3].set_index("hospital_id")["payment"]
                     for name, r in levers.items()})
(paid.drop(columns="none").sub(paid["none"], axis=0)).round(2)''',
        Markdown('''\
## 5. Uncertainty: bands, not a line
Nobody knows next year's drift. A value of the projection file may be a distribution (normal truncated, uniform,
triangular, always bounded); `project_draws` draws each draw's values from its own seeded generator and gives the
draws' 10%, 50% and 90% quantiles per year (the same draws on a Dask cluster: `dipsim project --scheduler`).'''),
        '''from dipsim.project import project_draws

uncertain = projection_of({"projection": {"years": 3, "seed": 1},
                           "behaviour": {"drift_share": {"dist": "triangular", "min": 0.0, "mode": 0.05, "max": 0.15},
                                         "drift_factor": 1.2}})
drawn = project_draws(cases, hospitals, policy, uncertain, grouped, draws=20, seed=7)
b = drawn.bands
b[(b["what"] == "pool") & (b["measure"] == "point_value")][["year", "pool", "p10", "p50", "p90"]].round(6)''',
        '''import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3.5))
for pool, rows in b[(b["what"] == "pool") & (b["measure"] == "point_value")].groupby("pool"):
    line = ax.plot(rows["year"], rows["p50"], marker="o", label=pool)[0]
    ax.fill_between(rows["year"], rows["p10"], rows["p90"], color=line.get_color(), alpha=0.2)
ax.set_xlabel("year (0: the base year)")
ax.set_ylabel("point value, 10-90% of the draws")
ax.legend()
plt.show()''',
    ],
}


def main() -> None:
    folder = REPO / "notebooks"
    folder.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        notebook = new_notebook(cells=[new_markdown_cell(c) if i == 0 or isinstance(c, Markdown) else new_code_cell(c)
                                       for i, c in enumerate(cells)])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, folder / name)
        print(f"wrote notebooks/{name}")


if __name__ == "__main__":
    main()
