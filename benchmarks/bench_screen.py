"""Fund supervision screens at scale (issues 8 and 17): `dipsim screen` end to end, its wall time and peak memory,
and what it finds of the behaviours the generator injected (its ground truth).

    python benchmarks/bench_screen.py --cases 10000000 [--old ../screen-base] [--copies 10]

The region is benchmarks/_work/region_N (as bench_load.py makes it): its raw monthly partitions (cases/), and the
same validated once by `dipsim validate` (_work/validated_N, made here when absent), which `dipsim screen` reads in
batches of only the columns it needs. Each run is a fresh process (`python -m dipsim.cli screen IN -o OUT -q`);
peak RSS is its own (wait4). With --old, a checkout of an earlier version (e.g. `git worktree add ../base d9ea248`)
runs the same commands in the same session, and its flags.csv and hospitals.csv must equal this version's byte for
byte. --copies K runs the streamed screens in one process over the validated cases read K times, case and patient ids
made distinct per copy (K x N cases: the grouping, the screens and the flags file at that size; not the reader's
cost of a K x N input): what 100M cases cost without a 100M-case input.

Split stays: the share of injected pairs flagged (earlier stay -> later stay), of all pairs and of the pairs the rule
does not exempt (radio-/chemotherapy). Upcoding: injected hospitals flagged, honest hospitals flagged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from _machine import arguments, machine_line
from bench_load import HERE, ensure_region

REPO = HERE.parent

COPIES = """
import json, sys, time
import pyarrow as pa, pyarrow.compute as pc
from dipsim.grouping.drg import warm_up
from dipsim.io.validate import iter_case_batches
from dipsim.io.writers import OutputFolder
from dipsim.policy import Policy
from dipsim.supervise_stream import FLAG_SCHEMA, SCREEN_COLUMNS, bucket_count, screen_stream

folder, copies, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
warm_up("chs-drg-1.1")
start = time.perf_counter()

def pieces():
    for k in range(copies):
        for result in iter_case_batches(folder, 1 << 18, columns=list(SCREEN_COLUMNS)):
            table = result.accepted
            for name in ("case_id", "patient_id") if k else ():
                table = table.set_column(table.schema.get_field_index(name), name, pc.binary_join_element_wise(
                    pa.scalar(f"K{k}-"), table[name], ""))
            yield table

output = OutputFolder(out)
with output.csv_parts("flags.csv", FLAG_SCHEMA) as flags:
    screens = screen_stream(pieces(), Policy(values={}), "chs-drg-1.1", flags=flags,
                            buckets=bucket_count(copies * int(sys.argv[4])), work_dir=out)
print(json.dumps({"seconds": time.perf_counter() - start, "cases": screens.cases, "flags": screens.flag_counts}))
"""


def run(tree: Path, args: list[str]) -> tuple[float, float, str]:
    """A fresh Python with `tree`'s dipsim: (wall seconds, its own peak RSS in MB, its stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err,
                                   env={**os.environ, "PYTHONPATH": str(tree)})
        _, status, usage = os.wait4(process.pid, 0)  # this child's rusage, not the maximum over all children
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise RuntimeError(f"{tree}: {' '.join(args)} failed:\n{err.read()}")
        return wall, usage.ru_maxrss / 1024, out.read()


