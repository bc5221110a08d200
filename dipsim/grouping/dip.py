"""DIP grouping: match cases to a catalogue built by `dipsim.catalog` (docs/domain.md §6).

A case's key (principal subcategory + the set of its procedures, counted as the catalogue counted them) is looked
up among the core groups; a key the building cases had under the core threshold goes to its comprehensive group,
as it did in the build (so every building case maps back to its own group); for a new key, the core group of the
same diagnosis sharing the most procedures (at least one) is taken, ties by the group mean cost nearest the case
cost, then the higher points; else the comprehensive group of its diagnosis category and treatment; else the case
is ungroupable, with the reason.

`match_table` does this for a table with the Numba kernel (`dip_kernel.match_cases`), the keys' strings made once
per distinct (subcategory, procedure set) rather than per case; `group_dip_table` writes its result as text, and
`grouped_cases.group_dip` hands it to the payment chain as codes. `match_case` is the plain-Python reference, one
case at a time, with the steps in words for `dipsim explain`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dipsim.catalog import (
    COMPREHENSIVE,
    CORE,
    TCM,
    TREATMENTS,
    CatalogOptions,
    ProcedureSets,
    _resource_shares,
    key_parts,
    principal_index,
    procedure_sets,
)
from dipsim.io.errors import InputError
from dipsim.schema import float_column
from dipsim.tcm import TCM_PREFIX, rule_from_dict, tcm_groups, tcm_treated

from . import dip_kernel
from .dip_kernel import MATCH_BEST, MATCH_COMPREHENSIVE, MATCH_EXACT, MATCH_NONE

MATCH_TCM = 4  # set after the kernel: a TCM-treated case of a TCM advantage disease
MATCH_NAMES = {MATCH_NONE: "none", MATCH_EXACT: "exact", MATCH_BEST: "best", MATCH_COMPREHENSIVE: "comprehensive",
               MATCH_TCM: "tcm"}
OUTPUT_SCHEMA = pa.schema([
    ("case_id", pa.string()),
    ("dip_group", pa.string()),  # "" when ungroupable
    ("dip_points", pa.float64()),  # null when ungroupable
    ("match", pa.string()),  # exact | best | comprehensive | tcm | none
    ("reason", pa.string()),  # why a case is ungroupable
])


@dataclass
class DipCatalog:
    """A catalogue's groups and the options it was built with (the procedure kinds decide the keys)."""

    groups: pa.Table
    options: CatalogOptions
    source: str
    keys: pa.Table | None = None  # keys.parquet: every key of the building cases and its group


def load_catalog(path) -> DipCatalog:
    """A catalogue folder written by `dipsim catalog build` (catalog.parquet + manifest.json), or a catalogue
    table (.parquet / .csv with the catalogue's columns; options then default)."""
    path = Path(path)
    table_path = path / "catalog.parquet" if path.is_dir() else path
    if not table_path.is_file():
        raise InputError(f"{path}: no DIP catalogue here (expected a folder from `dipsim catalog build`)")
    if table_path.suffix.lower() == ".csv":
        groups = pa.Table.from_pandas(pd.read_csv(table_path, encoding="utf-8-sig", dtype={"procedures": str},
                                                  keep_default_na=False, na_values={"points": [""]}),
                                      preserve_index=False)
    else:
        groups = pq.read_table(table_path)
    missing = {"group_id", "kind", "diagnosis", "procedures", "treatment", "points", "mean_cost"} - set(
        groups.column_names)
    if missing:
        raise InputError(f"{table_path}: not a DIP catalogue: no column(s) {sorted(missing)}")
    options = CatalogOptions()
    manifest = table_path.parent / "manifest.json"
    if manifest.is_file():
        stored = json.loads(manifest.read_text(encoding="utf-8")).get("options", {})
        known = {f.name for f in fields(CatalogOptions)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in known}
        values["tcm"] = rule_from_dict(stored.get("tcm"))
        options = CatalogOptions(**values)
    keys_path = table_path.parent / "keys.parquet"
    keys = pq.read_table(keys_path) if keys_path.is_file() and table_path.suffix != ".csv" else None
    return DipCatalog(groups=groups, options=options, source=str(path), keys=keys)


