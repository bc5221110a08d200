"""DIP catalogue building (病种目录库): a city's groups and points from its own past cases (docs/domain.md §6).

A case's **key** is its principal diagnosis cut to the subcategory (亚目, `I74.800x021` -> `I74.8`) and the unordered
set of its procedure codes (order and repeats ignored; `procedure_kinds` may keep only some kinds). Keys with at
least `threshold` cases are **core groups** (核心病种); the other cases fall into **comprehensive groups** (综合病种)
by diagnosis category (类目, 3 characters) x treatment type: 相关手术 (an operation or an interventional procedure),
治疗性操作, 诊断性操作, or 保守治疗 (no procedure).

**Points** (病种分值) = m_i / M x scale: m_i the group's mean cost after trimming its costs outside the
`trim_percentiles` (within the group), weighted by year (`year_weights`, oldest first, default 1:2:7 for the last
three years; a group without cases in a year is averaged over the years it has); M the same weighted mean over all
cases kept. With `reference_group`, M is that group's m_i, so the reference disease gets exactly `scale` points.
Points are rounded to 4 decimals (`POINTS_DECIMALS`); money is not involved here.

With a TCM catalogue (`dipsim.tcm`), TCM-treated cases of its diseases form TCM groups at the Western group's points
and are left out of the other groups. `Catalog.keys` keeps every building key and its group, for the grouper.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim import __version__
from dipsim.codes import load_icd9, load_icd10
from dipsim.tcm import TCM_PREFIX, TcmRule, tcm_groups, tcm_treated

POINTS_DECIMALS = 4
CORE, COMPREHENSIVE, TCM = "core", "comprehensive", "tcm"
# 治疗方式 of a comprehensive group, from the ICD-9-CM-3 kinds of the case's counted procedures (highest wins)
TREATMENTS = ("保守治疗", "诊断性操作", "治疗性操作", "相关手术")
KIND_TREATMENT = {"手术": 3, "介入治疗": 3, "治疗性操作": 2, "诊断性操作": 1}
UNKNOWN_KIND_TREATMENT = 2  # a procedure whose kind the dictionary does not give: counted as 治疗性操作

KEYS_SCHEMA = pa.schema([("key", pa.string()), ("group_id", pa.string()), ("cases", pa.int64())])
CATALOG_SCHEMA = pa.schema([
    # core: "I74.8/39.2901+88.4700" ("I74.8/" without procedures); comprehensive: "I74/相关手术"; TCM: "TCM/I63.9"
    ("group_id", pa.string()),
    ("kind", pa.string()),  # core | comprehensive | tcm
    ("diagnosis", pa.string()),  # subcategory (core, TCM) or category (comprehensive)
    ("procedures", pa.string()),  # sorted codes joined by "+" (core); "" for comprehensive
    ("treatment", pa.string()),  # one of TREATMENTS (core: from its procedures); TCM groups: 中医
    ("name", pa.string()),  # Chinese: diagnosis name, then procedure names
    ("points", pa.float64()),
    ("cases", pa.int64()),  # cases in the group (all years)
    ("cases_used", pa.int64()),  # after trimming
    ("mean_cost", pa.float64()),  # m_i: trimmed, year-weighted
    ("cv_cost", pa.float64()),  # coefficient of variation of the kept costs
])


@dataclass(frozen=True)
class CatalogOptions:
    """How a catalogue is built; every default is docs/domain.md §6's."""

    threshold: int = 15  # cases a key needs to be a core group
    coverage: float | None = None  # instead: the largest threshold whose core groups still hold >= this share
    trim_percentiles: tuple[float, float] = (2.5, 97.5)
    year_weights: tuple[float, ...] = (1.0, 2.0, 7.0)  # oldest first, for the last len() years of the data
    scale: float = 1000.0
    reference_group: str | None = None  # a group_id fixed at `scale` points
    procedure_kinds: tuple[str, ...] | None = None  # ICD-9 kinds that count in the key (None: every procedure)
    # DIP 2.0: a procedure counts only if it carries at least this share of the case's cost (0.10), where the
    # per-procedure cost is known (a `procedure_costs` column); None: every procedure counts
    min_procedure_share: float | None = None
    tcm: TcmRule | None = None  # the TCM catalogue: TCM-treated cases of its diseases get TCM groups (dipsim.tcm)

    def __post_init__(self):
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")
        if self.coverage is not None and not 0 < self.coverage <= 1:
            raise ValueError("coverage must be in (0, 1]")
        low, high = self.trim_percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"trim percentiles must satisfy 0 <= low < high <= 100, not {self.trim_percentiles}")
        if not self.year_weights or any(w < 0 for w in self.year_weights) or sum(self.year_weights) <= 0:
            raise ValueError(f"year weights must be non-negative with a positive sum, not {self.year_weights}")
        if self.scale <= 0:
            raise ValueError("scale must be positive")


