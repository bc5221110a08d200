"""Code dictionaries, normalisation, splitting, encoding and crosswalks (dipsim.codes) and their build script."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dipsim import codes as C
from dipsim.paths import tables_dir

REPO = Path(__file__).resolve().parents[1]
CODES_DIR = REPO / "grouper_tables" / "codes"
SHARED_CODES = REPO.parent / "shared" / "reference" / "codes"


def norm(values, system):
    return C.normalise_codes(pa.array(values, pa.string()), system).to_pylist()


def shape(values, system):
    return C.is_valid_code_shape(pa.array(values, pa.string()), system).to_pylist()


# --------------------------------------------------------------------------------------------------------------
# Normalisation

ICD10_CASES = [
    ("Ｋ３５．８００", "K35.800"),  # full-width
    ("k35.800x001", "K35.800x001"),  # lower case; x-suffix stays lower
    ("K35800", "K35.800"),  # missing dot
    ("k35800X001", "K35.800x001"),
    (" K35. 800 ", "K35.800"),  # spaces inside
    ("K35.8", "K35.800"),  # short decimal padded
    ("K35.80", "K35.800"),
    ("I10.X05", "I10.x05"),  # X placeholder -> x
    ("i10.x00", "I10.x00"),
    ("X59.900", "X59.900"),  # chapter X stays upper case
    ("x59.900", "X59.900"),
    ("E11.401†G63.2*", "E11.401+G63.2*"),  # dagger
    ("e11.401+g63.2*", "E11.401+G63.2*"),
    ("E11401+G632*", "E11.401+G63.2*"),
    ("A01.002+G01*", "A01.002+G01*"),
    ("Ｅ１１．４０１＋Ｇ６３．２＊", "E11.401+G63.2*"),
    ("K35.800x001", "K35.800x001"),
]
ICD9_CASES = [
    ("470900", "47.0900"),  # missing dot
    ("47.09", "47.0900"),  # short decimal padded
    ("47.090", "47.0900"),
    ("4709", "47.0900"),
    ("17.912a0", "17.912A0"),  # 中医 letter codes are upper case
    ("40.3X00X002", "40.3x00x002"),
    ("４７．０９００", "47.0900"),
    ("01.6x", "01.6x00"),
    ("47.0900x001", "47.0900x001"),
]
GARBAGE = ["???", "12345678", "", "K35.800x", "ABC", "47.0900x1"]


@pytest.mark.parametrize(("raw", "expected"), ICD10_CASES)
def test_normalise_icd10(raw, expected):
    assert norm([raw], "icd10") == [expected]
    assert shape([expected], "icd10") == [True]


@pytest.mark.parametrize(("raw", "expected"), ICD9_CASES)
def test_normalise_icd9(raw, expected):
    assert norm([raw], "icd9") == [expected]
    assert shape([expected], "icd9") == [True]


@pytest.mark.parametrize("system", C.SYSTEMS)
def test_garbage_unchanged_and_invalid(system):
    assert norm(GARBAGE, system) == GARBAGE
    assert shape(GARBAGE, system) == [False] * len(GARBAGE)


def test_normalise_keeps_nulls_and_list_structure():
    lists = pa.array([["k35800", None], None, [], ["i10.X00"]], pa.list_(pa.string()))
    out = C.normalise_codes(lists, "icd10")
    assert out.to_pylist() == [["K35.800", None], None, [], ["I10.x00"]]
    assert out.type == pa.list_(pa.string())
    assert norm([None], "icd10") == [None]
    sliced = C.normalise_codes(lists.slice(1, 3), "icd10")
    assert sliced.to_pylist() == [None, [], ["I10.x00"]]


def test_normalise_chunked():
    arr = pa.chunked_array([["k35800"], ["470900"]])
    assert C.normalise_codes(arr, "icd10").to_pylist() == ["K35.800", "470900"]


def test_unknown_system():
    with pytest.raises(ValueError, match="icd10"):
        C.normalise_codes(pa.array(["A"]), "icd11")


# --------------------------------------------------------------------------------------------------------------
# Splitting


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("K35.800, K37.x00；E11.900|I10.x00 、J18.900", ["K35.800", "K37.x00", "E11.900", "I10.x00", "J18.900"]),
        ("K35.800，K37.x00", ["K35.800", "K37.x00"]),  # full-width comma
        ("K35.800｜K37.x00", ["K35.800", "K37.x00"]),
        ("K35.800;;  ,K37.x00,", ["K35.800", "K37.x00"]),
        ("K35.800\tK37.x00\nJ18.900", ["K35.800", "K37.x00", "J18.900"]),
        ("K35.800", ["K35.800"]),
        ("", []),
        ("  ,、 ", []),
        (None, []),
        # a dagger-asterisk pair written with spaces around its + (or †, full-width ＋) stays one code
        ("E10.300x051 + H42.0*, I10.x00", ["E10.300x051+H42.0*", "I10.x00"]),
        ("E10.300x051\t+\tH42.0* I10.x00", ["E10.300x051+H42.0*", "I10.x00"]),
        ("A01.002 † G01*、J18.900", ["A01.002†G01*", "J18.900"]),
        ("E10.300x051 ＋ H42.0*", ["E10.300x051+H42.0*"]),
        ("E10.300x051+H42.0* I10.x00", ["E10.300x051+H42.0*", "I10.x00"]),
    ],
)
def test_split_code_list(cell, expected):
    out = C.split_code_list(pa.array([cell], pa.string()))
    assert out.to_pylist() == [expected]
    assert out.null_count == 0


def test_split_many_rows_and_chunked():
    arr = pa.chunked_array([["A,B", None], ["", "C 、D"]])
    out = C.split_code_list(arr)
    assert isinstance(out, pa.ChunkedArray)
    assert out.to_pylist() == [["A", "B"], [], [], ["C", "D"]]


# --------------------------------------------------------------------------------------------------------------
# Dictionaries


@pytest.fixture(scope="module")
def icd10():
    return C.load_icd10()


@pytest.fixture(scope="module")
def icd9():
    return C.load_icd9()


def test_tables_dir_default_and_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("DIPSIM_TABLES", raising=False)
    assert tables_dir() == REPO / "grouper_tables"
    monkeypatch.setenv("DIPSIM_TABLES", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        tables_dir()


def test_dictionary_sizes(icd10, icd9):
    manifest = tomllib.loads((CODES_DIR / "manifest.toml").read_text(encoding="utf-8"))
    rows = {o["file"]: o["rows"] for o in manifest["outputs"]}
    assert len(icd10) == rows["icd10_yb2.0.csv"] == 33307
    assert len(icd9) == rows["icd9cm3_yb2.0.csv"] == 13686
    assert manifest["version"] == "医保版 2.0"
    assert C.load_icd10() is icd10  # cached


@pytest.mark.parametrize("system", C.SYSTEMS)
def test_every_dictionary_code_valid_and_canonical(system, icd10, icd9):
    d = icd10 if system == "icd10" else icd9
    assert all(C.is_valid_code_shape(d.codes, system).to_pylist())
    assert C.normalise_codes(d.codes, system).equals(d.codes)


@pytest.mark.parametrize(("name", "system"), [(n, s) for n, (_, s) in C.CROSSWALKS.items()])
def test_every_crosswalk_code_valid_and_canonical(name, system):
    cw = C.load_crosswalk(name)
    for arr in (cw.source, cw.target):
        assert all(C.is_valid_code_shape(arr, system).to_pylist())
        assert C.normalise_codes(arr, system).equals(arr)


def test_encode_decode_round_trip(icd10):
    codes = pa.array(["K35.800x001", "I10.x05", "A00.000", "Z99.999", None, "E11.401+G63.2*"])
    ids = icd10.encode(codes)
    assert ids.dtype == np.int32
    assert ids[3] == -1 and ids[4] == -1
    assert (ids[[0, 1, 2, 5]] >= 0).all()
    assert ids[2] == 0  # A00.000 is the first code
    assert icd10.decode(ids).to_pylist() == ["K35.800x001", "I10.x05", "A00.000", None, None, "E11.401+G63.2*"]
    assert icd10.contains(codes).tolist() == [True, True, True, False, False, True]
    all_ids = icd10.encode(icd10.codes)
    assert np.array_equal(all_ids, np.arange(len(icd10), dtype=np.int32))


def test_names(icd10, icd9):
    assert icd10.name("K35.800x001") is not None
    assert icd10.name("A00.000x001") == "古典生物型霍乱"
    assert icd10.name("nope") is None
    assert icd9.name("17.912A0") == "电针治疗"
    assert icd9.names(pa.array(["17.912A0", "xx"])).to_pylist() == ["电针治疗", None]


def test_encode_lists(icd10):
    lists = pa.array([["K35.800", "Z99.999"], None, [], ["I10.x05", "A00.000", "J18.900"]], pa.list_(pa.string()))
    ids, offsets = icd10.encode_lists(lists)
    assert offsets.dtype == np.int64 and ids.dtype == np.int32
    assert offsets.tolist() == [0, 2, 2, 2, 5]
    assert ids[1] == -1
    assert icd10.decode(ids[offsets[3]:offsets[4]]).to_pylist() == ["I10.x05", "A00.000", "J18.900"]
    chunked = pa.chunked_array([lists.slice(0, 2), lists.slice(2, 2)])
    ids2, offsets2 = icd10.encode_lists(chunked)
    assert np.array_equal(ids, ids2) and np.array_equal(offsets, offsets2)


def test_principal_flag(icd10):
    t = icd10.table
    # On the 不能作为主要诊断 list: A00.000, A02.200; not on it: A00.000x001, K35.800.
    ids = icd10.encode(pa.array(["A00.000", "A02.200", "A00.000x001", "K35.800"]))
    assert t["allowed_as_principal"].to_numpy()[ids].tolist() == [False, False, True, True]
    assert (~t["allowed_as_principal"]).sum() == 2695
    assert t.loc[ids[3], ["category", "subcategory"]].tolist() == ["K35", "K35.8"]


def test_procedure_attributes(icd9):
    t = icd9.table.set_index(pd.Index(icd9.codes.to_pylist()))
    assert t.loc["30.1x00", "kind"] == "手术"
    assert t.loc["66.6900x001", ["kind", "kind_source"]].tolist() == ["手术", "crosswalk"]
    assert t.loc["00.0100", "gray"] and not t.loc["00.0101", "gray"]
    assert set(t["kind"]) <= set(C.PROCEDURE_KINDS) | {""}
    assert t.loc["00.0100", ["chapter", "category", "subcategory", "detail"]].tolist() == ["1", "00", "00.0", "00.01"]


# --------------------------------------------------------------------------------------------------------------
# Crosswalks


def test_crosswalk_icd10_guolin():
    arr = pa.array(["A19.000x001", "B37.600+I39.8*", "K35.800", None, "???"])
    out = C.apply_crosswalk(arr, "icd10_guolin2.0")
    assert out.to_pylist() == ["A19.001", "B37.600+I39.8*", "K35.800", None, "???"]


def test_crosswalk_icd10_yb1_lists():
    lists = pa.array([["K58.900", "K58.901"], None, ["A00.000", "QQQ"]], pa.list_(pa.string()))
    out = C.apply_crosswalk(lists, "icd10_yb1.0")
    assert out.to_pylist() == [["K58.800", "K58.800"], None, ["A00.000", "QQQ"]]


def test_crosswalk_icd9_guolin():
    out = C.apply_crosswalk(pa.chunked_array([["66.69x001"], ["30.2911", "47.0900"]]), "icd9_guolin3.0")
    assert out.to_pylist() == ["66.6900x001", "30.1x00", "47.0900"]


def test_crosswalk_unknown_name():
    with pytest.raises(ValueError, match=r"icd10_guolin2\.0"):
        C.load_crosswalk("icd10_v3")


# --------------------------------------------------------------------------------------------------------------
# The build script reproduces the committed tables


def test_build_reproduces_tables(tmp_path):
    if not SHARED_CODES.is_dir():
        pytest.skip(f"reference sources not available at {SHARED_CODES}; cannot rebuild the code tables")
    out = tmp_path / "codes"
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_codes.py"), "--source", str(SHARED_CODES), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    built = sorted(p.name for p in out.iterdir())
    assert built == sorted(p.name for p in CODES_DIR.iterdir())
    for name in built:
        if name == "manifest.toml":
            new = tomllib.loads((out / name).read_text(encoding="utf-8"))
            old = tomllib.loads((CODES_DIR / name).read_text(encoding="utf-8"))
            for where_and_when in ("built_on", "source_dir"):  # provenance is in the sources' sha256
                new.pop(where_and_when), old.pop(where_and_when)
            assert new == old
        else:
            assert (out / name).read_bytes() == (CODES_DIR / name).read_bytes(), name


def test_build_fails_on_bad_source(tmp_path):
    if not SHARED_CODES.is_dir():
        pytest.skip(f"reference sources not available at {SHARED_CODES}")
    src = tmp_path / "src"
    src.mkdir()
    for p in SHARED_CODES.iterdir():
        (src / p.name).write_bytes(p.read_bytes())
    with (src / "icd10_yb_2.0.txt").open("a", encoding="utf-8") as f:
        f.write("\nK35.8.00.1 坏编码\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_codes.py"), "--source", str(src), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0
    assert "K35.8.00.1" in result.stderr


def test_normalise_mixed_clean_and_dirty():
    # Clean codes take the fast path; the rest are repaired in place, nulls kept.
    raw = ["K35.800", "k35800", None, "I10.x05", "???", "Ｉ１０．Ｘ０５", "X59.900"]
    assert norm(raw, "icd10") == ["K35.800", "K35.800", None, "I10.x05", "???", "I10.x05", "X59.900"]
    assert norm(["47.0900", None, "470900"], "icd9") == ["47.0900", None, "47.0900"]
