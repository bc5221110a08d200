"""A multi-year synthetic region with known injected trends (issue 20): ``dipsim synth --years N``.

``synthesize_years(out_dir, years=3, cases=..., hospitals=..., seed=..., year=2025)`` writes::

    out_dir/hospitals.parquet, hospitals.csv        the region's hospitals (the same every year)
    out_dir/year1/                                  year 1: `synthesize_region`'s whole output (its own ground truth)
    out_dir/year<y>/cases/discharge_month=YYYY-MM/part-0.parquet   years 2..N, discharges in year + y - 1
    out_dir/budgets.csv                             year, calendar_year, pool, budget (yuan, to the fen)
    out_dir/truth.json                              the injected parameters, hospitals, counts, sha256 of every file
    out_dir/truth_projection.toml                   the same parameters as a PROJECTION.toml, projecting from year 1
    out_dir/truth_policy.toml                       its policy: DIP, year 1's budgets
    out_dir/ground_truth/catalog/                   the region's DIP catalogue (year 1's cases, default options)
    out_dir/ground_truth/moved_cases.parquet        year, case_id, hospital_id, from_group, to_group: cases recoded
    (--drift-model points: out_dir/ground_truth/drifted_cases.parquet, year, case_id, hospital_id, factor, instead)

Year 1 is a region of ``synthesize_region``. Year y >= 2 is made from year 1's cases, per hospital h with n_1 cases:

* volume: n_y = round_half_even(n_1 x (1 + g_h)^(y-1)), g_h the hospital's injected rate (some hospitals grow
  faster) else the overall one. Every year-1 case is kept, plus n_y - n_1 year-1 cases drawn at random (without
  replacement while they last) as other patients' stays like them; when volume falls, n_y cases drawn at random.
  The draws are the generator's own (numpy, seeded): not the projection's seeded order, so a projection that
  reproduces a later year does so from the trends, not from the same cases.
* dates move y - 1 years on (29 February to 28 February); case ids get "-Y<y>" (a copy "-Y<y>-<k>"), a copy's
  patient id "-Y<y>-<k>" (another patient's stay, not a readmission).
* cost: total_cost, patient_paid, fund_paid, tcm_cost x (1 + c)^(y-1), to the fen per case (fund_paid at most
  total - patient, so that rounding never bills more than the total).
* coding drift (default model "moves"), as hospitals do it: by changing codes. A drifting hospital's picked share
  is D_y = min(1, (y - 1) x s_h) (s_h its yearly share, as the projection's D_t = D_{t-1} + share), and
  round_half_even(D_y x n_y) of its cases, drawn at random, are picked. Each picked case is recoded by treatment
  intensity (`recode_intensity`): its procedure codes are replaced so that the ordinary DIP grouper, with the
  region's catalogue (built from year 1 as `dipsim catalog build` would), puts it in the group of the same principal
  diagnosis next up by points - the target `dipsim.projection.moves.dip_group_table` gives the projection's
  intensity move. The codes written: a core group's own procedure set (its exact key); a comprehensive group's
  (category x treatment type), the procedures of the first year-1 case grouped into it. Year y is regrouped from its
  records: a picked case with no group above, or whose new codes still do not reach the target (a comprehensive
  target that the case's subcategory with those codes would key as a core group), keeps its codes and is counted
  (truth.json `unmoved_by_year`), as the projection counts its unmoved cases. Costs are not changed (the coding
  changes, not the care). Severity (auxiliary CC/MCC diagnoses) is not injected. The truth projection states
  ``intensity_share_by_hospital``. ``drift_model="points"`` (`--drift-model points`) keeps the older injection:
  ``drift_factor`` x the points of the picked cases, recorded as ground truth (drifted_cases.parquet) and applied
  to a year's grouping at settlement (`apply_drift`), the projection's ``drift_*`` model.
* budgets: year 1 ``budget_share`` x each pool's total cost (`dipsim.region.budgets_from_cost`), then x (1 + b)
  a year, to the fen.

The default parameters are example values (no public source), in the orders of magnitude issue 20 quotes.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dipsim import __version__
from dipsim.io.writers import sha256_file, write_csv
from dipsim.schema import CASE_SCHEMA

MONEY = ("total_cost", "patient_paid", "fund_paid", "tcm_cost")  # fund after patient (fen rounding)
DATES = ("admission_date", "discharge_date")
DRIFT_MODELS = ("moves", "points")
MOVED_SCHEMA = pa.schema([("year", pa.int32()), ("case_id", pa.string()), ("hospital_id", pa.string()),
                          ("from_group", pa.string()), ("to_group", pa.string())])


@dataclass
class Trends:
    """The injected trends. Hospitals are chosen by `choose_hospitals` unless named. Example values (no public
    source): +3% cases a year, +10% in two hospitals; two hospitals recoding 5% more of their cases a year into
    the next group up (drift_model "moves"; "points": groups of drift_factor 1.2 x the points); cost +4% a year;
    the budget 60% of year 1's cost, +5% a year."""

    volume_growth: float = 0.03
    volume_growth_by_hospital: dict[str, float] = field(default_factory=dict)
    drift_share_by_hospital: dict[str, float] = field(default_factory=dict)
    drift_factor: float = 1.2
    cost_growth: float = 0.04
    budget_share: float = 0.6
    budget_growth: float = 0.05
    volume_hospitals: int = 2  # how many hospitals get `fast_volume_growth` when none is named
    fast_volume_growth: float = 0.10
    drift_hospitals: int = 2  # how many drift when none is named
    drift_share: float = 0.05
    drift_model: str = "moves"  # "moves": codes changed (intensity); "points": the older points x drift_factor