@dataclass
class Catalog:
    """The groups (CATALOG_SCHEMA) and what was built: the threshold used, coverage, counts, parameters."""

    groups: pa.Table
    threshold: int
    coverage: float  # share of the cases with a cost that fall in core groups
    cases: int  # cases used to build (with a principal diagnosis and a cost)
    cases_skipped: int  # without a principal diagnosis or a positive cost
    years: dict[int, float] = field(default_factory=dict)  # year -> weight used
    options: CatalogOptions = field(default_factory=CatalogOptions)
    # every key seen in the building cases, with its group (a core key: itself; else its comprehensive group)
    # and case count (KEYS_SCHEMA): the grouper sends a known non-core key where the build sent it
    keys: pa.Table | None = None

    def summary(self) -> dict:
        kinds = pc.value_counts(self.groups["kind"]).to_pylist()
        return {"dipsim_version": __version__, "built_on": dt.date.today().isoformat(),
                "options": asdict(self.options), "threshold": self.threshold, "core_coverage": self.coverage,
                "cases": self.cases, "cases_skipped": self.cases_skipped,
                "years": {str(y): w for y, w in self.years.items()},
                "groups": {k["values"]: k["counts"] for k in kinds}}


# ---------------------------------------------------------------------------------------------------------------
# Keys


@dataclass
class ProcedureSets:
    """Per case, the sorted distinct counted procedure codes as a CSR over `vocabulary` (every distinct code of the
    column, sorted): case i's codes are vocabulary[ranks[offsets[i]:offsets[i + 1]]], ascending; and its treatment
    level (index into TREATMENTS)."""

    vocabulary: pa.Array
    offsets: np.ndarray  # int32, one more than the cases
    ranks: np.ndarray  # int64
    treatment: np.ndarray  # int8

    def joined(self) -> pa.Array:
        """Each case's codes joined by "+" ("" for none)."""
        values = pc.take(self.vocabulary, pa.array(self.ranks))
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(self.offsets), values), "+")


def procedure_sets(procedures: pa.ChunkedArray | pa.Array, kinds: tuple[str, ...] | None,
                   resource_share: np.ndarray | None = None, min_share: float | None = None) -> ProcedureSets:
    """Per case: the sorted distinct counted procedure codes and the treatment level (`ProcedureSets`). Codes are
    looked up once per distinct code. `resource_share` (per procedure value, NaN unknown) below `min_share` leaves
    a procedure out."""
    lists = procedures.combine_chunks() if isinstance(procedures, pa.ChunkedArray) else procedures
    n = len(lists)
    values = pc.fill_null(pc.list_flatten(lists).cast(pa.string()), "")
    row = pc.list_parent_indices(lists).to_numpy()
    if min_share is not None and resource_share is not None:
        values = pc.if_else(pa.array(resource_share < min_share), "", values)  # NaN (unknown) compares False
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    index = encoded.indices.to_numpy()
    icd9 = load_icd9()
    ids = icd9.encode(encoded.dictionary)
    kind = np.where(ids >= 0, icd9.table["kind"].to_numpy(dtype=object)[np.maximum(ids, 0)], "")
    counted = distinct != ""
    if kinds is not None:
        counted &= np.isin(kind, list(kinds))
    level = np.array([KIND_TREATMENT.get(k, UNKNOWN_KIND_TREATMENT) for k in kind], dtype=np.int8)
    keep = counted[index]
    row, index = row[keep], index[keep]
    treatment = np.zeros(n, dtype=np.int8)
    np.maximum.at(treatment, row, level[index])
    # distinct codes per case in code order: sort (row, rank of the code) as one integer, then drop repeats
    order = np.argsort(distinct)
    rank_of = np.empty(len(order), dtype=np.int64)
    rank_of[order] = np.arange(len(order))
    width = max(len(order), 1)
    pair = np.sort(row.astype(np.int64) * width + rank_of[index], kind="stable")
    pair = pair[np.concatenate([[True], pair[1:] != pair[:-1]])] if len(pair) else pair
    row, rank = np.divmod(pair, width)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(row, minlength=n), out=offsets[1:])
    return ProcedureSets(pa.array(distinct[order].tolist(), pa.string()), offsets, rank, treatment)


