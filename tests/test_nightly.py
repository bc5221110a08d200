"""The nightly job: idempotent reruns, a failure part-way leaves the previous results valid and the next run
recovers, the lock."""

from __future__ import annotations

import shutil

import pytest

from dipsim import nightly
from dipsim.nightly import LockedError, budget_share, run_nightly


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic region (12 monthly partitions), a DIP catalogue and a policy with annual budgets."""
    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.io import load_cases
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("nightly")
    synthesize_region(root / "region", cases=3_000, hospitals=8, seed=77)
    write_catalog(build_catalog(load_cases(root / "region" / "cases").accepted, CatalogOptions()), root / "cat")
    policy = root / "policy.toml"
    policy.write_text('[payment]\nmode = "dip"\n[budget]\ntotal = { "990100-employee" = 9000000.0, '
                      '"990100-resident" = 11000000.0 }\n', encoding="utf-8")
    return root


def months(world, tmp_path, n: int):
    """A claims folder with the first n monthly partitions."""
    claims = tmp_path / "claims"
    claims.mkdir(exist_ok=True)
    for part in sorted((world / "region" / "cases").iterdir())[:n]:
        if not (claims / part.name).exists():
            shutil.copytree(part, claims / part.name)
    return claims


def run(world, tmp_path, claims):
    return run_nightly(claims, world / "policy.toml", world / "region" / "hospitals.parquet", tmp_path / "state",
                       tmp_path / "out", world / "cat", log=lambda _: None)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_rerun_without_new_data_is_byte_identical(world, tmp_path):
    claims = months(world, tmp_path, 6)
    first = run(world, tmp_path, claims)
    before = snapshot(first.run_dir)
    second = run(world, tmp_path, claims)
    assert second.run_id == first.run_id and second.grouped_now == 0 and first.grouped_now == 6
    assert snapshot(second.run_dir) == before
    assert first.budget_share == 0.5  # six months of twelve, pro rata


def test_a_failure_part_way_keeps_the_previous_results_and_the_next_run_recovers(world, tmp_path, monkeypatch):
    claims = months(world, tmp_path, 6)
    good = run(world, tmp_path, claims)
    latest = tmp_path / "out" / "latest"
    before = snapshot(latest)
    months(world, tmp_path, 12)  # six new partitions arrive
    calls = {"n": 0}
    real = nightly._group_partition

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("injected failure after two new partitions")
        return real(*args, **kwargs)

    monkeypatch.setattr(nightly, "_group_partition", failing)
    with pytest.raises(RuntimeError, match="injected"):
        run(world, tmp_path, claims)
    assert latest.resolve() == good.run_dir.resolve() and snapshot(latest) == before  # still the previous run
    assert not (tmp_path / "state" / "lock").exists()  # the lock went with the failed run
    monkeypatch.setattr(nightly, "_group_partition", real)
    recovered = run(world, tmp_path, claims)
    assert recovered.grouped_now == 4  # the two grouped before the failure were kept
    assert latest.resolve() == recovered.run_dir.resolve() and recovered.budget_share == 1.0
    assert snapshot(good.run_dir) == before  # the old run's folder is untouched


def test_the_lock_refuses_a_live_run_and_takes_over_a_dead_one(world, tmp_path):
    import os

    claims = months(world, tmp_path, 2)
    state = tmp_path / "state"
    state.mkdir()
    (state / "lock").write_text(str(os.getpid()))  # a live process holds it
    with pytest.raises(LockedError) as error:
        run(world, tmp_path, claims)
    assert error.value.exit_code == 4
    (state / "lock").write_text("999999999")  # a killed run's lock: no such process
    assert run(world, tmp_path, claims).grouped_now == 2


def test_budget_share_pro_rata_or_by_seasonality():
    assert budget_share([2025 * 12 + 1, 2025 * 12 + 2, 2025 * 12 + 3], None) == 0.25
    season = {m: (2.0 if m == 12 else 1.0) for m in range(1, 13)}  # December twice a normal month: 13 parts
    assert budget_share([2025 * 12 + m for m in range(1, 12)], season) == pytest.approx(11 / 13)


def test_a_killed_run_leaves_the_previous_results_and_the_next_run_recovers(world, tmp_path):
    """SIGKILL while the new partitions are being grouped: `latest` stays the previous run, the stale lock is taken
    over, and the partitions cached before the kill are not grouped again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    claims = months(world, tmp_path, 6)
    good = run(world, tmp_path, claims)
    before = snapshot(tmp_path / "out" / "latest")
    months(world, tmp_path, 12)
    cache = tmp_path / "state" / "partitions"
    args = [sys.executable, "-m", "dipsim.cli", "nightly", "--claims", str(claims), "--policy",
            str(world / "policy.toml"), "--hospitals", str(world / "region" / "hospitals.parquet"), "--catalog",
            str(world / "cat"), "--state", str(tmp_path / "state"), "--out", str(tmp_path / "out"), "-q"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(cache.glob("*.parquet"))) < 7 and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(cache.glob("*.parquet")))
    if done == 12:
        pytest.skip("the run finished grouping before it could be killed")
    assert (tmp_path / "out" / "latest").resolve() == good.run_dir.resolve()
    assert snapshot(tmp_path / "out" / "latest") == before
    assert (tmp_path / "state" / "lock").exists()  # left behind by the killed process
    recovered = run(world, tmp_path, claims)
    assert recovered.grouped_now == 12 - done and recovered.budget_share == 1.0


