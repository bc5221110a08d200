"""What grouping hands to payment: each case's group, its group points (DIP points, or a DRG's relative weight) and
its group's standard cost, and the TCM flags (docs/domain.md §6-8). One typed object, whichever the mode, built by
`group_dip` or `group_drg` and read by the payment chain (`dipsim.payment`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

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

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}")
        n = len(self.group)
        for f in fields(self):
            if f.name != "unit" and len(getattr(self, f.name)) != n:
                raise ValueError(f"{f.name}: {len(getattr(self, f.name))} values for {n} cases")

    def __len__(self) -> int:
        return len(self.group)

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-case arrays by name (for a cache file; `from_arrays` reads them back)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "unit"}

    @classmethod
    def from_arrays(cls, arrays, unit: str) -> GroupedCases:
        return cls(group=np.asarray(arrays["group"]).astype(str).astype(object),
                   group_points=np.asarray(arrays["group_points"], np.float64),
                   standard_cost=np.asarray(arrays["standard_cost"], np.float64),
                   tcm_group_case=np.asarray(arrays["tcm_group_case"], bool),
                   tcm_treated=np.asarray(arrays["tcm_treated"], bool), unit=unit)


def group_dip(cases: pa.Table, catalog) -> GroupedCases:
    """Group points, standard cost, TCM flags and group ids of every case under a DIP catalogue."""
    from dipsim.grouping.dip import group_dip_table
    from dipsim.tcm import tcm_flag, tcm_treated

    groups = group_dip_table(cases, catalog)
    mean = dict(zip(catalog.groups["group_id"].to_pylist(), catalog.groups["mean_cost"].to_pylist()))
    group = groups["dip_group"].to_numpy(zero_copy_only=False)
    rule = catalog.options.tcm
    return GroupedCases(
        group=np.asarray(group, dtype=object),
        group_points=pc.fill_null(groups["dip_points"], 0.0).to_numpy(zero_copy_only=False).astype(np.float64),
        standard_cost=np.array([mean.get(g, np.nan) if g else np.nan for g in group], dtype=np.float64),
        tcm_group_case=groups["match"].to_numpy(zero_copy_only=False) == "tcm",
        tcm_treated=np.asarray(tcm_treated(cases, rule) if rule else tcm_flag(cases), bool))


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
