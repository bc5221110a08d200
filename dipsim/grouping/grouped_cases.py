"""What grouping hands to payment: each case's group, its group points (DIP points, or a DRG's relative weight) and
its group's standard cost, and the TCM flags (docs/domain.md §6-8). One typed object, whichever the mode, built by
`group_dip` or `group_drg` and read by the payment chain (`dipsim.payment`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dipsim.schema import float_column

UNITS = ("points", "rw")


@dataclass(frozen=True)
class GroupedCases:
    """Per case, in the cases' order."""

    group: np.ndarray  # str: the DIP group or DRG code ("" or 0000... when ungroupable)
    group_points: np.ndarray  # float: DIP points (0 when ungroupable), or the DRG's RW (unit "rw"; NaN without one)
    standard_cost: np.ndarray  # float: the group's mean cost (outliers are judged against it); NaN when unknown
    tcm_group_case: np.ndarray  # bool: a TCM case of a TCM group (中医优势病种, 同病同价)
    tcm_treated: np.ndarray  # bool: treated with TCM (the case bonus)
    unit: str = "points"  # "rw": group_points are relative weights, times payment.drg_points_per_rw in the chain
    # `group` as (int32 index per case, the distinct groups as an Arrow string array) when grouping made it so:
    # `group_array` then takes the strings from it instead of converting a million Python strings
    codes: tuple[np.ndarray, pa.Array] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}")
        n = len(self.group)
        for name in self.arrays():
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: {len(getattr(self, name))} values for {n} cases")
        if self.codes is not None and len(self.codes[0]) != n:
            raise ValueError(f"codes: {len(self.codes[0])} values for {n} cases")

    def __len__(self) -> int:
        return len(self.group)

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-case arrays by name (for a cache file; `from_arrays` reads them back)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("unit", "codes")}

    def group_array(self) -> pa.Array:
        """`group` as an Arrow string array."""
        if self.codes is not None:
            index, names = self.codes
            return pc.take(names, pa.array(index))
        return pa.array(self.group, pa.string())

    def cache_arrays(self) -> dict[str, np.ndarray]:
        """What a cache file keeps (`scenarios.grouped_cached`): `arrays()` with `group` as `group_index` (int32)
        into `group_names` (the distinct groups): made back as an object array by one take of a few hundred strings,
        not by a million strings one by one (0.9 s at 1M cases, holding the GIL)."""
        if self.codes is not None:
            index, names = self.codes[0], np.asarray(self.codes[1].to_pylist(), dtype=str)
        else:
            names, index = np.unique(np.asarray(self.group).astype(str), return_inverse=True)
        return {**{k: v for k, v in self.arrays().items() if k != "group"},
                "group_index": np.asarray(index, np.int32), "group_names": names}

    @classmethod
    def from_arrays(cls, arrays, unit: str) -> GroupedCases:
        """A grouping from a cache file's `cache_arrays`."""
        names = np.asarray(arrays["group_names"]).astype(object)
        index = np.asarray(arrays["group_index"], np.int32)
        return cls(group=names[index],
                   group_points=np.asarray(arrays["group_points"], np.float64),
                   standard_cost=np.asarray(arrays["standard_cost"], np.float64),
                   tcm_group_case=np.asarray(arrays["tcm_group_case"], bool),
                   tcm_treated=np.asarray(arrays["tcm_treated"], bool), unit=unit,
                   codes=(index, pa.array(names.tolist(), pa.string())))


def group_dip(cases: pa.Table, catalog) -> GroupedCases:
    """Group points, standard cost, TCM flags and group ids of every case under a DIP catalogue (`match_table`:
    integer codes per case, the strings only per group)."""
    from dipsim.grouping.dip import MATCH_TCM, match_table
    from dipsim.tcm import tcm_flag

    m = match_table(cases, catalog)
    ids = m.group_ids.to_pylist()
    mean = dict(zip(catalog.groups["group_id"].to_pylist(), catalog.groups["mean_cost"].to_pylist()))
    standard = np.array([mean.get(g, np.nan) if g else np.nan for g in ids] + [np.nan], dtype=np.float64)
    found = m.group >= 0
    index = np.where(found, m.group, len(ids)).astype(np.int32)  # the ungroupable: "" after the groups
    return GroupedCases(
        group=np.array([*ids, ""], dtype=object)[index],
        group_points=np.where(found, m.points(), 0.0),
        standard_cost=standard[index],
        tcm_group_case=m.match == MATCH_TCM,
        tcm_treated=np.asarray(m.treated if m.treated is not None else tcm_flag(cases), bool),
        codes=(index, pa.concat_arrays([m.group_ids, pa.array([""], pa.string())])))


def group_drg(cases: pa.Table, scheme: str, weights=None) -> GroupedCases:
    """Relative weight and standard cost of every case under a CHS-DRG scheme; RW from `weights` (a DataFrame with
    drg, rw[, mean_cost]) or calibrated on the cases' costs (`weights.calibrate_weights`)."""
    from dipsim.grouping.drg import group_table
    from dipsim.tcm import tcm_flag
    from dipsim.weights import calibrate_weights

    drg = group_table(cases, scheme)["drg"].to_numpy(zero_copy_only=False)
    table = weights if weights is not None else calibrate_weights(drg, float_column(cases, "total_cost", 0.0))
    rw = dict(zip(table["drg"], table["rw"]))
    mean = dict(zip(table["drg"], table["mean_cost"])) if "mean_cost" in table else {}
    return GroupedCases(group=np.asarray(drg, dtype=object),
                        group_points=np.array([rw.get(d, np.nan) for d in drg], dtype=np.float64),
                        standard_cost=np.array([mean.get(d, np.nan) for d in drg], dtype=np.float64),
                        tcm_group_case=np.zeros(cases.num_rows, bool), tcm_treated=np.asarray(tcm_flag(cases), bool),
                        unit="rw")
