"""Folders of Parquet partitions (issue 15): a case id is paid once however the partitions are copied, a `dipsim
validate` output is complete or refused, and a file that is not Parquet is a one-line exit-1 error naming it.
Written as the operator's mistakes: a month's file copied beside itself, January's folder copied as December, a
re-sent batch, a validate run killed by a full disk, a CSV renamed .parquet, a file cut short."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipsim import nightly
from dipsim.cli import main
from dipsim.io import InputError, load_cases
from dipsim.io.case_id_hashes import case_id_hashes
from dipsim.nightly import run_nightly

MARCH = "discharge_month=2025-03"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic region of 12 monthly partitions and a CHS-DRG policy with annual budgets."""
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("folders")
    synthesize_region(root / "region", cases=2_400, hospitals=8, seed=11)
    (root / "policy.toml").write_text('[payment]\nmode = "drg"\n[budget]\ntotal = { "990100-employee" = 5000000.0, '
                                      '"990100-resident" = 6000000.0 }\n', encoding="utf-8")
    return root


def claims(world, folder: Path, months: range = range(1, 13)) -> Path:
    """A claims folder with the region's partitions of `months`."""
    for month in months:
        name = f"discharge_month=2025-{month:02d}"
        shutil.copytree(world / "region" / "cases" / name, folder / name)
    return folder


