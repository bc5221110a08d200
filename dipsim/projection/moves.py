"""Coding drift and treatment intensity as moves between groups (issue 20): a projected year's cases that a hospital
codes one severity level up, or treats in a group of more points, priced as a case coded that way would be.

Two moves, each a trend plus responses (`[behaviour]` keys `severity_*` and `intensity_*`, docs/projection.md):

* **severity** (coding drift, 高套编码): CHS-DRG, a case moved to the next DRG up of the same ADRG in the scheme
  (the code's last digit: 5 no complication or comorbidity -> 3 with CC -> 1 with MCC, CHS-DRG 1.1 / 2.0 分组方案's
  severity suffixes); DIP, the case's auxiliary-catalogue severity (辅助目录 疾病严重程度, `dipsim.auxiliary`) moved
  one level up (I -> II -> III), its aux factor then the one of the higher level (the case keeps its group). A case at
  the top (x1; severity III, or a death, class IV, not a coding level), or whose next DRG the scheme does not have or
  the region has no weight for, or a DRG outside the 5/3/1 ladder (x9: not split by severity), stays in place and is
  counted as could not move (`*_unmoved`).
* **intensity** (treatment intensity): DIP, a case moved to the group of the same principal diagnosis (the
  catalogue's `diagnosis`) next up by points (the fewest points above its own; TCM groups, 中医优势病种 paid
  同病同价, neither move nor are moved to). DRG: a DRG is not a diagnosis's group (a medical ADRG has no one surgical
  ADRG of its diagnosis), so the region's own practice says where a case of that diagnosis is treated more
  intensively: among the DRGs the base year's cases of the same principal diagnosis were grouped into, each by
  at least `intensity_min_cases` of them (default `INTENSITY_MIN_CASES`, 5: a DRG seen once or twice for a
  diagnosis is not a treatment pattern), the one with the fewest points above the case's own DRG, whatever its
  severity suffix (`drg_group_table` with the cases' principal diagnoses); 0000 and xQY groups are no treatment.

A moved case takes the target group's code, points (DIP points, DRG RW) and standard cost (x the year's cost growth),
so its outlier class follows from its cost against the new standard cost. What the moves need is a `GroupTable`,
built once per projection from the base grouping (`drg_group_table`, `dip_group_table`). Without one the projection
keeps the older model (`drift_*`: a drifted case keeps its group, its points x drift_factor).

Which cases: per hospital h and move m, share_{h,t} = trend_{h,t} x r_{h,t-1}^(-elasticity) x
(pv_{h,t-1} / pv_{h,t-2})^(-elasticity_pv) (r: payment / cost of year t-1; pv: the point value of h's pools, weighted
by h's points in each, 1 before year 2); the moved share M_{h,t} = min(1, M_{h,t-1} + share_{h,t}); the
round_half_even(M x n_t) cases of h first by their ranks under the key "<seed>\\0<move>" (`projection.years`: a
base case's seeded hash of its id, a copy's mixed with its copy number; one order per move, the same every year: a
moved case stays moved while the volume does not change) are picked; a picked case moves one step from its base
group (once: it does not climb again next year)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.grouping.reference import UNGROUPABLE
from dipsim.io.errors import InputError
from dipsim.projection.years import drift_order

MOVES = ("severity", "intensity")
COUNT_COLUMNS = ("severity_moved", "severity_unmoved", "intensity_moved", "intensity_unmoved")
# CHS-DRG severity suffixes, lowest first: 5 不伴合并症或并发症, 3 伴(一般)合并症或并发症, 1 伴严重合并症或并发症
# (国家医保局 CHS-DRG 分组方案 1.1 / 2.0: the DRG code's last digit; grouper_tables/*/drg.csv `suffix`)
SEVERITY_RANK = {"5": 0, "3": 1, "1": 2}
# DRG intensity: a DRG is a treatment of a diagnosis in the region when at least this many base cases of the diagnosis
# were grouped into it (a rule of this model, docs/projection.md; no policy text sets one); the default of the
# [behaviour] key intensity_min_cases
INTENSITY_MIN_CASES = 5
# the auxiliary catalogue's coding levels (dipsim.auxiliary.SEVERITY_CLASSES): I no CC, II CC, III MCC; IV is death
AUX_NEXT = {"I": "II", "II": "III"}
# the [behaviour] keys of each move (projection file kind: "rates", "map", "number")
MOVE_KEYS = {**{f"{m}_{k}": kind for m in MOVES for k, kind in (
    ("share", "rates"), ("share_by_level", "map"), ("share_by_hospital", "map"), ("elasticity", "number"),
    ("elasticity_pv", "number"))}, "intensity_min_cases": "int"}


# ------------------------------------------------------------------ which cases (seeded, stable year to year)


def rate(overall: list[float], by: list[tuple[dict, str]], year: int) -> float:
    """The rate of year `year` (1-based): the first of `by`'s (table, name) that names it, else the overall one."""
    for table, name in by:
        if name in table:
            return table[name]
    return overall[year - 1]


