"""The on-disk cache of compiled schemes: the arrays read back equal a fresh compile, a changed table or a torn file
is rebuilt, and a folder that cannot be written does not stop grouping."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pyarrow as pa
import pytest

from dipsim.grouping import scheme_cache
from dipsim.grouping.compiled import compile_scheme
from dipsim.grouping.drg import group_table
from dipsim.grouping.tables import load_scheme
from dipsim.paths import tables_dir


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(scheme_cache, "_MEMORY", {})
    return tmp_path / "cache" / "grouper"


def _same(a, b):
    for f in dataclasses.fields(a):
        if f.name == "scheme":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        elif isinstance(x, pa.Array):
            assert x.equals(y), f.name
        else:
            assert x == y, f.name


def test_cached_arrays_equal_a_fresh_compile(cache):
    first = scheme_cache.load_compiled("chs-drg-1.1")
    assert len(list(cache.glob("chs-drg-1.1-*.npz"))) == 1
    scheme_cache._MEMORY.clear()
    again = scheme_cache.load_compiled("chs-drg-1.1")
    assert again.scheme is None  # read from the file, not compiled
    _same(again, compile_scheme(load_scheme("chs-drg-1.1")))
    _same(again, first)


def test_qy_variant_has_its_own_file(cache):
    on = scheme_cache.load_compiled("chs-drg-1.1", qy=True)
    off = scheme_cache.load_compiled("chs-drg-1.1")
    assert on.name == "chs-drg-1.1+qy" and off.name == "chs-drg-1.1"
    assert on.qy_px.any() and not off.qy_px.any()
    assert len(list(cache.glob("*.npz"))) == 2


def test_a_torn_file_is_rebuilt(cache):
    scheme_cache.load_compiled("chs-drg-1.1")
    (path,) = cache.glob("*.npz")
    path.write_bytes(path.read_bytes()[:1000])
    scheme_cache._MEMORY.clear()
    rebuilt = scheme_cache.load_compiled("chs-drg-1.1")
    assert rebuilt.scheme is not None  # compiled again
    assert path.stat().st_size > 1000


def test_a_changed_table_gets_a_new_key(cache, tmp_path):
    root = tmp_path / "tables"
    shutil.copytree(tables_dir() / "chs-drg-1.1", root / "chs-drg-1.1")
    shutil.copytree(tables_dir() / "codes", root / "codes")
    scheme_cache.load_compiled("chs-drg-1.1", root=str(root))
    with open(root / "chs-drg-1.1" / "or_procedures.csv", "a", encoding="utf-8") as f:
        f.write("99.9999\n")
    scheme_cache.load_compiled("chs-drg-1.1", root=str(root))
    assert len(list(cache.glob("*.npz"))) == 2


def test_an_unwritable_cache_folder_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DIPSIM_CACHE_DIR", str(blocker))
    monkeypatch.setattr(scheme_cache, "_MEMORY", {})
    cases = pa.table({"case_id": ["a"], "diagnoses": pa.array([["J18.900"]], pa.list_(pa.string()))})
    assert group_table(cases, scheme_cache.load_compiled("chs-drg-1.1"))["drg"].to_pylist() == ["ES35"]


def test_a_file_of_the_old_layout_is_never_read(cache, monkeypatch):
    """The format version is in the key and the file name: a file written before 3.0's arrays (band_cc_mask,
    list_min, ...) existed has another name; and one that lacks a field under the current name is rebuilt."""
    scheme_cache.load_compiled("chs-drg-3.0" if (tables_dir() / "chs-drg-3.0").is_dir() else "chs-drg-1.1")
    (path,) = cache.glob("*.npz")
    assert f"-v{scheme_cache.FORMAT}-" in path.name
    with np.load(path, allow_pickle=False) as stored:
        old = {k: stored[k] for k in stored.files if k not in ("band_cc_mask", "list_min", "dx_principal_mcc")}
    np.savez(path, **old)
    scheme_cache._MEMORY.clear()
    rebuilt = scheme_cache.load_compiled(path.name.split("-v")[0])
    assert rebuilt.scheme is not None  # compiled again, not read
    monkeypatch.setattr(scheme_cache, "FORMAT", scheme_cache.FORMAT - 1)
    scheme_cache._MEMORY.clear()
    scheme_cache.load_compiled(path.name.split("-v")[0])
    assert len(list(cache.glob("*.npz"))) == 2  # the older format's name is another file
