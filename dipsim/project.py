"""Projections: years, not a year (issue 20, first slice: deterministic). From a base year of grouped cases, years
1..T are made as real case sets and each is settled by the one payment chain (`dipsim.payment.chain.run_chain`),
exactly as `dipsim settle` settles a year, to the fen. Grouping is done once (the base year's); a projected year
only re-prices and re-solves. A year's case set is index arrays into the base year's (`dipsim.projection.years`);
its table, with the copies' ids, is made only when something reads it (the supervision screens, a case table).

A projection file (PROJECTION.toml; every key optional but `years`):

    [projection]
    name = "five_years"
    years = 5                      # T: years 1..T after the base year (year 0, settled as given)
    seed = 20250101                # which cases are copied, dropped or drift (deterministic for a seed)
    policy = "baseline.toml"       # the policy (relative to this file; `dipsim project --policy` replaces it)

    [demand]                       # yearly rates (0.03 = +3% a year); a number, or a list of T numbers (one a year)
    volume_growth = 0.02           # case volume, every hospital
    volume_growth_by_level = { "三级甲等" = 0.04 }   # a level's rate instead (one number, every year)
    volume_growth_by_type = { "中医" = 0.03 }        # a type's rate instead
    volume_growth_by_hospital = { H001 = 0.10 }      # a hospital's rate instead
    volume_growth_by_age = { "0-14" = -0.02, "65-" = 0.04 }  # ageing: an age band's cases grow by this too
                                                             # (a number, or T numbers, per band)
    cost_growth = 0.03             # cost per case (and patient payments, and the groups' standard costs)

    [behaviour]                    # coding drift / intensity: a share of a hospital's cases whose points rise
    drift_share = 0.01             # share of the hospital's cases added to the drifted ones each year
    drift_share_by_level = { "三级甲等" = 0.02 }
    drift_share_by_hospital = { H001 = 0.05 }
    drift_factor = 1.2             # a drifted case's group points (DIP points, DRG RW) x this
    drift_elasticity = 0.0         # response to last year's payment / cost ratio r: share x r^(-elasticity)
    drift_elasticity_pv = 0.0      # ... and to the point value's change v: share x v^(-elasticity_pv)
    volume_elasticity = 0.0        # volume: each year's growth factor x r^(volume_elasticity)
    volume_elasticity_pv = 0.0     # ... x v^(-volume_elasticity_pv): more cases when the point value falls
    severity_share = 0.01          # moves between groups (dipsim.projection.moves, with a group table): cases moved
    intensity_share = 0.01         # up a severity level / to the next group up of their diagnosis; each with
                                   # _by_level, _by_hospital, _elasticity, _elasticity_pv (docs/projection.md)
    intensity_min_cases = 5        # DRG: a diagnosis's treatments are the DRGs of at least 5 of its base cases

    [budget]
    rule = "policy"                # "policy": budget.total of the policy on the year's settlement day (dated
                                   # values: levers by year); "share_of_income": share x the pool's fund income;
                                   # "growth": last year's budget x (1 + growth)
    share = 0.55                   # rule share_of_income
    growth = 0.03                  # rule growth: a number or T numbers
    cap_by_income = false          # rule growth: the budget grows no faster than the pool's fund income

    [fund."990100-employee"]       # per settlement pool (统筹区-险种); a pool without one has no fund columns
    insured = 500000               # insured persons in the base year
    contribution = 1200.0          # yuan per insured person and year (the part financing inpatient care)
    insured_growth = 0.0           # yearly rates: a number or T numbers
    contribution_growth = 0.05
    balance = 300000000.0          # the fund's balance at the end of the base year, yuan

    [catalogue]                    # the year's catalogue (`dipsim.projection.reweight`)
    rule = "reweight"              # "frozen" (default): the base catalogue's points; "reweight": each year's points
                                   # and standard costs from the settled cases of the last years
    weights = [1, 2, 7]            # those years' weights, oldest first
    from_year = 1                  # the first projected year re-weighted

Which rate applies to a hospital: its own (`*_by_hospital`), else its type's, else its level's (volume; drift: its
own, else its level's), else the overall one. Year t, hospital h with n_0 base cases:

* volume: n_t = round_half_even(n_0 x prod_{s<=t} (1 + g_s)) (x the responses volume_elasticity to last year's
  payment / cost and volume_elasticity_pv to the point value's change; with volume_growth_by_age each age band of
  h counted apart, x its own rate: docs/projection.md); the cases of h in a seeded order (`seed`, h): the
  first n_t - n_0 are copied (copy k of case X is case "X~y<t>~<k>", k from 1, of patient "P~y<t>~<k>": another
  patient's stay like it, not a readmission; more copies than cases cycle through the order again), or only
  the first n_t are kept when volume falls. The copies of year t+1 include those of year t (the order is the same
  every year).
* dates: every date column (admission, discharge) moves t years on (29 February to 28 February), so a policy
  value dated by year is read on that year's days: the case-level terms on each case's discharge day, the pool
  terms on the year's last discharge (as `settle`).
* cost: total_cost, patient_paid (and fund_paid, tcm_cost when present) x prod (1 + c_s), rounded to the fen per
  case; the groups' standard costs x the same factor (the catalogue's points are frozen; its standard costs follow
  cost growth, so cost growth alone moves no case's outlier class beyond the fen's rounding). Under [catalogue]
  rule "reweight" both come from the last years' settled cases instead (`dipsim.projection.reweight`).
* drift: share_{h,t} = trend_{h,t} x r_{h,t-1}^(-elasticity) x (pv_{h,t-1} / pv_{h,t-2})^(-elasticity_pv), r the
  hospital's payment / cost ratio of year t-1 (1 without cost), pv its point value (`moves.Moves.pv_ratio`); the
  drifted share D_{h,t} = min(1, D_{h,t-1} + share_{h,t}) (D_0 = 0); the
  round_half_even(D x n_t) cases of h first in a seeded hash of their case ids (`seed`) have their group points x
  factor; a copy's number is its base case's hash mixed with k (splitmix64), the same in every year it is made
  (`projection.years.copy_ranks`). With elasticity 0 there is no response; a hospital paid below its cost
  (r < 1) drifts more when it is above 0.
* fund: income_t = round(insured_0 x prod(1 + i_s) x contribution_0 x prod(1 + c_s), 2) (yuan); the budget of the
  rule (rounded to the fen); fund payout_t: the pool's settled fund payout; balance_t = balance_{t-1} + income_t -
  fund payout_t (year 0: the given balance); months of payment capacity = balance_t / (fund payout_t / 12). The
  reserve (budget.reserve_share) stays a policy parameter.

Uncertainty (`project_draws`, `dipsim project --draws N`): a number of the file may be a bounded distribution
(`DISTRIBUTIONS`: normal truncated, uniform, triangular); draw k draws them from the k-th child of
SeedSequence(seed) and is projected as above; bands are the draws' quantiles (docs/projection.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.io.toml_files import is_number as _number
from dipsim.payment.caps import settled_points, with_references
from dipsim.payment.chain import CaseSet, run_chain
from dipsim.policy import Policy
from dipsim.projection import kernels
from dipsim.projection import moves as group_moves
from dipsim.projection import years as year_cases
from dipsim.projection.reweight import CatalogueRule, catalogue_of, reweighting
from dipsim.schema import float_column

MAX_YEARS = 50
RULES = ("policy", "share_of_income", "growth")
BUDGET_POINT_VALUE_RULES = ("policy", "history")
DATE_COLUMNS = ("admission_date", "discharge_date")
MONEY_COLUMNS = ("total_cost", "patient_paid", "fund_paid", "tcm_cost")  # grown with cost, to the fen

# the keys of each table: (kind, what) with kind "rates" (a number or T numbers), "map" (name -> number), "ages"
# (age band -> a number or T numbers), "number", "int", "text", "bool"
KEYS = {
    "projection": {"name": "text", "title": "text", "years": "int", "seed": "int", "policy": "text"},
    "demand": {"volume_growth": "rates", "volume_growth_by_level": "map", "volume_growth_by_type": "map",
               "volume_growth_by_hospital": "map", "volume_growth_by_age": "ages", "cost_growth": "rates"},
    "behaviour": {"drift_share": "rates", "drift_share_by_level": "map", "drift_share_by_hospital": "map",
                  "drift_factor": "number", "drift_elasticity": "number", "drift_elasticity_pv": "number",
                  "volume_elasticity": "number", "volume_elasticity_pv": "number", **group_moves.MOVE_KEYS},
    "budget": {"rule": "text", "share": "number", "growth": "rates", "cap_by_income": "bool",
               "budget_point_value": "text"},
}
TABLES = (*KEYS, "catalogue", "fund")  # the file's tables: KEYS's, [catalogue] (`projection.reweight`), [fund.POOL]
FUND_KEYS = {"insured": "number", "contribution": "number", "insured_growth": "rates",
             "contribution_growth": "rates", "balance": "number"}


@dataclass
class Fund:
    insured: float = 0.0
    contribution: float = 0.0
    insured_growth: list[float] = field(default_factory=list)
    contribution_growth: list[float] = field(default_factory=list)
    balance: float = 0.0

    def income(self, year: int) -> float:
        """The fund's income of `year` (0: the base year), yuan to the fen."""
        insured = self.insured * math.prod(1 + g for g in self.insured_growth[:year])
        contribution = self.contribution * math.prod(1 + g for g in self.contribution_growth[:year])
        return round(insured * contribution, 2)