def hospital_rates(overall: list[float], ids, info: dict, year: int, by_hospital: dict, by_level: dict,
                   by_type: dict | None = None) -> np.ndarray:
    """Per hospital code its rate of `year` (`rate`): its own, else its type's (when `by_type` is given), else its
    level's, else the overall one. `info`: hospital -> (level, type)."""
    out = np.empty(len(ids))
    for code, hospital in enumerate(ids):
        level, kind = info.get(hospital, ("", ""))
        by = [(by_hospital, hospital), *([(by_type, kind)] if by_type is not None else []), (by_level, level)]
        out[code] = rate(overall, by, year)
    return out


def response(ratio: np.ndarray, pv_ratio: np.ndarray, elasticity: float, elasticity_pv: float) -> np.ndarray:
    """Per hospital r^(-elasticity) x (pv_{t-1} / pv_{t-2})^(-elasticity_pv), r last year's payment / cost (a
    hospital without cost: 1): what a trend is multiplied by (every elasticity 0: exactly 1)."""
    return np.power(np.where(ratio > 0, ratio, 1.0), -elasticity) * np.power(pv_ratio, -elasticity_pv)


def share(spec, name: str, ids, info: dict, year: int, ratio: np.ndarray, pv_ratio: np.ndarray) -> np.ndarray:
    """Per hospital code the share of its cases a behaviour (`name`: drift, severity, intensity) adds in `year`:
    its trend (`<name>_share`, `_by_hospital`, `_by_level`) x its response (`<name>_elasticity`, `_elasticity_pv`)."""
    trend = hospital_rates(getattr(spec, f"{name}_share"), ids, info, year, getattr(spec, f"{name}_share_by_hospital"),
                           getattr(spec, f"{name}_share_by_level"))
    return trend * response(ratio, pv_ratio, getattr(spec, f"{name}_elasticity"),
                            getattr(spec, f"{name}_elasticity_pv"))


def selected_rows(ordered: tuple, share: np.ndarray) -> np.ndarray:
    """The cases picked: per hospital code c the round_half_even(share[c] x n_c) cases first in `ordered`
    (`projection.years.drift_order`), as positions."""
    order, bounds = ordered
    counts = np.round(share * np.diff(bounds)).astype(np.int64)
    return np.concatenate([order[bounds[c]:bounds[c] + counts[c]] for c in range(len(share))] or
                          [np.zeros(0, np.int64)])


# ------------------------------------------------------------------ the group table


