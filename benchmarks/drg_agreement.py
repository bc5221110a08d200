"""Agreement of the CHS-DRG 1.1 grouper with the groups a real insurer paid, every disagreement listed.

    python benchmarks/drg_agreement.py [--scheme chs-drg-1.1] [-o benchmarks/drg_agreement.md]

Reads ../shared/reference/cases/grouped_cases_chs_drg_1.1.csv (6,738 real cases with 医保实际分组结果), groups
them with the reference grouper (the Numba kernel gives the same groups: tests/test_drg_kernel.py), and writes a
report: the rate on the full DRG code, and each disagreement with its kind (MDC, ADRG or suffix) and the reason:
our steps, and whether the rule of the insurer's ADRG holds for the case.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
from pathlib import Path

from dipsim.grouping.explain import case_from_row
from dipsim.grouping.reference import _Facts, _list_names, adrg_logic_text, group_case
from dipsim.grouping.tables import load_scheme
from dipsim.io import load_cases
from dipsim.io.writers import atomic_path

HERE = Path(__file__).resolve().parent
CASES = HERE.parent.parent / "shared" / "reference" / "cases" / "grouped_cases_chs_drg_1.1.csv"


def kind_of(ours: str, theirs: str) -> str:
    if ours[:3] == theirs[:3] and not ours.startswith("0000"):
        return "suffix"
    if ours[:1] == theirs[:1] and not ours.startswith("0000"):
        return "ADRG"
    return "MDC"


def like_key(row: dict) -> tuple[str, str]:
    return row["diagnoses"][0] if row["diagnoses"] else "", row["procedures"][0] if row["procedures"] else ""


def insurer_rule(row: dict, insurer_drg: str, scheme) -> str:
    """Does the rule of the insurer's ADRG hold for this case, and which lists fail?"""
    adrg = scheme.adrgs.get(insurer_drg[:3])
    if adrg is None:
        return f"{insurer_drg[:3]} is not an ADRG of {scheme.name}"
    facts = _Facts(case_from_row(row), scheme)
    failing = [n for n in _list_names(adrg.logic) if not facts.in_list(n, adrg)]
    verdict = "holds" if facts.holds(adrg.logic, adrg) else f"fails ({', '.join(failing)} not met)"
    return f"insurer's {adrg.code} rule `{adrg_logic_text(adrg)}` {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheme", default="chs-drg-1.1")
    parser.add_argument("-o", "--out", default=str(HERE / "drg_agreement.md"))
    args = parser.parse_args()
    scheme = load_scheme(args.scheme)
    rows = load_cases(CASES).accepted.to_pylist()
    disagreements = []
    for row in rows:
        grouping = group_case(case_from_row(row), scheme)
        if grouping.drg != row["insurer_drg"]:
            disagreements.append((row, grouping))
    agree = len(rows) - len(disagreements)
    qy_scheme = load_scheme(args.scheme, qy=True)
    to_qy = sum(group_case(case_from_row(r), qy_scheme).drg.endswith("QY") for r in rows)
    # The insurer's ADRGs for cases with the same principal diagnosis and principal procedure: shows where
    # alike cases were paid differently (adjudication) rather than by a rule we miss.
    alike: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in rows:
        alike[like_key(r)][r["insurer_drg"][:3]] += 1
    by_kind = collections.Counter(kind_of(g.drg, r["insurer_drg"]) for r, g in disagreements)
    lines = [
        f"# CHS-DRG agreement with the insurer ({args.scheme})",
        "",
        f"Generated {dt.date.today().isoformat()} by `python benchmarks/drg_agreement.py` on "
        f"`cases/grouped_cases_chs_drg_1.1.csv`.",
        "",
        f"**{agree:,} of {len(rows):,} cases agree on the full DRG code: {agree / len(rows):.2%}.** "
        f"Disagreements by kind: " + ", ".join(f"{k} {n}" for k, n in by_kind.most_common()) + ".",
        "",
        "The insurer's file holds no QY and no 0000 case (a selection of paid cases), and its groups may include "
        "manual adjudication (similar cases sometimes get different groups), so some disagreements are not rule "
        "errors: the table says what the rules give and whether the insurer's ADRG rule holds for the case. "
        f"xQY is off, as in the national 1.1 DRG list; with `--qy on` {to_qy} cases would go to QY. The last "
        "column counts the insurer's ADRGs for all cases with the same principal diagnosis and principal procedure.",
        "",
        "| case | ours | insurer | kind | our decisive step | insurer's ADRG | insurer, alike cases |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, grouping in sorted(disagreements, key=lambda x: (kind_of(x[1].drg, x[0]["insurer_drg"]), x[1].drg)):
        step = grouping.reason or next((t for t in grouping.trace if t.startswith(("ADRG", "principal operation",
                                                                                  "MDCZ", "MDCP", "MDCY"))), "")
        lines.append(f"| {row['case_id']} | {grouping.drg} | {row['insurer_drg']} | "
                     f"{kind_of(grouping.drg, row['insurer_drg'])} | {step.replace('|', '/')} | "
                     f"{insurer_rule(row, row['insurer_drg'], scheme).replace('|', '/')} | "
                     f"{', '.join(f'{a} {n}' for a, n in alike[like_key(row)].most_common())} |")
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{agree}/{len(rows)} = {agree / len(rows):.4%} -> {args.out}")


if __name__ == "__main__":
    main()
