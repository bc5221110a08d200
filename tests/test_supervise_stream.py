"""The streamed screens (`dipsim screen` in bounded memory) against the in-memory reference, `supervise.screen_cases`
/ `screen_region` on the same cases stacked: the same flag lines in the same order, the same per-hospital table to
the last bit, whatever the pieces, chunks and patient buckets; and their exact parts (order statistics, numpy's and
pandas' sums) against numpy and pandas themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_supervise import DEFAULTS, background, stays

from dipsim.supervise import FLAG_COLUMNS, SCREENS, screen_cases, screen_region
from dipsim.supervise_stream import _pairwise_sum, _select, _Take, screen_stream


def pieces_of(table: pa.Table, size: int, **grouping):
    """`table` in pieces of `size` rows, each with its slice of the per-case `grouping` arrays."""
    for start in range(0, table.num_rows, size):
        part = {k: None if v is None else np.asarray(v, dtype=object if k == "group" else None)[start:start + size]
                for k, v in grouping.items()}
        yield (table.slice(start, size), part) if grouping else table.slice(start, size)


def streamed(pieces, policy=DEFAULTS, **kwargs):
    parts = []
    result = screen_stream(pieces, policy, flags=parts.append, **kwargs)
    flags = pa.concat_tables(parts).to_pandas() if parts else pd.DataFrame(columns=list(FLAG_COLUMNS))
    return result, flags


def assert_same(reference, result, flags) -> None:
    """Flag lines equal line by line (nulls as None), hospitals equal bit for bit, the same screens skipped."""
    def lines(frame):
        return [tuple(None if pd.isna(v) else v for v in row) for row in frame[list(FLAG_COLUMNS)].itertuples(
            index=False)]

    assert lines(flags) == lines(reference.flags)
    pd.testing.assert_frame_equal(result.hospitals, reference.hospitals, check_dtype=False, check_exact=True)
    assert list(result.hospitals.columns) == list(reference.hospitals.columns)
    assert result.skipped == reference.skipped
    counts = reference.flags["screen"].value_counts()
    assert result.flag_counts == {s: int(counts.get(s, 0)) for s in result.flag_counts}


# ---------------------------------------------------------------- the exact parts


def test_select_finds_the_ranked_values_of_each_group_as_sorting_does():
    rng = np.random.default_rng(7)
    n, groups = 8_000, 40
    group = rng.integers(-1, groups, n)
    values = np.round(rng.lognormal(8, 2, n), 2)
    values[group == 3] = 42.0  # one value only
    values[group == 4] = rng.choice([-0.0, 0.0, -1.5, 1.5, np.inf, -np.inf], (group == 4).sum())
    values[group == 5] = -values[group == 5]  # negatives
    values[rng.random(n) < 0.05] = np.nan
    values[(group == 6) & ~np.isnan(values)] = np.nextafter(1000.0, np.arange(((group == 6) & ~np.isnan(values)).sum()))
    sizes = np.array([np.sum((group == g) & ~np.isnan(values)) for g in range(groups)])
    ranks = np.stack([np.zeros(groups, np.int64), sizes // 2, np.maximum(sizes - 1, 0), sizes // 3], axis=1)
    ranks[7] = -1  # a group nobody asks about
    expected = np.full(ranks.shape, np.nan)
    for g in range(groups):
        ordered = np.sort(values[(group == g) & ~np.isnan(values)])
        for t in range(ranks.shape[1]):
            if ranks[g, t] >= 0 and len(ordered):
                expected[g, t] = ordered[ranks[g, t]]

    def chunks():
        for start in range(0, n, 3_001):
            yield group[start:start + 3_001], values[start:start + 3_001]

    for collect, budget in ((1 << 16, 1 << 22), (50, 400), (0, 0)):  # sorted at once / a few passes / all 64 bits
        np.testing.assert_array_equal(_select(chunks, ranks, collect, budget), expected)


@pytest.mark.parametrize("n", [1, 5, 8, 127, 129, 1_000, 8_193, 100_003])
def test_pairwise_sum_in_parts_is_numpys_sum(n):
    values = np.random.default_rng(n).lognormal(8, 3, n)
    parts = iter(np.array_split(values, 7))
    assert _pairwise_sum(n, _Take(parts), limit=256) == np.sum(values)  # bit for bit


def test_streamed_weights_are_calibrate_weights_to_the_bit(region, tmp_path):
    from dipsim.grouping.drg import group_table
    from dipsim.schema import float_column
    from dipsim.supervise_stream import _Stream
    from dipsim.weights import calibrate_weights

    cases = region[1]
    cost = float_column(cases, "total_cost", 0.0).copy()
    cost[::97] = np.nan  # NaN costs are left out, missing ones count as 0
    missing = np.arange(len(cost)) % 89 == 5
    cases = cases.set_column(cases.schema.get_field_index("total_cost"), "total_cost", pa.array(cost, mask=missing))
    drg = group_table(cases, "chs-drg-1.1")["drg"].to_numpy(zero_copy_only=False)
    expected = calibrate_weights(drg, float_column(cases, "total_cost", 0.0)).set_index("drg")["rw"]
    stream = _Stream(tmp_path, DEFAULTS, "chs-drg-1.1", None, None, 2, 700)
    for piece in pieces_of(cases, 2_500):
        stream.add(piece)
    stream.spill.close()
    rw = stream._weights()
    got = pd.Series(rw, index=stream.drgs.labels).dropna()
    assert got.index.tolist() == sorted(got.index.tolist(), key=stream.drgs.labels.index)
    np.testing.assert_array_equal(got.sort_index().to_numpy(), expected.dropna().sort_index().to_numpy())
    assert got.sort_index().index.tolist() == expected.dropna().sort_index().index.tolist()


# ---------------------------------------------------------------- the hand-made histories of test_supervise


def histories():
    """All rows of test_supervise's cases in one table, with its groups and MCC/CC levels."""
    rows = [
        ("A1", "P1", "H1", "G1", 0, 5, 9000, "K35.800", None), ("A2", "P1", "H1", "G1", 20, 4, 8000, "K35.800", None),
        ("B1", "P2", "H1", "G1", 0, 5, 9000, "K35.800", None), ("B2", "P2", "H1", "G1", 21, 4, 8000, "K35.800", None),
        ("C1", "P3", "H1", "G1", 0, 5, 9000, "K35.800", None), ("C2", "P3", "H2", "G1", 7, 4, 8000, "K35.800", None),
        ("E1", "P5", "H1", "G3", 0, 1, 9000, "Z51.100", None), ("E2", "P5", "H1", "G3", 3, 1, 8000, "Z51.100", None),
        ("F1", None, "H1", "G1", 0, 5, 9000, "K35.800", None), ("F2", None, "H1", "G1", 7, 4, 8000, "K35.800", None),
        ("L1", "Q1", "H1", "G1", 0, 2, 2_000, "K35.800", None), ("L4", "Q4", "H1", "G1", 0, 1, 1_000, "K35.800", None,
                                                                  5),
        ("L5", "Q5", "H1", "G1", 0, 1, 1_000, "K35.800", None, 2),
        ("S1", "R1", "H1", "G1", 0, 30, 50_000, "K35.800", None),
        ("V1", "P1", "H1", "G1", 40, 5, 9000, "I20.000", "00.6601"),
        ("V2", "P1", "H1", "G1", 75, 5, 9000, "I20.000", "00.6601"),
        ("X1", "P6", "", "G2", 0, 5, 9000, "I20.000", None), ("X2", "P6", "", "G2", 12, 5, 9000, "I20.000", None),
        *background(), *background(40, group="G2", los=2), *background(12, group="G4")]
    for g, deaths in (("G5", 1), ("G6", 20), ("G7", 20), ("G8", 20)):
        rows += [(f"{g}-{i}", f"{g}P{i % 150}", f"H{i % 3}", g, 2 * i, 5, 9000, "K35.800", None,
                  5 if i < deaths else 1) for i in range(200)]
    rng = np.random.default_rng(2)
    order = rng.permutation(len(rows))  # patients' stays scattered over the pieces, out of date order
    table, group = stays(*[rows[i] for i in order])
    cc = (rng.random(len(rows)) < np.where(np.char.startswith(table["hospital_id"].to_numpy(zero_copy_only=False)
                                                                .astype(str), "H0"), 0.9, 0.3)).astype(int)
    return table, group, cc


