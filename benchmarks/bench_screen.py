"""Fund supervision screens at scale (issue 8): every screen over N synthetic cases, and what they find of the
behaviours the generator injected (its ground truth).

    python benchmarks/bench_screen.py --cases 10000000

The region is benchmarks/_work/region_N (as bench_load.py makes it). Timed separately: reading the validated cases,
grouping them (CHS-DRG 1.1, for MCC/CC levels and groups) with weight calibration, and `screen_cases` (all six
screens: the target is <= 30 s for 10M cases). Split stays: the share of injected pairs flagged (earlier stay ->
later stay), of all pairs and of the pairs the rule does not exempt (radio-/chemotherapy). Upcoding: injected
hospitals flagged, honest hospitals flagged.
"""

from __future__ import annotations

import json
import resource
import time

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from _machine import arguments, machine_line
from bench_load import ensure_region


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()

    from dipsim.grouping.drg import warm_up
    from dipsim.io import load_cases
    from dipsim.policy import Policy
    from dipsim.supervise import SCREENS, screen_cases, screen_inputs

    region = ensure_region(args.cases, args.seed)
    warm_up("chs-drg-1.1")
    start = time.perf_counter()
    cases = load_cases(region / "cases").accepted
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    grouped = screen_inputs(cases, "chs-drg-1.1")  # what `dipsim screen` does: CHS-DRG groups, calibrated weights
    group_s = time.perf_counter() - start
    start = time.perf_counter()
    screens = screen_cases(cases, policy=Policy(values={}), **grouped)
    screen_s = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    pairs = pq.read_table(region / "ground_truth" / "split_stays.parquet").to_pandas()
    principal = pd.Series(pc.list_element(cases["diagnoses"], 0).to_numpy(zero_copy_only=False),
                          index=cases["case_id"].to_numpy(zero_copy_only=False))
    exempt = principal.reindex(pairs["first_case_id"]).str.startswith(("Z51.0", "Z51.1", "Z51.2")).to_numpy()
    splits = screens.flags[screens.flags["screen"] == "split_readmission"]
    found = pd.Series(list(zip(pairs["first_case_id"], pairs["second_case_id"]))).isin(
        set(zip(splits["case_id"], splits["related_case_id"]))).to_numpy()
    hospitals = screens.hospitals.set_index("hospital_id")
    flagged = set(hospitals.index[hospitals["upcoding_flag"]])
    injected = set(json.loads((region / "manifest.json").read_text(encoding="utf-8"))["counts"]["upcoding_hospitals"])
    honest = len(hospitals) - len(injected)

    print(machine_line(f"python benchmarks/bench_screen.py --cases {args.cases}"))
    print()
    print("| cases | read (s) | group + weights (s) | all screens (s) | screens, cases/s | peak RSS (MB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.cases:,} | {read_s:.1f} | {group_s:.1f} | {screen_s:.1f} | {args.cases / screen_s:,.0f} | "
          f"{rss:,.0f} |")
    print()
    counts = screens.flags["screen"].value_counts()
    print("Flags: " + ", ".join(f"{s} {int(counts.get(s, 0)):,}" for s in SCREENS) + ".")
    print(f"Split stays: {found.sum():,} of {len(pairs):,} injected pairs flagged ({found.mean():.1%}); "
          f"{found[~exempt].sum():,} of {(~exempt).sum():,} not exempt ({found[~exempt].mean():.1%}); "
          f"{len(splits) - found.sum():,} other split flags.")
    print(f"Upcoding: {len(flagged & injected)} of {len(injected)} injected hospitals flagged; "
          f"{len(flagged - injected)} of {honest} honest hospitals flagged ({len(flagged - injected) / honest:.1%}).")


if __name__ == "__main__":
    main()