def test_the_chunked_engine_equals_the_in_memory_one_to_the_fen(world, tmp_path):
    claims = months(world, tmp_path, 12)
    chunked = run_nightly(claims, world / "policy.toml", world / "region" / "hospitals.parquet", tmp_path / "s1",
                          tmp_path / "o1", world / "cat", log=lambda _: None, engine="chunked")
    memory = run_nightly(claims, world / "policy.toml", world / "region" / "hospitals.parquet", tmp_path / "s2",
                         tmp_path / "o2", world / "cat", log=lambda _: None, engine="memory")
    for name in ("hospitals.csv", "pools.csv"):
        assert (chunked.run_dir / name).read_bytes() == (memory.run_dir / name).read_bytes(), name


def test_the_dask_engine_equals_the_in_process_one(world, tmp_path):
    pytest.importorskip("dask.distributed")
    claims = months(world, tmp_path, 12)
    local = run_nightly(claims, world / "policy.toml", world / "region" / "hospitals.parquet", tmp_path / "s1",
                        tmp_path / "o1", world / "cat", log=lambda _: None, engine="chunked")
    dask = run_nightly(claims, world / "policy.toml", world / "region" / "hospitals.parquet", tmp_path / "s2",
                       tmp_path / "o2", world / "cat", log=lambda _: None, engine="dask")
    assert dask.grouped_now == 12
    for name in ("hospitals.csv", "pools.csv"):
        assert (dask.run_dir / name).read_bytes() == (local.run_dir / name).read_bytes(), name