@pytest.mark.parametrize("policy", [
    {}, {"supervision.readmission_days": 10}, {"supervision.readmission_same_hospital": False},
    {"supervision.readmission_exempt_diagnoses": ""}, {"supervision.min_group_cases": 5}])
def test_hand_made_histories_give_the_references_flags(policy):
    table, group, cc = histories()
    policy = DEFAULTS.overlay(policy)
    grouping = {"group": group, "cc_level": cc, "points": np.linspace(0.5, 3, table.num_rows)}
    reference = screen_cases(table, policy=policy, **grouping)
    assert set(reference.flags["screen"]) == set(SCREENS)
    for size, buckets in ((table.num_rows, 1), (37, 3)):
        assert_same(reference, *streamed(pieces_of(table, size, **grouping), policy, buckets=buckets, chunk_rows=29))


def test_without_mcc_cc_levels_or_points_as_the_reference():
    """Upcoding skipped without MCC/CC levels; no points indicators without points; pieces of 5 rows."""
    table, group, cc = histories()
    for grouping in ({"group": group}, {"group": group, "cc_level": cc}):
        reference = screen_cases(table, policy=DEFAULTS, **grouping)
        assert_same(reference, *streamed(pieces_of(table, 5, **grouping), buckets=4, chunk_rows=64))