def ensure_validated(region: Path, cases: int, tree: Path) -> Path:
    validated = HERE / "_work" / f"validated_{cases}"
    if not (validated / "manifest.json").exists():
        run(tree, ["-m", "dipsim.cli", "validate", str(region / "cases"), "-o", str(validated), "-q"])
    return validated / "accepted"


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--old", type=Path, help="a checkout of the earlier version to compare with")
    parser.add_argument("--copies", type=int, default=0, help="also the streamed screens over K copies")
    args = parser.parse_args()
    region = ensure_region(args.cases, args.seed)
    validated = ensure_validated(region, args.cases, REPO)
    work = HERE / "_work" / f"screen_{args.cases}"
    trees = [("new", REPO)] + ([("old", args.old.resolve())] if args.old else [])
    for _, tree in trees:  # kernels compiled and cached before anything is timed
        run(tree, ["-c", "from dipsim.grouping.drg import warm_up; warm_up('chs-drg-1.1')"])
    rows = []
    for label, source in (("raw partitions", region / "cases"), ("validated", validated)):
        for name, tree in trees:
            out = work / f"{name}-{source.name}"
            shutil.rmtree(out, ignore_errors=True)
            wall, peak, _ = run(tree, ["-m", "dipsim.cli", "screen", str(source), "-o", str(out), "-q"])
            rows.append((name, label, wall, peak))
        if args.old:
            for file in ("flags.csv", "hospitals.csv", "rejects.csv"):
                same = (work / f"new-{source.name}" / file).read_bytes() == (work / f"old-{source.name}" / file
                                                                            ).read_bytes()
                if not same:
                    raise SystemExit(f"{label}: {file} differs between the old and the new version")

    print(machine_line(f"python benchmarks/bench_screen.py --cases {args.cases}"
                       + (f" --old {args.old}" if args.old else "") + (f" --copies {args.copies}" if args.copies
                                                                       else "")))
    print()
    print("| version | input | cases | wall (s) | cases/s | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, label, wall, peak in rows:
        print(f"| {name} | {label} | {args.cases:,} | {wall:.1f} | {args.cases / wall:,.0f} | {peak:,.0f} |")
    if args.copies:
        out = work / f"copies-{args.copies}"
        shutil.rmtree(out, ignore_errors=True)
        wall, peak, text = run(REPO, ["-c", COPIES, str(validated), str(args.copies), str(out), str(args.cases)])
        result = json.loads(text.strip().splitlines()[-1])
        print(f"| new, streamed screens only | validated x {args.copies} | {result['cases']:,} | {wall:.1f} | "
              f"{result['cases'] / wall:,.0f} | {peak:,.0f} |")
        shutil.rmtree(out, ignore_errors=True)
    if args.old:
        print("\nflags.csv, hospitals.csv and rejects.csv: identical, byte for byte, old and new, on both inputs.")
    print()
    _ground_truth(region, validated, work / f"new-{validated.name}")


def _ground_truth(region: Path, validated: Path, out: Path) -> None:
    flags = pd.read_csv(out / "flags.csv", encoding="utf-8-sig", dtype=str)
    hospitals = pd.read_csv(out / "hospitals.csv", encoding="utf-8-sig", dtype={"hospital_id": str})
    from dipsim.io import load_cases
    from dipsim.supervise import SCREENS

    pairs = pq.read_table(region / "ground_truth" / "split_stays.parquet").to_pandas()
    cases = load_cases(validated, columns=["case_id", "diagnoses"]).accepted
    principal = pd.Series(pc.list_element(cases["diagnoses"], 0).to_numpy(zero_copy_only=False),
                          index=cases["case_id"].to_numpy(zero_copy_only=False))
    exempt = principal.reindex(pairs["first_case_id"]).str.startswith(("Z51.0", "Z51.1", "Z51.2")).to_numpy()
    splits = flags[flags["screen"] == "split_readmission"]
    found = pd.Series(list(zip(pairs["first_case_id"], pairs["second_case_id"]))).isin(
        set(zip(splits["case_id"], splits["related_case_id"]))).to_numpy()
    hospitals = hospitals.set_index("hospital_id")
    flagged = set(hospitals.index[hospitals["upcoding_flag"]])
    injected = set(json.loads((region / "manifest.json").read_text(encoding="utf-8"))["counts"]["upcoding_hospitals"])
    honest = len(hospitals) - len(injected)
    counts = flags["screen"].value_counts()
    print("Flags: " + ", ".join(f"{s} {int(counts.get(s, 0)):,}" for s in SCREENS) + ".")
    print(f"Split stays: {found.sum():,} of {len(pairs):,} injected pairs flagged ({found.mean():.1%}); "
          f"{found[~exempt].sum():,} of {(~exempt).sum():,} not exempt ({found[~exempt].mean():.1%}); "
          f"{len(splits) - found.sum():,} other split flags.")
    print(f"Upcoding: {len(flagged & injected)} of {len(injected)} injected hospitals flagged; "
          f"{len(flagged - injected)} of {honest} honest hospitals flagged ({len(flagged - injected) / honest:.1%}).")


if __name__ == "__main__":
    main()
