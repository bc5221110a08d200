"""`dipsim serve` under load (issue 19): a variant's latency server-side, the server's memory, and a bounded load test
on loopback, every result compared with `dipsim scenarios run` to the fen.

    python benchmarks/bench_server.py [--sizes 200000,1000000] [--clients 20] [--duration 60] [--load-cases 200000]

Per region size (the demo region of `dipsim serve --demo`, 100 hospitals, cached under benchmarks/_work/serve_N:
"data folder ready" is its build the first time, a check and load after):
- in this process, the baseline: `scenarios.run_scenarios` (what `dipsim scenarios run` runs: the baseline and the
  variant through the payment chain, with the grouping cached) and `payment.chain.run_chain` of the variant alone;
- a `dipsim serve` subprocess on 127.0.0.1 (a free port, nothing else): per variant, the time from POST
  /api/regions/{region}/runs to GET /api/runs/{run} answering "done" (polled every 5 ms) and the run's own
  elapsed_s (the worker's time for the run), the median of `--repeats`; the server's peak RSS (VmHWM).
Then on the `--load-cases` region: `--clients` clients for `--duration` seconds, each logging in and then, in turn,
starting a run (polling it until done) or reading a run's result; every hospital table read is compared with the
command line's to the fen. Prints requests/s, latency percentiles and errors (must be 0). Everything is bounded:
the clients stop at the deadline, the server subprocess is stopped at the end (or on any failure).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
VARIANTS = [{"coefficient.tcm_hospital_bonus": b} for b in (0.02, 0.05, 0.1, 0.15)] + [
    {"coefficient.tcm_hospital_bonus": 0.05, "outlier.high_ratio": 2.5}]
HOSPITALS = 100


def variant_name(i: int) -> str:
    return f"v{i}"


def ensure_data(folder: Path, cases: int, hospitals: int = HOSPITALS) -> str:
    """A data folder with the demo region of `cases` cases (built once); its region id."""
    from dipsim.server.app import Server

    return Server(folder).ensure_demo(cases, hospitals)


def bench_account(folder: Path) -> str:
    """A bureau account "bench" with a fresh random password (written to the data folder's users.json)."""
    from dipsim.server.accounts import Accounts

    password = secrets.token_urlsafe(16)
    Accounts(folder / "users.json").add("bench", password, "bureau", replace=True)
    return password


def cli_expected(folder: Path, region: str, variants: list[dict], work: Path) -> dict:
    """`dipsim scenarios run` of every variant on the region: {(run, hospital_id, pool): fund payout in fen}."""
    from dipsim.cli import main
    from dipsim.server.regions import CASES_DIR, CATALOG_DIR, HOSPITALS_FILE, POLICY_FILE

    base = folder / "regions" / region
    text = f'[scenario]\nname = "bench"\nbaseline = {json.dumps(str(base / POLICY_FILE))}\n'
    for i, changes in enumerate(variants):
        text += f"\n[[variant]]\nname = {json.dumps(variant_name(i))}\nset = {json.dumps(changes)}\n".replace(
            '": ', '" = ')
    scenario = work / "bench.toml"
    scenario.write_text(text, encoding="utf-8")
    out = work / "cli"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["scenarios", "run", str(scenario), "--cases", str(base / CASES_DIR), "--hospitals",
                     str(base / HOSPITALS_FILE), "--catalog", str(base / CATALOG_DIR), "-o", str(out),
                     "--no-report", "-q"])
    if code:
        raise RuntimeError(f"dipsim scenarios run exited {code}")
    with open(out / "hospitals.csv", encoding="utf-8-sig") as f:
        return {(r["scenario"], r["hospital_id"], r["pool"]): fen(r["fund_payout"]) for r in csv.DictReader(f)}


def fen(text) -> int:
    value = Decimal(str(text)) * 100
    if value != value.to_integral_value():
        raise ValueError(f"not whole fen: {text}")
    return int(value)