def test_small_batches_give_the_same_results_and_every_row_is_counted(world, tmp_path, monkeypatch):
    """A partition with a bad row and a case id repeated far apart, and an empty partition: read in batches of 50
    or whole, the results and rejects are the same, and rows read = accepted + rejected in the manifest."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    claims = months(world, tmp_path, 3)
    first = sorted(claims.glob("*/*.parquet"))[0]
    table = pq.read_table(first)
    ids = table["case_id"].to_pylist()
    ids[-1] = ids[0]  # a duplicate, batches apart
    cost = pc.multiply(table["total_cost"], pa.array([-1.0 if i == 7 else 1.0 for i in range(table.num_rows)]))
    table = table.set_column(table.schema.get_field_index("case_id"), "case_id", pa.array(ids, pa.string()))
    table = table.set_column(table.schema.get_field_index("total_cost"), "total_cost", cost)
    pq.write_table(table, first)
    (claims / "discharge_month=2025-13").mkdir()
    pq.write_table(table.slice(0, 0), claims / "discharge_month=2025-13" / "part-0.parquet")
    whole = run(world, tmp_path / "whole", claims)
    monkeypatch.setattr(nightly, "BATCH_ROWS", 50)
    batched = run(world, tmp_path / "batched", claims)
    for name in ("hospitals.csv", "pools.csv", "rejects.csv"):
        assert (batched.run_dir / name).read_bytes() == (whole.run_dir / name).read_bytes(), name
    manifest = json.loads((batched.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["totals"] == {"rows_read": sum(pq.read_metadata(f).num_rows for f in claims.glob("*/*.parquet")),
                                  "accepted": manifest["totals"]["rows_read"] - 2, "rejected": 2,
                                  "duplicates_of_earlier_partitions": 0}
    reasons = (batched.run_dir / "rejects.csv").read_text(encoding="utf-8-sig")
    assert "duplicate case id (first at row 1)" in reasons and "negative amount" in reasons
    assert manifest["partitions"][-1]["rows_read"] == 0


def test_supervision_consequences_are_applied_across_partitions_as_settle_applies_them(world, tmp_path):
    """Supervision cuts were refused by the nightly job (its cache kept no patient histories). The cache now keeps
    what the screens read, and a year with the split-stay cut pays every hospital what `dipsim settle` pays it on
    the same year, to the fen: a split stay whose readmission falls in the next month's partition is found too."""
    import pyarrow.csv as pacsv

    from dipsim.cli import main

    policy = tmp_path / "policy.toml"
    policy.write_text((world / "policy.toml").read_text(encoding="utf-8")
                      + "[supervision]\nsplit_readmission_factor = 0.5\n", encoding="utf-8")
    claims = months(world, tmp_path, 12)
    result = run_nightly(claims, policy, world / "region" / "hospitals.parquet", tmp_path / "state",
                         tmp_path / "out", world / "cat", log=lambda _: None)
    assert result.budget_share == 1.0
    assert main(["settle", str(claims), "--policy", str(policy), "--hospitals",
                 str(world / "region" / "hospitals.parquet"), "--catalog", str(world / "cat"), "-o",
                 str(tmp_path / "settled"), "-q"]) == 0
    as_text = pacsv.ConvertOptions(column_types={"hospital_id": "string", "pool": "string"})
    nightly_rows = pacsv.read_csv(result.run_dir / "hospitals.csv", convert_options=as_text).to_pylist()
    settle_rows = pacsv.read_csv(tmp_path / "settled" / "hospitals.csv", convert_options=as_text).to_pylist()
    assert nightly_rows == settle_rows
    plain = run(world, tmp_path / "plain", claims)  # without the cut the money differs: the cut was applied
    plain_rows = pacsv.read_csv(plain.run_dir / "hospitals.csv", convert_options=as_text).to_pylist()
    assert [r["points"] for r in plain_rows] != [r["points"] for r in nightly_rows]


# ---------------------------------------------------------------- the chunked engine's columns and worker processes