@dataclass
class ProjectionSpec:
    """A projection file, checked (`load_projection`, `projection_of`); rates are lists of `years` numbers."""

    years: int
    name: str = "projection"
    title: str = ""
    seed: int = 0
    policy: str | None = None  # the policy file, resolved against the projection file's folder
    volume_growth: list[float] = field(default_factory=list)
    volume_growth_by_level: dict[str, float] = field(default_factory=dict)
    volume_growth_by_type: dict[str, float] = field(default_factory=dict)
    volume_growth_by_hospital: dict[str, float] = field(default_factory=dict)
    volume_growth_by_age: dict[str, list[float]] = field(default_factory=dict)  # age band ("0-14", "65-") -> T rates
    cost_growth: list[float] = field(default_factory=list)
    drift_share: list[float] = field(default_factory=list)
    drift_share_by_level: dict[str, float] = field(default_factory=dict)
    drift_share_by_hospital: dict[str, float] = field(default_factory=dict)
    drift_factor: float = 1.0
    drift_elasticity: float = 0.0
    drift_elasticity_pv: float = 0.0
    volume_elasticity: float = 0.0  # volume's response to last year's payment / cost ratio
    volume_elasticity_pv: float = 0.0  # ... and to the point value's change
    # moves between groups (`dipsim.projection.moves`): severity_share, ..._by_level, ..._by_hospital,
    # ..._elasticity, ..._elasticity_pv, the same for intensity
    severity_share: list[float] = field(default_factory=list)
    severity_share_by_level: dict[str, float] = field(default_factory=dict)
    severity_share_by_hospital: dict[str, float] = field(default_factory=dict)
    severity_elasticity: float = 0.0
    severity_elasticity_pv: float = 0.0
    intensity_share: list[float] = field(default_factory=list)
    intensity_share_by_level: dict[str, float] = field(default_factory=dict)
    intensity_share_by_hospital: dict[str, float] = field(default_factory=dict)
    intensity_elasticity: float = 0.0
    intensity_elasticity_pv: float = 0.0
    intensity_min_cases: int = group_moves.INTENSITY_MIN_CASES  # DRG: base cases making a DRG a diagnosis's treatment
    rule: str = "policy"
    share: float | None = None
    growth: list[float] = field(default_factory=list)
    cap_by_income: bool = False
    budget_point_value: str = "policy"
    funds: dict[str, Fund] = field(default_factory=dict)
    catalogue: CatalogueRule = field(default_factory=CatalogueRule)  # [catalogue]: frozen or re-weighted
    source: str = "projection"
    # values given as distributions (`take_distributions`): path -> Distribution; the spec holds their central
    # values, `template` the file's tables with those central values (what `draw_spec` fills with a draw's)
    distributions: dict[tuple, Distribution] = field(default_factory=dict)
    template: dict | None = None
    # lever scenarios (`dipsim.projection.levers`): the file's [scenario.NAME] tables as read, the file's other
    # tables as read (what a scenario's tables replace keys of) and its text (for line numbers)
    scenarios: dict = field(default_factory=dict)
    data: dict | None = None
    text: str = ""

    def __post_init__(self):
        for name in ("volume_growth", "cost_growth", "drift_share", "severity_share", "intensity_share", "growth"):
            if not getattr(self, name):
                setattr(self, name, [0.0] * self.years)


def _line_of(text: str, table: str, key: str | None) -> str:
    """' (line N)' of `key` in [table] of the TOML `text` (or of the table's header), '' when not found."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
    current, found = "", None
    for number, line in enumerate(lines, 1):
        m = header.match(line)
        if m:
            current = m.group(1).replace('"', "").replace(" ", "")
            if key is None and current == table:
                return f" (line {number})"
            continue
        if key is not None and current == table and re.match(rf'^\s*"?{re.escape(key)}"?\s*=', line):
            found = number
            break
    return f" (line {found})" if found else ""


def load_projection(path) -> ProjectionSpec:
    """Read and check a projection file: InputError listing every problem, each with the file's line."""
    path = Path(path)
    from dipsim.io.toml_files import read_toml

    data = read_toml(path, "projection")
    text = path.read_text(encoding="utf-8")
    spec = projection_of(data, str(path), text)
    if spec.policy is not None:
        spec.policy = str(path.parent / spec.policy)
    return spec


# ------------------------------------------------------------------ distributions (Monte Carlo draws)

# A number of the file (a rate, one of a list of rates, a map's entry, a number) may be a distribution, an inline
# table with `dist` and its parameters, always bounded (min <= a draw <= max):
#   { dist = "normal", mean = 0.03, sd = 0.01, min = 0.0, max = 0.06 }   normal truncated to [min, max] (redrawn)
#   { dist = "uniform", min = 0.01, max = 0.05 }
#   { dist = "triangular", min = 0.0, mode = 0.02, max = 0.05 }
# A deterministic projection uses each one's central value (normal: mean, uniform: midpoint, triangular: mode);
# `project_draws` draws them, draw k from the k-th child of numpy's SeedSequence(seed) (`draw_rng`).
DISTRIBUTIONS = {"normal": ("mean", "sd", "min", "max"), "uniform": ("min", "max"),
                 "triangular": ("min", "mode", "max")}
MAX_REDRAWS = 10_000  # a truncated normal's tries before giving up (its bounds hold almost none of its mass)


@dataclass(frozen=True)
class Distribution:
    kind: str  # a key of DISTRIBUTIONS
    low: float
    high: float
    mean: float = 0.0  # normal
    sd: float = 0.0  # normal
    mode: float = 0.0  # triangular

    @property
    def central(self) -> float:
        """The value a deterministic projection uses: the normal's mean, the uniform's midpoint, the mode."""
        return {"normal": self.mean, "uniform": (self.low + self.high) / 2, "triangular": self.mode}[self.kind]

    def draw(self, rng: np.random.Generator) -> float:
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "triangular":
            return float(rng.triangular(self.low, self.mode, self.high)) if self.low < self.high else self.low
        for _ in range(MAX_REDRAWS):
            value = float(rng.normal(self.mean, self.sd))
            if self.low <= value <= self.high:
                return value
        raise InputError(f"a normal({self.mean}, {self.sd}) truncated to [{self.low}, {self.high}]: no draw within "
                         f"the bounds in {MAX_REDRAWS} tries")


