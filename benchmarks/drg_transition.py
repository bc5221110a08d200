"""One CHS-DRG version -> another on the real anonymised cases: how many cases move where, and how many each version
cannot group.

    python benchmarks/drg_transition.py                                           # 1.1 -> 2.0: drg_transition.md
    python benchmarks/drg_transition.py --from chs-drg-2.0 --to chs-drg-3.0       # drg_transition_2.0_3.0.md

Reads ../shared/reference/cases/*.csv (the 6,738 insurer-grouped and 13,239 costed cases; reference data, not read
by dipsim at run time), groups every case under both versions with the kernel and writes the transition at MDC,
ADRG and DRG level, the ungroupable share of each version with their reasons, and the 40 largest DRG moves.
"""

from __future__ import annotations

import argparse
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

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="old", default="chs-drg-1.1")
    parser.add_argument("--to", dest="new", default="chs-drg-2.0")
    args = parser.parse_args()
    a, b = args.old.removeprefix("chs-drg-"), args.new.removeprefix("chs-drg-")
    out = HERE / ("drg_transition.md" if (a, b) == ("1.1", "2.0") else f"drg_transition_{a}_{b}.md")
    cases = pa.concat_tables([load_cases(CASES / f).accepted.select(["case_id", "diagnoses", "procedures", "sex",
                                                                     "age_years", "age_days", "birth_weight_g",
                                                                     "los_days"]) for f in FILES])
    old, new = group_table(cases, args.old), group_table(cases, args.new)
    frame = pd.DataFrame({f"{k}_{side}": t[k].to_numpy(zero_copy_only=False)
                          for side, t in (("old", old), ("new", new)) for k in ("drg", "adrg", "mdc", "reason")})
    n = len(frame)
    same = {level: (frame[f"{level}_old"] == frame[f"{level}_new"]).sum() for level in ("mdc", "adrg", "drg")}
    moves = transition(old, new)
    lines = [
        f"# CHS-DRG {a} -> {b} on the real cases",
        "",
        f"Generated {dt.date.today().isoformat()} by `python benchmarks/drg_transition.py --from {args.old} --to "
        f"{args.new}` on {n:,} real anonymised cases ({', '.join(FILES)}). Both versions grouped by the kernel from "
        "`grouper_tables/`.",
        "",
        "| level | same code under both | share |",
        "|---|---:|---:|",
        *(f"| {level.upper()} | {v:,} | {v / n:.1%} |" for level, v in same.items()),
        "",
        f"DRG codes are not comparable one to one ({b} renumbered and split many ADRGs); the MDC is the stable level.",
        "",
        "| version | ungroupable (0000) | share | reasons (most frequent) |",
        "|---|---:|---:|---|",
    ]
    for label, side in ((a, "old"), (b, "new")):
        bad = frame[frame[f"drg_{side}"] == "0000"]
        reasons = bad[f"reason_{side}"].str.replace(r"principal diagnosis \S+ is", "principal diagnosis is",
                                                    regex=True).value_counts().head(3)
        lines.append(f"| {label} | {len(bad):,} | {len(bad) / n:.2%} | "
                     + "; ".join(f"{r} ({c})" for r, c in reasons.items()) + " |")
    lines += ["", f"The 40 largest DRG transitions (share = of the {a} DRG's cases):", "",
              f"| {a} DRG | {b} DRG | cases | share |", "|---|---|---:|---:|"]
    for row in moves.sort_values("cases", ascending=False, kind="stable").head(40).itertuples():
        lines.append(f"| {row.from_drg} | {row.to_drg} | {row.cases:,} | {row.share_of_from:.0%} |")
    mdc = frame.value_counts(["mdc_old", "mdc_new"]).rename("cases").reset_index()
    moved = mdc[mdc["mdc_old"] != mdc["mdc_new"]].head(15)
    lines += ["", "Cases that change MDC (the 15 largest flows):", "", f"| {a} MDC | {b} MDC | cases |",
              "|---|---|---:|"]
    lines += [f"| {r.mdc_old or '-'} | {r.mdc_new or '-'} | {r.cases:,} |" for r in moved.itertuples()]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{n:,} cases; same MDC {same['mdc'] / n:.1%}, ADRG {same['adrg'] / n:.1%}, DRG {same['drg'] / n:.1%} "
          f"-> {out}")


if __name__ == "__main__":
    main()
