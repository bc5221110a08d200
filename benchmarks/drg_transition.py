"""CHS-DRG 1.1 -> 2.0 on the real anonymised cases: how many cases move where, and how many each version cannot group.

    python benchmarks/drg_transition.py     # writes benchmarks/drg_transition.md

Reads ../shared/reference/cases/*.csv (the 6,738 insurer-grouped and 13,239 costed cases; reference data, not read
by dipsim at run time), groups every case under both versions with the kernel and writes the transition at MDC,
ADRG and DRG level, the ungroupable share of each version with their reasons, and the 40 largest DRG moves.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
CASES = HERE.parent.parent / "shared" / "reference" / "cases"
FILES = ("grouped_cases_chs_drg_1.1.csv", "costed_cases.csv")


def main() -> None:
    import pyarrow as pa

    from dipsim.grouping.drg import group_table
    from dipsim.grouping.versions import transition
    from dipsim.io import load_cases

    cases = pa.concat_tables([load_cases(CASES / f).accepted.select(["case_id", "diagnoses", "procedures", "sex",
                                                                     "age_years", "age_days", "birth_weight_g",
                                                                     "los_days"]) for f in FILES])
    old, new = group_table(cases, "chs-drg-1.1"), group_table(cases, "chs-drg-2.0")
    frame = pd.DataFrame({k: t[c].to_numpy(zero_copy_only=False) for k, t, c in (
        ("drg_11", old, "drg"), ("adrg_11", old, "adrg"), ("mdc_11", old, "mdc"), ("reason_11", old, "reason"),
        ("drg_20", new, "drg"), ("adrg_20", new, "adrg"), ("mdc_20", new, "mdc"), ("reason_20", new, "reason"))})
    n = len(frame)
    same = {level: (frame[f"{level}_11"] == frame[f"{level}_20"]).sum() for level in ("mdc", "adrg", "drg")}
    moves = transition(old, new)
    lines = [
        "# CHS-DRG 1.1 -> 2.0 on the real cases",
        "",
        f"Generated {dt.date.today().isoformat()} by `python benchmarks/drg_transition.py` on {n:,} real anonymised "
        f"cases ({', '.join(FILES)}). Both versions grouped by the kernel from `grouper_tables/`.",
        "",
        "| level | same code under both | share |",
        "|---|---:|---:|",
        *(f"| {level.upper()} | {v:,} | {v / n:.1%} |" for level, v in same.items()),
        "",
        "DRG codes are not comparable one to one (2.0 renumbered and split many ADRGs); the MDC is the stable level.",
        "",
        "| version | ungroupable (0000) | share | reasons (most frequent) |",
        "|---|---:|---:|---|",
    ]
    for label, suffix in (("1.1", "11"), ("2.0", "20")):
        bad = frame[frame[f"drg_{suffix}"] == "0000"]
        reasons = bad[f"reason_{suffix}"].str.replace(r"principal diagnosis \S+ is", "principal diagnosis is",
                                                      regex=True).value_counts().head(3)
        lines.append(f"| {label} | {len(bad):,} | {len(bad) / n:.2%} | "
                     + "; ".join(f"{r} ({c})" for r, c in reasons.items()) + " |")
    lines += ["", "The 40 largest DRG transitions (share = of the 1.1 DRG's cases):", "",
              "| 1.1 DRG | 2.0 DRG | cases | share |", "|---|---|---:|---:|"]
    for row in moves.sort_values("cases", ascending=False, kind="stable").head(40).itertuples():
        lines.append(f"| {row.from_drg} | {row.to_drg} | {row.cases:,} | {row.share_of_from:.0%} |")
    mdc = frame.value_counts(["mdc_11", "mdc_20"]).rename("cases").reset_index()
    moved = mdc[mdc["mdc_11"] != mdc["mdc_20"]].head(15)
    lines += ["", "Cases that change MDC (the 15 largest flows):", "", "| 1.1 MDC | 2.0 MDC | cases |",
              "|---|---|---:|"]
    lines += [f"| {r.mdc_11 or '-'} | {r.mdc_20 or '-'} | {r.cases:,} |" for r in moved.itertuples()]
    (HERE / "drg_transition.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{n:,} cases; same MDC {same['mdc'] / n:.1%}, ADRG {same['adrg'] / n:.1%}, DRG {same['drg'] / n:.1%} "
          f"-> {HERE / 'drg_transition.md'}")


if __name__ == "__main__":
    main()