def rows_of(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def run(world, claims_dir: Path, state: Path, out: Path, **kwargs):
    return run_nightly(claims_dir, world / "policy.toml", world / "region" / "hospitals.parquet", state, out,
                       log=lambda _: None, **kwargs)


def money(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in ("hospitals.csv", "pools.csv")}


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def rejects(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", dtype={"case_id": str, "value": str})


# ---------------------------------------------------------------- nightly: a case id is paid once in the year


def test_nightly_a_month_file_copied_beside_itself_is_not_paid_twice(world, tmp_path, capsys):
    """`part-0 copy.parquet` has the same bytes, so the same sha256 and the same cache file: it was settled as
    extra claims. Now its cases are rejected (the copy sorts first, so the original's rows are the repeats) and
    the money is the clean year's, to the byte; on screen, in the manifest and in rejects.csv."""
    clean = run(world, claims(world, tmp_path / "clean"), tmp_path / "state", tmp_path / "out-clean")
    folder = claims(world, tmp_path / "claims")
    march = folder / MARCH / "part-0.parquet"
    shutil.copy(march, folder / MARCH / "part-0 copy.parquet")
    args = ["nightly", "--claims", str(folder), "--policy", str(world / "policy.toml"), "--hospitals",
            str(world / "region" / "hospitals.parquet"), "--state", str(tmp_path / "state"), "--out",
            str(tmp_path / "out"), "-q"]
    assert main(args) == 0
    copied, total = rows_of(march), 2_400 + rows_of(march)
    assert (f"rows read {total:,} = accepted 2,400 + rejected {copied:,} (duplicate case ids of earlier "
            f"partitions {copied:,})") in capsys.readouterr().out
    latest = tmp_path / "out" / "latest"
    assert money(latest) == money(clean.run_dir)
    assert manifest(latest)["totals"] == {"rows_read": total, "accepted": 2_400, "rejected": copied,
                                          "duplicates_of_earlier_partitions": copied}
    lines = rejects(latest / "rejects.csv")
    assert len(lines) == copied and set(lines["file"]) == {str(march)}
    assert lines["row"].tolist() == list(range(1, copied + 1))
    assert lines["case_id"].tolist() == pq.read_table(march)["case_id"].to_pylist()
    assert lines["reason"][4] == f"duplicate case id (first at row 5 of {MARCH}/part-0 copy.parquet)"
    before = {p.name: p.read_bytes() for p in latest.iterdir()}
    assert main(args) == 0  # a rerun with the same data: the same files, byte for byte
    assert {p.name: p.read_bytes() for p in latest.iterdir()} == before


def test_nightly_january_copied_as_december_changes_nothing_but_the_rejects(world, tmp_path):
    clean = run(world, claims(world, tmp_path / "clean", range(1, 12)), tmp_path / "s1", tmp_path / "o1")
    folder = claims(world, tmp_path / "claims", range(1, 12))
    shutil.copytree(folder / "discharge_month=2025-01", folder / "discharge_month=2025-12")
    result = run(world, folder, tmp_path / "s2", tmp_path / "o2")
    january = rows_of(folder / "discharge_month=2025-01" / "part-0.parquet")
    assert money(result.run_dir) == money(clean.run_dir)
    assert result.budget_share == clean.budget_share == 11 / 12  # the copy adds no month
    assert result.totals["rejected"] == result.totals["duplicates_of_earlier_partitions"] == january
    lines = rejects(result.run_dir / "rejects.csv")
    assert set(lines["file"]) == {str(folder / "discharge_month=2025-12" / "part-0.parquet")}
    assert lines["reason"][0] == "duplicate case id (first at row 1 of discharge_month=2025-01/part-0.parquet)"


def test_nightly_a_resent_batch_repeating_last_nights_cases_is_rejected_tonight(world, tmp_path):
    """Last night February was grouped and cached; tonight April arrives with a file re-sending five February
    cases at twice the cost (other bytes, so a new cache file). They are rejected, naming February's rows."""
    folder = claims(world, tmp_path / "claims", range(1, 4))
    assert run(world, folder, tmp_path / "state", tmp_path / "out").grouped_now == 3
    claims(world, folder, range(4, 5))
    clean = run(world, folder, tmp_path / "s-clean", tmp_path / "o-clean")
    february = pq.read_table(folder / "discharge_month=2025-02" / "part-0.parquet")
    resent = february.slice(2, 5)
    resent = resent.set_column(resent.schema.get_field_index("total_cost"), "total_cost",
                               pa.array([c * 2 for c in resent["total_cost"].to_pylist()]))
    pq.write_table(resent, folder / "discharge_month=2025-04" / "part-1.parquet")
    tonight = run(world, folder, tmp_path / "state", tmp_path / "out")
    assert tonight.grouped_now == 2  # April's two files; January to March come from last night's cache
    assert money(tonight.run_dir) == money(clean.run_dir)
    assert tonight.totals["duplicates_of_earlier_partitions"] == 5
    lines = rejects(tonight.run_dir / "rejects.csv")
    assert lines["row"].tolist() == [1, 2, 3, 4, 5]
    assert lines["reason"].tolist() == [f"duplicate case id (first at row {r} of "
                                        "discharge_month=2025-02/part-0.parquet)" for r in (3, 4, 5, 6, 7)]


@pytest.mark.parametrize("engine", ["memory", "dask"])
def test_every_engine_leaves_the_copies_out_alike(world, tmp_path, engine):
    if engine == "dask":
        pytest.importorskip("dask.distributed")
    folder = claims(world, tmp_path / "claims")
    shutil.copy(folder / MARCH / "part-0.parquet", folder / MARCH / "part-0 copy.parquet")
    shutil.copytree(folder / "discharge_month=2025-01", folder / "discharge_month=2025-13")
    chunked = run(world, folder, tmp_path / "s1", tmp_path / "o1", engine="chunked")
    other = run(world, folder, tmp_path / "s2", tmp_path / "o2", engine=engine)
    for name in ("hospitals.csv", "pools.csv", "rejects.csv", "manifest.json"):
        assert (other.run_dir / name).read_bytes() == (chunked.run_dir / name).read_bytes(), name
    expected = (rows_of(folder / MARCH / "part-0.parquet")
                + rows_of(folder / "discharge_month=2025-01" / "part-0.parquet"))
    assert other.totals["duplicates_of_earlier_partitions"] == expected


def test_a_hash_collision_never_drops_a_case(world, tmp_path, monkeypatch):
    """With every case id hashed alike, the ids themselves decide: the same money and the same rejects (only the
    copy's cases) as with the real hash."""
    folder = claims(world, tmp_path / "claims", range(1, 4))
    shutil.copy(folder / MARCH / "part-0.parquet", folder / MARCH / "part-0 copy.parquet")
    real = run(world, folder, tmp_path / "s1", tmp_path / "o1")
    monkeypatch.setattr(nightly, "case_id_hashes", lambda ids: np.zeros(len(ids), np.uint64))
    colliding = run(world, folder, tmp_path / "s2", tmp_path / "o2")
    for name in ("hospitals.csv", "pools.csv", "rejects.csv"):
        assert (colliding.run_dir / name).read_bytes() == (real.run_dir / name).read_bytes(), name
    assert colliding.totals["duplicates_of_earlier_partitions"] == rows_of(folder / MARCH / "part-0.parquet")


def _fnv1a_splitmix(text: str) -> int:
    """The hash in plain Python, from the published constants (FNV-1a 64, then the splitmix64 finaliser)."""
    mask = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & mask
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & mask
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & mask
    return h ^ (h >> 31)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=40), st.integers(0, 39))