@dataclass(frozen=True)
class GroupTable:
    """The groups a case may move to, built once per projection from the base grouping: per group its code,
    points (DIP points or DRG RW) and standard cost (the base year's), and per base case its group's index."""

    unit: str  # "points" (DIP) or "rw" (DRG), as GroupedCases.unit
    codes: np.ndarray  # object: the groups' codes
    points: np.ndarray
    standard_cost: np.ndarray
    case_group: np.ndarray  # per base case: its group's index in `codes` (-1: none, e.g. ungroupable)
    severity_up: np.ndarray | None = None  # DRG, per group: the next DRG up of its ADRG (-1: could not move)
    intensity_up: np.ndarray | None = None  # DIP, per group: the next group up of its diagnosis (-1: none)
    diagnoses: np.ndarray | None = None  # DRG, per base case: its principal diagnosis (intensity's targets)
    aux_factor: np.ndarray | None = None  # DIP with an auxiliary catalogue, per base case: its aux factor
    aux_up: np.ndarray | None = None  # ... and its aux factor one severity level up (NaN: could not move)
    _intensity: dict = field(default_factory=dict, repr=False, compare=False)  # intensity_targets by min_cases

    def can(self, move: str) -> str:
        """'' when this table can make `move`, else why not."""
        if move == "severity" and self.severity_up is None and self.aux_up is None:
            return ("DIP severity moves need the auxiliary catalogue (辅助目录: `dipsim project --auxiliary FILE`, "
                    "or dip_group_table(..., aux_table, aux)): a DIP group has no severity levels")
        if move == "intensity" and self.intensity_up is None and self.diagnoses is None:
            return ("DRG treatment intensity moves need the cases' principal diagnoses (drg_group_table(..., "
                    "diagnoses=...); `dipsim project` passes them)")
        return ""

    def intensity_targets(self, min_cases: int = INTENSITY_MIN_CASES) -> np.ndarray:
        """DRG: per base case the DRG it moves to by intensity (`drg_intensity_up` with `min_cases`), made once per
        value for the table (every draw and scenario of a projection reads the same)."""
        assert self.diagnoses is not None
        if min_cases not in self._intensity:
            self._intensity[min_cases] = drg_intensity_up(self.case_group, self.points, self.codes, self.diagnoses,
                                                          min_cases)
        return self._intensity[min_cases]

    def up(self, move: str, base_rows: np.ndarray, min_cases: int = INTENSITY_MIN_CASES) -> np.ndarray:
        """The group (index in `codes`) each base case at `base_rows` moves to by `move` (-1: it cannot); DRG
        intensity with the file's `intensity_min_cases`."""
        if move == "intensity" and self.diagnoses is not None:
            return self.intensity_targets(min_cases)[base_rows]
        up = self.severity_up if move == "severity" else self.intensity_up
        assert up is not None
        base = self.case_group[base_rows]
        return np.where(base >= 0, up[np.maximum(base, 0)], -1)


