"""Uploads of `dipsim serve` (issue 19): synthetic claims written as a GB18030 CSV of `--rows` rows, uploaded with
a hospitals table to a `dipsim serve` subprocess on 127.0.0.1 and made into a region (validate, hospitals, the
settleable split, the catalogue, the region loaded: grouping and the baseline's settlement), while a second client
times GET /api/health every 50 ms (does the server keep answering?). The baseline, in the same run: `dipsim validate`
on the same file in a fresh process (validation only: the upload does more).

    python benchmarks/bench_uploads.py [--rows 200000,1000000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def claims_csv(folder: Path, rows: int) -> tuple[Path, Path]:
    """A synthetic region's claims as one GB18030 CSV, and its hospitals table (Parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dipsim.io.writers import write_csv
    from dipsim.synth import synthesize_region

    synthesize_region(folder / "region", cases=rows, hospitals=100, seed=7, year=2025)
    parts = sorted((folder / "region" / "cases").rglob("*.parquet"))
    write_csv(pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive"),
              folder / "utf8.csv", bom=False)
    path = folder / f"claims_{rows}.csv"
    path.write_bytes((folder / "utf8.csv").read_text(encoding="utf-8").encode("gb18030"))
    (folder / "utf8.csv").unlink()
    return path, folder / "region" / "hospitals.parquet"


def upload_once(url: str, password: str, claims: Path, hospitals: Path) -> dict:
    import httpx
    from bench_server import login

    health: list[float] = []
    stop = threading.Event()

    def ping() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                started = time.perf_counter()
                client.get("/api/health").raise_for_status()
                health.append(time.perf_counter() - started)
                time.sleep(0.05)

    with httpx.Client(base_url=url, timeout=600) as client:
        headers = login(client, password)
        pinger = threading.Thread(target=ping, daemon=True)
        pinger.start()
        started = time.perf_counter()
        upload = client.post("/api/uploads", headers=headers, json={"title": "bench"}).json()["id"]
        for slot, path in (("claims", claims), ("hospitals", hospitals)):
            with path.open("rb") as f:
                client.put(f"/api/uploads/{upload}/files/{slot}", params={"name": path.name}, headers=headers,
                           content=f).raise_for_status()
        sent = time.perf_counter()
        client.post(f"/api/uploads/{upload}/process", headers=headers).raise_for_status()
        while (view := client.get(f"/api/uploads/{upload}", headers=headers).json())["status"] not in (
                "done", "failed"):
            time.sleep(0.05)
        done = time.perf_counter()
        region = view.get("region")
        if view["status"] != "done":
            raise RuntimeError(f"the upload failed: {view.get('error')}")
        client.get(f"/api/regions/{region}", headers=headers).raise_for_status()  # the region loaded
        loaded = time.perf_counter()
        stop.set()
        pinger.join()
    counts = view["counts"]
    assert counts["read"] == counts["accepted"] + counts["rejected"], counts
    return {"transfer_s": sent - started, "processing_s": done - sent, "region_load_s": loaded - done,
            "total_s": loaded - started, "read": counts["read"], "health_median_ms": statistics.median(health) * 1e3,
            "health_max_ms": max(health) * 1e3}


def validate_once(claims: Path, out: Path) -> float:
    started = time.perf_counter()
    code = "import sys; from dipsim.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, "validate", str(claims), "-o", str(out), "-q"], check=True,
                   cwd=HERE.parent)
    return time.perf_counter() - started


def main() -> None:
    from bench_server import ServeProcess, bench_account

    from _machine import machine_line

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="200000,1000000")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as tmp:
        for rows in (int(r) for r in args.rows.split(",")):
            folder = Path(tmp) / str(rows)
            claims, hospitals = claims_csv(folder, rows)
            data = folder / "data"
            data.mkdir()
            password = bench_account(data)
            results, validate = [], []
            with ServeProcess(data) as serve:
                for i in range(args.repeats):
                    results.append(upload_once(serve.url, password, claims, hospitals))
                    validate.append(validate_once(claims, folder / f"validated{i}"))
                    print(rows, results[-1], f"validate {validate[-1]:.2f} s", flush=True)
                rss = serve.peak_rss_mib()

            def med(key: str, results=results) -> float:
                return statistics.median(r[key] for r in results)

            v = statistics.median(validate)
            lines.append(f"| {rows:,} | {claims.stat().st_size / 2**20:,.1f} | {med('transfer_s'):.2f} | "
                         f"{med('processing_s'):.2f} | {med('region_load_s'):.2f} | {med('total_s'):.2f} | "
                         f"{rows / med('total_s'):,.0f} | {v:.2f} ({rows / v:,.0f}/s) | "
                         f"{med('health_median_ms'):.0f} / {max(r['health_max_ms'] for r in results):.0f} | "
                         f"{rss:,.0f} |")
    command = f"python benchmarks/bench_uploads.py --rows {args.rows} --repeats {args.repeats}"
    print("\n".join([machine_line(command), "",
                     "| rows | GB18030 CSV (MiB) | transfer (s) | processing (s) | region load (s) | total (s) | "
                     "rows/s | `dipsim validate` alone (s) | health during, median / max (ms) | server peak RSS "
                     "(MiB) |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *lines]))


if __name__ == "__main__":
    main()