def test_case_id_hashes_are_fnv1a_of_the_utf8_bytes_however_the_array_is_cut(ids, cut):
    cut = min(cut, len(ids))
    expected = [_fnv1a_splitmix(i) for i in ids]
    assert case_id_hashes(pa.array(ids)).tolist() == expected
    chunked = pa.chunked_array([pa.array(ids[:cut], pa.string()), pa.array(ids[cut:], pa.string())])
    assert case_id_hashes(chunked).tolist() == expected
    assert case_id_hashes(pa.array(["x", *ids]).slice(1)).tolist() == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sets(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63, 2**64 - 1])), max_size=6),
       st.integers(1, 5))
def test_shared_hashes_are_those_of_two_partitions_in_any_bucket_size(partitions, batch_rows):
    from unittest import mock

    arrays = [np.array(sorted(p), np.uint64) for p in partitions]
    counts = Counter(h for p in partitions for h in p)
    with mock.patch.object(nightly, "BATCH_ROWS", batch_rows):
        found = nightly._shared_hashes(arrays)
    assert found.tolist() == sorted(h for h, n in counts.items() if n > 1)


# ---------------------------------------------------------------- group, settle, screen on a folder


def _copied(world, tmp_path) -> tuple[Path, Path]:
    folder = claims(world, tmp_path / "claims")
    shutil.copy(folder / MARCH / "part-0.parquet", folder / MARCH / "part-0 copy.parquet")
    return folder, folder / MARCH / "part-0.parquet"


def test_group_on_a_folder_names_the_partition_and_row_a_copied_case_came_from(world, tmp_path, capsys):
    folder, march = _copied(world, tmp_path)
    copied = rows_of(march)
    out = tmp_path / "groups.csv"
    assert main(["group", str(folder), "-o", str(out), "-q"]) == 0
    assert (f"rows read {2_400 + copied:,} = accepted 2,400 + rejected {copied:,} (duplicate case ids {copied:,})"
            in capsys.readouterr().out)
    groups = pd.read_csv(out, encoding="utf-8-sig", dtype=str)
    assert len(groups) == groups["case_id"].nunique() == 2_400
    lines = rejects(tmp_path / "groups.rejects.csv")
    assert set(lines["file"]) == {str(march)} and lines["row"].tolist() == list(range(1, copied + 1))
    assert lines["reason"][0] == f"duplicate case id (first at row 1 of {MARCH}/part-0 copy.parquet)"


def test_validate_counts_a_copied_partition_as_one_kind_of_reject(world, tmp_path, capsys):
    folder, march = _copied(world, tmp_path)
    copied = rows_of(march)
    assert main(["validate", str(folder), "-o", str(tmp_path / "v"), "-q"]) == 0
    assert (f"rows read {2_400 + copied:,} = accepted 2,400 + rejected {copied:,} (duplicate case ids {copied:,}); "
            in capsys.readouterr().out)
    written = json.loads((tmp_path / "v" / "manifest.json").read_text(encoding="utf-8"))
    assert written["reject_reasons"] == {"case_id: duplicate case id": copied}
    lines = rejects(tmp_path / "v" / "rejects.csv")
    assert set(lines["file"]) == {str(march)}
    assert lines["reason"][copied - 1] == f"duplicate case id (first at row {copied} of {MARCH}/part-0 copy.parquet)"


def test_settle_and_screen_on_a_folder_with_a_copied_partition_pay_and_flag_as_without_it(world, tmp_path, capsys):
    folder, march = _copied(world, tmp_path)
    clean = claims(world, tmp_path / "clean")
    common = ["--policy", str(world / "policy.toml"), "--hospitals", str(world / "region" / "hospitals.parquet"), "-q"]
    assert main(["settle", str(clean), "-o", str(tmp_path / "settled-clean"), *common]) == 0
    capsys.readouterr()
    assert main(["settle", str(folder), "-o", str(tmp_path / "settled"), *common]) == 0
    assert f"(duplicate case ids {rows_of(march):,})" in capsys.readouterr().out
    for name in ("hospitals.csv", "pools.csv"):
        assert ((tmp_path / "settled" / name).read_bytes() == (tmp_path / "settled-clean" / name).read_bytes()), name
    assert main(["screen", str(clean), "-o", str(tmp_path / "screen-clean"), "-q"]) == 0
    assert main(["screen", str(folder), "-o", str(tmp_path / "screen"), "-q"]) == 0
    assert (tmp_path / "screen" / "flags.csv").read_bytes() == (tmp_path / "screen-clean" / "flags.csv").read_bytes()
    assert len(rejects(tmp_path / "screen" / "rejects.csv")) == rows_of(march)
    for out in ("settled", "screen"):  # the manifests count them too
        counted = json.loads((tmp_path / out / "manifest.json").read_text(encoding="utf-8"))
        assert (counted["rejected"], counted["duplicate_case_ids"]) == (rows_of(march), rows_of(march)), out