def _known_non_core(catalog: DipCatalog) -> set[str]:
    if catalog.keys is None:
        return set()
    keys = catalog.keys
    non_core = pc.not_equal(keys["key"], keys["group_id"])
    return set(keys.filter(non_core)["key"].to_pylist())


# ---------------------------------------------------------------------------------------------------------------
# The reference, one case at a time


def _no_group_reason(diagnosis: str | None, comprehensive: str) -> str:
    """Why a case is ungroupable (the reference and the table grouper word it alike)."""
    if not diagnosis:
        return "no principal diagnosis"
    return f"no core group of {diagnosis} fits and no comprehensive group {comprehensive}"


@dataclass
class DipMatch:
    group: str  # "" when ungroupable
    points: float | None
    match: str
    reason: str = ""
    steps: list[str] | None = None


def match_case(diagnosis: str, procedures: list[str], treatment: int, cost: float | None,
               catalog: DipCatalog, tcm_group: str = "") -> DipMatch:
    """Match one case's key parts (as `catalog.case_keys` gives them) to the catalogue, with the steps in words.
    `tcm_group`: the case's TCM group (`dipsim.tcm.tcm_groups`), "" when it is not a TCM case."""
    rows = catalog.groups.to_pylist()
    core = [r for r in rows if r["kind"] == CORE]
    key = f"{diagnosis}/{'+'.join(procedures)}"
    steps = [f"key {key} (principal subcategory {diagnosis or '-'}, procedures {', '.join(procedures) or 'none'})"]
    tcm = next((r for r in rows if r["kind"] == TCM and r["group_id"] == tcm_group), None) if tcm_group else None
    if tcm is not None:
        steps.append(f"TCM-treated case of the TCM advantage disease {diagnosis}: {tcm_group}, at the Western "
                     f"group's points (同病同价)")
        return DipMatch(tcm_group, tcm["points"], "tcm", steps=steps)
    exact = next((r for r in core if r["group_id"] == key), None)
    if exact is not None:
        steps.append(f"exact core group {key}")
        return DipMatch(key, exact["points"], "exact", steps=steps)
    comprehensive = f"{diagnosis[:3]}/{TREATMENTS[treatment]}"
    seen = key in _known_non_core(catalog)
    best, best_rank = None, None
    if seen:
        steps.append(f"key {key} was in the building cases but under the core threshold: its comprehensive group")
    elif diagnosis and procedures:
        mine = set(procedures)
        for index, r in enumerate(core):
            if r["diagnosis"] != diagnosis:
                continue
            shared = len(mine & set(filter(None, r["procedures"].split("+"))))
            if shared == 0:
                continue
            gap = 0.0 if cost is None or np.isnan(cost) else abs(r["mean_cost"] - cost)
            gap = np.inf if np.isnan(gap) else gap
            points = -np.inf if r["points"] is None or np.isnan(r["points"]) else r["points"]
            rank = (-shared, gap, -points, index)
            if best_rank is None or rank < best_rank:
                best, best_rank = r, rank
    if best is not None:
        steps.append(f"no exact core group; core group {best['group_id']} of {diagnosis} shares the most procedures "
                     f"({-best_rank[0]}), then the nearest mean cost {best['mean_cost']:,.2f}")
        return DipMatch(best["group_id"], best["points"], "best", steps=steps)
    found = next((r for r in rows if r["kind"] == COMPREHENSIVE and r["group_id"] == comprehensive), None)
    if found is not None:
        if not seen:
            steps.append(f"no core group of {diagnosis or '-'} shares a procedure")
        steps.append(f"comprehensive group {comprehensive}")
        return DipMatch(comprehensive, found["points"], "comprehensive", steps=steps)
    reason = _no_group_reason(diagnosis, comprehensive)
    steps.append(reason)
    return DipMatch("", None, "none", reason=reason, steps=steps)


# ---------------------------------------------------------------------------------------------------------------
# Whole tables with the kernel


