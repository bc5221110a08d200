"""The grouping cache of `scenarios.grouped_cached` (what `dipsim scenarios run` and `dipsim serve` share): a grouping
read back from its cache file is the grouping made afresh, value for value, under DIP and CHS-DRG."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dipsim.grouping.grouped_cases import GroupedCases, group_dip, group_drg
from dipsim.scenarios import grouped_cached


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> pa.Table:
    from dipsim.io.validate import load_cases
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("grouped-cache")
    synthesize_region(root, cases=3000, hospitals=8, seed=5, year=2025)
    return load_cases(root / "cases", dictionary_codes=True).accepted


def _same(read: GroupedCases, made: GroupedCases) -> None:
    assert read.unit == made.unit
    assert list(read.group) == [str(g) for g in made.group]
    assert read.group_array().to_pylist() == [str(g) for g in made.group]
    for name in ("group_points", "standard_cost", "tcm_group_case", "tcm_treated"):
        np.testing.assert_array_equal(getattr(read, name), getattr(made, name), err_msg=name)


def test_a_dip_grouping_read_from_the_cache_is_the_one_made(cases, tmp_path):
    from dipsim.catalog import CatalogOptions, build_catalog, write_catalog
    from dipsim.grouping.dip import load_catalog

    write_catalog(build_catalog(cases, CatalogOptions()), tmp_path / "catalog", [])
    catalog = load_catalog(tmp_path / "catalog")
    made = group_dip(cases, catalog)
    first = grouped_cached(cases, "digest-dip", "dip", catalog)  # made, and written
    again = grouped_cached(cases, "digest-dip", "dip", catalog)  # read back
    assert "" in set(made.group) or len(set(made.group)) > 1
    _same(first, made)
    _same(again, made)


def test_a_drg_grouping_read_from_the_cache_is_the_one_made(cases):
    made = group_drg(cases, "chs-drg-1.1")
    assert made.codes is None  # the DRG grouping has no codes: the cache makes them (np.unique)
    grouped_cached(cases, "digest-drg", "drg", None, "chs-drg-1.1")
    again = grouped_cached(cases, "digest-drg", "drg", None, "chs-drg-1.1")
    assert again.codes is not None
    _same(again, made)


def test_a_cache_file_of_the_old_form_is_made_again(cases, tmp_path, monkeypatch):
    """A cache file without group_index (written before the codes were kept) is not an error: the cases are grouped
    again and the file rewritten."""
    from dipsim.grouping.scheme_cache import cache_dir

    made = group_drg(cases, "chs-drg-1.1")
    grouped_cached(cases, "digest-old", "drg", None, "chs-drg-1.1")
    files = sorted((cache_dir() / "grouped").glob("*.npz"), key=lambda p: p.stat().st_mtime)
    path = files[-1]
    old = {**made.arrays(), "group": np.asarray(made.group).astype(str)}
    with path.open("wb") as out:
        np.savez(out, **old)
    _same(grouped_cached(cases, "digest-old", "drg", None, "chs-drg-1.1"), made)
    with np.load(path, allow_pickle=False) as stored:
        assert "group_index" in stored.files