def test_a_bad_row_in_a_later_partition_is_reported_with_its_own_file_and_row(tmp_path):
    folder = tmp_path / "parts"
    for month, costs in (("2025-01", [100.0, 200.0, 300.0]), ("2025-02", [400.0, 500.0, -600.0])):
        (folder / f"discharge_month={month}").mkdir(parents=True)
        pq.write_table(pa.table({"case_id": [f"{month}-{i}" for i in range(3)], "los_days": [3, 4, 5],
                                 "diagnoses": [["K35.800"]] * 3, "total_cost": costs}),
                       folder / f"discharge_month={month}" / "part-0.parquet")
    result = load_cases(folder)
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (6, 5, 1)
    assert result.rejects.select(["file", "row", "reason"]).to_pylist() == [
        {"file": str(folder / "discharge_month=2025-02" / "part-0.parquet"), "row": 3,
         "reason": "negative amount (yuan)"}]


def test_partitions_without_a_case_id_column_are_not_taken_for_copies(tmp_path):
    """Ids are then made from the file name and row: part-0.parquet#1 in every month, which is no duplicate."""
    folder = tmp_path / "parts"
    for month in ("2025-01", "2025-02"):
        (folder / f"discharge_month={month}").mkdir(parents=True)
        pq.write_table(pa.table({"los_days": [3, 4], "diagnoses": [["K35.800"], ["J18.900"]]}),
                       folder / f"discharge_month={month}" / "part-0.parquet")
    result = load_cases(folder)
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (4, 4, 0)


def test_two_partitions_rejecting_the_same_row_number_count_as_two_rows(tmp_path):
    folder = tmp_path / "parts"
    for month in ("2025-01", "2025-02"):
        (folder / f"discharge_month={month}").mkdir(parents=True)
        pq.write_table(pa.table({"case_id": [f"{month}-a", f"{month}-b"], "los_days": [-1, 4],
                                 "diagnoses": [["K35.800"], ["J18.900"]]}),
                       folder / f"discharge_month={month}" / "part-0.parquet")
    result = load_cases(folder)
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (4, 2, 2)


# ---------------------------------------------------------------- a validated folder is complete or unreadable


@pytest.fixture
def validated(world, tmp_path):
    out = tmp_path / "v"
    assert main(["validate", str(world / "region" / "cases"), "-o", str(out), "-q"]) == 0
    return out


def test_a_complete_validate_output_is_read_without_validating_again(validated):
    written = json.loads((validated / "manifest.json").read_text(encoding="utf-8"))
    assert written["part_count"] == 12 and sum(p["rows"] for p in written["parts"]) == 2_400
    for path in (validated, validated / "accepted"):
        result = load_cases(path)
        assert result.trusted and result.n_accepted == 2_400