@dataclass
class _Compiled:
    core_ids: pa.Array
    comprehensive_ids: pa.Array
    diagnoses: pa.Array  # the core groups' diagnoses, sorted
    procedures: pa.Array  # the core groups' procedure codes, sorted
    diag_offsets: np.ndarray
    diag_groups: np.ndarray
    group_px: np.ndarray
    group_px_offsets: np.ndarray
    group_mean: np.ndarray
    group_points: np.ndarray
    tcm_ids: pa.Array
    group_ids: pa.Array  # all groups: core first (kernel indices), then comprehensive, then TCM
    group_points_all: np.ndarray


def _compile(catalog: DipCatalog) -> _Compiled:
    groups = catalog.groups
    kind = groups["kind"].to_numpy(zero_copy_only=False)
    core = groups.filter(pa.array(kind == CORE))
    comp = groups.filter(pa.array(kind == COMPREHENSIVE))
    tcm = groups.filter(pa.array(kind == TCM))
    diagnoses = pc.unique(core["diagnosis"]).sort()
    diag = pc.index_in(core["diagnosis"], value_set=diagnoses).to_numpy(zero_copy_only=False)
    sets = pc.split_pattern(pc.fill_null(core["procedures"], ""), "+")
    codes = pc.list_flatten(sets)
    codes = codes.filter(pc.not_equal(codes, ""))
    procedures = pc.unique(codes).sort()
    group_px, group_px_offsets = _encode_sets(sets, procedures)
    order = np.argsort(diag, kind="stable")
    diag_offsets = np.zeros(len(diagnoses) + 1, dtype=np.int64)
    np.cumsum(np.bincount(diag, minlength=len(diagnoses)), out=diag_offsets[1:])
    points = np.concatenate([float_column(t, "points") for t in (core, comp, tcm)])  # NaN: no points
    return _Compiled(
        core_ids=core["group_id"].combine_chunks(), comprehensive_ids=comp["group_id"].combine_chunks(),
        diagnoses=diagnoses, procedures=procedures, diag_offsets=diag_offsets,
        diag_groups=order.astype(np.int32), group_px=group_px, group_px_offsets=group_px_offsets,
        group_mean=float_column(core, "mean_cost"), group_points=points[:core.num_rows],
        tcm_ids=tcm["group_id"].combine_chunks(),
        group_ids=pa.concat_arrays([t["group_id"].combine_chunks().cast(pa.string()) for t in (core, comp, tcm)]),
        group_points_all=points,
    )


def _encode_sets(sets: pa.Array | pa.ChunkedArray, vocabulary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """CSR of each list's codes as sorted ids in `vocabulary`; codes not in it (or empty) are left out."""
    sets = sets.combine_chunks() if isinstance(sets, pa.ChunkedArray) else sets
    ids = pc.fill_null(pc.index_in(pc.list_flatten(sets), value_set=vocabulary), -1).to_numpy(zero_copy_only=False)
    row = pc.list_parent_indices(sets).to_numpy()
    keep = ids >= 0
    ids, row = ids[keep], row[keep]
    order = np.lexsort((ids, row))
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=len(sets)), out=offsets[1:])
    return ids[order].astype(np.int32), offsets


@dataclass
class Matched:
    """Every case of a table matched to a catalogue (`match_table`): its group as an index into `group_ids` (-1:
    ungroupable), how it was found (MATCH_*), and what the table grouper and the payment chain read besides."""

    group: np.ndarray  # int32 index into group_ids, -1 when ungroupable
    match: np.ndarray  # int8, MATCH_*
    group_ids: pa.Array  # every group of the catalogue: core, comprehensive, TCM (string)
    group_points: np.ndarray  # per group (NaN: none)
    treated: np.ndarray | None  # TCM-treated under the catalogue's TCM rule (None without one)
    diagnosis: pa.Array  # each distinct principal subcategory ("" without a principal)
    case_diagnosis: np.ndarray  # per case: index into diagnosis
    comprehensive: pa.Array  # each (category, treatment) comprehensive id, category-major
    case_comprehensive: np.ndarray  # per case: index into comprehensive

    def reasons(self) -> np.ndarray:
        """Why each case is ungroupable ("" for the others)."""
        reason = np.full(len(self.group), "", dtype=object)
        for i in np.flatnonzero(self.group < 0):  # few: only the ungroupable cases get a reason
            reason[i] = _no_group_reason(self.diagnosis[int(self.case_diagnosis[i])].as_py(),
                                         self.comprehensive[int(self.case_comprehensive[i])].as_py())
        return reason

    def names(self) -> pa.Array:
        """Each case's group id ("" when ungroupable), as one take from the catalogue's ids."""
        ids = pa.concat_arrays([self.group_ids, pa.array([""], pa.string())])
        return pc.take(ids, pa.array(np.where(self.group >= 0, self.group, len(self.group_ids)).astype(np.int32)))

    def points(self) -> np.ndarray:
        """Each case's group points (NaN when ungroupable, or for a group without points)."""
        points = np.append(self.group_points, np.nan)
        return points[np.where(self.group >= 0, self.group, len(self.group_points))]