def _distribution(value: dict) -> tuple[Distribution | None, str]:
    """The distribution of an inline table {dist = ..., ...}, or (None, what is wrong)."""
    kind = value.get("dist")
    if kind not in DISTRIBUTIONS:
        return None, f"dist is one of {', '.join(repr(k) for k in DISTRIBUTIONS)} (got {kind!r})"
    needed = DISTRIBUTIONS[kind]
    wrong = sorted(set(value) - {"dist", *needed})
    missing = [k for k in needed if k not in value]
    if wrong or missing:
        return None, (f"a {kind} distribution is {{ dist = \"{kind}\", {', '.join(f'{k} = ...' for k in needed)} }}"
                      f" (bounds required){'; unknown ' + ', '.join(wrong) if wrong else ''}"
                      f"{'; missing ' + ', '.join(missing) if missing else ''}")
    if not all(_number(value[k]) for k in needed):
        return None, f"the {kind} distribution's {', '.join(needed)} must be numbers (got {value!r})"
    low, high = float(value["min"]), float(value["max"])
    if not low <= high:
        return None, f"min <= max (got min = {low}, max = {high})"
    if kind == "normal":
        if not value["sd"] > 0 or not low <= value["mean"] <= high:
            return None, f"sd above 0 and min <= mean <= max (got {value!r})"
        return Distribution(kind, low, high, mean=float(value["mean"]), sd=float(value["sd"])), ""
    if kind == "triangular":
        if not low <= value["mode"] <= high:
            return None, f"min <= mode <= max (got {value!r})"
        return Distribution(kind, low, high, mode=float(value["mode"])), ""
    return Distribution(kind, low, high), ""


def _is_distribution(value) -> bool:
    return isinstance(value, dict) and "dist" in value


def take_distributions(data: dict, problem=None) -> tuple[dict, dict[tuple, Distribution]]:
    """`data` with each distribution (of a key of kind rates, map or number: `KEYS`, `FUND_KEYS`) replaced by its
    central value, and the distributions by path: (table, key), (table, key, index in the list), (table, key, map
    name), ("fund", pool, key) ... `problem(table, key, what)` is told of each malformed one."""
    found: dict[tuple, Distribution] = {}

    def replace(table: str, key: str, value, path: tuple):
        if _is_distribution(value):
            dist, what = _distribution(value)
            if dist is None:
                if problem is not None:
                    problem(table, key, what)
                return value
            found[path] = dist
            return dist.central
        return value

    out: dict = {}
    for table, content in data.items():
        if not isinstance(content, dict):
            out[table] = content
            continue
        tables = ([(f"fund.{pool}", (table, pool), c, FUND_KEYS) for pool, c in content.items()]
                  if table == "fund" else [(table, (table,), content, KEYS.get(table, {}))])
        new: dict = {}
        for name, prefix, values, kinds in tables:
            if not isinstance(values, dict):
                new[prefix[-1]] = values
                continue
            row = {}
            for key, value in values.items():
                kind, path = kinds.get(key), (*prefix, key)
                if kind in ("rates", "number"):
                    row[key] = ([replace(name, key, v, (*path, i)) for i, v in enumerate(value)]
                                if isinstance(value, list) else replace(name, key, value, path))
                elif kind in ("map", "ages") and isinstance(value, dict) and not _is_distribution(value):
                    row[key] = {k: ([replace(name, key, x, (*path, k, i)) for i, x in enumerate(v)]
                                    if kind == "ages" and isinstance(v, list) else replace(name, key, v, (*path, k)))
                                for k, v in value.items()}
                else:
                    row[key] = value
            if table == "fund":
                new[prefix[-1]] = row
            else:
                new = row
        out[table] = new
    return out, found


def _path_text(path: tuple) -> str:
    """A distribution's path as text: demand.volume_growth, demand.volume_growth[2], fund."P".balance ..."""
    if path[0] == "fund":
        head, rest = f'fund."{path[1]}".{path[2]}', path[3:]
    else:
        head, rest = f"{path[0]}.{path[1]}", path[2:]
    return head + "".join(f"[{r}]" if isinstance(r, int) else f'["{r}"]' for r in rest)


def filled(template: dict, values: dict[tuple, float]) -> dict:
    """The file's tables `template` with the value at each path of `values` replaced."""
    import copy

    out = copy.deepcopy(template)
    for path, value in values.items():
        at = out
        for step in path[:-1]:
            at = at[step]
        at[path[-1]] = value
    return out


def _bound_problems(data: dict, distributions: dict[tuple, Distribution], source: str, text: str) -> list[str]:
    """The file's checks with every distribution at its min, then at its max: what a draw could break (each key's
    allowed values are an interval, so both ends passing means every draw does)."""
    problems = []
    for end in ("min", "max"):
        values = {path: (d.low if end == "min" else d.high) for path, d in distributions.items()}
        try:
            projection_of(filled(data, values), source, text)
        except InputError as exc:
            lines = str(exc).splitlines()[1:]
            problems += [f"{line.strip()} (with every distribution at its {end})" for line in lines]
    return problems


def draw_rng(seed: int, draw: int) -> np.random.Generator:
    """Draw k's generator: the k-th child of SeedSequence(seed) (`SeedSequence(seed).spawn(n)[k]` for any n > k),
    so draw k is the same whatever the number of draws and wherever it runs."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(draw,)))


def drawn_values(spec: ProjectionSpec, seed: int, draw: int) -> dict[tuple, float]:
    """Draw k's value of each distribution of `spec`, drawn in the order of their paths as text (sorted)."""
    rng = draw_rng(seed, draw)
    return {path: spec.distributions[path].draw(rng)
            for path in sorted(spec.distributions, key=_path_text)}


def draw_spec(spec: ProjectionSpec, values: dict[tuple, float]) -> ProjectionSpec:
    """`spec` with its distributions at `values` (checked as the file is)."""
    if not spec.distributions:
        return spec
    assert spec.template is not None
    out = projection_of(filled(spec.template, values), spec.source)
    out.policy = spec.policy
    return out


