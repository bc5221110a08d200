"""Helpers shared by the benchmark scripts: the machine/date/command line every benchmark prints above its figures,
the arguments of a region benchmark, timing, child processes."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_line(command: str) -> str:
    return (f"{dt.date.today().isoformat()} · {cores()} cores · {cpu_model()} · Python {platform.python_version()}"
            f" · `{command}`")


def arguments(description: str, seed: bool = True) -> argparse.ArgumentParser:
    """A benchmark's parser with --cases (default 1,000,000) and, for a synthetic region (benchmarks/_work/region_N,
    bench_load.ensure_region), --seed (default 1)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    if seed:
        parser.add_argument("--seed", type=int, default=1)
    return parser


def best_of(repeats: int, run) -> float:
    """The fastest of `repeats` calls of `run()`, in seconds."""
    import time

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def child(code: str, *args: str, env: dict | None = None) -> dict:
    """Run `code` in a fresh Python process (environment `env` added); the JSON object of its last output line,
    with `process_seconds`: the wall time of the whole process as its parent sees it (interpreter start and exit
    included, what a user waits for)."""
    import time

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(done.stderr)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_seconds": elapsed}


def tile_csr(values, offsets, times: int):
    """A list column as flat `values` and `offsets` (CSR), its rows repeated `times` times: (values, offsets)."""
    import numpy as np

    lengths = np.tile(np.diff(offsets), times)
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return np.tile(values, times), out