def doctored(world, tmp_path):
    """Twelve months of claims, March's partition with a row of each kind validation rejects on a column the
    nightly job needs for nothing else (sex, age, birth weight, discharge mode, the fund's amount), a department
    and a column of the export's own (备注, mapped onto no case field) with a text longer than a spreadsheet cell,
    and a case id repeated."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    claims = months(world, tmp_path, 12)
    march = claims / "discharge_month=2025-03" / "part-0.parquet"
    table = pq.read_table(march)
    n = table.num_rows

    def put(name, row, value):
        values = table[name].to_pylist()
        values[row] = value
        return table.set_column(table.schema.get_field_index(name), name, pa.array(values, table[name].type))

    table = put("sex", 3, 7)
    table = put("age_years", 5, 200)
    table = put("birth_weight_g", 8, 20_000)
    table = put("discharge_mode", 13, 7)
    table = put("fund_paid", 21, table["total_cost"][21].as_py() + 100.0)
    table = put("department", 34, "科" * 40_000)
    table = put("case_id", 55, table["case_id"][2].as_py())
    note = ["" for _ in range(n)]
    note[89] = "x" * 40_000
    table = table.append_column("备注", pa.array(note, pa.string()))
    assert pc.sum(pc.equal(table["case_id"], table["case_id"][2])).as_py() == 2
    pq.write_table(table, march)
    return claims, march


def test_the_nightly_rejects_what_settle_rejects_and_pays_what_settle_pays(world, tmp_path):
    """The nightly job reads fewer columns than `dipsim settle` (department and the export's own columns are only
    checked for their length first): its rejects are settle's, line for line, and so is the money."""
    import pyarrow.csv as pacsv

    from dipsim.cli import main

    claims, march = doctored(world, tmp_path)
    assert nightly.read_columns(march) is None  # a text too long in a column left out: read whole
    april = claims / "discharge_month=2025-04" / "part-0.parquet"
    assert "department" not in nightly.read_columns(april) and "diagnoses" in nightly.read_columns(april)
    result = run(world, tmp_path, claims)
    assert main(["settle", str(claims), "--policy", str(world / "policy.toml"), "--hospitals",
                 str(world / "region" / "hospitals.parquet"), "--catalog", str(world / "cat"), "-o",
                 str(tmp_path / "settled"), "-q"]) == 0
    as_text = pacsv.ConvertOptions(column_types={"hospital_id": "string", "pool": "string", "case_id": "string",
                                                 "value": "string"})

    def rows(path):
        return pacsv.read_csv(path, convert_options=as_text).to_pylist()

    nightly_rejects, settle_rejects = rows(result.run_dir / "rejects.csv"), rows(tmp_path / "settled" / "rejects.csv")
    assert nightly_rejects == settle_rejects
    assert [(r["row"], r["field"]) for r in nightly_rejects] == [
        (4, "sex"), (6, "age_years"), (9, "birth_weight_g"), (14, "discharge_mode"), (22, "fund_paid"),
        (35, "department"), (56, "case_id"), (90, "备注")]
    assert {r["file"] for r in nightly_rejects} == {str(march)}
    assert result.totals["rejected"] == 8
    assert rows(result.run_dir / "hospitals.csv") == rows(tmp_path / "settled" / "hospitals.csv")


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_worker_processes_give_the_same_files_byte_for_byte(world, tmp_path, monkeypatch):
    """Grouped and priced in two worker processes (small batches, so that a partition is several), the results
    are those of one process, byte for byte, and so is the cache but for its row groups."""
    import pyarrow.parquet as pq

    claims, _ = doctored(world, tmp_path)
    monkeypatch.setattr(nightly, "BATCH_ROWS", 64)
    runs = {}
    for processes in (1, 2):
        runs[processes] = run_nightly(claims, world / "policy.toml", world / "region" / "hospitals.parquet",
                                      tmp_path / f"s{processes}", tmp_path / f"o{processes}", world / "cat",
                                      log=lambda _: None, processes=processes)
    assert runs[1].run_id == runs[2].run_id and runs[2].grouped_now == 12
    assert files_of(runs[1].run_dir) == files_of(runs[2].run_dir)
    cache = {processes: files_of(tmp_path / f"s{processes}" / "partitions") for processes in (1, 2)}
    assert len(cache[1]) == 36 and cache[1].keys() == cache[2].keys()  # cases, rejects, case-id hashes of 12
    for name in cache[1]:
        if "/" in name:  # rejects and case-id hashes: the same bytes
            assert cache[1][name] == cache[2][name], name
        else:  # the cases: the same table and counts, in row groups of a worker's batch (half one process's)
            one, two = (pq.read_table(tmp_path / f"s{p}" / "partitions" / name) for p in (1, 2))
            assert one.equals(two, check_metadata=True) and one.num_rows > 64, name