def projection_of(data: dict, source: str = "projection", text: str = "") -> ProjectionSpec:
    """The checks of `load_projection` on parsed TOML `data` (`text`: the file, for line numbers)."""
    problems: list[str] = []

    def problem(table: str, key: str | None, what: str) -> None:
        where = f"[{table}]" + (f" {key}" if key else "")
        problems.append(f"{where}{_line_of(text, table, key)}: {what}")

    scenarios = data.get("scenario", {})  # checked and run by `dipsim.projection.levers`
    if not isinstance(scenarios, dict) or not all(isinstance(v, dict) for v in scenarios.values()):
        problem("scenario", None, "must be tables [scenario.NAME] (title = \"...\", policy = { ... }, ...)")
        scenarios = {}
    data = read = {k: v for k, v in data.items() if k != "scenario"}
    data, distributions = take_distributions(data, problem)
    unknown = sorted(set(data) - set(TABLES))
    for name in unknown:
        problem(name, None, "unknown table (expected "
                            f"{', '.join(f'[{k}.POOL]' if k == 'fund' else f'[{k}]' for k in TABLES)})")
    meta = data.get("projection", {})
    years = meta.get("years") if isinstance(meta, dict) else None
    if not isinstance(years, int) or isinstance(years, bool) or not 1 <= years <= MAX_YEARS:
        problem("projection", "years" if years is not None else None,
                f"years = T is needed, a whole number of years from 1 to {MAX_YEARS}" +
                (f" (got {years!r})" if years is not None else ""))
        years = None
    values: dict[str, Any] = {}

    def check(table: str, key: str, kind: str, value):
        if kind == "rates":
            rates = value if isinstance(value, list) else [value]
            if not all(_number(v) and v > -1 for v in rates):
                problem(table, key, f"a yearly rate above -1 (0.03 = +3% a year), or a list of them (got {value!r})")
                return None
            if isinstance(value, list) and years is not None and len(value) != years:
                problem(table, key, f"{len(value)} rates for {years} years: give one number, or one per year")
                return None
            return list(rates) * (years or 1) if not isinstance(value, list) else list(value)
        if kind == "map":
            if not isinstance(value, dict) or not all(_number(v) and v > -1 for v in value.values()):
                problem(table, key, f"a table of name = rate, each above -1, e.g. {{ \"三级甲等\" = 0.04 }} (got "
                                    f"{value!r})")
                return None
            return {str(k): float(v) for k, v in value.items()}
        if kind == "ages":
            if not isinstance(value, dict):
                problem(table, key, f"a table of age band = rate (or a list of T rates), e.g. {{ \"0-14\" = 0.0, "
                                    f"\"65-\" = [0.04, 0.05] }} (got {value!r})")
                return None
            rates = {str(k): check(table, key, "rates", v) for k, v in value.items()}
            return None if any(r is None for r in rates.values()) else rates
        if kind == "number":
            if not _number(value):
                problem(table, key, f"a number (got {value!r})")
                return None
            return float(value)
        if kind == "int":
            if not isinstance(value, int) or isinstance(value, bool):
                problem(table, key, f"a whole number (got {value!r})")
                return None
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                problem(table, key, f"true or false (got {value!r})")
                return None
            return value
        if not isinstance(value, str):
            problem(table, key, f"text in quotes (got {value!r})")
            return None
        return value

    for table, keys in KEYS.items():
        content = data.get(table, {})
        if not isinstance(content, dict):
            problem(table, None, "must be a table")
            continue
        for key, value in content.items():
            if key not in keys:
                problem(table, key, f"unknown key (expected one of {', '.join(keys)})")
                continue
            if table == "projection" and key == "years":
                continue
            checked = check(table, key, keys[key], value)
            if checked is not None:
                values[key] = checked
    funds: dict[str, Fund] = {}
    fund_tables = data.get("fund", {})
    if not isinstance(fund_tables, dict):
        problem("fund", None, "must be tables [fund.\"POOL\"] (统筹区-险种)")
        fund_tables = {}
    for pool, content in fund_tables.items():
        table = f"fund.{pool}"
        if not isinstance(content, dict):
            problem(table, None, "must be a table of insured, contribution, ...")
            continue
        given: dict[str, Any] = {}
        for key, value in content.items():
            if key not in FUND_KEYS:
                problem(table, key, f"unknown key (expected one of {', '.join(FUND_KEYS)})")
                continue
            checked = check(table, key, FUND_KEYS[key], value)
            if checked is not None:
                if key in ("insured", "contribution") and checked < 0:
                    problem(table, key, f"may not be negative (got {value!r})")
                    continue
                given[key] = checked
        funds[str(pool)] = Fund(**given)
    catalogue = catalogue_of(data.get("catalogue"), years, problem)
    rule = values.get("rule", "policy")
    if rule not in RULES:
        problem("budget", "rule", f"one of {', '.join(repr(r) for r in RULES)} (got {rule!r})")
    share = values.get("share")
    if rule == "share_of_income":
        if share is None or not 0 < share <= 1:
            problem("budget", "share" if share is not None else "rule",
                    f"rule \"share_of_income\" needs share, above 0 and at most 1 (got {share!r})")
        if not funds:
            problem("budget", "rule", "rule \"share_of_income\" needs a [fund.\"POOL\"] table for every pool")
    if values.get("budget_point_value", "policy") not in BUDGET_POINT_VALUE_RULES:
        problem("budget", "budget_point_value", f"one of {', '.join(repr(r) for r in BUDGET_POINT_VALUE_RULES)} "
                                                f"(got {values['budget_point_value']!r})")
    if isinstance(values.get("volume_growth_by_age"), dict):
        _, wrong = age_bands(values["volume_growth_by_age"])
        if wrong:
            problem("demand", "volume_growth_by_age", wrong)
    factor = values.get("drift_factor", 1.0)
    if isinstance(factor, float) and factor <= 0:
        problem("behaviour", "drift_factor", f"above 0 (1.2: a drifted case's points x 1.2; got {factor!r})")
    if isinstance(values.get("intensity_min_cases"), int) and values["intensity_min_cases"] < 1:
        problem("behaviour", "intensity_min_cases", "a whole number from 1 (5: a DRG is a treatment of a diagnosis "
                f"when at least 5 base cases of it were grouped there; got {values['intensity_min_cases']!r})")
    for key in ("drift_share", "drift_share_by_level", "drift_share_by_hospital",
                *(f"{m}_share{by}" for m in group_moves.MOVES for by in ("", "_by_level", "_by_hospital"))):
        value = values.get(key)
        shares = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
        if any(not 0 <= s <= 1 for s in shares):
            problem("behaviour", key, "shares from 0 to 1")
    if distributions and not problems:
        problems += _bound_problems(data, distributions, source, text)
    if problems:
        raise InputError(f"{source}: {len(problems)} problem(s) in the projection file:\n  " + "\n  ".join(problems))
    assert years is not None
    for fund in funds.values():
        fund.insured_growth = fund.insured_growth or [0.0] * years
        fund.contribution_growth = fund.contribution_growth or [0.0] * years
    return ProjectionSpec(years=years, source=source, funds=funds, catalogue=catalogue, distributions=distributions,
                          template=data if distributions else None, scenarios=scenarios, data=read, text=text,
                          **{k: v for k, v in values.items() if k in ProjectionSpec.__dataclass_fields__})


# ------------------------------------------------------------------ making a year


def _order(seed: int, key: str, n: int) -> np.ndarray:
    """A seeded permutation of range(n), the same for the same (seed, key) on every machine."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(n)


@dataclass
class YearCases:
    rows: np.ndarray  # index into the base cases, per case of the year
    copy: np.ndarray  # 0: the base case itself; k: its k-th copy


def volume_orders(hospital_codes: np.ndarray, hospital_ids, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hospital code: its base cases (rows, in order) and the same in the order seeded by (seed, hospital) that
    `year_rows` keeps and copies them in (the same every year and draw: `project`'s cache keeps it)."""
    by_hospital = np.argsort(hospital_codes, kind="stable")
    bounds = np.searchsorted(hospital_codes[by_hospital], np.arange(len(hospital_ids) + 1))
    owns = [by_hospital[bounds[code]:bounds[code + 1]] for code in range(len(hospital_ids))]
    return [(own, own[_order(seed, f"volume\0{hospital}", len(own))]) for own, hospital in zip(owns, hospital_ids)]


def volume_rates(spec: ProjectionSpec, hospital_ids, hospital_info: dict, year: int) -> np.ndarray:
    """Per hospital code, its volume rate of `year` (1-based): its own (`volume_growth_by_hospital`), else its
    type's, else its level's, else the overall one (`moves.hospital_rates`)."""
    return group_moves.hospital_rates(spec.volume_growth, hospital_ids, hospital_info, year,
                                      spec.volume_growth_by_hospital, spec.volume_growth_by_level,
                                      spec.volume_growth_by_type)


def age_bands(rates: dict[str, list[float]]) -> tuple[list[tuple[int, int | None, list[float]]], str]:
    """The age bands of `volume_growth_by_age` ("A-B": ages A to B years, both included; "A-": A and over) as
    (low, high or None, its rates), lowest first, and '' or what is wrong (a band that is not "A-B" / "A-" with whole
    years, B below A, or two bands sharing an age)."""
    bands = []
    for label, rate in rates.items():
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d*)\s*", str(label))
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            return [], (f"age bands are \"A-B\" (ages A to B, whole years, both included) or \"A-\" (A and over), "
                        f"e.g. {{ \"0-14\" = 0.0, \"65-\" = 0.04 }} (got {label!r})")
        bands.append((int(m.group(1)), int(m.group(2)) if m.group(2) else None, rate))
    bands.sort(key=lambda b: b[0])
    for (low, high, _), (next_low, _, _) in itertools.pairwise(bands):
        if high is None or high >= next_low:
            return [], f"age bands overlap: {low}-{'' if high is None else high} and {next_low}-"
    return bands, ""


