"""The year's catalogue in a projection (issue 20): frozen, or re-weighted on the last years' cases (1:2:7).

    [catalogue]
    rule = "reweight"        # "frozen" (default): the base catalogue's points, standard costs x the cost factor
    weights = [1, 2, 7]      # the last len(weights) years, oldest first
    from_year = 1            # the first projected year re-weighted

Rule "reweight": year t's group points and standard costs come from the cases of years t-k..t-1 (k = len(weights))
as they were projected and settled: each case's total_cost at its year's prices, in the group it was paid in that
year (the year's `GroupedCases.group`, so a case that moved group counts in its new one). Per year and group the
builder's statistics (`dipsim.catalog`, `dipsim catalog build`): the cases with the group's points (finite, above 0:
not the ungroupable) and a positive cost, trimmed within the group at the builder's percentiles (`_trimmed`,
2.5 / 97.5: a group of up to 41 cases keeps them all), their cost sum and count. Then the builder's formula, called
(`catalog.weighted_means`, `catalog.group_points`):

    m_g = sum_y w_y mean_gy / sum of w_y over the window's years g has cases in      (the group's mean cost)
    M   = sum_y w_y mean_y / sum of w_y over the window's years with cases           (every case's mean cost)
    points_g = round(m_g / M x S, 4), a TCM group at its Western group's points (同病同价);  standard cost_g = m_g

Years before the base year do not exist: the window is the years 0..t-1 it has, with the last weights
(`catalog._year_weights`: year 1 is the base year alone, year 2 the years 0 and 1 at 2:7). A group without a case in
the window keeps the points and standard cost the year gives it (the frozen rule's).

The scale S (the points of the whole) is set once, on the base year: the base year's cases have the same total
points under the base catalogue and under their own re-weighting, S = sum_i p0_i / sum_i (m_g(i) / M) over the base
year's counted cases (m, M of the base year alone, before rounding), rounded to the points' 4 decimals (the
catalogue's own rounding puts S about 1e-9 off its builder's 1000; rounded, S is 1000 again). So re-weighting alone
on an unchanged region (zero growth) gives back the catalogue the builder made from the base year, every case's
points and standard cost and every fen (tested on a synthetic region), and years 1..T equal each other whatever the
base catalogue (year 1 re-anchors a catalogue made on other years or costs on the base year's costs).

Under cost growth alone every group's m_g and M grow alike: the points stay, and the standard costs lag the year's
costs (the window's weighted mean of past prices), so more cases pass the high outlier threshold: the real effect
of re-weighting under cost growth.

Per case: points = the group's re-weighted points, times what the year's own grouping multiplied the catalogue's
points by (a drifted case's drift factor: points x new / catalogue's); standard cost = the group's m_g.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dipsim.catalog import POINTS_DECIMALS, CatalogOptions, _trimmed, _year_weights, group_points, weighted_means
from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.errors import InputError
from dipsim.io.toml_files import is_number as _number
from dipsim.tcm import TCM_PREFIX

RULES = ("frozen", "reweight")
# 国家医疗保障局办公室《国家医疗保障按病种分值付费（DIP）技术规范》(医保办发〔2020〕50号), as the project cites it
# (dipsim/data/policy_parameters.toml, docs/domain.md §6): group points from the last three years' cases weighted
# 1:2:7, oldest first; the catalogue builder's default. (The text is not among the policy texts shipped in
# ../shared/docs/policy_texts.)
WEIGHTS = CatalogOptions().year_weights
TRIM_PERCENTILES = CatalogOptions().trim_percentiles  # the builder's trimming within a group
MAX_WEIGHTS = 10  # years in the window at most
MEMO_KEY = "reweight statistics"  # where `project`'s cache keeps the years' statistics
MEMO_YEARS = 64


@dataclass(frozen=True)
class CatalogueRule:
    """[catalogue] of a projection file."""

    rule: str = "frozen"
    weights: tuple[float, ...] = WEIGHTS
    from_year: int = 1


def catalogue_of(content, years: int | None, problem) -> CatalogueRule:
    """The [catalogue] table checked; `problem(table, key, what)` is told of each problem."""

    if content is None:
        return CatalogueRule()
    if not isinstance(content, dict):
        problem("catalogue", None, "must be a table (rule, weights, from_year)")
        return CatalogueRule()
    given: dict = {}
    for key, value in content.items():
        if key == "rule":
            if value not in RULES:
                problem("catalogue", key, f"one of {', '.join(repr(r) for r in RULES)} (got {value!r})")
            else:
                given[key] = value
        elif key == "weights":
            if (not isinstance(value, list) or not 1 <= len(value) <= MAX_WEIGHTS
                    or not all(_number(v) and v >= 0 for v in value) or not sum(value) > 0):
                problem("catalogue", key, f"1 to {MAX_WEIGHTS} numbers, at least 0 with a sum above 0, one per "
                                          f"year, oldest first (e.g. [1, 2, 7]; got {value!r})")
            else:
                given[key] = tuple(float(v) for v in value)
        elif key == "from_year":
            if (not isinstance(value, int) or isinstance(value, bool) or value < 1
                    or (years is not None and value > years)):
                problem("catalogue", key, f"a projected year, 1 to {years if years is not None else 'years'} "
                                          f"(got {value!r})")
            else:
                given[key] = value
        else:
            problem("catalogue", key, "unknown key (expected one of rule, weights, from_year)")
    return CatalogueRule(**given)


def reweighting(rule: CatalogueRule, cache: dict | None = None) -> Reweighting | None:
    """The state a projection keeps for `rule` over its years (None: the frozen catalogue, nothing to keep);
    `cache`: `project`'s, kept between draws, where the years' statistics are kept too."""
    if rule.rule != "reweight":
        return None
    return Reweighting(rule, memo=cache.setdefault(MEMO_KEY, {}) if cache is not None else None)


def _statistics(index: np.ndarray, cost: np.ndarray, priced: np.ndarray, groups: int) -> tuple:
    """Per group of a year's grouping (`index` per case into its `groups` groups): the cases counted (a group with
    points, a positive cost), and the cost sum and count of those kept by the builder's trimming."""
    counted = priced[index] & np.isfinite(cost) & (cost > 0)
    g, cost = index[counted], cost[counted]
    size = np.bincount(g, minlength=groups)
    local = (np.cumsum(size > 0) - 1)[g]  # the groups with cases numbered 0, 1, ... (`_trimmed`'s)
    kept = _trimmed(local, cost, size[size > 0], TRIM_PERCENTILES)
    return size, np.bincount(g[kept], weights=cost[kept], minlength=groups), np.bincount(g[kept], minlength=groups)


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([values, np.zeros(n - len(values), values.dtype)]) if len(values) < n else values