def _procedure_sets(procedures: pa.ChunkedArray | pa.Array, kinds: tuple[str, ...] | None,
                    resource_share: np.ndarray | None = None, min_share: float | None = None
                    ) -> tuple[pa.Array, np.ndarray]:
    """Per case: the sorted distinct counted procedure codes joined by "+" ("" for none), and the treatment level
    (index into TREATMENTS) (`procedure_sets`)."""
    sets = procedure_sets(procedures, kinds, resource_share, min_share)
    return sets.joined(), sets.treatment


def principal_index(diagnoses: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Each case's first code as an index (int32) into the distinct first codes (a string array, "" among them
    when a case has an empty or null list, or a null code): the codes are handled once per distinct value."""
    lists = diagnoses.combine_chunks() if isinstance(diagnoses, pa.ChunkedArray) else diagnoses
    offsets = lists.offsets.to_numpy(zero_copy_only=False)
    has = offsets[1:] > offsets[:-1]  # a first code (null lists excepted below)
    if lists.null_count:
        has &= lists.is_valid().to_numpy(zero_copy_only=False)
    first = pc.take(lists.values, pa.array(offsets[:-1][has]))  # offsets index the whole child array
    encoded = pc.dictionary_encode(pc.fill_null(first.cast(pa.string()), ""))
    dictionary = encoded.dictionary
    empty = pc.index(dictionary, "").as_py()
    if empty < 0 and not has.all():
        empty = len(dictionary)
        dictionary = pa.concat_arrays([dictionary, pa.array([""], pa.string())])
    out = np.full(len(lists), max(empty, 0), dtype=np.int32)
    out[has] = encoded.indices.to_numpy(zero_copy_only=False)
    return out, dictionary


def principal_codes(diagnoses: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The first code of each list ("" for an empty or null list, or a null code)."""
    index, dictionary = principal_index(diagnoses)
    return pc.take(dictionary, pa.array(index))


@dataclass
class KeyParts:
    """Per case, as Arrow arrays: `diagnosis` (principal subcategory, "" without a principal), `category`,
    `procedures` (the key's set, "+"-joined), `key` (the id of the core group it would be in) and `comprehensive`
    (the id of its comprehensive group); `treatment` (numpy, index into TREATMENTS)."""

    diagnosis: pa.Array
    category: pa.Array
    procedures: pa.Array
    treatment: np.ndarray
    key: pa.Array
    comprehensive: pa.Array