def test_a_screen_skipped_for_a_missing_column_is_skipped_alike():
    table, group, cc = histories()
    table = table.drop_columns(["admission_date", "los_days"])
    reference = screen_cases(table, group, DEFAULTS, cc_level=cc)
    assert set(reference.skipped) == {"split_readmission", "five_same", "low_standard", "long_stay"}
    assert_same(reference, *streamed(pieces_of(table, 50, group=group, cc_level=cc), buckets=2, chunk_rows=64))


def test_no_cases_no_flags():
    table = histories()[0]
    empty = table.slice(0, 0)
    reference = screen_cases(empty, np.array([], dtype=object), DEFAULTS, cc_level=np.array([]))
    result, flags = streamed([(empty, {"group": np.array([], dtype=object), "cc_level": np.array([])})])
    assert len(flags) == 0 and result.cases == 0 and result.skipped == reference.skipped
    assert list(result.hospitals.columns) == list(reference.hospitals.columns)


# ---------------------------------------------------------------- a synthetic region, grouped as `dipsim screen` does


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    from dipsim.io import load_cases
    from dipsim.synth import synthesize_region

    folder = tmp_path_factory.mktemp("stream") / "region"
    synthesize_region(folder, cases=8_000, hospitals=8, seed=12)
    return folder, load_cases(folder / "cases").accepted