@dataclass
class Reweighting:
    """Each settled year's statistics per group (`settled`) and the years' re-weighted groupings (`grouping`).
    Groups are numbered by name as first seen, whatever codes a year's grouping gives them."""

    rule: CatalogueRule
    names: dict[str, int] = field(default_factory=dict)
    catalogue_points: np.ndarray = field(default_factory=lambda: np.zeros(0))  # each group's points as first seen
    sums: dict[int, np.ndarray] = field(default_factory=dict)  # year -> cost sum of the kept cases, per group
    counts: dict[int, np.ndarray] = field(default_factory=dict)  # year -> kept cases per group
    scale: float | None = None  # S, set on the base year
    memo: dict | None = None  # a year's statistics by its cases' costs and groups (kept between draws)

    def _groups(self, grouped: GroupedCases) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Each case's index into the grouping's own groups, their names and their numbers here; a group seen for
        the first time gets the points of its first case (the base year has no drift: the catalogue's)."""
        if grouped.codes is not None:
            index, names = np.asarray(grouped.codes[0]), [str(n) for n in grouped.codes[1].to_pylist()]
        else:
            index, uniques = pd.factorize(np.asarray(grouped.group, dtype=object))
            names = [str(n) for n in uniques]
        numbers = np.array([self.names.setdefault(name, len(self.names)) for name in names], np.int64)
        known = len(self.catalogue_points)
        if len(self.names) > known:
            seen, first = np.unique(index, return_index=True)
            points = np.full(len(self.names) - known, np.nan)
            new = numbers[seen] >= known
            points[numbers[seen][new] - known] = grouped.group_points[first[new]]
            self.catalogue_points = np.concatenate([self.catalogue_points, points])
        return index, numbers, names

    def _priced(self) -> np.ndarray:
        """The groups that take part: their points finite and above 0 (not the ungroupable, not a DRG without RW)."""
        with np.errstate(invalid="ignore"):
            return np.isfinite(self.catalogue_points) & (self.catalogue_points > 0)

    def settled(self, year: int, grouped: GroupedCases, cost: np.ndarray) -> None:
        """Keep year `year`'s cost sum and count per group of the cases kept (the module's notes; `cost`: each
        case's total_cost, 0 when missing, as the year's case set has it); the same cases, groups and costs again
        (another draw's year) are read from `memo`."""
        index, numbers, names = self._groups(grouped)
        cost = np.ascontiguousarray(cost, dtype=np.float64)
        priced = self._priced()[numbers]
        key = None
        if self.memo is not None:
            digest = hashlib.sha256(cost.tobytes())
            for part in (np.asarray(index, np.int64).tobytes(), "\0".join(names).encode(), priced.tobytes()):
                digest.update(part)
            key = digest.digest()
        found = self.memo.get(key) if self.memo is not None else None
        if found is None:
            found = _statistics(index, cost, priced, len(names))
            if self.memo is not None:
                self.memo[key] = found
                while len(self.memo) > MEMO_YEARS:
                    self.memo.pop(next(iter(self.memo)))
        n = len(self.names)
        size, sums, counts = (np.bincount(numbers, weights=v, minlength=n) for v in found)  # by number here
        self.sums[year], self.counts[year] = sums, counts.astype(np.int64)
        if year == 0:
            self.scale = self._scale(size)

    def _means(self, years: list[int], weights: np.ndarray) -> tuple[np.ndarray, float]:
        n = len(self.names)
        cell_sum = np.stack([_pad(self.sums[y], n) for y in years], axis=1)
        cell_n = np.stack([_pad(self.counts[y], n) for y in years], axis=1)
        return weighted_means(cell_sum, cell_n, weights)

    def _points(self, mean: np.ndarray, overall: float, scale: float,
                decimals: int | None = POINTS_DECIMALS) -> np.ndarray:
        names = np.array(list(self.names), dtype=object)
        is_tcm = np.array([name.startswith(TCM_PREFIX) for name in names], bool)
        return group_points(names, is_tcm, mean, overall, scale, decimals)

    def _scale(self, cases: np.ndarray) -> float:
        """S: the base year's points of the whole under the base catalogue / under m_g / M (the module's notes)."""
        if not self.counts[0].any():
            raise InputError("[catalogue] rule \"reweight\": no case of the base year has both a group with points "
                             "and a positive total_cost: nothing to re-weight the catalogue on")
        mean, overall = self._means([0], np.ones(1))
        unit = self._points(mean, overall, 1.0, decimals=None)
        use = np.isfinite(unit) & self._priced() & (cases > 0)
        scale = (cases[use] * self.catalogue_points[use]).sum() / (cases[use] * unit[use]).sum()
        return round(float(scale), POINTS_DECIMALS)  # to the points' precision: a builder's 1000 comes back exactly

    def catalogue(self, year: int) -> tuple[np.ndarray, np.ndarray]:
        """Year `year`'s re-weighted points and standard cost per group number (NaN: no case in the window)."""
        window = list(range(max(0, year - len(self.rule.weights)), year))
        weights = _year_weights(np.array(window), self.rule.weights)
        mean, overall = self._means(window, np.array([weights[y] for y in window], float))
        assert self.scale is not None
        return self._points(mean, overall, self.scale), mean

    def grouping(self, year: int, grouped: GroupedCases) -> GroupedCases:
        """Year `year`'s grouping: `grouped` (as the year made it) with the re-weighted points and standard costs
        from `from_year` on (before: as given)."""
        if year < self.rule.from_year:
            return grouped
        index, numbers, _ = self._groups(grouped)
        g = numbers[index]
        points, mean = self.catalogue(year)
        before = self.catalogue_points[g]
        new = points[g]
        given = grouped.group_points
        with np.errstate(invalid="ignore", divide="ignore"):
            change = np.isfinite(new) & self._priced()[g]
            # a case at its group's catalogue points takes the new points exactly; a drifted one keeps its multiple
            case_points = np.where(change, np.where(given == before, new, given * new / before), given)
        standard = np.where(change & np.isfinite(mean[g]), mean[g], grouped.standard_cost)
        return dataclasses.replace(grouped, group_points=case_points, standard_cost=standard)
