"""Commands that handle their cases a piece at a time (`io.validate.iter_cases`) see exactly what one read sees: the
same accepted rows, rejects and warnings in the same order, whether the input is one Parquet file read in batches
or a folder read partition by partition; and `dipsim group` writes the same output and rejects whatever the batch."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dipsim.io.validate import iter_cases, load_cases


@pytest.fixture(scope="module")
def claims(tmp_path_factory):
    """A small synthetic region whose partitions hold bad input: a case id repeated from an earlier partition, a
    negative cost, a malformed principal diagnosis; and the same cases as one file."""
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("streaming")
    synthesize_region(root / "region", cases=1_500, hospitals=6, seed=21)
    folder = root / "region" / "cases"
    parts = sorted(folder.glob("*/part-0.parquet"))
    first_id = pq.read_table(parts[0])["case_id"][0].as_py()
    march = pq.read_table(parts[2])
    ids = march["case_id"].to_pylist()
    ids[3] = first_id  # January's first case id again in March
    cost = march["total_cost"].to_pylist()
    cost[5] = -10.0
    diagnoses = march["diagnoses"].to_pylist()
    diagnoses[7] = ["not a code", *diagnoses[7][1:]]
    march = march.set_column(march.schema.get_field_index("case_id"), "case_id", pa.array(ids))
    march = march.set_column(march.schema.get_field_index("total_cost"), "total_cost", pa.array(cost))
    march = march.set_column(march.schema.get_field_index("diagnoses"), "diagnoses",
                             pa.array(diagnoses, march.schema.field("diagnoses").type))
    pq.write_table(march, parts[2], row_group_size=64)  # several row groups: each has its own code dictionary
    one = root / "one.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(p) for p in parts]), one, row_group_size=100)
    return folder, one


def _together(pieces):
    return (sum(p.rows_read for p in pieces), pa.concat_tables([p.accepted for p in pieces]),
            pa.concat_tables([p.rejects for p in pieces]).to_pylist(),
            pa.concat_tables([p.warnings for p in pieces]).to_pylist())


@pytest.mark.parametrize("which", ["folder", "one file"])
def test_the_pieces_are_one_read(claims, which):
    path = claims[0] if which == "folder" else claims[1]
    whole = load_cases(path)
    pieces = list(iter_cases(path, 256))
    assert len(pieces) > 1  # really in pieces
    rows_read, accepted, rejects, warnings = _together(pieces)
    assert rows_read == whole.rows_read
    assert accepted.equals(whole.accepted)
    assert rejects == whole.rejects.to_pylist() and warnings == whole.warnings.to_pylist()
    assert sum(p.n_rejected for p in pieces) == whole.n_rejected == 3  # the repeat, the cost, the principal
    reasons = {r["reason"].split(" (")[0] for r in rejects}
    assert {"duplicate case id", "negative amount"} <= reasons


@pytest.mark.parametrize("which", ["folder", "one file"])
def test_group_writes_the_same_whatever_the_batch(claims, tmp_path, monkeypatch, which):
    from dipsim import cli

    path = claims[0] if which == "folder" else claims[1]
    assert cli.main(["group", str(path), "-o", str(tmp_path / "whole.parquet"), "-q"]) == 0
    monkeypatch.setattr(cli, "GROUP_BATCH_ROWS", 200)
    assert cli.main(["group", str(path), "-o", str(tmp_path / "batched.parquet"), "-q"]) == 0
    whole, batched = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "batched.parquet")
    # The repeated id and the malformed principal are not grouped; the negative cost is: `dipsim group` reads and
    # checks only what grouping reads (and the dates), so a cost `dipsim validate` rejects does not stop grouping.
    assert batched.equals(whole) and whole.num_rows == 1_500 - 2
    assert not pc.any(pc.equal(whole["case_id"], "")).as_py()
    assert ((tmp_path / "batched.rejects.csv").read_bytes() == (tmp_path / "whole.rejects.csv").read_bytes())


def test_a_validate_output_is_one_piece_its_footers_read_once(claims, tmp_path, monkeypatch):
    """A complete `dipsim validate` output is read whole, as `load_cases` reads it, and each part's footer is read
    once (for the stamp, the manifest check and the read), not once for `iter_cases` and again for `load_cases`."""
    import dipsim.io.readers as readers
    from dipsim.io.pipeline import validate_to_dir

    out = tmp_path / "validated"
    validate_to_dir(claims[0], out)
    parts = sorted((out / "accepted").glob("part-*.parquet"))
    whole = load_cases(out)
    reads = []
    real = readers.pq.read_metadata
    monkeypatch.setattr(readers.pq, "read_metadata", lambda f, *a, **k: reads.append(f) or real(f, *a, **k))
    monkeypatch.setattr(readers.pq, "read_schema", lambda *a, **k: pytest.fail("footer read again"))
    (piece,) = list(iter_cases(out, 256))
    assert sorted(reads) == parts
    assert piece.rows_read == sum(pq.read_metadata(p).num_rows for p in parts) == 1_500 - 3
    assert piece.accepted.equals(whole.accepted) and piece.n_rejected == 0


@pytest.mark.parametrize("which", ["folder", "one file"])
def test_validate_writes_the_same_whatever_the_batch(claims, tmp_path, monkeypatch, which):
    """`dipsim validate` reads a Parquet file in batches (a row group of its part each): the parts' rows, the
    rejects and the warnings are those of a run that reads each file whole, a repeated id included (across batches
    of the one file; across partitions of the folder)."""
    from dipsim.io import pipeline

    path = claims[0] if which == "folder" else claims[1]
    whole = pipeline.validate_to_dir(path, tmp_path / "whole")
    monkeypatch.setattr(pipeline, "VALIDATE_BATCH_ROWS", 200)
    batched = pipeline.validate_to_dir(path, tmp_path / "batched")
    assert (batched.rows_read, batched.accepted, batched.rejected) == (whole.rows_read, whole.accepted,
                                                                       whole.rejected) == (1_500, 1_497, 3)
    for name in ("rejects.csv", "warnings.csv"):
        assert (tmp_path / "batched" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    parts = sorted((tmp_path / "whole" / "accepted").glob("*.parquet"))
    assert [p.name for p in parts] == [p.name for p in sorted((tmp_path / "batched" / "accepted").glob("*"))]
    for part in parts:
        batched_part = tmp_path / "batched" / "accepted" / part.name
        assert pq.read_table(batched_part).equals(pq.read_table(part))
    if which == "one file":
        assert pq.ParquetFile(tmp_path / "batched" / "accepted" / parts[0].name).metadata.num_row_groups > 1
    assert load_cases(tmp_path / "batched").accepted.equals(load_cases(tmp_path / "whole").accepted)


def test_a_parquet_file_without_case_ids_is_warned_about_once(claims, tmp_path):
    """Read in batches, a file without a case id column gets the warning once, at its first row, as in one read."""
    table = pq.read_table(claims[1]).drop_columns(["case_id"])
    path = tmp_path / "no_ids.parquet"
    pq.write_table(table, path, row_group_size=100)
    pieces = list(iter_cases(path, 256))
    assert len(pieces) > 1
    warned = [w for p in pieces for w in p.warnings.to_pylist() if w["reason"].startswith("no case id column")]
    assert [w["row"] for w in warned] == [1]
    assert pa.concat_tables([p.warnings for p in pieces]).to_pylist() == load_cases(path).warnings.to_pylist()