def test_a_failing_partition_in_a_worker_fails_the_run_and_the_next_run_recovers(world, tmp_path):
    """A partition that cannot be grouped (no diagnoses column) fails the run with its error, raised from the
    worker; `latest` stays the previous run, the lock is released, the partitions grouped are kept, and once the
    partition is fixed the next run groups only what is left."""
    import pyarrow.parquet as pq

    claims = months(world, tmp_path, 6)
    good = run(world, tmp_path, claims)
    months(world, tmp_path, 12)
    june = claims / "discharge_month=2025-11" / "part-0.parquet"
    whole = pq.read_table(june)
    pq.write_table(whole.drop_columns(["diagnoses"]), june)
    with pytest.raises(nightly.InputError, match="no column for diagnoses"):
        run_nightly(claims, world / "policy.toml", world / "region" / "hospitals.parquet", tmp_path / "state",
                    tmp_path / "out", world / "cat", log=lambda _: None, processes=2)
    assert (tmp_path / "out" / "latest").resolve() == good.run_dir.resolve()
    assert not (tmp_path / "state" / "lock").exists()
    assert not list((tmp_path / "state" / "partitions").glob(".*"))  # no temporary file left behind
    pq.write_table(whole, june)
    recovered = run(world, tmp_path, claims)
    assert 1 <= recovered.grouped_now <= 6 and recovered.budget_share == 1.0


def test_the_processes_setting(monkeypatch):
    workers = nightly._Workers(None)
    monkeypatch.delenv(nightly.PROCESSES_ENV, raising=False)
    assert workers.count(nightly.PARALLEL_MIN_ROWS - 1, 12) == 1  # too few cases to repay the workers' start
    assert workers.count(nightly.PARALLEL_MIN_ROWS, 12) == min(2, len(__import__("os").sched_getaffinity(0)))
    assert workers.count(10**9, 1) == 1  # one partition: this process
    monkeypatch.setenv(nightly.PROCESSES_ENV, "1")
    assert workers.count(10**9, 12) == 1
    monkeypatch.setenv(nightly.PROCESSES_ENV, "3")
    assert workers.count(10, 12) == 3
    assert nightly._Workers(1).count(10**9, 12) == 1
    monkeypatch.setenv(nightly.PROCESSES_ENV, "two")
    with pytest.raises(nightly.InputError, match="DIPSIM_NIGHTLY_PROCESSES"):
        workers.count(10, 12)


def test_a_killed_run_leaves_no_worker_process_behind(world, tmp_path):
    """SIGKILL of a run grouping in two worker processes: the workers see it and exit (nothing keeps running, or
    waits for work, after the run that started them)."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    claims = months(world, tmp_path, 12)
    args = [sys.executable, "-m", "dipsim.cli", "nightly", "--claims", str(claims), "--policy",
            str(world / "policy.toml"), "--hospitals", str(world / "region" / "hospitals.parquet"), "--catalog",
            str(world / "cat"), "--state", str(tmp_path / "state"), "--out", str(tmp_path / "out"), "-q"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, nightly.PROCESSES_ENV: "2"})
    deadline = time.time() + 120
    children: list = []
    while process.poll() is None and time.time() < deadline:
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(process.pid).children()
            if sum("spawn_main" in " ".join(child.cmdline()) for child in children) == 2:
                break
        time.sleep(0.05)
    if process.poll() is not None:
        pytest.skip("the run ended before its workers could be seen")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    gone, alive = psutil.wait_procs(children, timeout=30)  # the workers, and multiprocessing's resource tracker
    assert len(gone) >= 2 and not alive


def test_first_items_cut_each_list_to_its_first_code():
    """The cached principal codes: each list cut to its first item (null list null, empty list empty, a null first
    code kept null), from list<string> and list<dictionary<string>>, sliced or not, over several chunks."""
    import pyarrow as pa

    lists = [["A10.x00", "B20.000"], [], None, [None, "C30.100"], ["D40.000"], None, ["E50.000", None]]
    want = [None if v is None else v[:1] for v in lists]  # plain Python
    kind = pa.list_(pa.string())
    for value_type in (pa.string(), pa.dictionary(pa.int32(), pa.string())):
        whole = pa.array(lists, pa.list_(value_type))
        column = pa.chunked_array([whole.slice(0, 3), whole.slice(3)])
        got = nightly._first_items(column, kind)
        assert got.type == kind and got.to_pylist() == want
        assert nightly._first_items(pa.chunked_array([whole.slice(2, 4)]), kind).to_pylist() == want[2:6]
