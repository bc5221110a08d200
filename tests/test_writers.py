"""Writes are atomic: a failed write leaves the previous file intact and no temporary file behind."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dipsim.io.writers import atomic_path, write_csv, write_table


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "hospitals.csv"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
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


def test_formula_cells_in_text_columns_are_quoted_numbers_stay_numbers(tmp_path):
    """A hospital export with ids an attacker (or Excel itself) started with = + - @ or a tab: opened in Excel or
    WPS, the CSV must show text, never run =HYPERLINK or a DDE command (OWASP CSV injection)."""
    table = pa.table({
        "case_id": ['=HYPERLINK("http://x","点我")', "+1+1", "-2", "@SUM(A1)", "\t=1", "A-1", "", None],
        "value": ["-5", "=cmd|' /C calc'!A0", "x", "'kept", "5", "-", "\r=1", "ok"],  # the rejected value is text
        "delta": [-123.45, 0.0, -1.0, 2.5, -0.01, 3.0, 1.0, -7.0],                 # a number stays a number
        "codes": pa.array([["-J18.900", "K35.800"], [], ["K35.800"], None, ["@x"], ["a"], ["b"], ["c"]]),
    })
    text = write_csv(table, tmp_path / "rejects.csv").read_bytes().decode("utf-8-sig")
    assert text.split("\n") == [
        '"case_id","value","delta","codes"',
        '"\'=HYPERLINK(""http://x"",""点我"")","\'-5",-123.45,"\'-J18.900,K35.800"',
        '"\'+1+1","\'=cmd|\' /C calc\'!A0",0,""',
        '"\'-2","x",-1,"K35.800"',
        '"\'@SUM(A1)","\'kept",2.5,',
        '"\'\t=1","5",-0.01,"\'@x"',
        '"A-1","\'-",3,"a"',
        '"","\'\r=1",1,"b"',
        ',"ok",-7,"c"',
        "",
    ]


def test_formula_cells_in_a_dictionary_column_are_quoted(tmp_path):
    codes = pa.array(["=A1", "GQY", "=A1", "-1"]).dictionary_encode()
    text = write_csv(pa.table({"drg": codes}), tmp_path / "g.csv").read_bytes().decode("utf-8-sig")
    assert text.splitlines() == ['"drg"', '"\'=A1"', '"GQY"', '"\'=A1"', '"\'-1"']


_MODES = """
import json, os, sys
import pyarrow as pa
os.umask(int(sys.argv[1], 8))
from dipsim.io.writers import temp_dir, write_csv, write_json, write_parquet
out = sys.argv[2]
write_csv(pa.table({"a": [1]}), out + "/deep/x.csv")
write_parquet(pa.table({"a": [1]}), out + "/x.parquet")
write_json({}, out + "/x.json")
folder = temp_dir(out, ".run-")
print(json.dumps({p: os.stat(os.path.join(out, p)).st_mode & 0o777
                  for p in ("deep", "deep/x.csv", "x.parquet", "x.json", folder.name)}))
"""


@pytest.mark.parametrize("umask, file_mode, folder_mode", [("022", 0o644, 0o755), ("077", 0o600, 0o700),
                                                           ("027", 0o640, 0o750)])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask, file_mode, folder_mode):
    """A cron job under umask 022 writes results a web server can read (mkstemp's 0600 and mkdtemp's 0700 are not
    kept); under 077 they stay private."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MODES, umask, str(tmp_path)], capture_output=True, text=True,
                          check=True)
    modes = json.loads(done.stdout)
    run_folder = next(name for name in modes if name.startswith(".run-"))
    assert modes == {"deep": folder_mode, "deep/x.csv": file_mode, "x.parquet": file_mode, "x.json": file_mode,
                     run_folder: folder_mode}


def test_a_table_written_in_parts_is_the_table_written_whole(tmp_path):
    """`table_parts` (what `dipsim group` writes its output through, a piece at a time): the same rows and types as
    one write, for Parquet and CSV (the CSV byte for byte); a failure in the middle leaves no file."""
    import pyarrow.parquet as pq

    from dipsim.io.writers import table_parts

    parts = [pa.table({"case_id": ["a", "=b"], "drg": ["AB11", "0000"], "n": [1, 2]}),
             pa.table({"case_id": ["c"], "drg": ["CD13"], "n": [3]})]
    whole = pa.concat_tables(parts)
    for suffix in (".parquet", ".csv"):
        with table_parts(tmp_path / f"parts{suffix}") as write:
            for part in parts:
                write(part)
        write_table(whole, tmp_path / f"whole{suffix}")
    assert pq.read_table(tmp_path / "parts.parquet").equals(whole)
    assert pq.ParquetFile(tmp_path / "parts.parquet").metadata.num_row_groups == 2  # a row group a part
    assert (tmp_path / "parts.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    with pytest.raises(RuntimeError), table_parts(tmp_path / "failed.parquet") as write:
        write(parts[0])
        raise RuntimeError("the second piece could not be read")
    assert not (tmp_path / "failed.parquet").exists() and not list(tmp_path.glob(".failed*"))
    with pytest.raises(ValueError, match="unsupported output type"), table_parts(tmp_path / "x.txt"):
        pass
