"""Lever scenarios of a projection, side by side (issue 20): the projection file itself is the baseline, and each
`[scenario.NAME]` table a variant of it, run on the same cases with the same seed (common random numbers: the same
cases copied, dropped and drifted; with draws, draw k of every scenario from the same child seed).

    [scenario.reserve]
    title = "调剂金 5%"
    # policy parameters, checked and overlaid as `dipsim scenarios` checks and overlays a variant
    # (`scenarios.check_variants`, `Policy.overlay`); a value or a dated table, as policy files allow
    policy = { "budget.reserve_share" = { "2025-01-01" = 0.0, "2026-01-01" = 0.05 } }

    [scenario.fast.demand]               # a table of the file: its keys replace those of the file's [demand]
    volume_growth = 0.06                 # (checked by `projection_of`, as the file is)

A scenario may not change [projection] (years, seed, policy file: what makes the scenarios comparable). Its policy
changes apply in every year the policy applies them, base year included: date a lever (as above) for it to start
in a projected year.

`comparison`: per scenario the last year against the base year (year 0) and against the baseline scenario: per pool
the point value, the fund's balance and months of payment capacity, per hospital level the fund payout (its
hospitals summed over their pools); docs/projection.md ("Lever scenarios").
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.policy import Policy, PolicyError, _flatten
from dipsim.project import TABLES, DrawResults, ProjectionSpec, _line_of, project, project_draws, projection_of
from dipsim.report.present import level_key
from dipsim.scenarios import BASELINE, Variant, check_variants

FIXED = ("projection",)  # the tables a scenario may not change: every scenario runs the same years and seed
POOL_COMPARED = ("point_value", "balance", "months_of_capacity")  # per pool, from years.csv
LEVEL_COMPARED = ("fund_payout",)  # per hospital level, summed from hospitals.csv
MONEY = ("balance", "fund_payout")  # compared to the fen
DIGITS = {"point_value": 10, "months_of_capacity": 4, "balance": 2, "fund_payout": 2}  # as years.csv has them
PERCENT_DIGITS = 10  # change_pct, against_baseline_pct
GROUPING = ("payment.mode", "payment.drg_scheme")  # the cases are grouped once: no scenario changes these


@dataclass
class LeverScenario:
    name: str  # BASELINE for the file itself
    title: str
    spec: ProjectionSpec
    changes: dict = field(default_factory=dict)  # policy parameter -> value (or dated table)


def _bare(name: str) -> str:
    """A scenario's table name as written: bare when TOML allows it, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else '"' + name.replace('"', '\\"') + '"'


def _header(*parts: str) -> str:
    """A table's name as `project._line_of` reads a header: quotes and spaces removed."""
    return ".".join(parts).replace('"', "").replace(" ", "")


def _tables() -> list[str]:
    """The file's tables a scenario may replace keys of."""
    return [t for t in TABLES if t not in FIXED]


def merged(data: dict, overrides: dict) -> dict:
    """The file's tables `data` with a scenario's: each of its tables' keys replace those of the same table
    ([fund."POOL"]: of that pool's table), the others kept."""
    out = {table: (dict(content) if isinstance(content, dict) else content) for table, content in data.items()}
    for table, content in overrides.items():
        if table == "fund":
            funds = out.setdefault("fund", {})
            for pool, keys in content.items():
                base = funds.get(pool, {})
                funds[pool] = {**(base if isinstance(base, dict) else {}), **keys} if isinstance(keys, dict) else keys
        else:
            base = out.get(table, {})
            out[table] = {**(base if isinstance(base, dict) else {}), **content}
    return out