@dataclass
class YearsSummary:
    out_dir: Path
    years: int
    cases_by_year: list[int]
    trends: Trends
    elapsed_s: float


def choose_hospitals(case_counts: pd.Series, trends: Trends) -> Trends:
    """`trends` with its hospitals named: the largest hospitals by year-1 cases alternate between drift (1st,
    3rd, ...) and fast volume (2nd, 4th, ...) (large hospitals, so that a year's draw of cases is not noise)."""
    if trends.volume_growth_by_hospital or trends.drift_share_by_hospital:
        return trends
    order = case_counts.sort_values(ascending=False, kind="stable").index.tolist()
    drift = order[0:2 * trends.drift_hospitals:2]
    volume = order[1:2 * trends.volume_hospitals:2]
    return Trends(**{**asdict(trends), "drift_share_by_hospital": {h: trends.drift_share for h in drift},
                     "volume_growth_by_hospital": {h: trends.fast_volume_growth for h in volume}})


def check_trends(trends: Trends) -> None:
    """ValueError naming the first value out of range (rates above -1, drift shares 0 to 1, factor above 0)."""
    rates = {"volume_growth": trends.volume_growth, "fast_volume_growth": trends.fast_volume_growth,
             "cost_growth": trends.cost_growth, "budget_growth": trends.budget_growth,
             **{f"volume_growth_by_hospital[{h}]": g for h, g in trends.volume_growth_by_hospital.items()}}
    for name, value in rates.items():
        if not (math.isfinite(value) and value > -1):
            raise ValueError(f"{name}: a yearly rate above -1 (got {value!r})")
    shares = {"drift_share": trends.drift_share,
              **{f"drift_share_by_hospital[{h}]": g for h, g in trends.drift_share_by_hospital.items()}}
    for name, value in shares.items():
        if not 0 <= value <= 1:
            raise ValueError(f"{name}: a share from 0 to 1 (got {value!r})")
    if trends.drift_model not in DRIFT_MODELS:
        raise ValueError(f"drift_model: one of {', '.join(DRIFT_MODELS)} (got {trends.drift_model!r})")
    if not (math.isfinite(trends.drift_factor) and trends.drift_factor > 0):
        raise ValueError(f"drift_factor: above 0 (got {trends.drift_factor!r})")
    if not 0 < trends.budget_share <= 1:
        raise ValueError(f"budget_share: above 0, at most 1 (got {trends.budget_share!r})")