def compare(rows: list[dict], run: str, expected: dict) -> str | None:
    """None when every row's baseline and variant payout equals the command line's to the fen; else what differs."""
    seen = 0
    for r in rows:
        key = (r["hospital_id"], r["pool"])
        if fen(r["baseline_payout"]) != expected[("baseline", *key)]:
            return f"{key}: baseline {r['baseline_payout']} != {expected[('baseline', *key)]} fen"
        if fen(r["payout"]) != expected[(run, *key)]:
            return f"{key}: {run} {r['payout']} != {expected[(run, *key)]} fen"
        seen += 1
    if seen * 2 != sum(1 for k in expected if k[0] in ("baseline", run)):
        return f"{seen} rows, the command line has {sum(1 for k in expected if k[0] == run)}"
    return None


def in_process_baseline(folder: Path, region: str, changes: dict, repeats: int) -> dict:
    """The same variant without the server: run_scenarios (baseline + variant, grouping cached) and run_chain."""
    from dipsim.payment.chain import run_chain
    from dipsim.scenarios import ScenarioSet, Variant, run_scenarios
    from dipsim.server.regions import LoadedRegion
    from dipsim.server.store import DataFolder

    start = time.perf_counter()
    loaded = LoadedRegion(folder / "regions" / region, DataFolder(folder).regions.get(region))
    load_s = time.perf_counter() - start
    grouped = loaded.grouped(None)
    scenario = ScenarioSet("bench", "bench", loaded.policy, [Variant("v", changes)], "bench")
    policy = loaded.policy.overlay(changes, name="v")
    times: dict[str, list[float]] = {"run_scenarios": [], "run_chain": []}
    for _ in range(repeats):
        start = time.perf_counter()
        run_scenarios(loaded.cases, loaded.hospitals, scenario, grouped)
        times["run_scenarios"].append(time.perf_counter() - start)
        start = time.perf_counter()
        run_chain(loaded.region.case_set, grouped, loaded.hospitals, policy)
        times["run_chain"].append(time.perf_counter() - start)
    return {"load_s": load_s, "cases": loaded.cases.num_rows,
            **{k: sorted(v)[len(v) // 2] for k, v in times.items()}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """`dipsim serve --data FOLDER` on 127.0.0.1 in a subprocess; stopped on exit from the `with`."""

    def __init__(self, folder: Path, workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = "import sys; from dipsim.cli import main; sys.exit(main(sys.argv[1:]))"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--data", str(folder), "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", str(workers), "-q"], stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent),
                                                                            os.environ.get("PYTHONPATH")]))})

    def __enter__(self):
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dipsim serve exited {self.process.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("dipsim serve did not answer within 120 s")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def login(client, password: str) -> dict:
    answer = client.post("/api/login", json={"username": "bench", "password": password})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def run_and_wait(client, headers: dict, region: str, name: str, changes: dict, timeout: float = 120,
                 poll: float = 0.005, record=None) -> tuple[str, float, dict]:
    """POST a run and poll it until done: (run id, seconds from POST to done, the run's view)."""
    start = time.perf_counter()
    answer = client.post(f"/api/regions/{region}/runs", headers=headers, json={"name": name, "set": changes})
    if record:
        record(answer, time.perf_counter() - start)
    if answer.status_code != 202:
        raise RuntimeError(f"POST run: {answer.status_code} {answer.text[:300]}")
    run = answer.json()["id"]
    while True:
        t = time.perf_counter()
        view = client.get(f"/api/runs/{run}", headers=headers)
        if record:
            record(view, time.perf_counter() - t)
        if view.status_code != 200:
            raise RuntimeError(f"GET run: {view.status_code} {view.text[:300]}")
        status = view.json()["status"]
        if status == "done":
            return run, time.perf_counter() - start, view.json()
        if status == "failed" or time.perf_counter() - start > timeout:
            raise RuntimeError(f"run {run}: {status} {view.json().get('error')}")
        done, total = view.json()["progress"]["done"], view.json()["progress"]["total"]
        if not (0 <= done <= total) or (status == "queued" and done):
            raise RuntimeError(f"run {run}: progress {done}/{total} while {status}")
        time.sleep(poll)


def latency(url: str, password: str, region: str, expected: dict, repeats: int) -> dict:
    """Per variant, `repeats` runs one after another: POST to done (client-side) and the run's elapsed_s."""
    import httpx

    with httpx.Client(base_url=url, timeout=300) as client:
        headers = login(client, password)
        start = time.perf_counter()
        client.get(f"/api/regions/{region}", headers=headers).raise_for_status()  # loads the region
        first_load_s = time.perf_counter() - start
        client_s, server_s, first = [], [], None
        for _ in range(repeats):
            for i, changes in enumerate(VARIANTS):
                run, seconds, view = run_and_wait(client, headers, region, variant_name(i), changes)
                rows = client.get(f"/api/runs/{run}/hospitals", headers=headers).json()["hospitals"]
                wrong = compare(rows, variant_name(i), expected)
                if wrong:
                    raise RuntimeError(f"run {run} differs from the command line: {wrong}")
                if first is None:
                    first = (seconds, view["elapsed_s"])
                    continue  # the first run of the process compiles nothing now but warms caches: kept apart
                client_s.append(seconds)
                server_s.append(view["elapsed_s"])
    client_s.sort()
    server_s.sort()
    return {"region_load_s": first_load_s, "first_client_s": first[0], "first_server_s": first[1],
            "client_median_s": client_s[len(client_s) // 2], "client_max_s": client_s[-1],
            "server_median_s": server_s[len(server_s) // 2], "server_max_s": server_s[-1], "runs": len(client_s)}


def load_test(url: str, password: str, region: str, expected: dict, clients: int, duration: float,
              run_share: float = 0.25, seed: int = 1) -> dict:
    """`clients` threads for `duration` s: each logs in, then starts a run (share `run_share`; polled until done)
    or reads a known run's status and hospital table; every table compared with the command line's to the fen.
    Returns requests, requests/s, latency percentiles (ms) of the requests after login, the slowest login (20 logins
    at once: argon2 checks, a few at a time), errors (and the first few)."""
    import httpx

    lock = threading.Lock()
    latencies: list[float] = []
    logins: list[float] = []
    errors: list[str] = []
    known: list[tuple[str, str]] = []  # (run id, variant name) of runs done
    counts = {"runs": 0, "reads": 0, "compared": 0}
    deadline = time.monotonic() + duration

    def record(answer, seconds: float) -> None:
        with lock:
            latencies.append(seconds)

    def client_loop(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                start = time.perf_counter()
                headers = login(client, password)
                with lock:
                    logins.append(time.perf_counter() - start)  # argon2: kept apart from the percentiles
                while time.monotonic() < deadline:
                    try:
                        with lock:
                            pick = rng.choice(known) if known and rng.random() >= run_share else None
                        if pick is None:
                            i = rng.randrange(len(VARIANTS))
                            run, _, _ = run_and_wait(client, headers, region, variant_name(i), VARIANTS[i],
                                                     poll=0.02, record=record)
                            pick = (run, variant_name(i))
                            with lock:
                                known.append(pick)
                                counts["runs"] += 1
                        else:
                            start = time.perf_counter()
                            view = client.get(f"/api/runs/{pick[0]}", headers=headers)
                            record(view, time.perf_counter() - start)
                            if view.status_code != 200 or view.json()["status"] != "done":
                                raise RuntimeError(f"GET run {pick[0]}: {view.status_code} {view.text[:200]}")
                            with lock:
                                counts["reads"] += 1
                        start = time.perf_counter()
                        answer = client.get(f"/api/runs/{pick[0]}/hospitals", headers=headers)
                        record(answer, time.perf_counter() - start)
                        if answer.status_code != 200:
                            raise RuntimeError(f"GET hospitals: {answer.status_code} {answer.text[:200]}")
                        wrong = compare(answer.json()["hospitals"], pick[1], expected)
                        if wrong:
                            raise RuntimeError(f"run {pick[0]} differs from the command line: {wrong}")
                        with lock:
                            counts["compared"] += 1
                    except Exception as exc:  # counted, and the client goes on
                        with lock:
                            errors.append(f"client {number}: {exc!r}"[:400])
        except Exception as exc:
            with lock:
                errors.append(f"client {number} (login): {exc!r}"[:400])

    threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 300)
    elapsed = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))] if ms else float("nan")

    return {"clients": clients, "duration_s": elapsed, "requests": len(ms), "requests_per_s": len(ms) / elapsed,
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": ms[-1] if ms else float("nan"),
            "logins": len(logins), "login_max_ms": max(logins, default=float("nan")) * 1000,
            "errors": len(errors), "first_errors": errors[:5], "still_running": sum(t.is_alive() for t in threads),
            **counts}


def main() -> None:
    from _machine import machine_line

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200000,1000000", help="region sizes in cases, comma-separated")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the load test (0: none)")
    parser.add_argument("--load-cases", type=int, default=200_000, help="the region the load test runs on")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant for the latency")
    args = parser.parse_args()
    if args.clients > 100 or args.duration > 600:
        parser.error("at most 100 clients and 600 s")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    command = (f"python benchmarks/bench_server.py --sizes {args.sizes} --clients {args.clients} "
               f"--duration {args.duration:g} --load-cases {args.load_cases} --repeats {args.repeats}")
    lines = [machine_line(command), "", "| cases | data folder ready (s) | server: region load (s) | "
             "run_scenarios in-process (s) | run_chain alone (s) | server: POST to done, median / max (s) | "
             "server: run's own time, median / max (s) | server peak RSS (MiB) |", "|---:|---:|---:|---:|---:|---:|"
             "---:|---:|"]
    load = None
    for n in sorted(set(sizes) | ({args.load_cases} if args.duration > 0 else set())):
        folder = HERE / "_work" / f"serve_{n}"
        start = time.perf_counter()
        region = ensure_data(folder, n)
        build_s = time.perf_counter() - start
        password = bench_account(folder)
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
            expected = cli_expected(folder, region, VARIANTS, Path(tmp))
        base = in_process_baseline(folder, region, VARIANTS[2], args.repeats)
        with ServeProcess(folder) as serve:
            timing = latency(serve.url, password, region, expected, args.repeats) if n in sizes else None
            rss = serve.peak_rss_mib()  # the region loaded and the latency runs done, before any load test
            if n == args.load_cases and args.duration > 0:
                load = load_test(serve.url, password, region, expected, args.clients, args.duration)
                load["rss_before_mib"], load["rss_mib"] = rss, serve.peak_rss_mib()
        print(json.dumps({"cases": n, "build_s": build_s, **base, "serve": timing, "rss_mib": rss}), flush=True)
        if timing:
            lines.append(f"| {base['cases']:,} | {build_s:.1f} | {timing['region_load_s']:.2f} | "
                         f"{base['run_scenarios']:.3f} | {base['run_chain']:.3f} | "
                         f"{timing['client_median_s']:.3f} / {timing['client_max_s']:.3f} | "
                         f"{timing['server_median_s']:.3f} / {timing['server_max_s']:.3f} | {rss:,.0f} |")
    if load:
        print(json.dumps(load), flush=True)
        lines += ["", "| load test | clients | seconds | requests | requests/s | p50 ms | p90 ms | p99 ms | max ms | "
                  "slowest login ms | "
                  "runs started | tables compared to the fen | errors | server peak RSS before / after (MiB) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {args.load_cases:,} cases, loopback | {load['clients']} | {load['duration_s']:.0f} | "
                  f"{load['requests']:,} | {load['requests_per_s']:.0f} | {load['p50_ms']:.0f} | "
                  f"{load['p90_ms']:.0f} | {load['p99_ms']:.0f} | {load['max_ms']:.0f} | {load['login_max_ms']:.0f} | "
                  f"{load['runs']:,} | "
                  f"{load['compared']:,} | {load['errors']} | {load['rss_before_mib']:,.0f} / {load['rss_mib']:,.0f} |"]
    print("\n".join(lines))
    if load and load["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