def case_age_bands(cases: pa.Table, spec: ProjectionSpec) -> np.ndarray | None:
    """Per base case the index of its age band in `age_bands(spec.volume_growth_by_age)` (-1: no age, or an age
    in no band), from its age at admission: age_years, else, where that is missing, the whole years in age_days
    (the 住院病案首页's 年龄(天), filled for a child under one year and by some exports for all: 0 to 364 days is
    age 0, as `dipsim.auxiliary` reads it); None without ageing."""
    if not spec.volume_growth_by_age:
        return None
    bands, _ = age_bands(spec.volume_growth_by_age)
    out = np.full(cases.num_rows, -1, np.int64)
    ages = float_column(cases, "age_years")  # NaN: no age
    ages = np.where(np.isnan(ages), np.floor(float_column(cases, "age_days") / 365), ages)
    for k, (low, high, _) in enumerate(bands):
        out[(ages >= low) & ((ages <= high) if high is not None else np.isfinite(ages))] = k
    return out


def ageing_warning(cases: pa.Table, spec: ProjectionSpec) -> str:
    """'' or a warning: how many base cases have no age or an age in no band of volume_growth_by_age (they grow by
    their hospital's rate only)."""
    bands = case_age_bands(cases, spec)
    if bands is None or not (bands == -1).any():
        return ""
    count = int((bands == -1).sum())
    return (f"volume_growth_by_age: {count:,} of {len(bands):,} base cases have no age (age_years, age_days) or an "
            f"age in no band ({', '.join(spec.volume_growth_by_age)}): they grow by their hospital's rate only")


def year_rows(hospital_codes: np.ndarray, hospital_ids, hospital_info: dict, spec: ProjectionSpec,
              year: int, orders: list | None = None, factors: np.ndarray | None = None,
              bands: np.ndarray | None = None) -> YearCases:
    """The base cases a year is made of (`volume` in the module's notes): per hospital the first n_t of its cases
    in a seeded order (`volume_orders`, given or made), cycling for copies; the year's cases by hospital code.
    `factors`: per hospital code its volume factor since the base year (default: the product of its rates,
    `volume_rates`; `project` passes its own with the responses in). `bands`: per base case its age band
    (`case_age_bands`): with ageing each of a hospital's bands is counted and taken on its own (its cases in the
    hospital's seeded order), its count x the band's factor prod_{s<=year}(1 + a_{b,s}) too."""
    if factors is None:
        factors = np.prod([1 + volume_rates(spec, hospital_ids, hospital_info, s) for s in range(1, year + 1)],
                          axis=0) if year else np.ones(len(hospital_ids))
    band_factors = np.array([math.prod(1 + a for a in rates[:year])
                             for _, _, rates in age_bands(spec.volume_growth_by_age)[0]])
    rows, copies = [], []
    orders = volume_orders(hospital_codes, hospital_ids, spec.seed) if orders is None else orders
    for (own, order), factor in zip(orders, factors):
        if not len(own):
            continue
        if bands is None:
            parts = [(own, order, factor)]
        else:  # per age band (-1: none, the hospital's factor alone), in the hospital's seeded order
            parts = [(own[bands[own] == b], order[bands[order] == b], factor * (band_factors[b] if b >= 0 else 1.0))
                     for b in np.unique(bands[own])]
        for part_own, part_order, part_factor in parts:
            n0 = len(part_own)
            n = int(np.round(n0 * part_factor))  # half to even
            if n <= n0:
                rows.append(np.sort(part_order[:n]))
                copies.append(np.zeros(n, np.int64))
            else:
                extra = np.arange(n - n0)
                rows += [part_own, part_order[extra % n0]]
                copies += [np.zeros(n0, np.int64), extra // n0 + 1]
    return YearCases(np.concatenate(rows) if rows else np.zeros(0, np.int64),
                     np.concatenate(copies) if copies else np.zeros(0, np.int64))


def _shift_dates(column, years: int):
    """A date column moved `years` years on (29 February to 28 February; `projection.years.shift_days`)."""
    if years == 0:
        return column
    days = pc.cast(pc.cast(column, pa.date32()), pa.int32())
    if isinstance(days, pa.ChunkedArray):
        days = days.combine_chunks()
    moved = year_cases.shift_days(pc.fill_null(days, 0).to_numpy(zero_copy_only=False), years)
    out = pa.array(moved.astype(np.int32), pa.int32(), mask=days.is_null().to_numpy(zero_copy_only=False))
    return pc.cast(out.cast(pa.date32()), column.type if pa.types.is_date(column.type) else pa.date32())


def year_table(cases: pa.Table, made: YearCases, year: int, cost_factor: float) -> pa.Table:
    """The year's cases: the base cases taken by `made.rows`, a copy's case and patient ids made "<id>~y<year>~<k>"
    (another patient's stay like it, not a readmission), dates moved `year` years on, the money columns
    (`MONEY_COLUMNS`) x `cost_factor` to the fen. A projection makes it only when something reads the year's
    table (`projection.years.year_case_set`)."""
    table = cases.take(pa.array(made.rows))
    copied = made.copy > 0
    if copied.any():
        mask = pa.array(copied)
        suffix = pc.binary_join_element_wise(f"~y{year}~", pc.cast(pa.array(made.copy), pa.string()), "")
        for name in ("case_id", "patient_id"):
            if name in table.column_names:
                ids = pc.cast(table[name], pa.string())
                ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
                named = pc.if_else(mask, pc.binary_join_element_wise(ids, suffix, ""), ids)  # null stays null
                table = table.set_column(table.column_names.index(name), name, named)
    grown = {}
    for name in MONEY_COLUMNS:
        if name in table.column_names and cost_factor != 1.0:
            values = pc.cast(table[name], pa.float64()).to_numpy(zero_copy_only=False)  # NaN: missing
            grown[name] = np.where(np.isnan(values), np.nan, year_cases.grown(np.nan_to_num(values), cost_factor))
    if {"total_cost", "patient_paid", "fund_paid"} <= grown.keys():
        # each amount rounded on its own could put fund + patient paid a fen over the total (the validator's rule
        # fund_paid + patient_paid <= total_cost): the fund's share gives way, as `synth --years` does
        room = np.round(grown["total_cost"] - np.nan_to_num(grown["patient_paid"]), 2)
        grown["fund_paid"] = np.where(grown["fund_paid"] > room, room, grown["fund_paid"])
    for name, values in grown.items():  # a missing amount stays missing (NaN to null)
        table = table.set_column(table.column_names.index(name), name, pa.array(values, from_pandas=True))
    for name in DATE_COLUMNS:
        if name in table.column_names and year:
            table = table.set_column(table.column_names.index(name), name, _shift_dates(table[name], year))
    return table


@dataclass
class _Year:
    """A projected year's cases as a draw reuses them (`project`'s cache)."""

    case_set: CaseSet
    made: YearCases
    ranks: year_cases.DriftRanks | None = None  # each case's drift rank under a seed, and their order
    base_run: tuple | None = None  # year 0: (what it was run on, its PaymentRun)
    move_orders: dict = field(default_factory=dict)  # (seed, move) -> the cases' order (`years.drift_order`)


# years kept in `project`'s cache (the oldest dropped first): a year of 1M cases holds about 0.1 GB of arrays; a
# draw that draws volume or cost growth makes new years, cheaply (`projection.years`), so only repeated ones pay
CACHE_YEARS = 12
BASE = "base"  # `project`'s cache: the base year's case set and drift ranks (kept while years come and go)


def year_grouping(grouped: GroupedCases, rows: np.ndarray, drift: np.ndarray, factor: float,
                  cost_factor: float) -> GroupedCases:
    """The base grouping taken by `rows`: drifted cases' group points x `factor`, standard costs x `cost_factor`."""
    points = kernels.take_scaled_where(grouped.group_points, rows, drift, factor)
    codes = (grouped.codes[0][rows], grouped.codes[1]) if grouped.codes is not None else None
    return GroupedCases(group=grouped.group[rows], group_points=points,
                        standard_cost=grouped.standard_cost[rows] * cost_factor,
                        tcm_group_case=grouped.tcm_group_case[rows], tcm_treated=grouped.tcm_treated[rows],
                        unit=grouped.unit, codes=codes)


# ------------------------------------------------------------------ the projection


@dataclass
class ProjectionResults:
    years: pd.DataFrame  # year, settlement_day, pool, cases, points, point_value, status, budget, budget_available,
    # income, fund_payout, balance, months_of_capacity
    hospitals: pd.DataFrame  # year, hospital_id, level, type, cases, cmi, drifted, severity_moved,
    # severity_unmoved, intensity_moved, intensity_unmoved, points, cost, payment, fund_payout, payment_ratio
    spec: ProjectionSpec | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"years": self.years, "hospitals": self.hospitals}


