"""Writes are atomic: a failed write leaves the previous file intact and no temporary file behind."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dipsim.io.writers import atomic_path, write_csv, write_table


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "hospitals.csv"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["hospitals.csv"]


def test_csv_has_bom_and_joined_code_lists(tmp_path):
    table = pa.table({"case_id": ["A"], "diagnoses": pa.array([["K35.800", "E11.900"]]), "科室": ["普外科"]})
    path = write_csv(table, tmp_path / "out.csv")
    data = path.read_bytes()
    assert data.startswith("\ufeff".encode())
    assert data.decode("utf-8-sig").splitlines() == ['"case_id","diagnoses","科室"', '"A","K35.800,E11.900","普外科"']


def test_unknown_extension_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unsupported output type"):
        write_table(pa.table({"a": [1]}), tmp_path / "out.xls")