def test_a_synthetic_region_in_small_pieces_gives_screen_regions_flags(region):
    """Injected split stays and upcoding, patients' stays in different pieces and buckets."""
    _, cases = region
    reference = screen_region(cases, DEFAULTS)
    counts = reference.flags["screen"].value_counts()
    assert all(counts.get(s, 0) > 0 for s in ("split_readmission", "five_same", "low_standard", "upcoding"))
    result, flags = streamed(pieces_of(cases, 1_000), buckets=5, chunk_rows=2_500)
    assert_same(reference, result, flags)
    pairs = reference.flags[reference.flags["screen"] == "split_readmission"]
    first = dict(zip(cases["case_id"].to_pylist(), range(cases.num_rows)))
    pieces = (pairs["case_id"].map(first) // 1_000) != (pairs["related_case_id"].map(first) // 1_000)
    assert pieces.sum() > 0  # some pairs span two pieces


def test_a_dip_catalogue_region_gives_screen_regions_flags(region, tmp_path):
    from dipsim.catalog import build_catalog, write_catalog
    from dipsim.grouping.dip import load_catalog

    _, cases = region
    catalog = load_catalog(write_catalog(build_catalog(cases), tmp_path / "catalog"))
    reference = screen_region(cases, DEFAULTS, catalog=catalog)
    assert "points_ratio" in reference.hospitals
    assert_same(reference, *streamed(pieces_of(cases, 4_000), catalog=catalog, buckets=2, chunk_rows=3_000))


def test_dipsim_screen_streams_to_the_same_files_as_the_in_memory_screens(region, tmp_path, capsys):
    """The command's flags.csv and hospitals.csv, byte for byte, are those the in-memory screens write, on the raw
    partitions and on their `dipsim validate` output (read in batches of the screens' columns)."""
    import json

    from dipsim.cli import main
    from dipsim.io.pipeline import validate_to_dir
    from dipsim.io.writers import write_csv

    folder, cases = region
    reference = screen_region(cases, DEFAULTS)
    write_csv(pa.Table.from_pandas(reference.flags, preserve_index=False), tmp_path / "flags.csv")
    write_csv(pa.Table.from_pandas(reference.hospitals, preserve_index=False), tmp_path / "hospitals.csv")
    validate_to_dir(folder / "cases", tmp_path / "validated")
    for source, out in ((folder / "cases", tmp_path / "raw"), (tmp_path / "validated" / "accepted",
                                                                tmp_path / "trusted")):
        assert main(["screen", str(source), "-o", str(out), "-q"]) == 0
        assert (out / "flags.csv").read_bytes() == (tmp_path / "flags.csv").read_bytes()
        assert (out / "hospitals.csv").read_bytes() == (tmp_path / "hospitals.csv").read_bytes()
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["outputs"] == ["flags.csv", "hospitals.csv", "rejects.csv"]
        assert manifest["accepted"] == cases.num_rows
        counts = reference.flags["screen"].value_counts()
        assert manifest["flags"] == {s: int(counts.get(s, 0)) for s in manifest["flags"]}
    capsys.readouterr()


def test_a_validate_output_is_read_in_batches_of_the_screens_columns(region, tmp_path):
    """`iter_case_batches` of a complete `dipsim validate` output: the rows of `load_cases`, in order, a batch at a
    time and only the columns asked for."""
    from dipsim.io import load_cases
    from dipsim.io.pipeline import validate_to_dir
    from dipsim.io.validate import iter_case_batches
    from dipsim.supervise_stream import SCREEN_COLUMNS

    folder, cases = region
    validate_to_dir(folder / "cases", tmp_path / "validated")
    accepted = tmp_path / "validated" / "accepted"
    pieces = list(iter_case_batches(accepted, 1_000, columns=list(SCREEN_COLUMNS)))
    assert len(pieces) >= cases.num_rows // 1_000 and all(p.trusted and p.n_accepted <= 1_000 for p in pieces)
    whole = load_cases(accepted, columns=list(SCREEN_COLUMNS))
    stacked = pa.concat_tables([p.accepted for p in pieces])
    assert stacked.column_names == whole.accepted.column_names and stacked.equals(whole.accepted)
    assert np.array_equal(np.concatenate([p.accepted_rows for p in pieces]), whole.accepted_rows)


def test_raw_partitions_in_batches_give_load_cases_rows_and_rejects(region, tmp_path):
    """A folder of raw partitions read in batches: the accepted rows and the rejects of `load_cases`, in order, with
    a partition copied beside itself (its ids rejected as repeats of the first) and ids repeated within a file."""
    import shutil

    import pyarrow.parquet as pq

    from dipsim.io import load_cases
    from dipsim.io.validate import iter_case_batches

    folder = tmp_path / "cases"
    shutil.copytree(region[0] / "cases", folder)
    months = sorted(folder.rglob("*.parquet"))
    shutil.copy(months[2], months[2].with_name("part-0 copy.parquet"))
    table = pq.read_table(months[5])
    ids = table["case_id"].to_pylist()
    ids[-1] = ids[10]  # a repeat within the file, in another batch
    pq.write_table(table.set_column(table.schema.get_field_index("case_id"), "case_id", pa.array(ids)), months[5])
    whole = load_cases(folder)
    pieces = list(iter_case_batches(folder, 300))
    assert len(pieces) > len(months) + 1 and max(p.rows_read for p in pieces) <= 300
    assert pa.concat_tables([p.accepted for p in pieces]).equals(whole.accepted)
    rejects = pa.concat_tables([p.rejects for p in pieces])
    assert rejects.equals(whole.rejects) and rejects.num_rows > 300