def _budget_rule(spec: ProjectionSpec, pools: list[str], year: int,
                 previous: dict[str, float]) -> dict[str, float] | None:
    """The budgets of `year` under the rule (None: the policy's own, rule "policy")."""
    if spec.rule == "policy":
        return None
    out = {}
    for pool in pools:
        fund = spec.funds.get(pool)
        if spec.rule == "share_of_income":
            if fund is None:
                raise InputError(f"{spec.source}: budget rule share_of_income: pool {pool} has no [fund.\"{pool}\"]")
            out[pool] = round(spec.share * fund.income(year), 2)  # type: ignore[operator]
            continue
        growth = spec.growth[year - 1]
        if spec.cap_by_income:
            if fund is None:
                raise InputError(f"{spec.source}: cap_by_income: pool {pool} has no [fund.\"{pool}\"]")
            before = fund.income(year - 1)
            if before > 0:
                growth = min(growth, fund.income(year) / before - 1)
        out[pool] = round(previous[pool] * (1 + growth), 2)
    return out


def _with_budget_point_value(policy: Policy, day, pools: list[str], history: dict) -> Policy:
    """`policy` with the budget point value (预算点值) of each pool it does not set on `day` made from the years
    before (rule "history" of [budget] budget_point_value): expected money / expected points, each the 1:2:7
    weighted mean of the last three years (`budget.weighted_budget_point_value`, the DIP technical specification's
    rule as docs/domain.md §12 writes it), a year's money being what its points shared
    (`RegionSettlement.spent_on_points`). Set at the start of the year, it is the base of the point-value floor /
    cap and of the prepayment: a year whose points grow faster than the years before settles below it."""
    from dipsim.budget import weighted_budget_point_value

    given = dict(policy.get("budget.budget_point_value", day))
    made = {pool: weighted_budget_point_value([m for m, _ in history[pool][-3:]], [p for _, p in history[pool][-3:]])
            for pool in pools if pool not in given and pool in history and history[pool][-1][1] > 0}
    return policy.overlay({"budget.budget_point_value": {**given, **made}}, name=policy.name) if made else policy


def _check_names(spec: ProjectionSpec, info: dict, hospital_ids: list, pools: list[str]) -> None:
    """InputError naming every hospital, level, type or pool of the file that the region does not have (a typo
    would otherwise change nothing, silently)."""
    known = {"hospital": set(hospital_ids), "level": {v[0] for v in info.values()},
             "type": {v[1] for v in info.values()}}
    problems = []
    for key, kind in (("volume_growth_by_hospital", "hospital"), ("volume_growth_by_level", "level"),
                      ("volume_growth_by_type", "type"),
                      *((f"{m}_share_by_{k}", k) for m in ("drift", *group_moves.MOVES)
                        for k in ("hospital", "level"))):
        unknown = sorted(set(getattr(spec, key)) - known[kind])
        if unknown:
            problems.append(f"{key}: no {kind} {', '.join(map(str, unknown))} in the region (its {kind}s: "
                            f"{', '.join(sorted(map(str, known[kind]))[:20])})")
    unknown = sorted(set(spec.funds) - set(pools))
    if unknown:
        problems.append(f"[fund] {', '.join(unknown)}: not a pool of the cases ({', '.join(pools)})")
    if problems:
        raise InputError(f"{spec.source} and the region: " + "; ".join(problems))


def _year_cases(cases: pa.Table, base: dict, spec: ProjectionSpec, year: int, cost_factor: float,
                volume: np.ndarray, info: dict, cache: dict | None) -> _Year:
    """Year `year`'s cases (`year_rows`, `year_case_set`), `volume` the hospitals' volume factors since the base
    year: from `cache` when a year of the same factors, ageing, seed and cost factor was made before (a Monte Carlo
    draw of other drift or budget), else made and kept there (the oldest dropped beyond `CACHE_YEARS`). `base`: the
    base year's case set and, by seed, its hospitals' case orders, by ageing its cases' age bands."""
    base_set = base["set"]
    ageing = tuple(sorted((band, tuple(rates)) for band, rates in spec.volume_growth_by_age.items()))
    key = (year, cost_factor, spec.seed, volume.tobytes(), ageing) if cache is not None else None
    known = cache.get(key) if cache is not None else None
    if known is not None:
        return known
    codes, ids = base_set.hospitals.codes, base_set.hospitals.ids
    if year == 0:
        known = _Year(base_set, YearCases(np.arange(cases.num_rows), np.zeros(cases.num_rows, np.int64)))
    else:
        if spec.seed not in base["orders"]:
            base["orders"][spec.seed] = volume_orders(codes, ids, spec.seed)
        if ageing and ageing not in base["bands"]:
            base["bands"][ageing] = case_age_bands(cases, spec)
        made = year_rows(codes, ids, info, spec, year, base["orders"][spec.seed], volume,
                         base["bands"][ageing] if ageing else None)
        known = _Year(year_cases.year_case_set(base_set, made.rows, year, cost_factor, functools.partial(
            year_table, cases, made, year, cost_factor)), made)
    if cache is not None:
        cache[key] = known
        while len(cache) > CACHE_YEARS + 1:
            cache.pop(next(k for k in cache if k != BASE))
    return known


def _year_policy(policy: Policy, spec: ProjectionSpec, year: int, day, pools: list[str], budgets: dict[str, float],
                 history: dict) -> tuple[Policy, dict[str, float]]:
    """The policy a year is settled under and its pools' budgets: the policy's own budget.total on the year's
    settlement day (year 0, and rule "policy"), else the file's budget rule (`_budget_rule`, from last year's
    `budgets`) over it; with [budget] budget_point_value = "history", the budget point value from the years
    before (`_with_budget_point_value`)."""
    rule = _budget_rule(spec, pools, year, budgets) if year else None
    if rule is None:
        total = policy.get("budget.total", day)
        budgets, year_policy = {p: float(total[p]) for p in pools if p in total}, policy
    else:
        budgets = rule
        year_policy = policy.overlay({"budget.total": {**policy.get("budget.total", day), **rule}}, name=policy.name)
    if year and spec.budget_point_value == "history":
        year_policy = _with_budget_point_value(year_policy, day, pools, history)
    return year_policy, budgets


def _pool_year(year: int, day, run, spec: ProjectionSpec, balances: dict[str, float], history: dict) -> list[dict]:
    """A settled year's rows of years.csv, one per pool, and what the next years read: each pool's fund balance
    (`balances`: + the fund's income - the pool's fund payout, to the fen) and the money its points shared and the
    points (`history`, for the budget point value of rule "history")."""
    pool_names, (pool_cases,) = _summed_by(run.hospitals, "pool", ["cases"])
    cases_by_pool = dict(zip(pool_names.tolist(), pool_cases.tolist()))
    rows = []
    for row in run.pools.to_pylist():
        pool = row["pool"]
        history.setdefault(pool, []).append((run.settlement.spent_on_points[pool], row["total_points"]))
        fund = spec.funds.get(pool)
        payout = float(row["fund_payout"])
        income = balance = months = None
        if fund is not None:
            income = fund.income(year)
            if year:
                balances[pool] = round(balances[pool] + income - payout, 2)
            balance = balances[pool]
            months = round(balance / (payout / 12), 4) if payout > 0 else None
        rows.append({"year": year, "settlement_day": day, "pool": pool, "cases": int(cases_by_pool.get(pool, 0)),
                     "points": row["total_points"], "point_value": row["point_value"], "status": row["status"],
                     "budget": float(row["budget"]), "budget_available": float(row["budget_available"]),
                     "income": income, "fund_payout": payout, "balance": balance, "months_of_capacity": months})
    return rows


