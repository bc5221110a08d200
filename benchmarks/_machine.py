"""The machine/date/command line every benchmark prints above its figures."""

from __future__ import annotations

import datetime as dt
import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(command: str) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{dt.date.today().isoformat()} · {cores} cores · {cpu_model()} · Python {platform.python_version()}"
            f" · `{command}`")


def best_of(repeats: int, run) -> float:
    """The fastest of `repeats` calls of `run()`, in seconds."""
    import time

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best