def _view(text: str, name: str, overrides: dict) -> str:
    """The file's text as `projection_of` reads line numbers for scenario `name`: its [scenario.NAME.TABLE] headers
    renamed [TABLE] and the file's own headers of those tables renamed away, each line where it was."""
    prefix = _header("scenario", name) + "."
    own = {_header(table) for table in overrides} | {_header("fund", pool) for pool in overrides.get("fund", {})}
    header = re.compile(r"^(\s*)\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    lines = []
    for line in text.splitlines():
        m = header.match(line)
        if m:
            table = _header(m.group(2))
            if table.startswith(prefix):
                line = f"[{table[len(prefix):]}]"
            elif table in own:
                line = f"[file.{table}]"
        lines.append(line)
    return "\n".join(lines)


def lever_scenarios(spec: ProjectionSpec, policy: Policy) -> list[LeverScenario]:
    """The baseline (the file itself) and each [scenario.NAME] of the file, checked: its keys, its tables as the
    file's are (`projection_of`, with the line of the scenario's table) and its policy changes on `policy` as
    `dipsim scenarios` checks a variant (`check_variants`). InputError listing every problem of every scenario."""
    out = [LeverScenario(BASELINE, spec.title or spec.name, spec)]
    problems: list[str] = []
    for name, table in spec.scenarios.items():
        scenario = _scenario(spec, policy, str(name), table, problems)
        if scenario is not None:
            out.append(scenario)
    if problems:
        raise InputError(f"{spec.source}: {len(problems)} problem(s) in the scenarios:\n  " + "\n  ".join(problems))
    return out


def _scenario(spec: ProjectionSpec, policy: Policy, name: str, table: dict,
              problems: list[str]) -> LeverScenario | None:
    """Scenario `name` of the file (its table `table`), or None with its problems added to `problems`."""
    where = f"[scenario.{_bare(name)}]"
    before = len(problems)

    def problem(key: str | None, what: str) -> None:
        # the key's line in [scenario.NAME], else its own table's [scenario.NAME.KEY], else the scenario's
        line = (key and (_line_of(spec.text, _header("scenario", name), key)
                         or _line_of(spec.text, _header("scenario", name, key), None))) \
            or _line_of(spec.text, _header("scenario", name), None)
        problems.append(f"{where}{' ' + key if key else ''}{line}: {what}")

    if name == BASELINE:
        problem(None, f"the name {BASELINE!r} is the file itself: give the scenario another name")
        return None
    title = table.get("title", name)
    if not isinstance(title, str):
        problem("title", f"text in quotes (got {title!r})")
    changes = table.get("policy", {})
    if not isinstance(changes, dict):
        problem("policy", f"a table of policy parameters, e.g. {{ \"budget.reserve_share\" = 0.05 }} (got "
                          f"{changes!r})")
        changes = {}
    changes = _flatten(changes)
    for path in GROUPING:
        if path in changes:
            problems.append(f"{where} policy{_policy_line(spec.text, name, path)}: {path}: a projection groups the "
                            "cases once, under the file's policy: a scenario cannot change the grouping")
    tables = _tables()
    overrides = {}
    for key, value in table.items():
        if key in ("title", "policy"):
            continue
        if key in FIXED:
            problem(key, f"a scenario runs the file's [{key}] (years, seed, policy file: the same for every "
                         f"scenario, so that they compare); change the file's")
        elif key not in tables:
            problem(key, f"unknown key (expected title, policy, or a table of the file: {', '.join(tables)})")
        elif not isinstance(value, dict) or (key == "fund" and not all(isinstance(v, dict) for v in value.values())):
            problem(key, f"must be a table [scenario.{_bare(name)}.{key}{'.POOL' if key == 'fund' else ''}] of the "
                         "file's keys")
        else:
            overrides[key] = value
    own = None
    try:
        own = projection_of(merged(spec.data or {}, overrides), f"{spec.source} {where}",
                            _view(spec.text, name, overrides))
    except InputError as exc:
        problems += [f"{where} {line.strip()}" for line in str(exc).splitlines()[1:]]
    try:
        check_variants(policy, [Variant(name, changes)], f"{spec.source} {where}")
    except PolicyError as exc:
        for text in exc.problems:  # "variant 'NAME': path: what" or "rule: what" -> the line of its path
            text = text.removeprefix(f"variant {name!r}: ")
            path = next((p for p in changes if text.startswith(p)), "policy")
            problems.append(f"{where} policy{_policy_line(spec.text, name, path)}: {text}")
    if len(problems) > before or own is None:
        return None
    own.policy, own.name, own.title = spec.policy, name, title
    return LeverScenario(name, title, own, changes)


def _policy_line(text: str, name: str, path: str) -> str:
    """The line of policy parameter `path` of scenario `name`: in its [scenario.NAME.policy] table, else the line
    of its `policy = { ... }`."""
    return (_line_of(text, _header("scenario", name, "policy"), path)
            or _line_of(text, _header("scenario", name), "policy")
            or _line_of(text, _header("scenario", name, "policy"), None))


# ------------------------------------------------------------------ running them


@dataclass
class LeverResults:
    """Every scenario's projection, `scenario` the first column of each table (the baseline's "baseline")."""

    scenarios: list[LeverScenario]
    years: pd.DataFrame
    hospitals: pd.DataFrame
    comparison: pd.DataFrame
    drawn: DrawResults | None = None  # with --draws: parameters, years, hospitals and bands with `scenario`

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"years": self.years, "hospitals": self.hospitals, "comparison": self.comparison}

    @property
    def titles(self) -> dict[str, str]:
        return {s.name: s.title for s in self.scenarios}