def _summed_by(table: pa.Table, key: str, names: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct values of `key` in `table` (a settlement's hospitals table: a few hundred rows) and, per value,
    the sum of each of `names` as floats (decimal yuan to float, as the tables' readers take them)."""
    values, codes = np.unique(table[key].to_numpy(zero_copy_only=False), return_inverse=True)
    return values, [np.bincount(codes, weights=pc.cast(table[name], pa.float64()).to_numpy(zero_copy_only=False),
                                minlength=len(values)) for name in names]


def hospital_year(year: int, run, group_points: np.ndarray, codes: np.ndarray, drift: np.ndarray,
                  moved: pd.DataFrame, ids: np.ndarray, info: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """A settled year's rows of hospitals.csv (one per hospital with cases, by hospital id: its pools summed) and
    each hospital code's payment / cost ratio (1 where it has no cost or no case: no response), what the next
    year's responses read. CMI: the mean group points of the hospital's cases (by code, not by the million ids)."""
    hospitals, (cases, points, cost, payment, fund_payout) = _summed_by(
        run.hospitals, "hospital_id", ["cases", "points", "cost", "payment", "fund_payout"])
    code_of = pd.Index(ids).get_indexer(hospitals)
    cmi = np.bincount(codes, weights=group_points, minlength=len(ids))[code_of] / np.maximum(cases, 1)
    drifted = np.bincount(codes[drift], minlength=len(ids))[code_of]
    with np.errstate(invalid="ignore", divide="ignore"):
        paid = np.where(cost > 0, payment / np.where(cost > 0, cost, 1.0), np.nan)
    levels = [info.get(h, ("", "")) for h in hospitals]
    counts = moved.reindex(hospitals).fillna(0).astype(np.int64)
    table = pd.DataFrame({"year": year, "hospital_id": hospitals, "level": [lv for lv, _ in levels],
                          "type": [kind for _, kind in levels], "cases": cases.astype(np.int64),
                          "cmi": np.round(cmi, 6), "drifted": drifted,
                          **{c: counts[c].to_numpy() for c in group_moves.COUNT_COLUMNS},
                          "points": np.round(points, 4), "cost": np.round(cost, 2), "payment": np.round(payment, 2),
                          "fund_payout": np.round(fund_payout, 2), "payment_ratio": np.round(paid, 6)})
    ratio = np.ones(len(ids))
    ratio[code_of] = np.where(np.isfinite(paid), paid, 1.0)
    return table, ratio


def project(cases: pa.Table, hospitals: pa.Table, policy: Policy, spec: ProjectionSpec, grouped: GroupedCases,
            aux_factor: np.ndarray | None = None, progress=None, cache: dict | None = None,
            groups: group_moves.GroupTable | None = None) -> ProjectionResults:
    """Settle the base year (year 0) and years 1..spec.years through the one payment chain (`run_chain`), each
    a real case set made from the base cases (the module's notes); `progress(done, total)` after each year.
    `groups` (`group_moves.group_table`): what cases move between (severity, intensity); without it only the
    older drift model (points x drift_factor) is available; its aux factors are the base cases' when it has them.
    `cache` (a dict kept between calls on the same cases, hospitals, grouping and policy, e.g. by Monte Carlo
    draws): the base year's case set and its cases' drift ranks are made once, a year's case set whose volume
    rates, seed and cost factor were seen before is reused, with its cases' drift ranks, and the base year's
    settlement; the results are the same with or without it."""
    if len(grouped) != cases.num_rows:
        raise ValueError(f"{len(grouped)} grouped cases for {cases.num_rows} cases")
    info_frame = hospitals.select(["hospital_id", "level", "type"]).to_pandas()
    info = {r.hospital_id: (r.level, r.type) for r in info_frame.itertuples()}
    base = cache.get(BASE) if cache is not None else None
    if base is None:
        # by seed: each base case's drift rank (`case_ranks`), each hospital's cases in order (`volume_orders`);
        # by ageing: each base case's age band (`case_age_bands`)
        base = {"set": CaseSet.of(cases), "ranks": {}, "orders": {}, "bands": {}}
        if cache is not None:
            cache[BASE] = base
    base_set = base["set"]
    codes, ids = base_set.hospitals.codes, base_set.hospitals.ids
    _check_names(spec, info, ids.tolist(), base_set.pools)
    ratio = np.ones(len(ids))  # each hospital's payment / cost of the year before
    drifted_share = np.zeros(len(ids))
    volume = np.ones(len(ids))  # each hospital's volume factor since the base year
    moves = group_moves.Moves(spec, groups, ids, info)
    aux_factor = moves.aux_factor(aux_factor)
    pool_rows: list[dict] = []
    hospital_tables: list[pd.DataFrame] = []
    budgets: dict[str, float] = {}
    reference: dict[str, float] = {}  # hospital -> the points it was paid on last year
    balances = {pool: fund.balance for pool, fund in spec.funds.items()}
    history: dict[str, list[tuple[float, float]]] = {}
    reweight = reweighting(spec.catalogue, cache)  # None: the frozen catalogue
    for year in range(spec.years + 1):
        cost_factor = math.prod(1 + g for g in spec.cost_growth[:year])
        if year:  # the year's volume growth: its rate, x the responses to last year's payment (r^(+elasticity):
            # paid above cost, more cases) and point value
            volume = volume * ((1 + volume_rates(spec, ids, info, year)) * group_moves.response(
                ratio, moves.pv_ratio, -spec.volume_elasticity, spec.volume_elasticity_pv))
        known = _year_cases(cases, base, spec, year, cost_factor, volume, info, cache)
        made = known.made
        year_codes = codes[made.rows]

        def year_ranks(seed, made=made) -> np.ndarray:
            """The year's cases' ranks under `seed` (the file's seed: drift; "<seed>\\0<move>": a move): each base
            case's seeded hash of its id (`case_ranks`, once per seed), a copy's mixed with its copy number."""
            if seed not in base["ranks"]:
                base["ranks"][seed] = year_cases.case_ranks(
                    pc.cast(cases["case_id"], pa.string()).to_numpy(zero_copy_only=False), seed)
            return year_cases.copy_ranks(base["ranks"][seed], made.copy, made.rows)

        if year:
            added = group_moves.share(spec, "drift", ids, info, year, ratio, moves.pv_ratio)
            drifted_share = np.minimum(1.0, drifted_share + added)
        drift = np.zeros(len(made.rows), bool)
        if drifted_share.any():
            if known.ranks is None or known.ranks.seed != spec.seed:
                known.ranks = year_cases.DriftRanks(spec.seed, year_ranks(spec.seed), year_codes)
            drift = known.ranks.drifted(drifted_share)
        year_grouped = year_grouping(grouped, made.rows, drift, spec.drift_factor, cost_factor) if year else grouped
        year_aux, moved = aux_factor[made.rows] if aux_factor is not None else None, group_moves.no_moves(ids)
        if year:
            year_grouped, year_aux, moved = moves.year(year, ratio, year_grouped, made.rows, year_codes, year_ranks,
                                                       known.move_orders, np.where(drift, spec.drift_factor, 1.0),
                                                       cost_factor, year_aux)
        if reweight is not None:  # after the moves: a moved case takes its new group's re-weighted points
            year_grouped = reweight.grouping(year, year_grouped)
        case_set = known.case_set
        day = case_set.settlement_day()
        grouping = (policy.get("payment.mode", day), policy.get("payment.drg_scheme", day))
        if year == 0:
            base_grouping = grouping
        elif grouping != base_grouping:
            raise InputError(f"{spec.source}: year {year} ({day}) is under payment.mode / payment.drg_scheme "
                             f"{grouping}, the base year under {base_grouping}: a projection groups the cases once "
                             "and cannot change the grouping by year yet")
        year_policy, budgets = _year_policy(policy, spec, year, day, case_set.pools, budgets, history)
        # the base year is the same in every draw: its run reused (same cases, grouping, policy and factors)
        same = (id(grouped), id(policy), id(hospitals), id(aux_factor))
        if year == 0 and known.base_run is not None and known.base_run[0] == same:
            run = known.base_run[1]
        else:
            # the growth cap's reference (budget.hospital_cap_*): year t's is the points year t - 1 was paid on
            run = run_chain(case_set, year_grouped, with_references(hospitals, reference) if year else hospitals,
                            year_policy, None, year_aux)
            if year == 0 and cache is not None:
                known.base_run = (same, run)
        if reweight is not None:
            reweight.settled(year, year_grouped, known.case_set.cost)
        reference = settled_points(run.settlement)
        moves.observe(run)
        pool_rows += _pool_year(year, day, run, spec, balances, history)
        table, ratio = hospital_year(year, run, year_grouped.group_points, year_codes, drift, moved, ids, info)
        hospital_tables.append(table)
        if progress is not None:
            progress(year, spec.years)
    return ProjectionResults(pd.DataFrame(pool_rows), pd.concat(hospital_tables, ignore_index=True), spec)


def settlement_years(results: ProjectionResults) -> list[dt.date]:
    """The settlement day of each year, in order."""
    return list(dict.fromkeys(results.years["settlement_day"]))


# ------------------------------------------------------------------ Monte Carlo draws

QUANTILES = (0.1, 0.5, 0.9)
POOL_MEASURES = ("point_value", "budget", "fund_payout", "balance", "months_of_capacity")
HOSPITAL_MEASURES = ("cases", "points", "payment", "fund_payout")
SCHEDULERS = ("synchronous", "processes")  # or a Dask scheduler's address


@dataclass
class DrawContext:
    """What every draw reads (sent once to each Dask worker)."""

    cases: pa.Table
    hospitals: pa.Table
    policy: Policy
    spec: ProjectionSpec
    grouped: GroupedCases
    seed: int
    aux_factor: np.ndarray | None = None
    groups: group_moves.GroupTable | None = None
    cache: dict = field(default_factory=dict)  # `project`'s, kept between the draws run where the context is

    def __getstate__(self):  # sent to a Dask worker without the cache (each worker keeps its own)
        return {**self.__dict__, "cache": {}}


def run_draw(context: DrawContext, draw: int) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Draw `draw`: its values of the spec's distributions (`drawn_values`) and the projection under them."""
    values = drawn_values(context.spec, context.seed, draw)
    results = project(context.cases, context.hospitals, context.policy, draw_spec(context.spec, values),
                      context.grouped, context.aux_factor, cache=context.cache, groups=context.groups)
    return ({_path_text(p): v for p, v in values.items()}, results.years.assign(draw=draw),
            results.hospitals.assign(draw=draw))


def _map_draws(context: DrawContext, draws: list[int], scheduler: str | None, progress=None) -> list:
    """`run_draw` over `draws`: in this process (scheduler None), Dask's synchronous scheduler ("synchronous"), a
    local cluster of 2 worker processes ("processes", as `dipsim nightly`'s Dask engine starts), or the Dask
    scheduler at an address; the context scattered to the workers once."""
    if scheduler is None:
        out = []
        for done, draw in enumerate(draws, 1):
            out.append(run_draw(context, draw))
            if progress is not None:
                progress(done, len(draws))
        return out
    if scheduler == "synchronous":
        import dask

        shared = dask.delayed(context, traverse=False)
        return list(dask.compute(*[dask.delayed(run_draw, pure=False)(shared, k) for k in draws],
                                 scheduler="synchronous"))
    from dipsim.nightly import _dask_map  # the cluster `dipsim nightly --engine dask` starts or joins

    return _dask_map(run_draw, draws, None if scheduler == "processes" else scheduler, shared=context)


@dataclass
class DrawResults:
    parameters: pd.DataFrame  # draw, then one column per distribution (its path as text)
    years: pd.DataFrame  # the projection's years table of every draw, with `draw`
    hospitals: pd.DataFrame  # its hospitals table of every draw, with `draw`
    bands: pd.DataFrame  # year, what ("pool" / "hospital" / "level"), pool, hospital_id, level, measure, draws,
    # mean, p10, p50, p90
    seed: int = 0

    def draws_table(self) -> pd.DataFrame:
        """draws.parquet: the pools' rows (what = "pool") and the hospitals' (what = "hospital") of every draw."""
        pools = self.years.assign(what="pool")
        hospitals = self.hospitals.assign(what="hospital")
        first = ["draw", "year", "what"]
        frame = pd.concat([pools, hospitals], ignore_index=True, sort=False)
        return frame[first + [c for c in frame.columns if c not in first]]


def quantile_name(q: float) -> str:
    return f"p{q * 100:g}"


def bands(years: pd.DataFrame, hospitals: pd.DataFrame, quantiles=QUANTILES) -> pd.DataFrame:
    """Per year and pool (`POOL_MEASURES`), per year and hospital and per year and hospital level (the level's
    hospitals summed in each draw; `HOSPITAL_MEASURES`): the number of draws, the mean and the quantiles over the
    draws (numpy's linear interpolation: for n sorted values and q, the value at position q x (n - 1), interpolated
    between its neighbours). A measure without values (a pool without a fund's balance) has no row."""
    rows = []
    levels = hospitals.groupby(["draw", "year", "level"], sort=True)[list(HOSPITAL_MEASURES)].sum().reset_index() \
        if {"draw", "level"} <= set(hospitals.columns) else hospitals.iloc[:0].assign(level=None)
    for what, frame, key, measures in (("pool", years, "pool", POOL_MEASURES),
                                       ("hospital", hospitals, "hospital_id", HOSPITAL_MEASURES),
                                       ("level", levels, "level", HOSPITAL_MEASURES)):
        for (year, name), group in frame.groupby(["year", key], sort=True):
            for measure in measures:
                values = pd.to_numeric(group[measure], errors="coerce").to_numpy(dtype=float)
                values = values[np.isfinite(values)]
                if not len(values):
                    continue
                rows.append({"year": int(year), "what": what, "pool": name if what == "pool" else None,
                             "hospital_id": name if what == "hospital" else None,
                             "level": name if what == "level" else None, "measure": measure,
                             "draws": len(values), "mean": float(values.mean()),
                             **{quantile_name(q): float(v) for q, v in zip(quantiles, np.quantile(values, quantiles))}})
    return pd.DataFrame(rows)


def project_draws(cases: pa.Table, hospitals: pa.Table, policy: Policy, spec: ProjectionSpec, grouped: GroupedCases,
                  draws: int, seed: int | None = None, scheduler: str | None = None, quantiles=QUANTILES,
                  aux_factor: np.ndarray | None = None, progress=None,
                  groups: group_moves.GroupTable | None = None) -> DrawResults:
    """`draws` projections (draws 0..draws-1), each with the spec's distributions drawn from its own generator
    (`draw_rng(seed, k)`, seed default the file's [projection] seed), and their bands. The cases a year copies,
    drops or drifts follow the file's seed in every draw (only the parameters are drawn). `scheduler`: None (in this
    process), "synchronous", "processes" or a Dask scheduler's address (`_map_draws`); the results are the same."""
    if draws < 1:
        raise InputError(f"--draws: at least 1 (got {draws})")
    seed = spec.seed if seed is None else seed
    if len(grouped) != cases.num_rows:
        raise ValueError(f"{len(grouped)} grouped cases for {cases.num_rows} cases")
    context = DrawContext(cases, hospitals, policy, spec, grouped, seed, aux_factor, groups)
    out = _map_draws(context, list(range(draws)), scheduler, progress)
    parameters = pd.DataFrame([{"draw": k, **values} for k, (values, _, _) in enumerate(out)])
    years = pd.concat([y for _, y, _ in out], ignore_index=True)
    hospital_rows = pd.concat([h for _, _, h in out], ignore_index=True)
    years = years[["draw", *[c for c in years.columns if c != "draw"]]]
    hospital_rows = hospital_rows[["draw", *[c for c in hospital_rows.columns if c != "draw"]]]
    return DrawResults(parameters, years, hospital_rows, bands(years, hospital_rows, quantiles), seed)
