"""Scenarios: a baseline policy and named variants (overlays) or sweeps, priced and settled on one grouped case set,
compared hospital by hospital (who gains and who pays under a fixed budget).

A scenario file (scenarios/*.toml):

    [scenario]
    name = "tcm_weighting"
    title = "中医加成与同病同价"
    baseline = "baseline.toml"            # the policy the variants change (relative to this file)

    [[variant]]                           # named variants: overlays on the baseline
    name = "中医加成 10%"
    set = { "coefficient.tcm_hospital_bonus" = 0.10 }

    [sweep]                               # and / or a grid: every combination is a variant
    "coefficient.tcm_hospital_bonus" = [0.0, 0.05, 0.10, 0.15]
    "tcm.same_price" = [true, false]

Every overlay is checked against the policy table and its rules (a point-value floor above the cap, ...) before
anything runs: a typo or an impossible variant stops the run with every problem, naming the variant. A file of more
than `MAX_VARIANTS` variants is refused before the sweep is built. Grouping happens once per grouping: each variant
only runs the payment chain again (`dipsim.payment`) on the grouped cases.

In DRG mode a variant may change the grouping scheme itself (`payment.drg_scheme`, e.g. the baseline under
chs-drg-2.0 and a variant under chs-drg-3.0): the cases are grouped once per distinct scheme, each scheme with its
own weights calibrated on the region's own costs (`group_drg`), and the variant is compared with the baseline
hospital by hospital as any other. Such a variant also gets what explains its money (`scheme_change`): the cases
that moved group and where to (`regrouping`), the baseline groups whose cases split over several groups (`splits`),
by ADRG family (`families`), and per hospital its moved cases, points and the families that moved its money most
(`scheme_hospitals`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.io.toml_files import read_toml
from dipsim.payment.chain import CaseSet, run_chain
from dipsim.payment.terms import drg_scheme
from dipsim.policy import Policy, PolicyError, load_policy
from dipsim.schema import float_column

BASELINE = "baseline"
MAX_VARIANTS = 10_000  # a scenario file with more variants is refused unless --max-variants raises the limit


@dataclass(frozen=True)
class Variant:
    name: str
    changes: dict
    named: bool = True  # the file gave the name; a sweep's or an unnamed variant's is made from `changes`


@dataclass
class ScenarioSet:
    name: str
    title: str
    baseline: Policy
    variants: list[Variant]
    source: str


def _label(changes: dict) -> str:
    return ", ".join(f"{path.split('.')[-1]}={value}" for path, value in changes.items())


def load_scenarios(path, baseline: Policy | None = None, max_variants: int = MAX_VARIANTS) -> ScenarioSet:
    """Read a scenario file; every variant is checked against the policy table and its rules, on the baseline,
    first (PolicyError lists every problem, naming the variant). A sweep is counted before it is built: more than
    `max_variants` variants in all is refused (a grid of 10^8 combinations would not fit in memory)."""
    path = Path(path)
    return scenarios_of(read_toml(path, "scenario"), str(path), baseline, max_variants, base_dir=path.parent,
                        default_name=path.stem)


def scenarios_of(data: dict, source: str, baseline: Policy | None = None, max_variants: int = MAX_VARIANTS,
                 base_dir: Path | None = None, default_name: str = "scenario",
                 raise_hint: str = ", or raise the limit with --max-variants N") -> ScenarioSet:
    """The checks of `load_scenarios` on a scenario file's parsed TOML `data` (`source` names it in messages). The
    baseline policy is `baseline` when given (`[scenario] baseline` is then not read at all: the server checks an
    uploaded file against its region's baseline), else the file `[scenario] baseline` names, relative to
    `base_dir`. `raise_hint` ends the message of too many variants (how the caller's limit is raised)."""
    meta, named, sweep = data.get("scenario", {}), data.get("variant", []), data.get("sweep", {})
    shape = [f"[{key}] must be a table" for key, value in (("scenario", meta), ("sweep", sweep))
             if not isinstance(value, dict)]
    if not isinstance(named, list) or not all(isinstance(v, dict) and isinstance(v.get("set", {}), dict)
                                              for v in named):
        shape.append("each [[variant]] must be a table with name = \"...\" and set = { path = value, ... }")
    if isinstance(meta, dict) and not isinstance(meta.get("baseline", ""), str):
        shape.append("[scenario] baseline must be the policy file's name, in quotes")
    values = {p: v if isinstance(v, list) else [v] for p, v in sweep.items()} if not shape else {}
    shape += [f"[sweep] {p!r} has no values" for p, v in values.items() if not v]
    if shape:
        raise InputError(f"{source}: " + "; ".join(shape))
    count = len(named) + (math.prod(len(v) for v in values.values()) if values else 0)
    if count > max_variants:
        grid = " x ".join(f"{len(v)} {p}" for p, v in values.items())
        what, fix = (f"{len(named)} named + the sweep's {grid}", "narrow the sweep") if values else \
            ("all named", "keep fewer")
        raise InputError(f"{source}: {count:,} variants ({what}) are more than {max_variants:,}: {fix}{raise_hint}")
    if baseline is None:
        if "baseline" not in meta:
            raise InputError(f"{source}: [scenario] baseline = \"POLICY.toml\" is missing")
        baseline = load_policy((base_dir or Path(".")) / meta["baseline"])
    variants = named_variants(named)
    for combination in itertools.product(*values.values()) if values else ():  # no sweep: no combination
        changes = dict(zip(values, combination))
        variants.append(Variant(_label(changes), changes, named=False))
    check_variants(baseline, variants, source)
    return ScenarioSet(name=meta.get("name", default_name), title=meta.get("title", meta.get("name", default_name)),
                       baseline=baseline, variants=variants, source=source)


def named_variants(named: list[dict]) -> list[Variant]:
    """The variants of [[variant]] tables ({"name": ..., "set": {path: value}}): a variant without a name is
    named by its changes (`tcm_hospital_bonus=0.1`)."""
    return [Variant(v.get("name") or _label(v.get("set", {})), dict(v.get("set", {})), named=bool(v.get("name")))
            for v in named]


def check_variants(baseline: Policy, variants: list[Variant], source: str) -> None:
    """Every variant checked against the policy table and its rules, on the baseline, and every name used once:
    PolicyError(source, problems) listing every problem, each naming its variant. A scenario file's variants
    (`load_scenarios`) and the server's runs (`dipsim serve`) are checked here, with the same messages."""
    problems, names = [], set()
    for v in variants:
        if v.name in names or v.name == BASELINE:
            problems.append(f"variant {v.name!r}: the name is used twice")
        names.add(v.name)
        try:
            baseline.overlay(v.changes)
        except PolicyError as exc:
            problems += [f"variant {v.name!r}: {p}" for p in exc.problems]
    if problems:
        raise PolicyError(source, problems)


@dataclass
class ScenarioResults:
    hospitals: pd.DataFrame  # scenario, hospital_id, pool, level, type, points, cost, fund_payout, delta, delta_pct
    pools: pd.DataFrame  # scenario, pool, point_value, status, fund_payout, budget_available
    summary: pd.DataFrame  # scenario, winners, losers, unchanged, moved (yuan), TCM hospitals' share
    by_level: pd.DataFrame  # scenario, level, fund_payout, delta
    by_type: pd.DataFrame | None = None  # scenario, hospital_type (TCM / other), fund_payout, delta
    funds: pd.DataFrame | None = None  # the baseline's fund monitoring by pool and month (`monitor.fund_monitor`)
    # the variants that change the DRG scheme (`payment.drg_scheme`): what explains their money (`scheme_change`)
    regrouping: pd.DataFrame | None = None  # scenario, from_group, to_group, cases, hospitals, points / value
    splits: pd.DataFrame | None = None  # scenario, from_group, cases, moved_cases, to_groups, into, points / value
    families: pd.DataFrame | None = None  # scenario, family (the baseline ADRG), cases, moved_cases, points / value
    scheme_hospitals: pd.DataFrame | None = None  # scenario, hospital_id, cases, moved_cases, points / value, delta,
    # why
    variants: list[Variant] = field(default_factory=list)  # the runs after the baseline, in order: their names for
    # people (`report.present.run_names`)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result tables there are, by the name of their CSV file."""
        return {name: getattr(self, name) for name in ("hospitals", "pools", "summary", "by_level", "by_type", "funds",
                                                       "regrouping", "splits", "families", "scheme_hospitals")
                if getattr(self, name) is not None}


def run_schemes(scenarios: ScenarioSet, day=None, default: str | None = None) -> dict[str, str]:
    """The CHS-DRG scheme of each run (the baseline and every variant) in DRG mode, by run name: its
    `payment.drg_scheme` on the settlement `day`, else `default` (--scheme), else chs-drg-1.1 (`drg_scheme`). A run
    in DIP mode has none."""
    runs = [(BASELINE, scenarios.baseline)] + [(v.name, scenarios.baseline.overlay(v.changes, name=v.name))
                                               for v in scenarios.variants]
    return {name: drg_scheme(policy, day, default) for name, policy in runs
            if policy.get("payment.mode", day) == "drg"}


def _grouping_of(grouped, schemes: dict[str, str], name: str) -> GroupedCases:
    """The grouped cases of run `name`: `grouped` itself, or its scheme's from a {scheme: GroupedCases} mapping."""
    if isinstance(grouped, GroupedCases):
        if len(set(schemes.values())) > 1:
            raise ValueError(f"the runs group under {sorted(set(schemes.values()))}: pass the cases grouped under "
                             "each scheme, {scheme: GroupedCases}")
        return grouped
    scheme = schemes.get(name)
    if scheme not in grouped:
        raise ValueError(f"run {name!r}: no grouped cases for scheme {scheme!r} (have {sorted(grouped)})")
    return grouped[scheme]


def run_scenarios(cases: pa.Table, hospitals: pa.Table, scenarios: ScenarioSet,
                  grouped: GroupedCases | Mapping[str, GroupedCases], aux_factor: np.ndarray | None = None,
                  progress=None, on=None, scheme: str | None = None, case_set: CaseSet | None = None,
                  funds: bool = True) -> ScenarioResults:
    """Run the payment chain (`dipsim.payment.chain.run_chain`) for the baseline and every variant on the grouped
    cases; deltas are against the baseline, in yuan (exact fen) and percent. `on`: read every parameter on that day
    (as `dipsim settle --on`). `grouped`: the cases grouped once, or in DRG mode {scheme: GroupedCases} with every
    scheme the runs use (`run_schemes`; `scheme`: the --scheme of a run that sets none); a variant under another
    scheme than the baseline's gets its regrouping explained (`scheme_change`). A caller that runs many sets on the
    same cases (the server) passes their `case_set` (`CaseSet.of(cases)`, made once) and `funds=False` when it
    does not read the baseline's fund monitoring (`results.funds` is then None): the two cost more than the payment
    chain itself on a large region."""
    case_set = CaseSet.of(cases) if case_set is None else case_set
    frame = case_set.frame
    runs = [(BASELINE, scenarios.baseline)] + [(v.name, scenarios.baseline.overlay(v.changes, name=v.name))
                                               for v in scenarios.variants]
    schemes = run_schemes(scenarios, case_set.settlement_day(on), scheme)
    switching = len(set(schemes.values())) > 1  # some variant groups under another scheme: keep what explains it
    payouts, points, pool_rows, reviews, screens, monitoring = {}, {}, [], [], {}, None
    workspace: dict = {}  # the pricing columns, allocated once: each variant reads only its settlement
    changes = []  # (name, the baseline's case points and point values, the variant's) of a scheme change
    for number, (name, policy) in enumerate(runs):
        grouping = _grouping_of(grouped, schemes, name)
        run = run_chain(case_set, grouping, hospitals, policy, on, aux_factor, screens_cache=screens,
                        workspace=workspace)
        result = run.settlement
        values = {r["pool"]: r["point_value"] for r in result.pools}
        if switching and name == BASELINE:
            before = (grouping, np.array(run.case_points, copy=True), values)  # the next run overwrites its columns
        elif switching and schemes.get(name) != schemes.get(BASELINE):
            changes.append((name, before, (grouping, np.array(run.case_points, copy=True), values)))
        review_row = {"scenario": name, "review_applied": 0, "review_approved": 0.0, "review_amount": 0.0}
        if run.review is not None:
            by_hospital = run.review.hospitals
            review_row.update(review_applied=int(by_hospital["applied"].sum()),
                              review_approved=round(float(by_hospital["approved"].sum()), 2),
                              review_amount=round(float(by_hospital["amount"].sum()), 2))
        reviews.append(review_row)
        if name == BASELINE and funds and case_set.discharge_days is not None:
            monitoring = _funds(case_set, run)
        payouts[name], points[name] = result.amounts["fund_payout"], result.points
        pool_rows += [{"scenario": name, "pool": r["pool"], "point_value": r["point_value"], "status": r["status"],
                       "fund_payout": r["fund_payout"] / 100, "budget_available": r["budget_available"] / 100}
                      for r in result.pools]
        if progress is not None:
            progress(number + 1, len(runs))
    info = hospitals.select(["hospital_id", "level", "type"]).to_pandas().set_index("hospital_id")
    level, kind = info["level"].reindex(frame.hospitals).to_numpy(), info["type"].reindex(frame.hospitals).to_numpy()
    row_cost = np.round(frame.row_cost, 2)
    base = payouts[BASELINE]
    frames = []
    for name, _ in runs:
        delta = payouts[name] - base
        frames.append(pd.DataFrame({
            "scenario": name, "hospital_id": frame.hospitals, "pool": frame.pools, "level": level, "type": kind,
            "points": np.round(points[name], 4), "cost": row_cost,
            "fund_payout": payouts[name] / 100, "delta": delta / 100,
            "delta_pct": np.where(base != 0, delta / np.where(base != 0, base, 1) * 100, np.nan)}))
    table = pd.concat(frames, ignore_index=True).sort_values(["scenario", "pool", "hospital_id"], kind="stable")
    summary = _summary(table, [name for name, _ in runs]).merge(pd.DataFrame(reviews), on="scenario")
    tcm = table.assign(hospital_type=np.where(table["type"] == "中医", "TCM (中医)", "other"))
    by_type = tcm.groupby(["scenario", "hospital_type"], sort=False)[["fund_payout", "delta"]].sum().reset_index()
    results = ScenarioResults(hospitals=table.reset_index(drop=True), pools=pd.DataFrame(pool_rows),
                              summary=summary, by_level=_by_level(table), by_type=by_type.round(2), funds=monitoring,
                              variants=list(scenarios.variants))
    if changes:
        explained = [scheme_change(case_set, name, before, after, results.hospitals) for name, before, after in changes]
        results.regrouping, results.splits, results.families, results.scheme_hospitals = (
            pd.concat(parts, ignore_index=True) for parts in zip(*explained))
    return results


VALUE_COLUMNS = ("points_before", "points_after", "value_before", "value_after")
WHY_FAMILIES = 3  # the families named in a hospital's `why`


def family(groups) -> np.ndarray:
    """The ADRG family of each DRG code: its first three characters (GB29 -> GB2, BQY -> BQY); "0000" for an
    ungroupable case."""
    codes = pd.Series(np.asarray(groups, dtype=object)).astype(str)
    return np.where(codes.str.startswith("0000"), "0000", codes.str[:3]).astype(object)


def scheme_change(case_set: CaseSet, name: str, before: tuple, after: tuple,
                  hospitals: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What explains the money of variant `name`, grouped under another scheme than the baseline: `before` and
    `after` are each (the grouped cases, the final case points, {pool: point value}) of the baseline and of the
    variant. A case's value is its final points x its pool's point value (yuan, unrounded: the part of the payment
    the points make; item-paid cost and the fen rounding aside). A case moved when its DRG code differs.

    regrouping: per (from_group, to_group) the cases, the hospitals they are at, points and value before / after;
    splits: per baseline group whose cases go to two groups or more, the cases, how many moved (`moved_cases`), the
    groups they went
    to ("GB25 30; GB29 12", most cases first), points and value; families: the same per ADRG family of the baseline
    group; scheme_hospitals: per hospital its cases, moved cases, points and value, its payout change (`delta`, the
    settlement's, to the fen) and `why`: the families whose value changed most there, by size."""
    (grouped_before, points_before, values_before), (grouped_after, points_after, values_after) = before, after
    pool = pd.Series(case_set.pool, dtype=object)
    cases = pd.DataFrame({
        "hospital_id": case_set.hospitals.ids[case_set.hospitals.codes],
        "from_group": np.asarray(grouped_before.group, dtype=object),
        "to_group": np.asarray(grouped_after.group, dtype=object),
        "points_before": points_before, "points_after": points_after,
        "value_before": points_before * pool.map(values_before).to_numpy(np.float64),
        "value_after": points_after * pool.map(values_after).to_numpy(np.float64)})
    cases["moved"] = (cases["from_group"] != cases["to_group"]).astype(np.int64)
    cases["family"] = family(cases["from_group"])
    sums = {"cases": ("moved", "size"), "moved_cases": ("moved", "sum"), **{c: (c, "sum") for c in VALUE_COLUMNS}}

    def rounded(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.round({"points_before": 4, "points_after": 4, "value_before": 2, "value_after": 2})
        frame.insert(0, "scenario", name)
        return frame

    pairs = cases.groupby(["from_group", "to_group"], sort=True).agg(
        cases=("moved", "size"), hospitals=("hospital_id", "nunique"),
        **{c: (c, "sum") for c in VALUE_COLUMNS}).reset_index()
    by_group = cases.groupby("from_group", sort=True).agg(**sums, to_groups=("to_group", "nunique"))
    ordered = pairs.sort_values(["from_group", "cases", "to_group"], ascending=[True, False, True], kind="stable")
    labels = ordered["to_group"].astype(str) + " " + ordered["cases"].astype(str)
    into = labels.groupby(ordered["from_group"], sort=True).agg("; ".join)
    splits = by_group[by_group["to_groups"] >= 2].assign(into=into).reset_index()
    splits = splits[["from_group", "cases", "moved_cases", "to_groups", "into", *VALUE_COLUMNS]]
    families = cases.groupby("family", sort=True).agg(**sums).reset_index()
    per_hospital = cases.groupby("hospital_id", sort=True).agg(**sums)
    delta = hospitals.loc[hospitals["scenario"] == name].groupby("hospital_id")["delta"].sum()
    per_hospital["delta"] = delta.reindex(per_hospital.index).round(2)
    per_hospital["why"] = _why(cases).reindex(per_hospital.index).fillna("")
    return (rounded(pairs), rounded(splits), rounded(families), rounded(per_hospital.reset_index()))


def _why(cases: pd.DataFrame) -> pd.Series:
    """Per hospital the ADRG families whose value changed most there (`WHY_FAMILIES`, by the size of the change):
    "GB2 -1,234.56 yuan (12 of 20 cases moved)"."""
    at = cases.groupby(["hospital_id", "family"], sort=True).agg(
        cases=("moved", "size"), moved=("moved", "sum"), before=("value_before", "sum"), after=("value_after", "sum"))
    at["change"] = at["after"] - at["before"]
    at["size"] = at["change"].abs()
    at = at.reset_index().sort_values(["hospital_id", "size", "family"], ascending=[True, False, True],
                                      kind="stable")
    top = at.groupby("hospital_id", sort=True).head(WHY_FAMILIES)
    text = [f"{f} {c:+,.2f} yuan ({m} of {n} cases moved)" for f, c, m, n in
            zip(top["family"], top["change"], top["moved"], top["cases"])]
    return pd.Series(text, index=top["hospital_id"]).groupby(level=0, sort=True).agg("; ".join)


def _funds(case_set: CaseSet, run) -> pd.DataFrame:
    """Fund monitoring of the baseline: claims are 统筹基金支付 where the cases have it, else cost - patient paid;
    points and item-paid costs are the chain's final ones."""
    from dipsim.monitor import fund_monitor

    cases = case_set.table
    has_fund = "fund_paid" in cases.column_names and cases["fund_paid"].null_count < cases.num_rows
    claims = float_column(cases, "fund_paid", 0.0) if has_fund else case_set.cost - case_set.patient_paid
    return fund_monitor(case_set.pool, case_set.month, claims, run.case_points, case_set.patient_paid, run.terms.policy,
                        item_cost=case_set.cost * run.columns["item_share"], on=run.terms.settlement_day)


def _summary(table: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per scenario: hospitals that gain / lose / keep at least one fen, the money moved (the sum of the gains,
    equal to the losses when the budget is fixed), and TCM hospitals' share of the payouts."""
    rows = []
    by_scenario = dict(list(table.groupby("scenario", sort=False)))  # each scenario's rows, in the table's order
    for name in order:
        t = by_scenario[name]
        total = t["fund_payout"].sum()
        rows.append({"scenario": name, "winners": int((t["delta"] >= 0.01).sum()),
                     "losers": int((t["delta"] <= -0.01).sum()),
                     "unchanged": int((t["delta"].abs() < 0.01).sum()),
                     "moved": round(float(t.loc[t["delta"] > 0, "delta"].sum()), 2),
                     "fund_payout": round(float(total), 2),
                     "tcm_hospital_share": float(t.loc[t["type"] == "中医", "fund_payout"].sum() / total)
                     if total else np.nan})
    return pd.DataFrame(rows)


def _by_level(table: pd.DataFrame) -> pd.DataFrame:
    grouped = table.groupby(["scenario", "level"], sort=False)[["fund_payout", "delta"]].sum().reset_index()
    return grouped.round({"fund_payout": 2, "delta": 2})


def inputs_digest(entries: list[dict]) -> str:
    """One sha256 of the input files' (`io.writers.file_digests`: cases, then hospitals): the key `grouped_cached`
    files a grouping under, so `dipsim scenarios run` and `dipsim serve` on the same files share it."""
    import hashlib

    return hashlib.sha256("".join(e["sha256"] for e in entries).encode()).hexdigest()


def grouped_cached(cases: pa.Table, input_digest: str, mode: str, catalog=None,
                   scheme: str = "chs-drg-1.1") -> GroupedCases:
    """The cases grouped (`grouping.grouped_cases`), kept on disk (npz, no pickle) under a key made of the input
    files' sha256, the number of cases settled from them (rows rejected at settlement change it), the catalogue's
    files or the scheme, and the dipsim version: a sweep re-run on the same data skips grouping. (DRG group points
    are relative weights; the points per RW are the chain's step 1, so a policy change needs no regrouping.)"""
    import hashlib
    import os
    import tempfile

    from dipsim import __version__
    from dipsim.grouping.grouped_cases import group_dip, group_drg
    from dipsim.grouping.scheme_cache import cache_dir

    digest = hashlib.sha256(f"{__version__}\0{mode}\0{input_digest}\0{scheme}\0{cases.num_rows}\0".encode())
    if mode == "dip":
        for f in sorted(Path(catalog.source).glob("*")):
            digest.update(f.name.encode() + f.read_bytes())
    unit = "points" if mode == "dip" else "rw"
    path = cache_dir() / "grouped" / f"{digest.hexdigest()[:32]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return GroupedCases.from_arrays(stored, unit)
        except (OSError, ValueError, KeyError):
            pass
    grouped = group_dip(cases, catalog) if mode == "dip" else group_drg(cases, scheme)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **grouped.cache_arrays())
        os.replace(tmp, path)
    except OSError:
        pass
    return grouped