def _resource_shares(cases: pa.Table) -> np.ndarray:
    """Per procedure value (the flattened `procedures`): its cost (`procedure_costs`, one number per procedure in
    the same order, a list or comma-separated text) over the case's total cost; NaN where unknown (no cost, or a
    case whose lists differ in length)."""
    if "procedure_costs" not in cases.column_names:
        raise ValueError("min_procedure_share needs a procedure_costs column (one cost per procedure, in order)")
    costs = cases["procedure_costs"].combine_chunks()
    if not pa.types.is_list(costs.type):
        costs = pc.split_pattern(pc.cast(costs, pa.string()), ",")
    procedures = cases["procedures"].combine_chunks()
    n_px = pc.fill_null(pc.list_value_length(procedures), 0).to_numpy(zero_copy_only=False)
    n_cost = pc.fill_null(pc.list_value_length(costs), 0).to_numpy(zero_copy_only=False)
    total = pc.fill_null(pc.cast(cases["total_cost"], pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    share = np.full(int(n_px.sum()), np.nan)
    aligned = np.repeat(n_px == n_cost, n_px)
    values = pc.cast(pc.list_flatten(costs.filter(pa.array(n_px == n_cost))), pa.float64(), safe=False)
    row = np.repeat(np.arange(len(n_px)), n_px)
    share[aligned] = pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False) / total[row[aligned]]
    return share


def key_parts(cases: pa.Table, options: CatalogOptions | None = None) -> KeyParts:
    opts = options or CatalogOptions()
    n = cases.num_rows
    principal = principal_codes(cases["diagnoses"])
    if "procedures" in cases.column_names:
        share = _resource_shares(cases) if opts.min_procedure_share is not None else None
        procedures, treatment = _procedure_sets(cases["procedures"], opts.procedure_kinds, share,
                                                opts.min_procedure_share)
    else:
        procedures, treatment = pa.array([""] * n, pa.string()), np.zeros(n, np.int8)
    diagnosis = pc.utf8_slice_codeunits(principal, 0, 5)
    category = pc.utf8_slice_codeunits(principal, 0, 3)
    treatment_name = pc.take(pa.array(TREATMENTS, pa.string()), pa.array(treatment))
    return KeyParts(diagnosis=diagnosis, category=category, procedures=procedures, treatment=treatment,
                    key=pc.binary_join_element_wise(diagnosis, procedures, "/"),
                    comprehensive=pc.binary_join_element_wise(category, treatment_name, "/"))


def case_keys(cases: pa.Table, options: CatalogOptions | None = None) -> pd.DataFrame:
    """`key_parts` as a DataFrame (columns diagnosis, category, procedures, treatment, key, comprehensive)."""
    parts = key_parts(cases, options)
    return pd.DataFrame({name: (value if isinstance(value, np.ndarray) else value.to_numpy(zero_copy_only=False))
                         for name, value in vars(parts).items()})


# ---------------------------------------------------------------------------------------------------------------
# Building


def coverage_threshold(key_counts: pd.Series, coverage: float) -> int:
    """The largest threshold whose core groups (keys with at least that many cases) still hold >= `coverage` of
    the cases: the fewest core groups that reach the target (at worst 1, every key a core group)."""
    counts = np.sort(key_counts.to_numpy())[::-1]
    held = np.cumsum(counts) / counts.sum()
    # keys sorted by size: taking every key with count >= counts[i] holds held[j] for the last j with that count
    for t in np.unique(counts)[::-1]:
        if held[np.searchsorted(-counts, -t, side="right") - 1] >= coverage:
            return int(t)
    return 1


def _year_weights(years: np.ndarray, weights: tuple[float, ...]) -> dict[int, float]:
    """The last len(weights) years of the data, oldest first, with their weights (fewer years: the last weights)."""
    present = sorted(int(y) for y in np.unique(years))[-len(weights):]
    return dict(zip(present, weights[len(weights) - len(present):]))


def build_catalog(cases: pa.Table, options: CatalogOptions | None = None, cost_column: str = "total_cost",
                  names: bool = True) -> Catalog:
    """Build a DIP catalogue from accepted cases (`dipsim.schema` columns; the year is the discharge year, or one
    year when there is no discharge date). Cases without a principal diagnosis or a positive cost are skipped
    (counted in `cases_skipped`)."""
    opts = options or CatalogOptions()
    keys = case_keys(cases, opts)
    cost = pc.cast(cases[cost_column], pa.float64()).to_numpy(zero_copy_only=False)
    cost = np.where(np.isnan(cost), 0.0, cost)
    if "discharge_date" in cases.column_names:
        year = pc.fill_null(pc.year(cases["discharge_date"]), 0).to_numpy(zero_copy_only=False)
    else:
        year = np.zeros(cases.num_rows, dtype=np.int64)
    usable = (keys["diagnosis"].to_numpy() != "") & (cost > 0)
    tcm = tcm_groups(pa.array(keys["diagnosis"].to_numpy(dtype=object), pa.string()),
                     tcm_treated(cases, opts.tcm) if opts.tcm else np.zeros(len(keys), bool), opts.tcm)[usable]
    frame = keys[usable].reset_index(drop=True)
    cost, year = cost[usable], year[usable]
    if frame.empty:
        raise ValueError("no case with a principal diagnosis and a positive cost: nothing to build a catalogue from")

    # core keys are counted among the Western cases: TCM-treated cases of the TCM diseases have groups of their own
    western = tcm == ""
    key_id, key_names = pd.factorize(frame["key"].to_numpy(dtype=object)[western])
    key_counts = np.bincount(key_id)
    threshold = (opts.threshold if opts.coverage is None
                 else coverage_threshold(pd.Series(key_counts), opts.coverage))
    is_core = np.zeros(len(frame), dtype=bool)
    is_core[western] = key_counts[key_id] >= threshold
    group_id = np.where(is_core, frame["key"].to_numpy(dtype=object), frame["comprehensive"].to_numpy(dtype=object))
    group_id = np.where(western, group_id, tcm)
    g, group_names = pd.factorize(group_id)
    n_groups = len(group_names)
    size = np.bincount(g, minlength=n_groups)
    kept = _trimmed(g, cost, size, opts.trim_percentiles)

    # year-weighted means: per group and year, then weighted over the years each group has
    weights = _year_weights(year, opts.year_weights)
    years = np.array(sorted(weights))
    w = np.array([weights[y] for y in years], dtype=float)
    y = np.searchsorted(years, year)
    in_window = (y < len(years)) & (years[np.minimum(y, len(years) - 1)] == year)
    used = kept & in_window
    cell = g[used] * len(years) + y[used]
    cell_n = np.bincount(cell, minlength=n_groups * len(years)).reshape(n_groups, len(years))
    cell_sum = np.bincount(cell, weights=cost[used], minlength=n_groups * len(years)).reshape(n_groups, len(years))
    group_mean, overall = weighted_means(cell_sum, cell_n, w)
    if opts.reference_group is not None:
        ref = np.flatnonzero(group_names == opts.reference_group)
        if len(ref) == 0:
            raise ValueError(f"reference group {opts.reference_group!r} is not in the catalogue")
        overall = group_mean[ref[0]]

    kept_n = np.bincount(g[kept], minlength=n_groups)
    kept_mean = np.bincount(g[kept], weights=cost[kept], minlength=n_groups) / np.maximum(kept_n, 1)
    kept_var = np.bincount(g[kept], weights=(cost[kept] - kept_mean[g[kept]]) ** 2, minlength=n_groups)
    first = np.full(n_groups, len(g), dtype=np.int64)
    np.minimum.at(first, g, np.arange(len(g)))
    core, is_tcm = is_core[first], ~western[first]
    pick = frame.iloc[first]
    out = pd.DataFrame({
        "group_id": np.asarray(group_names, dtype=object),
        "kind": np.where(core, CORE, np.where(is_tcm, TCM, COMPREHENSIVE)),
        "diagnosis": np.where(core | is_tcm, pick["diagnosis"].to_numpy(dtype=object),
                              pick["category"].to_numpy(dtype=object)),
        "procedures": np.where(core, pick["procedures"].to_numpy(dtype=object), ""),
        "treatment": np.where(is_tcm, "中医", np.array(TREATMENTS, dtype=object)[pick["treatment"].to_numpy()]),
        "points": group_points(np.asarray(group_names, dtype=object), is_tcm, group_mean, overall, opts.scale),
        "cases": size,
        "cases_used": kept_n,
        "mean_cost": group_mean,
        "cv_cost": np.sqrt(kept_var / np.maximum(kept_n, 1)) / kept_mean,  # population standard deviation
    })
    out["name"] = _names(out) if names else ""
    out = out.sort_values(["kind", "diagnosis", "procedures", "treatment"], kind="stable",
                          key=lambda s: s.map({CORE: 0, COMPREHENSIVE: 1, TCM: 2}) if s.name == "kind" else s)
    table = pa.Table.from_pandas(out[CATALOG_SCHEMA.names], schema=CATALOG_SCHEMA, preserve_index=False)
    key_first = np.full(len(key_names), len(key_id), dtype=np.int64)
    np.minimum.at(key_first, key_id, np.arange(len(key_id)))
    keys_table = pa.table({"key": pa.array(np.asarray(key_names, dtype=object), pa.string()),
                           "group_id": pa.array(group_id[western][key_first], pa.string()),
                           "cases": pa.array(key_counts, pa.int64())}, schema=KEYS_SCHEMA).sort_by("key")
    return Catalog(groups=table, threshold=threshold, coverage=float(is_core.mean()), cases=len(frame),
                   cases_skipped=int((~usable).sum()), years=weights, options=opts, keys=keys_table)


def weighted_means(cell_sum: np.ndarray, cell_n: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """The year-weighted mean costs from the (groups x years) cost sums and case counts of the cases kept and the
    years' weights (oldest first): m_i = sum_y w_y mean_iy / sum of w_y over the years group i has cases in (NaN:
    none), and M = the same weighted mean of each year's mean over all its cases (the years with cases)."""
    has = cell_n > 0
    cell_mean = np.divide(cell_sum, cell_n, out=np.zeros_like(cell_sum, dtype=float), where=has)
    weight_sum = (has * weights).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        group_mean = (cell_mean * weights).sum(axis=1) / weight_sum  # NaN: no case in a weighted year
    year_n, year_sum = cell_n.sum(axis=0), cell_sum.sum(axis=0)
    present = year_n > 0
    overall = float((year_sum[present] / year_n[present] * weights[present]).sum() / weights[present].sum())
    return group_mean, overall


def group_points(group_ids: np.ndarray, is_tcm: np.ndarray, group_mean: np.ndarray, overall: float, scale: float,
                 decimals: int | None = POINTS_DECIMALS) -> np.ndarray:
    """病种分值 = m_i / M x scale, a TCM group at its Western group's points (`_western_points`), rounded to
    `decimals` (None: not rounded)."""
    points = _western_points(group_ids, is_tcm, group_mean / overall * scale)
    return points if decimals is None else np.round(points, decimals)


def _western_points(group_ids: np.ndarray, is_tcm: np.ndarray, points: np.ndarray) -> np.ndarray:
    """同病同价: a TCM group takes the points of its disease's Western group, the conservative core group
    `<subcategory>/`, else the comprehensive group `<category>/保守治疗`; without either it keeps its own."""
    index = {g: i for i, g in enumerate(group_ids)}
    out = points.copy()
    for i in np.flatnonzero(is_tcm):
        diagnosis = group_ids[i][len(TCM_PREFIX):]
        western = index.get(f"{diagnosis}/", index.get(f"{diagnosis[:3]}/{TREATMENTS[0]}"))
        if western is not None:
            out[i] = points[western]
    return out


def _trimmed(g: np.ndarray, cost: np.ndarray, size: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Cases kept by trimming within each group: the bounds are the group's order statistics at the positions
    p (n - 1) rounded outward (pandas' `lower` / `higher` quantiles), so a small group keeps its extremes (fewer
    than 41 cases at 2.5 / 97.5) and equal costs are kept or dropped together."""
    by_cost = np.argsort(cost)  # then by group, stably (a radix sort of the integers): by group, then cost
    order = by_cost[np.argsort(g[by_cost], kind="stable")]
    start = np.zeros(len(size) + 1, dtype=np.int64)
    np.cumsum(size, out=start[1:])
    sorted_cost = cost[order]
    low = sorted_cost[start[:-1] + np.floor(percentiles[0] / 100 * (size - 1)).astype(np.int64)]
    high = sorted_cost[start[:-1] + np.ceil(percentiles[1] / 100 * (size - 1)).astype(np.int64)]
    return (cost >= low[g]) & (cost <= high[g])


def _names(groups: pd.DataFrame) -> list[str]:
    """The Chinese name of each group: its subcategory (the name of its first code in the ICD-10 dictionary) and
    its procedures' names; for a comprehensive group the category, its first code's name + 等, and the treatment
    (the dictionary has no category names)."""
    table = load_icd10().table
    first_sub = dict(zip(table["subcategory"][::-1], table["name"][::-1]))
    first_cat = dict(zip(table["category"][::-1], table["name"][::-1]))
    icd9 = load_icd9()
    codes = sorted({c for p in groups["procedures"] if p for c in p.split("+")})
    found = icd9.names(pa.array(codes, pa.string())).to_pylist()
    procedure_name = {c: n or c for c, n in zip(codes, found)}
    out = []
    for kind, diagnosis, procedures, treatment in zip(groups["kind"], groups["diagnosis"], groups["procedures"],
                                                      groups["treatment"]):
        if kind == CORE:
            name = first_sub.get(diagnosis, diagnosis)
            if procedures:
                name += " + " + "、".join(procedure_name[c] for c in procedures.split("+"))
        elif kind == TCM:
            name = f"{first_sub.get(diagnosis, diagnosis)}（中医优势病种，同病同价）"
        else:
            name = f"{diagnosis} {first_cat.get(diagnosis, '')}等（{treatment}）"  # the category's first code
        out.append(name)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Files


def write_catalog(catalog: Catalog, out_dir, inputs: list[dict] | None = None) -> Path:
    """CATALOG/ with catalog.parquet and catalog.csv (the groups), keys.parquet (every key seen and its group),
    coverage.md (what a modeler checks first) and manifest.json (inputs with sha256, parameters, counts). Each
    file is written atomically."""
    from dipsim.io.writers import OutputFolder, atomic_path

    out = OutputFolder(out_dir)
    out.parquet(catalog.groups, "catalog.parquet")
    out.csv(catalog.groups, "catalog.csv")
    if catalog.keys is not None:
        out.parquet(catalog.keys, "keys.parquet")
    with atomic_path(out.path / "coverage.md") as tmp:
        tmp.write_text(coverage_report(catalog), encoding="utf-8")
    out.add("coverage.md")
    out.manifest({**catalog.summary(), "command": "catalog build", "inputs": inputs or []})
    return out.path


def coverage_report(catalog: Catalog, top: int = 20) -> str:
    """Markdown: threshold, coverage, groups by kind, the points range, and the largest groups."""
    frame = catalog.groups.to_pandas()
    core = frame[frame["kind"] == CORE]
    lines = [
        "# DIP catalogue: coverage",
        "",
        f"Built by dipsim {__version__} on {dt.date.today().isoformat()} from {catalog.cases:,} cases "
        f"({catalog.cases_skipped:,} skipped: no principal diagnosis or no positive cost); "
        + ("no discharge dates, so one period." if list(catalog.years) == [0] else
           "discharge years and weights " + ", ".join(f"{y}: {w:g}" for y, w in catalog.years.items()) + "."),
        "",
        f"- Core threshold: {catalog.threshold} cases"
        + (f" (the largest reaching the coverage target {catalog.options.coverage:.0%})"
           if catalog.options.coverage is not None else ""),
        f"- Core groups: {len(core):,}, holding {catalog.coverage:.2%} of the cases",
        f"- Comprehensive groups: {(frame['kind'] == COMPREHENSIVE).sum():,}, holding "
        f"{frame.loc[frame['kind'] == COMPREHENSIVE, 'cases'].sum() / catalog.cases:.2%}",
        *([f"- TCM groups (中医优势病种, at the Western group's points): {(frame['kind'] == TCM).sum():,}, holding "
           f"{frame.loc[frame['kind'] == TCM, 'cases'].sum() / catalog.cases:.2%}"] if (frame["kind"] == TCM).any()
          else []),
        f"- Points (scale {catalog.options.scale:g}): {frame['points'].min():,.2f} to {frame['points'].max():,.2f}",
        "",
        f"## The {min(top, len(frame))} largest groups",
        "",
        "| group | kind | name | cases | points | CV |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in frame.nlargest(top, "cases").itertuples():
        lines.append(f"| {row.group_id} | {row.kind} | {row.name} | {row.cases:,} | {row.points:,.2f} | "
                     f"{row.cv_cost:.2f} |")
    return "\n".join(lines) + "\n"