def _with_scenario(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame.assign(scenario=name)[["scenario", *[c for c in frame.columns if c != "scenario"]]]


def project_levers(cases: pa.Table, hospitals: pa.Table, policy: Policy, scenarios: list[LeverScenario],
                   grouped: GroupedCases, aux_factor: np.ndarray | None = None, draws: int = 0,
                   seed: int | None = None, scheduler: str | None = None, progress=None,
                   draw_progress=None, groups=None) -> LeverResults:
    """Project each scenario (`project`: its policy = `policy` overlaid with its changes, its spec) on the same
    cases, and with `draws` its Monte Carlo draws (`project_draws`, the same `seed` for every scenario). The
    years' case sets are shared between scenarios that make the same years (`project`'s cache). `scheduler`: as
    `project_draws`'s ("processes": one local cluster for all the scenarios). `progress(name, year, total)` after
    each year, `draw_progress(name, done, total)` after each draw; `groups`: the moves' group table
    (`dipsim.projection.moves.group_table`)."""
    with _one_cluster(scheduler if draws else None, len(scenarios)) as scheduler:
        return _project_levers(cases, hospitals, policy, scenarios, grouped, aux_factor, draws, seed, scheduler,
                               progress, draw_progress, groups)


@contextlib.contextmanager
def _one_cluster(scheduler: str | None, scenarios: int):
    """The scheduler every scenario's draws run on: "processes" (a local cluster of 2 worker processes, as
    `dipsim nightly --engine dask` starts) is started once for all the scenarios and its address handed on; any
    other scheduler as it is."""
    if scheduler != "processes" or scenarios < 2:
        yield scheduler
        return
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _project_levers(cases, hospitals, policy, scenarios, grouped, aux_factor, draws, seed, scheduler, progress,
                    draw_progress, groups) -> LeverResults:
    cache: dict = {}
    policies = []  # kept alive: the cache knows a base year's settlement by its policy's id
    years, hospital_rows, drawn = [], [], []
    for s in scenarios:
        own = policy.overlay(s.changes, name=policy.name) if s.changes else policy
        policies.append(own)
        results = project(cases, hospitals, own, s.spec, grouped, aux_factor, cache=cache, groups=groups,
                          progress=(lambda y, t, n=s.name: progress(n, y, t)) if progress is not None else None)
        years.append(_with_scenario(results.years, s.name))
        hospital_rows.append(_with_scenario(results.hospitals, s.name))
        if draws:
            drawn.append(project_draws(cases, hospitals, own, s.spec, grouped, draws, seed, scheduler,
                                       aux_factor=aux_factor, groups=groups,
                                       progress=(lambda d, t, n=s.name: draw_progress(n, d, t))
                                       if draw_progress is not None else None))
    year_frame = pd.concat(years, ignore_index=True)
    hospital_frame = pd.concat(hospital_rows, ignore_index=True)
    out = LeverResults(scenarios, year_frame, hospital_frame, comparison(year_frame, hospital_frame,
                                                                          {s.name: s.title for s in scenarios}))
    if drawn:
        names = [s.name for s in scenarios]
        out.drawn = DrawResults(*(pd.concat([_with_scenario(getattr(d, part), n) for n, d in zip(names, drawn)],
                                            ignore_index=True)
                                  for part in ("parameters", "years", "hospitals", "bands")), seed=drawn[0].seed)
    return out


# ------------------------------------------------------------------ the comparison


LEVEL_MONEY = ("payment", "fund_payout")


def level_payouts(hospitals: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, draw,) year and hospital level, in the order of the scenarios' first rows (the file's: the
    baseline first), then year and level: hospitals, cases and the money (`LEVEL_MONEY`) of the level's hospitals
    summed in whole fen (exact), as yuan."""
    from dipsim.money import to_fen_array

    keys = [k for k in ("scenario", "draw", "year", "level") if k in hospitals.columns]
    work = hospitals.assign(**{m: to_fen_array(hospitals[m].to_numpy(float)) for m in LEVEL_MONEY})
    out = work.groupby(keys, sort=True, dropna=False).agg(
        hospitals=("hospital_id", "nunique"), cases=("cases", "sum"),
        **{m: (m, "sum") for m in LEVEL_MONEY}).reset_index()
    for m in LEVEL_MONEY:
        out[m] = out[m] / 100
    if "scenario" in keys:  # the file's order, not the names'
        order = {name: k for k, name in enumerate(pd.unique(hospitals["scenario"]))}
        out = out.sort_values("scenario", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
    return out


def comparison(years: pd.DataFrame, hospitals: pd.DataFrame, titles: dict[str, str]) -> pd.DataFrame:
    """comparison.csv: per scenario (in `titles`' order), measure and pool (or level), the last year's value
    against the base year's (year 0) and against the baseline scenario's last year:
    scenario, title, measure, pool, level, base_year, year, base, value, change (value - base), change_pct
    (value / base - 1; empty when base is 0), against_baseline (value - the baseline's value), against_baseline_pct.
    Pool measures (`POOL_COMPARED`) are years.csv's rows; a level's fund payout the sum of its hospitals' rows of
    hospitals.csv. A measure without a value (a pool without a fund: no balance) has no row. Changes rounded to
    the digits of their measure in years.csv (`DIGITS`: money to the fen), percents to 10 decimals."""
    last = int(years["year"].max())
    levels = level_payouts(hospitals)
    rows = []
    for scenario, title in titles.items():
        y = years[years["scenario"] == scenario]
        for pool in sorted(y["pool"].unique()):
            at = y[y["pool"] == pool].set_index("year")
            for measure in POOL_COMPARED:
                rows.append((scenario, title, measure, pool, None, at[measure].get(0), at[measure].get(last)))
        own = levels[levels["scenario"] == scenario]
        for level in sorted(own["level"].unique(), key=level_key):
            at = own[own["level"] == level].set_index("year")["fund_payout"]
            rows.append((scenario, title, "fund_payout", None, level, at.get(0), at.get(last)))
    frame = pd.DataFrame(rows, columns=["scenario", "title", "measure", "pool", "level", "base", "value"])
    frame["base"], frame["value"] = (pd.to_numeric(frame[c], errors="coerce") for c in ("base", "value"))
    frame = frame[frame["base"].notna() & frame["value"].notna()].reset_index(drop=True)
    frame.insert(5, "base_year", 0)
    frame.insert(6, "year", last)
    digits = frame["measure"].map(DIGITS)
    frame["change"] = _rounded(frame["value"] - frame["base"], digits)
    frame["change_pct"] = np.where(frame["base"] != 0, frame["value"] / frame["base"].where(frame["base"] != 0) - 1,
                                   np.nan)
    key = frame["measure"] + "\0" + frame["pool"].fillna("") + "\0" + frame["level"].fillna("")
    baseline = frame["value"].where(frame["scenario"] == BASELINE).groupby(key).first()
    frame["_baseline"] = key.map(baseline)
    against = frame["value"] - frame["_baseline"]
    frame["against_baseline"] = _rounded(against, digits)
    frame["against_baseline_pct"] = np.where(frame["_baseline"] != 0,
                                             frame["value"] / frame["_baseline"].where(frame["_baseline"] != 0) - 1,
                                             np.nan)
    for column in ("change_pct", "against_baseline_pct"):
        frame[column] = frame[column].round(PERCENT_DIGITS)
    return frame.drop(columns="_baseline")


def _rounded(values: pd.Series, digits: pd.Series) -> pd.Series:
    """Each value rounded to its measure's digits (money to the fen), no float noise from the subtraction."""
    return pd.Series([round(v, d) if v == v else v for v, d in zip(values, digits)], index=values.index,
                     dtype=float)


SIDE = {"zh": {"point_value": "第 {y} 年点值（元/点）", "balance": "第 {y} 年基金结余", "months_of_capacity":
               "第 {y} 年可支付月数", "fund_payout": "第 {y} 年基金支付", "row": "指标", "base": "较基年",
               "baseline": "较基准"},
        "en": {"point_value": "point value, year {y}", "balance": "fund balance, year {y}", "months_of_capacity":
               "months of capacity, year {y}", "fund_payout": "fund payout, year {y}", "row": "measure",
               "base": "vs year 0", "baseline": "vs baseline"}}


def side_by_side(table: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """The comparison as people read it, the scenarios side by side: a row per measure and pool (level), a column
    per scenario (its title), each cell the last year's value, its change from the base year and (but the
    baseline's) from the baseline scenario's last year, as text."""
    from dipsim.report.present import money_compact, number, percent

    t = SIDE[lang]
    cells: dict[tuple, dict[str, str]] = {}
    titles = dict(zip(table["scenario"], table["title"]))
    for r in table.itertuples():
        shown = {"point_value": lambda v: number(v, 4), "months_of_capacity": lambda v: number(v, 1)}.get(
            r.measure, money_compact)(r.value)
        change = percent(r.change_pct, signed=True)
        row = t[r.measure].format(y=r.year) + " " + str(r.pool if r.measure in POOL_COMPARED else r.level)
        against = "" if r.scenario == BASELINE else \
            f", {t['baseline']} {percent(r.against_baseline_pct, signed=True)}"
        cells.setdefault(row, {})[r.scenario] = f"{shown} ({t['base']} {change}{against})"
    shown_titles = list(titles.values())
    heads = {s: title if shown_titles.count(title) == 1 else f"{title} [{s}]" for s, title in titles.items()}
    return pd.DataFrame([{t["row"]: row, **{heads[s]: cells[row].get(s, "—") for s in titles}} for row in cells])
