"""A case id accepted from an earlier partition of a folder is rejected in a later one (`EarlierCaseIds`), and one
repeated within a large file read in batches is rejected as in one read (`_file_first_rows`). Both keep 64-bit
hashes of the ids, not the ids; a hash match is only a candidate, confirmed on the ids themselves. Here the hash
is also replaced by one that makes nearly every id collide: no good row may be rejected, and real repeats still
are, with the same reasons (file and row of the first occurrence), in the same order.

Expected lines come from a plain walk over the rows (`_expected`), not from the code under test."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipsim.io import load_cases
from dipsim.io.case_id_hashes import HashRuns
from dipsim.io.validate import iter_case_batches

# A header mapping of the case id column: the read-back of an earlier file's ids must use it as the read did.
MAPPING = {"我们的编号": "case_id"}


def _folder(root: Path, seed: int) -> tuple[Path, dict[str, list[tuple[str, float]]]]:
    """Four partitions (and one copied beside itself) whose ids come from a small pool, with blanks, padded and
    full-width spellings of the same id, repeats within a file (over its row groups) and across files, and a few
    negative costs (a row rejected for its cost: its id is not taken, a later file's row with it is accepted)."""
    rng = random.Random(seed)
    pool = [f"P{k}" for k in range(25)]
    files: dict[str, list[tuple[str, float]]] = {}
    for month in ("2025-01", "2025-02", "2025-03", "2025-04"):
        rows = []
        for _ in range(rng.randint(20, 45)):
            case_id = rng.choice(pool)
            case_id = rng.choice([case_id, case_id, f" {case_id} ", case_id.replace("P", "Ｐ"), "", "  "])
            rows.append((case_id, -5.0 if rng.random() < 0.08 else float(rng.randint(100, 900))))
        files[f"discharge_month={month}/part-0.parquet"] = rows
    folder = root / "cases"
    for name, rows in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({"我们的编号": [r[0] for r in rows], "住院天数": [3] * len(rows),
                          "诊断编码": ["K35.800"] * len(rows), "医疗总费用": [r[1] for r in rows]})
        pq.write_table(table, folder / name, row_group_size=7)  # several row groups a file
    copy = "discharge_month=2025-03/part-0 copy.parquet"  # sorts before part-0.parquet
    shutil.copy(folder / "discharge_month=2025-03/part-0.parquet", folder / copy)
    files[copy] = files["discharge_month=2025-03/part-0.parquet"]
    return folder, {name: files[name] for name in sorted(files, key=lambda n: str(folder / n))}


def _expected(folder: Path, files: dict[str, list[tuple[str, float]]]) -> list[tuple[str, int, str, str]]:
    """(file, row, case id, reason) of every reject line about a case id, and of the negative costs, in file and
    row order: a row-by-row walk. Within a file the first row of an id is kept; of the kept, an id accepted from an
    earlier file is rejected naming that file and row."""
    import unicodedata

    accepted: dict[str, tuple[str, int]] = {}
    lines = []
    for name, rows in files.items():
        path = str(folder / name)
        first_in_file: dict[str, int] = {}
        for row, (raw_id, cost) in enumerate(rows, start=1):
            case_id = unicodedata.normalize("NFKC", raw_id).strip()
            if not case_id:
                lines.append((path, row, "", "missing case id"))
                if cost < 0:
                    lines.append((path, row, "", "negative amount (yuan)"))
                continue
            if case_id in first_in_file:
                lines.append((path, row, case_id, f"duplicate case id (first at row {first_in_file[case_id]})"))
                if cost < 0:
                    lines.append((path, row, case_id, "negative amount (yuan)"))
                continue
            first_in_file[case_id] = row
            if cost < 0:
                lines.append((path, row, case_id, "negative amount (yuan)"))
            elif case_id in accepted:
                first_name, first_row = accepted[case_id]
                lines.append((path, row, case_id, f"duplicate case id (first at row {first_row} of {first_name})"))
            else:
                accepted[case_id] = (name, row)
    return lines


def _lines(rejects: pa.Table) -> list[tuple[str, int, str, str]]:
    return [(r["file"], r["row"], r["case_id"], r["reason"]) for r in rejects.to_pylist()
            if r["field"] in ("case_id", "total_cost")]


HASHINGS = {
    "real": None,
    "one hash for all": lambda ids: np.zeros(len(ids), np.uint64),
    "three hashes": lambda ids: np.array([len(i) % 3 for i in pa.array(ids).to_pylist()], np.uint64),
}


@pytest.mark.parametrize("hashing", sorted(HASHINGS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_repeats_across_and_within_files_whatever_the_hash(tmp_path, monkeypatch, hashing, seed):
    import dipsim.io.case_id_hashes as hashes
    from dipsim.io import pipeline

    folder, files = _folder(tmp_path, seed)
    expected = _expected(folder, files)
    assert any(" of " in line[3] for line in expected) and any("first at" in line[3] and " of " not in line[3]
                                                               for line in expected)
    if HASHINGS[hashing]:
        monkeypatch.setattr(hashes, "case_id_hashes", HASHINGS[hashing])
    whole = load_cases(folder, header_mapping=MAPPING)  # a file at a time (`_partition_results`)
    assert _lines(whole.rejects) == expected
    pieces = list(iter_case_batches(folder, 5, header_mapping=MAPPING))  # 5 rows at a time: `_file_first_rows`
    assert len(pieces) > 2 * len(files)
    rejects = pa.concat_tables([p.rejects for p in pieces])
    assert _lines(rejects) == expected and rejects.equals(whole.rejects)
    assert pa.concat_tables([p.accepted for p in pieces]).equals(whole.accepted)
    monkeypatch.setattr(pipeline, "VALIDATE_BATCH_ROWS", 4)
    summary = pipeline.validate_to_dir(folder, tmp_path / "validated", header_mapping=MAPPING)
    written = pd.read_csv(summary.rejects_path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert _lines(pa.Table.from_pandas(written.astype({"row": int}))) == expected
    kept = [case_id for p in sorted((tmp_path / "validated" / "accepted").glob("*.parquet"))
            for case_id in pq.read_table(p)["case_id"].to_pylist()]
    assert kept == whole.accepted["case_id"].to_pylist()
    assert len(kept) == len(set(kept))


def test_a_row_is_read_back_from_its_own_row_group(tmp_path, monkeypatch):
    """With every id hashed alike, each id of the second file is a candidate against every row of the first: the
    ids read back (from several row groups) decide, and only the real repeat goes."""
    import dipsim.io.case_id_hashes as hashes

    folder = tmp_path / "cases"
    folder.mkdir()
    pq.write_table(pa.table({"case_id": [f"A{k}" for k in range(30)], "los_days": [3] * 30,
                             "diagnoses": ["K35.800"] * 30}), folder / "a.parquet", row_group_size=4)
    pq.write_table(pa.table({"case_id": ["B1", "A17", "B2"], "los_days": [3] * 3, "diagnoses": ["K35.800"] * 3}),
                   folder / "b.parquet")
    monkeypatch.setattr(hashes, "case_id_hashes", lambda ids: np.zeros(len(ids), np.uint64))
    result = load_cases(folder)
    assert [(r["file"], r["row"], r["reason"]) for r in result.rejects.to_pylist()] == [
        (str(folder / "b.parquet"), 2, "duplicate case id (first at row 18 of a.parquet)")]
    assert result.accepted["case_id"].to_pylist() == [f"A{k}" for k in range(30)] + ["B1", "B2"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 12), max_size=25), st.booleans()), max_size=12),
       st.lists(st.integers(0, 14), max_size=30), st.integers(1, 4))