def _lookup(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    """Each value's index in `value_set` (-1 when absent)."""
    return pc.fill_null(pc.index_in(values, value_set=value_set), -1).to_numpy(zero_copy_only=False)


def _distinct_keys(diagnosis: np.ndarray, sets: ProcedureSets) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """The distinct (subcategory, procedure set) pairs of the cases: each case's index among them, and per
    distinct pair its subcategory and its procedure ranks (CSR offsets, ranks). Each case is one binary value, its
    subcategory then its ranks as int32, and Arrow's hash finds the distinct ones exactly."""
    n = len(diagnosis)
    offsets = sets.offsets.astype(np.int64)
    heads = offsets[:-1] + np.arange(n)
    data = np.empty(n + len(sets.ranks), dtype=np.int32)
    rest = np.ones(len(data), dtype=bool)
    rest[heads] = False
    data[heads] = diagnosis
    data[rest] = sets.ranks
    blobs = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer((offsets + np.arange(n + 1)) * 4),
                                                         pa.py_buffer(data)])
    encoded = pc.dictionary_encode(blobs)
    distinct = encoded.dictionary
    m = len(distinct)
    bounds = np.frombuffer(distinct.buffers()[1], dtype=np.int64)[distinct.offset:distinct.offset + m + 1] // 4
    values = np.frombuffer(distinct.buffers()[2], dtype=np.int32) if m else np.zeros(0, np.int32)
    values = values[bounds[0]:bounds[-1]]
    bounds = bounds - bounds[0]
    head = np.zeros(len(values), dtype=bool)
    head[bounds[:-1]] = True
    return (encoded.indices.to_numpy(zero_copy_only=False), values[bounds[:-1]],
            (bounds - np.arange(m + 1)).astype(np.int32), values[~head].astype(np.int64))


