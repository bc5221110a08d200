"""Benchmark the synthetic region generator: wall time, cases/s and peak memory.

    python benchmarks/bench_synth.py [--cases 1000000] [--hospitals 100] [--seed 0] [-o DIR]

The generation runs in a child process so that its peak RSS (getrusage of the children, ru_maxrss) is the
generator's alone, imports included.  Prints a markdown row for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time

from _machine import cores, cpu_model, machine_line


def child(args: argparse.Namespace) -> None:
    from dipsim.synth import synthesize_region

    t0 = time.perf_counter()
    s = synthesize_region(args.out, cases=args.cases, hospitals=args.hospitals, seed=args.seed)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "generator_s": s.elapsed_s, "readmissions": s.readmissions,
                      "split_pairs": s.split_pairs, "upcoded": s.upcoded_cases}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--hospitals", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", default=None, help="output folder (default: a temporary one, removed after)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        out = args.out or os.path.join(tmp, "region")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--cases", str(args.cases),
               "--hospitals", str(args.hospitals), "--seed", str(args.seed), "-o", out]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        process_s = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs) / 2**20
    r = json.loads(res.stdout.strip().splitlines()[-1])
    command = " ".join(["python benchmarks/bench_synth.py", shlex.join(sys.argv[1:])]).strip()
    print(machine_line(command))
    print(f"generator {r['generator_s']:.2f} s, process incl. imports {process_s:.2f} s, output {size_mb:.0f} MB; "
          f"readmissions {r['readmissions']}, split pairs {r['split_pairs']}, upcoded {r['upcoded']}")
    print()
    print("| benchmark | machine | date | cases | wall s | cases/s | peak RSS MB | command |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| synth | {cores()} cores, {cpu_model()} | {dt.date.today().isoformat()} | "
          f"{args.cases:,} | {r['wall_s']:.2f} | {args.cases / r['wall_s']:,.0f} | {peak_mb:.0f} | `{command}` |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