def test_a_validate_killed_by_a_full_disk_is_refused_not_read_as_seven_months(world, validated, tmp_path, capsys,
                                                                              monkeypatch):
    """The rerun dies writing the eighth part (ENOSPC): the previous manifest went first, so the seven new parts
    are not taken for the claims, by `group`, `settle` or `nightly`."""
    import errno

    from dipsim.io import pipeline

    real, written = pipeline._part_writer, []

    def full_disk(path, schema):
        if len(written) == 7:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        return real(path, schema)

    monkeypatch.setattr(pipeline, "_part_writer", full_disk)
    with pytest.raises(OSError):
        pipeline.validate_to_dir(world / "region" / "cases", validated)
    monkeypatch.undo()
    assert len(list((validated / "accepted").glob("*.parquet"))) == 7
    message = (f"{validated}: incomplete dipsim validate output: 7 of 12 parts, manifest missing: "
               "run dipsim validate again")
    for path in (validated, validated / "accepted"):
        assert main(["group", str(path), "-o", str(tmp_path / "g.csv"), "-q"]) == 1
        assert message in capsys.readouterr().err
    assert main(["nightly", "--claims", str(validated), "--policy", str(world / "policy.toml"), "--hospitals",
                 str(world / "region" / "hospitals.parquet"), "--state", str(tmp_path / "state"), "--out",
                 str(tmp_path / "out"), "-q"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _another_run_part(world, tmp_path) -> Path:
    """Part 3 of a validate run of other claims (the first six months)."""
    other = claims(world, tmp_path / "six", range(1, 7))
    assert main(["validate", str(other), "-o", str(tmp_path / "v6"), "-q"]) == 0
    return tmp_path / "v6" / "accepted" / "part-00003.parquet"


def _fewer_rows(part: Path) -> None:
    table = pq.read_table(part)
    pq.write_table(table.slice(1), part)  # the stamp (schema metadata) is kept


@pytest.mark.parametrize("mistake, problem", [
    ("lost", "11 of 12 parts (accepted/part-00004.parquet missing)"),
    ("from another run", "accepted/part-00003.parquet is from another dipsim validate run"),
    ("a row fewer", "accepted/part-00005.parquet has {rows} rows, the manifest lists {listed}"),
    ("a stray part", "accepted/part-00012.parquet is not in the manifest"),
])
def test_a_validated_folder_that_lost_or_changed_a_part_is_refused(world, validated, tmp_path, mistake, problem):
    accepted = validated / "accepted"
    listed = rows_of(accepted / "part-00005.parquet")
    if mistake == "lost":
        (accepted / "part-00004.parquet").unlink()
    elif mistake == "from another run":
        shutil.copy(_another_run_part(world, tmp_path), accepted / "part-00003.parquet")
    elif mistake == "a row fewer":
        _fewer_rows(accepted / "part-00005.parquet")
    else:
        shutil.copy(accepted / "part-00000.parquet", accepted / "part-00012.parquet")
    problem = problem.format(rows=f"{listed - 1:,}", listed=f"{listed:,}")
    with pytest.raises(InputError, match="incomplete dipsim validate output") as error:
        load_cases(validated)
    assert problem in str(error.value) and str(error.value).endswith("run dipsim validate again")


def test_nightly_compares_the_sha256_it_computes_anyway(world, validated, tmp_path):
    """The nightly job hashes every claims file: against a validate output's manifest that costs nothing more,
    so a part changed in place (same size and rows) is caught there. `load_cases` compares names, sizes and row
    counts only (the fast path)."""
    path = validated / "manifest.json"
    written = json.loads(path.read_text(encoding="utf-8"))
    written["parts"][2]["sha256"] = "0" * 64
    path.write_text(json.dumps(written), encoding="utf-8")
    assert load_cases(validated).trusted
    with pytest.raises(InputError, match=r"accepted/part-00002\.parquet has changed \(sha256\)"):
        run(world, validated, tmp_path / "state", tmp_path / "out")


def test_validating_into_the_folder_being_read_is_refused(validated):
    with pytest.raises(InputError, match="inside the output folder"):
        from dipsim.io.pipeline import validate_to_dir

        validate_to_dir(validated / "accepted", validated)
    assert len(list((validated / "accepted").glob("*.parquet"))) == 12


# ---------------------------------------------------------------- files that are not Parquet


def _csv_renamed(part: Path) -> Path:
    bad = part.parent / "part-1.parquet"
    bad.write_text("病案号,住院天数,诊断编码\nA1,3,K35.800\n", encoding="utf-8")
    return bad


def _cut_short(part: Path) -> Path:
    bad = part.parent / "part-1.parquet"
    data = part.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    return bad


def _damaged_inside(part: Path) -> Path:
    """The footer is intact, a column chunk is not (a bad disk sector, a copy gone wrong)."""
    bad = part.parent / "part-1.parquet"
    data = bytearray(part.read_bytes())
    data[200:1200] = bytes(1000)
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("mistake", [_csv_renamed, _cut_short, _damaged_inside])
@pytest.mark.parametrize("command", ["validate", "group", "nightly", "group one file"])
def test_a_file_that_is_not_parquet_is_a_one_line_error_naming_it(world, tmp_path, capsys, mistake, command):
    folder = claims(world, tmp_path / "claims", range(1, 4))
    bad = mistake(folder / "discharge_month=2025-02" / "part-0.parquet")
    args = {"validate": ["validate", str(folder), "-o", str(tmp_path / "v")],
            "group": ["group", str(folder), "-o", str(tmp_path / "g.csv")],
            "group one file": ["group", str(bad), "-o", str(tmp_path / "g.csv")],
            "nightly": ["nightly", "--claims", str(folder), "--policy", str(world / "policy.toml"), "--hospitals",
                        str(world / "region" / "hospitals.parquet"), "--state", str(tmp_path / "state"), "--out",
                        str(tmp_path / "out")]}[command]
    assert main([*args, "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: {bad}: cannot read as Parquet (" in err and err.rstrip().endswith("Export or copy it again")