def _catalogue_sets(sets: ProcedureSets, vocabulary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each case's procedure set as sorted ids into the catalogue's procedure `vocabulary` (CSR, as
    `_encode_sets`); codes not in it are left out. One look-up per distinct code."""
    n = len(sets.treatment)
    to_id = _lookup(sets.vocabulary, vocabulary)
    ids = to_id[sets.ranks] if len(to_id) else np.zeros(0, np.int64)
    keep = ids >= 0
    row = np.repeat(np.arange(n), np.diff(sets.offsets))[keep]
    ids = ids[keep]
    present = to_id[to_id >= 0]
    if not np.all(present[1:] > present[:-1]):  # both vocabularies sorted alike: the ranks' order holds; else sort
        order = np.lexsort((ids, row))
        ids, row = ids[order], row[order]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=offsets[1:])
    return ids.astype(np.int32), offsets


def _match_cases(exact, comprehensive, seen, diagnosis, px, px_offsets, cost, diag_offsets, diag_groups, group_px,
                 group_px_offsets, group_mean, group_points, out_group, out_match) -> None:
    """`dip_kernel.match_cases` on writable C arrays of fixed dtypes: Numba compiles (and caches) one signature,
    whatever Arrow handed over, the one `warm_up` loads."""
    def arr(a, dtype):
        return np.require(a, dtype=dtype, requirements=("C", "W"))

    dip_kernel.match_cases(arr(exact, np.int32), arr(comprehensive, np.int32), arr(seen, np.bool_),
                           arr(diagnosis, np.int32), arr(px, np.int32), arr(px_offsets, np.int64),
                           arr(cost, np.float64), arr(diag_offsets, np.int64), arr(diag_groups, np.int32),
                           arr(group_px, np.int32), arr(group_px_offsets, np.int64), arr(group_mean, np.float64),
                           arr(group_points, np.float64), out_group, out_match)


def warm_up() -> threading.Thread:
    """Load the matching kernel from Numba's cache (about 0.3-0.4 s in a fresh process: Numba sets up its compiler)
    in a background thread, by matching one case against an empty catalogue; the caller reads its cases meanwhile.
    A later call waits for the load if it is not finished."""
    def run() -> None:
        none, empty = np.full(1, -1, np.int32), np.zeros(0, np.int32)
        _match_cases(none, none, np.zeros(1, np.bool_), none, empty, np.zeros(2, np.int64), np.full(1, np.nan),
                     np.zeros(1, np.int64), empty, empty, np.zeros(1, np.int64), np.zeros(0), np.zeros(0),
                     np.empty(1, np.int32), np.empty(1, np.int8))

    thread = threading.Thread(target=run, name="dipsim-dip-kernel-warm-up", daemon=True)
    thread.start()
    return thread


def match_table(cases: pa.Table, catalog: DipCatalog, cost_column: str = "total_cost") -> Matched:
    """Every case matched to the catalogue (`Matched`), by the rules of `match_case`. The keys' strings are made
    once per distinct (subcategory, procedure set), the principal codes handled once per distinct code, the
    comprehensive groups once per (category, treatment): the per-case work is integer arrays and the kernel."""
    c = _compile(catalog)
    options = catalog.options
    n = cases.num_rows
    principal, principals = principal_index(cases["diagnoses"])
    subs = pc.dictionary_encode(pc.utf8_slice_codeunits(principals, 0, 5))
    cats = pc.dictionary_encode(pc.utf8_slice_codeunits(principals, 0, 3))
    diagnosis = subs.indices.to_numpy(zero_copy_only=False)[principal] if n else np.zeros(0, np.int32)
    category = cats.indices.to_numpy(zero_copy_only=False)[principal] if n else np.zeros(0, np.int32)
    if "procedures" in cases.column_names:
        share = _resource_shares(cases) if options.min_procedure_share is not None else None
        sets = procedure_sets(cases["procedures"], options.procedure_kinds, share, options.min_procedure_share)
    else:
        sets = ProcedureSets(pa.array([], pa.string()), np.zeros(n + 1, np.int32), np.zeros(0, np.int64),
                             np.zeros(n, np.int8))
    # the key "<subcategory>/<codes joined by +>" of each distinct (subcategory, procedure set)
    key_of, key_diagnosis, key_offsets, key_ranks = _distinct_keys(diagnosis, sets)
    key_sets = ProcedureSets(sets.vocabulary, key_offsets, key_ranks, np.zeros(len(key_diagnosis), np.int8))
    keys = pc.binary_join_element_wise(pc.take(subs.dictionary, pa.array(key_diagnosis)), key_sets.joined(), "/")
    known = pa.array(sorted(_known_non_core(catalog)), pa.string())
    exact = _lookup(keys, c.core_ids)[key_of]
    seen = pc.is_in(keys, value_set=known).to_numpy(zero_copy_only=False)[key_of]
    # comprehensive groups "<category>/<treatment>": every category x treatment of the cases
    n_treatments = len(TREATMENTS)
    comprehensive = pc.binary_join_element_wise(
        pc.take(cats.dictionary, pa.array(np.repeat(np.arange(len(cats.dictionary)), n_treatments))),
        pc.take(pa.array(TREATMENTS, pa.string()), pa.array(np.tile(np.arange(n_treatments), len(cats.dictionary)))),
        "/")
    case_comprehensive = category.astype(np.int64) * n_treatments + sets.treatment
    comp = _lookup(comprehensive, c.comprehensive_ids)[case_comprehensive]
    px, px_offsets = _catalogue_sets(sets, c.procedures)
    cost = float_column(cases, cost_column)  # NaN where missing or without the column
    group = np.empty(n, dtype=np.int32)
    match = np.empty(n, dtype=np.int8)
    rule, treated = options.tcm, None
    no_tcm = pc.index(c.tcm_ids, "").as_py()  # "" is every case's TCM group without one (-1: none)
    tcm_index = np.full(n, no_tcm, dtype=np.int64)
    if rule is not None:  # a TCM-treated case of a listed disease: its TCM group, TCM/<subcategory>
        treated = tcm_treated(cases, rule)
        listed = pc.is_in(subs.dictionary, value_set=pa.array(rule.diseases, pa.string()))
        ids = pa.array([TCM_PREFIX + d for d in subs.dictionary.to_pylist()], pa.string())
        in_tcm = listed.to_numpy(zero_copy_only=False)[diagnosis] & treated
        tcm_index[in_tcm] = _lookup(ids, c.tcm_ids)[diagnosis[in_tcm]]
    _match_cases(exact, np.where(comp >= 0, comp + len(c.core_ids), -1), seen,
                 _lookup(subs.dictionary, c.diagnoses)[diagnosis], px, px_offsets, cost, c.diag_offsets,
                 c.diag_groups, c.group_px, c.group_px_offsets, c.group_mean, c.group_points, group, match)
    is_tcm = tcm_index >= 0
    group[is_tcm] = len(c.core_ids) + len(c.comprehensive_ids) + tcm_index[is_tcm]
    match[is_tcm] = MATCH_TCM
    return Matched(group=group, match=match, group_ids=c.group_ids, group_points=c.group_points_all,
                   treated=treated, diagnosis=subs.dictionary, case_diagnosis=diagnosis,
                   comprehensive=comprehensive, case_comprehensive=case_comprehensive)


def group_dip_table(cases: pa.Table, catalog: DipCatalog, cost_column: str = "total_cost") -> pa.Table:
    """case_id, dip_group, dip_points, match and reason for every case (OUTPUT_SCHEMA)."""
    m = match_table(cases, catalog, cost_column)
    n = cases.num_rows
    found = m.group >= 0
    case_id = (pc.cast(cases["case_id"], pa.string()) if "case_id" in cases.column_names
               else pa.array([str(i) for i in range(n)], pa.string()))
    return pa.Table.from_arrays([
        case_id.combine_chunks() if isinstance(case_id, pa.ChunkedArray) else case_id, m.names(),
        pa.array(m.points(), mask=~found),
        pc.take(pa.array([MATCH_NAMES[k] for k in range(len(MATCH_NAMES))], pa.string()), pa.array(m.match)),
        pa.array(m.reasons(), pa.string())], schema=OUTPUT_SCHEMA)


def explain_dip(row: dict, catalog: DipCatalog) -> str:
    """One accepted case row (CASE_SCHEMA names) matched to the catalogue, step by step, codes with their names."""
    from dipsim.codes import load_icd9, load_icd10
    from dipsim.schema import CASE_SCHEMA

    one = pa.Table.from_pylist([{name: row.get(name) for name in CASE_SCHEMA.names}], schema=CASE_SCHEMA)
    parts = key_parts(one, catalog.options)
    cost = row.get("total_cost")
    rule = catalog.options.tcm
    tcm = tcm_groups(parts.diagnosis, tcm_treated(one, rule), rule)[0] if rule else ""
    m = match_case(parts.diagnosis[0].as_py(), [p for p in parts.procedures[0].as_py().split("+") if p],
                   int(parts.treatment[0]), cost, catalog, tcm_group=tcm)
    icd10, icd9 = load_icd10(), load_icd9()
    lines = [f"case {row['case_id']} under the DIP catalogue {catalog.source}",
             f"  total cost {cost if cost is not None else '-'}"]
    for label, codes, dictionary in (("diagnoses", row["diagnoses"], icd10), ("procedures", row["procedures"], icd9)):
        lines.append(f"  {label} (principal first):")
        lines += [f"    {code}  {dictionary.name(code) or '(not in 医保版 2.0)'}" for code in codes or []]
    lines.append("steps:")
    lines += [f"  {step}" for step in m.steps or []]
    points = f"{m.points:,.4f} points" if m.points is not None else "no points"
    lines.append(f"result: {m.group or 'ungroupable'} ({m.match}; {points})" + (f": {m.reason}" if m.reason else ""))
    return "\n".join(lines)
