"""The loopback load test of benchmarks/bench_server.py, shorter (slow; run with -m slow): a `dipsim serve`
subprocess on 127.0.0.1 over a small demo region, 20 clients for 10 s starting runs and reading results, 0 errors,
and every hospital table read equal to `dipsim scenarios run`'s to the fen."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_server


@pytest.mark.slow
def test_twenty_clients_ten_seconds_no_errors_and_the_command_lines_numbers(tmp_path):
    folder = tmp_path / "data"
    region = bench_server.ensure_data(folder, 3000, 12)
    password = bench_server.bench_account(folder)
    expected = bench_server.cli_expected(folder, region, bench_server.VARIANTS, tmp_path)
    assert len(expected) > 12 * len(bench_server.VARIANTS)
    with bench_server.ServeProcess(folder) as serve:
        load = bench_server.load_test(serve.url, password, region, expected, clients=20, duration=10)
        assert serve.process.poll() is None  # still up
    assert load["errors"] == 0, load["first_errors"]
    assert load["still_running"] == 0
    assert load["runs"] >= 5 and load["compared"] >= load["runs"] and load["requests"] >= 100