def _distinct(grouped: GroupedCases) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct groups (object array), each case's index among them, and each group's first case."""
    if grouped.codes is not None:
        index, names = grouped.codes
        names = np.asarray(names.to_pylist(), dtype=object)
        index = np.asarray(index, np.int64)
    else:
        names, index = np.unique(np.asarray(grouped.group).astype(str), return_inverse=True)
        names = names.astype(object)
    first = np.full(len(names), -1, np.int64)
    seen, at = np.unique(index, return_index=True)
    first[seen] = at
    return names, index, first


def scheme_adrgs(scheme: str) -> dict[str, str]:
    """DRG code -> ADRG of a CHS-DRG scheme (grouper_tables/<scheme>/drg.csv)."""
    from dipsim.grouping.tables import scheme_folder

    table = pd.read_csv(scheme_folder(scheme) / "drg.csv", dtype=str, keep_default_na=False)
    return dict(zip(table["drg"].str.strip(), table["adrg"].str.strip()))


def drg_group_table(grouped: GroupedCases, scheme: str | dict[str, str], weights: pd.DataFrame | None = None,
                    diagnoses: np.ndarray | None = None) -> GroupTable:
    """The DRG groups with a weight and each one's severity move: the next DRG up the 5 -> 3 -> 1 ladder of its
    ADRG in `scheme` (a name, or DRG code -> ADRG), -1 when the scheme has none, the region no weight for it, or the
    DRG is not on the ladder. The weights: `weights` (drg, rw, mean_cost: a published table, as `group_drg` takes),
    else as the base cases have them (`group_drg` calibrates them on the region's costs: a DRG without a base case
    has no weight to move to). With `diagnoses` (each base case's principal diagnosis, "" or None without), each
    case's intensity move (`GroupTable.intensity_targets`)."""
    if grouped.unit != "rw":
        raise ValueError("drg_group_table: a DRG grouping (unit rw) is needed")
    adrgs = scheme_adrgs(scheme) if isinstance(scheme, str) else dict(scheme)
    names, index, first = _distinct(grouped)
    if weights is None:
        points, cost = grouped.group_points[first], grouped.standard_cost[first]
        codes = names
    else:
        codes = weights["drg"].astype(str).to_numpy(dtype=object)
        points = weights["rw"].to_numpy(dtype=float)
        cost = (weights["mean_cost"] if "mean_cost" in weights else pd.Series(np.nan, index=weights.index)
                ).to_numpy(dtype=float)
    weighted = np.isfinite(points)
    codes, points, cost = codes[weighted], points[weighted], cost[weighted]
    position = pd.Index(codes)
    case_group = position.get_indexer(names)[index]
    ladder: dict[str, dict[int, str]] = {}
    for drg, adrg in adrgs.items():
        if drg[-1:] in SEVERITY_RANK:
            ladder.setdefault(adrg, {})[SEVERITY_RANK[drg[-1]]] = drg
    up = np.full(len(codes), -1, np.int64)
    for k, code in enumerate(codes):
        rank, steps = SEVERITY_RANK.get(code[-1:]), ladder.get(adrgs.get(code, ""), {})
        higher = [r for r in steps if rank is not None and r > rank]
        if higher:
            up[k] = position.get_indexer([steps[min(higher)]])[0]
    return GroupTable("rw", codes, points, cost, case_group.astype(np.int64), severity_up=up, diagnoses=diagnoses)


def drg_intensity_up(case_group: np.ndarray, points: np.ndarray, codes: np.ndarray, diagnoses: np.ndarray,
                     min_cases: int = INTENSITY_MIN_CASES) -> np.ndarray:
    """Per base case the DRG (index in `codes`) it moves to by treatment intensity, -1 for none: of the DRGs that at
    least `min_cases` base cases of its principal diagnosis were grouped into, the one with the fewest points above
    its own DRG's (ties: the lower code). A case without a diagnosis or a weighted DRG does not move, nor one in the
    ungroupable 0000 or an xQY group (与主要诊断无关的手术: an operation unrelated to the diagnosis is no treatment
    pattern of it), and neither is a target."""
    diagnosis = pd.Series(diagnoses, dtype=object).fillna("").astype(str).to_numpy(dtype=object)
    code = pd.Series(codes, dtype=object).astype(str)
    treatment = ~(code.str.startswith(UNGROUPABLE) | code.str.endswith("QY")).to_numpy()
    found = (case_group >= 0) & (diagnosis != "") & treatment[np.maximum(case_group, 0)]
    pairs = pd.DataFrame({"diagnosis": diagnosis[found], "group": case_group[found]})
    pairs = pairs.groupby(["diagnosis", "group"], sort=False).size().rename("cases").reset_index()
    pairs["points"], pairs["code"] = points[pairs["group"]], codes[pairs["group"]]
    targets = pairs[pairs["cases"] >= min_cases].sort_values(["points", "code"])
    # each (diagnosis, DRG) pair: the first treatment of its diagnosis with more points (strictly)
    nearest = pd.merge_asof(pairs.reset_index().sort_values("points"),
                            targets[["diagnosis", "points", "group"]].rename(columns={"group": "target"}),
                            on="points", by="diagnosis", direction="forward", allow_exact_matches=False)
    target = np.full(len(pairs), -1, np.int64)
    target[nearest["index"].to_numpy()] = nearest["target"].fillna(-1).to_numpy(dtype=np.int64)
    pair_of = pd.MultiIndex.from_frame(pairs[["diagnosis", "group"]]).get_indexer(
        pd.MultiIndex.from_arrays([diagnosis[found], case_group[found]]))
    out = np.full(len(case_group), -1, np.int64)
    out[np.flatnonzero(found)] = target[pair_of]
    return out


def dip_group_table(grouped: GroupedCases, catalog, aux_table: pa.Table | None = None, aux=None) -> GroupTable:
    """The catalogue's groups (points, mean cost: what `group_dip` gives a case of the group) and each one's
    intensity move: the group of the same `diagnosis` next up by points (fewest points above its own; ties by
    group id; TCM groups neither move nor are moved to). With the cases' auxiliary table (`auxiliary_table`) and
    its catalogue `aux`, each case's aux factor with its severity one level up (severity moves)."""
    groups = catalog.groups.to_pandas()
    codes = groups["group_id"].astype(str).to_numpy(dtype=object)
    points = pd.to_numeric(groups["points"], errors="coerce").to_numpy(dtype=float)
    cost = pd.to_numeric(groups["mean_cost"], errors="coerce").to_numpy(dtype=float)
    names, index, _ = _distinct(grouped)
    case_group = pd.Index(codes).get_indexer(names)[index].astype(np.int64)
    up = np.full(len(codes), -1, np.int64)
    movable = (groups["kind"] != "tcm").to_numpy() & np.isfinite(points)
    frame = pd.DataFrame({"diagnosis": groups["diagnosis"].astype(str), "points": points, "code": codes,
                          "at": np.arange(len(codes))})[movable].sort_values(["diagnosis", "points", "code"])
    for _, same in frame.groupby("diagnosis", sort=False):
        p, at = same["points"].to_numpy(), same["at"].to_numpy()
        above = np.searchsorted(p, p, side="right")  # the first group with more points
        has = above < len(p)
        up[at[has]] = at[above[has]]
    factor = factor_up = None
    if aux_table is not None:
        factor, factor_up = _aux_up(aux_table, aux)
    return GroupTable("points", codes, points, cost, case_group, intensity_up=up, aux_factor=factor,
                      aux_up=factor_up)


def _aux_up(table: pa.Table, aux) -> tuple[np.ndarray, np.ndarray]:
    """Each case's aux factor (`auxiliary_table`'s) and its factor with the severity one level up (the other
    dimensions' factors, read from the table's labels, combined as the catalogue combines: product or max); NaN
    where the severity is III or IV."""
    from dipsim.auxiliary import AuxiliaryCatalog

    aux = aux or AuxiliaryCatalog()

    def factors(column: str, table_of: dict[str, float]) -> np.ndarray:
        values = pd.Series(table[column].to_numpy(zero_copy_only=False)).map(table_of)
        return values.fillna(1.0).to_numpy(dtype=float)  # no age: factor 1 (as `auxiliary_table`)

    others = np.stack([factors("age_band", {b.label: b.factor for b in aux.age}),
                       factors("cci_band", {b.label: b.factor for b in aux.cci}),
                       factors("tumour", aux.tumour)])
    severity = pd.Series(table["severity"].to_numpy(zero_copy_only=False))
    nxt = severity.map(AUX_NEXT)
    raised = nxt.map(aux.severity).to_numpy(dtype=float)
    combined = others.prod(axis=0) * raised if aux.combine == "product" else np.maximum(others.max(axis=0), raised)
    return table["aux_factor"].to_numpy().astype(float), np.where(nxt.notna(), combined, np.nan)


def group_table(grouped: GroupedCases, mode: str, catalog=None, scheme: str | None = None,
                aux_table: pa.Table | None = None, aux=None, diagnoses: np.ndarray | None = None) -> GroupTable:
    """`dip_group_table` or `drg_group_table` (with the cases' principal `diagnoses`), by `mode`."""
    if mode == "dip":
        return dip_group_table(grouped, catalog, aux_table, aux)
    return drg_group_table(grouped, scheme or "chs-drg-1.1", diagnoses=diagnoses)


# ------------------------------------------------------------------ a year's moves


def uses(spec, move: str) -> bool:
    """Whether the projection moves any case by `move`."""
    return (any(v > 0 for v in getattr(spec, f"{move}_share"))
            or any(v > 0 for v in getattr(spec, f"{move}_share_by_level").values())
            or any(v > 0 for v in getattr(spec, f"{move}_share_by_hospital").values()))


def no_moves(ids) -> pd.DataFrame:
    """The count columns of a year without moves: zeros per hospital id."""
    return pd.DataFrame(0, index=pd.Index(ids), columns=list(COUNT_COLUMNS), dtype=np.int64)


class Moves:
    """One projection's moves, year after year: each hospital's moved share per move and the point values seen."""

    def __init__(self, spec, table: GroupTable | None, ids: np.ndarray, info: dict):
        self.spec, self.table, self.ids, self.info = spec, table, ids, info
        self.active = [m for m in MOVES if uses(spec, m)]
        if self.active and table is None:
            raise InputError(f"{spec.source}: [behaviour] {', '.join(f'{m}_share' for m in self.active)}: moves "
                             "between groups need the groups' points and standard costs (a group table: "
                             "`dipsim project` builds it; from Python pass project(..., groups=group_table(...)))")
        problems = [f"{m}_share: {why}" for m in self.active if (why := table.can(m))] if table else []
        if problems:
            raise InputError(f"{spec.source}: [behaviour] " + "; ".join(problems))
        self.moved = {m: np.zeros(len(ids)) for m in self.active}
        self.pv_ratio = np.ones(len(ids))
        self.point_values: dict | None = None

    def aux_factor(self, given: np.ndarray | None) -> np.ndarray | None:
        """The base cases' aux factors: `given`, else the group table's (built with the auxiliary catalogue whose
        levels severity moves climb: given ones must be those)."""
        own = self.table.aux_factor if self.table is not None else None
        if given is not None and own is not None and not np.array_equal(given, own):
            raise ValueError("the aux factors given are not those of the group table's auxiliary catalogue")
        return given if given is not None else own

    def year(self, year: int, ratio: np.ndarray, grouped: GroupedCases, rows: np.ndarray, codes: np.ndarray,
             ranks_of, orders: dict, points_factor: np.ndarray, cost_factor: float,
             aux_factor: np.ndarray | None) -> tuple[GroupedCases, np.ndarray | None, pd.DataFrame]:
        """Year `year`'s moves on its grouping `grouped` (the base grouping taken by `rows`, cases of hospital
        codes `codes`): the moved grouping, aux factors and counts per hospital (`COUNT_COLUMNS`). `ranks_of(seed)`:
        the year's cases' ranks under a seed (`projection.years.copy_ranks`); `orders` keeps the cases' order per
        move (the year's cache); `points_factor`: per case, what its group points are
        multiplied by besides the group (the older drift model's factor)."""
        spec, table = self.spec, self.table
        counts = no_moves(self.ids)
        if not self.active:
            return grouped, aux_factor, counts
        assert table is not None
        moved = None  # the grouping's arrays, copied at the first group move: points, standard cost, labels, codes
        for move in self.active:
            added = share(spec, move, self.ids, self.info, year, ratio, self.pv_ratio)
            self.moved[move] = np.minimum(1.0, self.moved[move] + added)
            key = (spec.seed, move)
            if key not in orders:
                orders[key] = drift_order(ranks_of(f"{spec.seed}\0{move}"), codes, len(self.ids))
            at = selected_rows(orders[key], self.moved[move])  # the picked cases (positions in the year)
            if move == "severity" and table.aux_up is not None:  # DIP: the aux severity level
                assert aux_factor is not None
                raised = table.aux_up[rows[at]]
                ok = np.isfinite(raised)
                aux_factor = aux_factor.copy()
                aux_factor[at[ok]] = raised[ok]
            else:
                target = table.up(move, rows[at], spec.intensity_min_cases)
                ok = target >= 0
                moved = moved or _Moved.of(grouped)
                moved.move(at[ok], target[ok], table, points_factor, cost_factor)
            counts[f"{move}_moved"] = np.bincount(codes[at[ok]], minlength=len(self.ids))
            counts[f"{move}_unmoved"] = np.bincount(codes[at[~ok]], minlength=len(self.ids))
        return (moved.grouping(grouped) if moved is not None else grouped), aux_factor, counts

    def observe(self, run) -> None:
        """After a year's settlement: each hospital's point-value ratio to the year before (its pools' point values,
        weighted by its points in each; 1 where a point value is missing), read by the next year's moves, drift
        (`drift_elasticity_pv`) and volume (`volume_elasticity_pv`). Nothing to do without a response to the point
        value (every elasticity_pv 0)."""
        if not (any(getattr(self.spec, f"{m}_elasticity_pv") for m in self.active)
                or self.spec.drift_elasticity_pv or self.spec.volume_elasticity_pv):
            return
        pools = run.pools
        values = dict(zip(pools["pool"].to_pylist(), pools["point_value"].to_pylist()))
        before, self.point_values = self.point_values, values
        if before is None:
            return
        h = run.hospitals
        position = {hospital: k for k, hospital in enumerate(self.ids.tolist())}
        weighted, points = np.zeros(len(self.ids)), np.zeros(len(self.ids))
        for hospital, pool, p in zip(h["hospital_id"].to_pylist(), h["pool"].to_pylist(), h["points"].to_pylist()):
            k = position.get(hospital)
            if k is not None and p:
                weighted[k] += p * (values[pool] / before[pool] if values.get(pool) and before.get(pool) else 1.0)
                points[k] += p
        self.pv_ratio = np.where(points > 0, weighted / np.where(points > 0, points, 1.0), 1.0)


@dataclass
class _Moved:
    """A year's grouping as group moves change it (copied once, changed in place)."""

    points: np.ndarray
    standard: np.ndarray
    labels: np.ndarray
    group: np.ndarray | None  # the grouping's codes (index per case, names), when it has them
    names: list | None

    @classmethod
    def of(cls, grouped: GroupedCases) -> _Moved:
        return cls(grouped.group_points.copy(), grouped.standard_cost.copy(),
                   np.asarray(grouped.group, dtype=object).copy(),
                   grouped.codes[0].astype(np.int32) if grouped.codes is not None else None,
                   grouped.codes[1].to_pylist() if grouped.codes is not None else None)

    def move(self, at: np.ndarray, to: np.ndarray, table: GroupTable, points_factor: np.ndarray,
             cost_factor: float) -> None:
        """Cases `at` into the table's groups `to`: their code, points (x points_factor) and standard cost (x the
        year's cost growth)."""
        self.points[at] = table.points[to] * points_factor[at]
        self.standard[at] = table.standard_cost[to] * cost_factor
        self.labels[at] = table.codes[to]
        if self.group is not None and self.names is not None:
            distinct, inverse = np.unique(to, return_inverse=True)
            have = set(self.names)
            self.names += [c for c in table.codes[distinct] if c not in have]
            self.group[at] = pd.Index(self.names).get_indexer(table.codes[distinct])[inverse]

    def grouping(self, grouped: GroupedCases) -> GroupedCases:
        return GroupedCases(group=self.labels, group_points=self.points, standard_cost=self.standard,
                            tcm_group_case=grouped.tcm_group_case, tcm_treated=grouped.tcm_treated,
                            unit=grouped.unit,
                            codes=(self.group, pa.array(self.names, pa.string())) if self.group is not None else None)


def wanted(spec) -> bool:
    """Whether a projection (or one of its draws: a move key given as a distribution) may move cases."""
    return any(uses(spec, m) for m in MOVES) or any(
        path[0] == "behaviour" and path[1] in MOVE_KEYS for path in getattr(spec, "distributions", {}))