def test_hash_runs_find_every_sealed_entry_of_a_hash(batches, wanted, max_runs):
    """Batches of small hashes (many equal) added one after another, sealed or not after each, the shortest runs
    merged past `max_runs`: every sealed entry of each hash looked for is found, ordered by position and then by
    place, as a scan of everything sealed finds them; an entry added but not sealed is not found."""
    runs, added, sealed, place = HashRuns(), [], [], 1
    runs.MAX_RUNS = max_runs
    for batch, seal in batches:
        places = np.arange(place, place + len(batch))
        place += len(batch)
        runs.add(np.array(batch, np.uint64), places)
        added += list(zip(batch, places.tolist()))
        if seal:
            runs.seal()
            sealed = list(added)
    assert len(runs) == len(added)
    position, found = runs.find(np.array(wanted, np.uint64))
    expected = [(i, p) for i, w in enumerate(wanted) for h, p in sealed if h == w]
    assert list(zip(position.tolist(), found.tolist())) == expected


def test_hash_runs_keep_64_bit_places_and_full_range_hashes():
    runs = HashRuns()
    runs.MAX_RUNS = 1
    top = 2**64 - 1
    runs.add(np.array([top, 0, 5], np.uint64), np.array([1, 2, 3]))
    runs.seal()
    runs.add(np.array([5, top, 7], np.uint64), np.array([2**40, 2**40 + 1, 2**40 + 2]))
    runs.seal()  # merged into one run: the places widen to 64 bits
    position, found = runs.find(np.array([5, top, 6], np.uint64))
    assert position.tolist() == [0, 0, 1, 1] and found.tolist() == [3, 2**40, 1, 2**40 + 1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 20), max_size=60),
       st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 20), max_size=60))
def test_lower_bounds_are_numpys_searchsorted(run, queries):
    from dipsim.io.case_id_hashes import _lower_bounds

    run, queries = np.sort(np.array(run, np.uint64)), np.sort(np.array(queries, np.uint64))
    out = np.empty(len(queries), np.int64)
    _lower_bounds(run, queries, out)
    assert out.tolist() == np.searchsorted(run, queries).tolist()