def _shift_dates(column: pa.ChunkedArray, years: int) -> pa.Array:
    moved = pd.to_datetime(pd.Series(column.to_pandas())) + pd.DateOffset(years=years)
    return pa.array(moved.dt.date, pa.date32())


def make_year(base: pa.Table, y: int, trends: Trends, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """Year `y` (>= 2) made from the year-1 cases `base`: (cases, drifted cases: year, case_id, hospital_id,
    factor); the module's notes."""
    hospital = base["hospital_id"].to_numpy()
    rows: list[np.ndarray] = []
    copy: list[np.ndarray] = []
    drifted_rows: list[np.ndarray] = []
    for h in sorted(set(hospital)):
        own = np.flatnonzero(hospital == h)
        n1 = len(own)
        g = trends.volume_growth_by_hospital.get(h, trends.volume_growth)
        n = int(np.round(n1 * (1 + g) ** (y - 1)))
        if n <= n1:
            take, k = np.sort(rng.choice(own, n, replace=False)), np.zeros(n, np.int64)
        else:
            extra = n - n1
            draws = np.concatenate([rng.permutation(own) for _ in range(-(-extra // n1))])[:extra]
            take = np.concatenate([own, draws])
            k = np.concatenate([np.zeros(n1, np.int64), np.arange(extra) // n1 + 1])
        start = int(sum(len(r) for r in rows))
        rows.append(take)
        copy.append(k)
        share = min(1.0, (y - 1) * trends.drift_share_by_hospital.get(h, 0.0))
        m = int(np.round(share * n))
        if m:
            drifted_rows.append(start + np.sort(rng.choice(n, m, replace=False)))
    take, k = np.concatenate(rows), np.concatenate(copy)
    table = base.take(pa.array(take))
    copied = k > 0
    for name in ("case_id", "patient_id"):
        ids = table[name].to_numpy(zero_copy_only=False).astype(object)
        suffix = np.where(copied, [f"-Y{y}-{c}" for c in k], f"-Y{y}" if name == "case_id" else "")
        table = table.set_column(table.column_names.index(name), name,
                                 pa.array([i + s if i is not None else None for i, s in zip(ids, suffix)],
                                          pa.string()))
    factor = cost_factor(trends, y)
    for name in MONEY:
        if name in table.column_names:
            values = pc.cast(table[name], pa.float64()).to_numpy(zero_copy_only=False)
            grown = np.round(values * factor, 2)
            if name == "fund_paid":  # rounded apart, fund + patient could pass the total by a fen: the fund gives
                total = pc.cast(table["total_cost"], pa.float64()).to_numpy(zero_copy_only=False)
                patient = pc.cast(table["patient_paid"], pa.float64()).to_numpy(zero_copy_only=False)
                grown = np.minimum(grown, np.round(total - patient, 2))
            table = table.set_column(table.column_names.index(name), name, pa.array(grown))
    for name in DATES:
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, _shift_dates(table[name], y - 1))
    at = pa.array(np.concatenate(drifted_rows) if drifted_rows else np.zeros(0, np.int64))
    drifted = pa.table({"year": pa.array(np.full(len(at), y, np.int32)), "case_id": table["case_id"].take(at),
                        "hospital_id": table["hospital_id"].take(at),
                        "factor": pa.array(np.full(len(at), trends.drift_factor))})
    return table, drifted


def target_procedures(base: pa.Table, catalog) -> dict[str, list[str]]:
    """Per catalogue group, procedure codes that group a case of its diagnosis into it: a core group's own key set
    (its exact key: the grouper's first rule), else (a comprehensive group: a category x treatment type) the
    procedures of the first year-1 case grouped into it."""
    from dipsim.grouping.grouped_cases import group_dip

    groups = catalog.groups.to_pylist()
    codes = {g["group_id"]: [c for c in g["procedures"].split("+") if c] for g in groups if g["kind"] == "core"}
    grouped = group_dip(base, catalog).group
    procedures = base["procedures"].to_pylist()
    for k in range(len(grouped)):
        codes.setdefault(str(grouped[k]), list(procedures[k] or []))
    return codes


def recode_intensity(table: pa.Table, drifted: pa.Table, catalog, codes: dict[str, list[str]],
                     y: int) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Year `y`'s `table` with its `drifted` cases (the picked ones) coded up by treatment intensity, as a hospital
    does it: each picked case's procedures are replaced by `codes` of the group of its principal diagnosis next up by
    points in the region's catalogue (`moves.dip_group_table`'s intensity target: the one the projection moves it
    to). The year is regrouped by the ordinary DIP grouper: a case whose new codes do not reach the target (or that
    has no group above) keeps its own codes and is counted. Returns (table, moved cases: MOVED_SCHEMA,
    {hospital_id: picked cases not moved})."""
    from dipsim.grouping.grouped_cases import group_dip
    from dipsim.projection.moves import dip_group_table

    grouped = group_dip(table, catalog)
    groups = dip_group_table(grouped, catalog)
    ids = table["case_id"].to_numpy(zero_copy_only=False)
    at = np.sort(pd.Index(ids).get_indexer(drifted["case_id"].to_numpy(zero_copy_only=False)))
    target = groups.up("intensity", at)
    to = np.where(target >= 0, groups.codes[np.maximum(target, 0)], "").astype(object)
    procedures = table["procedures"].to_pylist()
    old = {int(a): procedures[a] for a in at}
    for a, t in zip(at, to):
        if t and t in codes:
            procedures[a] = codes[t]
    recoded = _set_procedures(table, procedures)
    reached = np.asarray(group_dip(recoded, catalog).group, dtype=object)[at] == to
    reached &= to != ""
    for a in at[~reached]:  # not reached: the case keeps its own codes
        procedures[a] = old[int(a)]
    table = _set_procedures(table, procedures)
    hospital = table["hospital_id"].to_numpy(zero_copy_only=False)
    moved = pa.table({"year": pa.array(np.full(int(reached.sum()), y, np.int32)),
                      "case_id": pa.array(ids[at[reached]], pa.string()),
                      "hospital_id": pa.array(hospital[at[reached]], pa.string()),
                      "from_group": pa.array(np.asarray(grouped.group, dtype=object)[at[reached]], pa.string()),
                      "to_group": pa.array(to[reached], pa.string())}, schema=MOVED_SCHEMA)
    unmoved = pd.Series(hospital[at[~reached]]).value_counts().sort_index()
    return table, moved, {str(h): int(n) for h, n in unmoved.items()}


def _set_procedures(table: pa.Table, procedures: list) -> pa.Table:
    return table.set_column(table.column_names.index("procedures"), "procedures",
                            pa.array(procedures, table.schema.field("procedures").type))


def apply_drift(grouped, case_ids, drifted: pa.Table, cost_factor: float = 1.0):
    """A grouping (`GroupedCases`) of a synthetic year with its ground-truth drift applied as the projection
    applies drift: the drifted cases' group points x their factor; standard costs x `cost_factor` (the catalogue's
    costs following cost growth)."""
    from dipsim.grouping.grouped_cases import GroupedCases

    factor = pd.Series(drifted["factor"].to_numpy(), index=drifted["case_id"].to_numpy(zero_copy_only=False))
    per_case = factor.reindex(np.asarray(case_ids, dtype=object)).fillna(1.0).to_numpy()
    return GroupedCases(group=grouped.group, group_points=grouped.group_points * per_case,
                        standard_cost=grouped.standard_cost * cost_factor, tcm_group_case=grouped.tcm_group_case,
                        tcm_treated=grouped.tcm_treated, unit=grouped.unit, codes=grouped.codes)


def projection_toml(trends: Trends, years: int, seed: int) -> str:
    """The injected parameters as a PROJECTION.toml projecting from year 1 (years 2..N: `years` - 1 years)."""
    def table(d: dict[str, float]) -> str:
        return "{ " + ", ".join(f'"{k}" = {v!r}' for k, v in sorted(d.items())) + " }"

    return (
        "# The trends injected by dipsim synth --years (truth.json), as a projection from year 1: run it on\n"
        "# year1/cases (the policy truth_policy.toml: DIP, year 1's budgets; rule growth gives budgets.csv's).\n"
        + ("# Drift is injected as intensity moves (dipsim/synth/years.py): picked cases' procedures recoded to the\n"
           "# group of the same diagnosis next up by points; project with the catalogue built from year1/cases.\n"
           if trends.drift_model == "moves" else
           "# Drift is injected in the projection's terms (dipsim/synth/years.py): drifted cases' points x factor.\n")
        + f"[projection]\nname = \"synth_truth\"\nyears = {years - 1}\nseed = {seed}\n"
        "policy = \"truth_policy.toml\"\n\n"
        f"[demand]\nvolume_growth = {trends.volume_growth!r}\n"
        f"volume_growth_by_hospital = {table(trends.volume_growth_by_hospital)}\n"
        f"cost_growth = {trends.cost_growth!r}\n\n"
        + (f"[behaviour]\nintensity_share_by_hospital = {table(trends.drift_share_by_hospital)}\n"
           "intensity_elasticity = 0.0\n\n" if trends.drift_model == "moves" else
           f"[behaviour]\ndrift_share = 0.0\ndrift_share_by_hospital = {table(trends.drift_share_by_hospital)}\n"
           f"drift_factor = {trends.drift_factor!r}\ndrift_elasticity = 0.0\n\n") +
        f"[budget]\nrule = \"growth\"\ngrowth = {trends.budget_growth!r}\n")


def _write_partitions(table: pa.Table, folder: Path) -> dict[str, dict]:
    months = pc.strftime(table["discharge_date"], "%Y-%m").to_numpy(zero_copy_only=False)
    files = {}
    for label in sorted(set(months)):
        part = table.filter(pa.array(months == label)).cast(CASE_SCHEMA)
        path = folder / f"discharge_month={label}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path, compression="zstd")
        files[str(path)] = part.num_rows
    return files


def synthesize_years(out_dir, years: int = 3, cases: int = 20_000, hospitals: int = 20, seed: int = 20250101,
                     year: int = 2025, trends: Trends | None = None, progress=None) -> YearsSummary:
    """Write a region of `years` years (module notes); deterministic for the arguments."""
    from dipsim.io import load_cases
    from dipsim.region import budgets_from_cost
    from dipsim.synth.generate import synthesize_region

    if years < 2:
        raise ValueError(f"years must be >= 2 for a multi-year region (got {years})")
    check_trends(trends or Trends())
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    synthesize_region(out / "year1", cases=cases, hospitals=hospitals, seed=seed, year=year)
    for name in ("hospitals.parquet", "hospitals.csv"):
        shutil.copyfile(out / "year1" / name, out / name)
    base = load_cases(out / "year1" / "cases").accepted.cast(CASE_SCHEMA)
    counts = pd.Series(base["hospital_id"].to_numpy(zero_copy_only=False)).value_counts()
    trends = choose_hospitals(counts, trends or Trends())
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20]))  # not synthesize_region's streams
    budget1 = budgets_from_cost(base, trends.budget_share)
    moves = trends.drift_model == "moves"
    if moves:  # the region's catalogue, as `dipsim catalog build year1/cases` (default options) writes it
        from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
        from dipsim.grouping.dip import load_catalog

        write_catalog(build_catalog(base, CatalogOptions()), out / "ground_truth" / "catalog")
        catalog = load_catalog(out / "ground_truth" / "catalog")
        codes = target_procedures(base, catalog)
    moved_tables, unmoved_by_year = [], {}
    budget_rows = []
    drifted_tables = []
    cases_by_year = [base.num_rows]
    for y in range(1, years + 1):
        for pool, b in sorted(budget1.items()):
            budget = b
            for _ in range(y - 1):
                budget = round(budget * (1 + trends.budget_growth), 2)  # the projection's rule growth, to the fen
            budget_rows.append({"year": y, "calendar_year": year + y - 1, "pool": pool, "budget": budget})
        if y == 1:
            continue
        table, drifted = make_year(base, y, trends, rng)
        if moves:
            table, moved, unmoved_by_year[y] = recode_intensity(table, drifted, catalog, codes, y)
            moved_tables.append(moved)
        folder = out / f"year{y}" / "cases"
        if folder.exists():
            shutil.rmtree(folder)
        _write_partitions(table, folder)
        drifted_tables.append(drifted)
        cases_by_year.append(table.num_rows)
        if progress is not None:
            progress(y, years)
    drifted_all = pa.concat_tables(drifted_tables)
    (out / "ground_truth").mkdir(exist_ok=True)
    if moves:
        moved_all = pa.concat_tables(moved_tables)
        pq.write_table(moved_all, out / "ground_truth" / "moved_cases.parquet", compression="zstd")
    else:
        pq.write_table(drifted_all, out / "ground_truth" / "drifted_cases.parquet", compression="zstd")
    write_csv(pa.Table.from_pylist(budget_rows), out / "budgets.csv")
    (out / "truth_projection.toml").write_text(projection_toml(trends, years, seed), encoding="utf-8")
    totals = ", ".join(f'"{pool}" = {b!r}' for pool, b in sorted(budget1.items()))
    (out / "truth_policy.toml").write_text(
        "# DIP with year 1's budgets (budgets.csv); every other parameter the default (dipsim policy).\n"
        f"[payment]\nmode = \"dip\"\n[budget]\ntotal = {{ {totals} }}\n", encoding="utf-8")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "truth.json")
    truth: dict[str, Any] = {
        "generator": "dipsim.synth.synthesize_years", "dipsim_version": __version__,
        "parameters": {"years": years, "cases": cases, "hospitals": hospitals, "seed": seed, "year": year},
        "trends": {**asdict(trends), "example_values": "no public source (dipsim/synth/years.py)"},
        "drift_model": ("intensity moves: a picked case's procedures recoded so that the DIP grouper puts it in "
                        "the group of its principal diagnosis next up by points in the region's catalogue "
                        "(ground_truth/catalog, built from year 1; moves.dip_group_table's target); "
                        "ground_truth/moved_cases.parquet; projection key intensity_share_by_hospital"
                        if moves else
                        "a drifted case's group points x drift_factor (the projection's model, injected as "
                        "case-level truth: ground_truth/drifted_cases.parquet; apply with "
                        "dipsim.synth.years.apply_drift)")
                       + "; picked share of a drifting hospital's cases in year y: min(1, (y - 1) x share)",
        "cost_model": "money columns x (1 + cost_growth)^(y-1) to the fen; the catalogue's standard costs follow",
        "budgets": budget_rows,
        "cases_by_year": cases_by_year,
        "drifted_cases_by_year": {int(y): int(n) for y, n in
                                  pd.Series(drifted_all["year"].to_numpy()).value_counts().sort_index().items()},
        **({"moved_cases_by_year": {int(y): int(n) for y, n in pd.Series(
                moved_all["year"].to_numpy()).value_counts().sort_index().items()},
            "unmoved_by_year": {str(y): u for y, u in unmoved_by_year.items()},
            "unmoved_note": "picked cases kept with their own codes, per hospital: no group of the diagnosis above "
                            "theirs, or new codes that do not reach it"} if moves else {}),
        "files": {str(p.relative_to(out)): sha256_file(p) for p in files},
    }
    elapsed = round(time.perf_counter() - started, 3)
    truth["elapsed_s"] = elapsed
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return YearsSummary(out, years, cases_by_year, trends, elapsed)


def year_folder(out_dir, y: int) -> Path:
    """The cases folder of year `y` of a multi-year region."""
    return Path(out_dir) / f"year{y}" / "cases"


def cost_factor(trends: Trends | dict, y: int) -> float:
    c = trends["cost_growth"] if isinstance(trends, dict) else trends.cost_growth
    return math.prod([1 + c] * (y - 1))

