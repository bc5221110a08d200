"""The command line's boundary: an ordinary fault of files or machines (an output folder that is a file, a full or
read-only disk, a text file in the wrong encoding, too little memory) is one line naming the file, exit 1; exit 3
and a traceback only for a bug. Results are readable as the umask says, CSV cells cannot run as formulas, a case
without a discharge date is not grouped under a guessed version, and a garbage file's control bytes never reach the
terminal raw."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dipsim.cli import main

REPO = Path(__file__).resolve().parents[1]
DRG_POLICY = REPO / "scenarios" / "baseline_drg.toml"


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A small synthetic region, validated; a DRG policy with annual budgets; a one-variant scenario file."""
    root = tmp_path_factory.mktemp("boundary")
    assert main(["synth", "--cases", "2000", "--hospitals", "5", "--seed", "3", "-o", str(root / "r"), "-q"]) == 0
    assert main(["validate", str(root / "r" / "cases"), "-o", str(root / "v"), "-q"]) == 0
    policy = root / "policy.toml"
    policy.write_text(DRG_POLICY.read_text(encoding="utf-8").split("[budget]")[0]
                      + '[budget]\ntotal = { "990100-employee" = 9000000.0, "990100-resident" = 11000000.0 }\n',
                      encoding="utf-8")
    scenario = root / "scenario.toml"
    scenario.write_text(f'[scenario]\nname = "s"\nbaseline = "{policy}"\n[[variant]]\nname = "v"\n'
                        'set = { "outlier.high_ratio" = 3.0 }\n', encoding="utf-8")
    return root


def commands(root: Path, out: Path) -> dict[str, list[str]]:
    """Each command that writes results, with its output at `out`."""
    cases, hospitals = str(root / "v" / "accepted"), str(root / "r" / "hospitals.parquet")
    return {
        "validate": ["validate", str(root / "r" / "cases"), "-o", str(out)],
        "group": ["group", cases, "-o", str(out / "groups.csv")],
        "settle": ["settle", cases, "--policy", str(root / "policy.toml"), "--hospitals", hospitals, "-o", str(out)],
        "scenarios run": ["scenarios", "run", str(root / "scenario.toml"), "--cases", cases, "--hospitals", hospitals,
                          "--no-report", "-o", str(out)],
        "nightly": ["nightly", "--claims", str(root / "r" / "cases"), "--policy", str(root / "policy.toml"),
                    "--hospitals", hospitals, "--state", str(out.parent / "state"), "--out", str(out)],
        "screen": ["screen", cases, "-o", str(out)],
    }


# ---------------------------------------------------------------- faults of the output place


@pytest.mark.parametrize("command", ["validate", "group", "settle", "scenarios run", "nightly", "screen"])
def test_an_output_folder_under_a_file_is_exit_1_naming_it(region, tmp_path, capsys, command):
    """The user gives `-o report.xlsx/out` (a file where a folder should be): even root cannot write there."""
    blocker = tmp_path / "report.xlsx"
    blocker.write_bytes(b"PK\x03\x04 not a folder")
    out = blocker / "out"
    assert main([*commands(region, out)[command], "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dipsim {command}: error: ") and str(blocker) in err and "Not a directory" in err
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err
    assert blocker.read_bytes() == b"PK\x03\x04 not a folder"


def test_a_full_disk_is_exit_1_and_the_previous_output_is_kept(region, tmp_path, capsys, monkeypatch):
    """The disk fills while the group output is written (for real: the bytes go to /dev/full)."""
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full on this system")
    import builtins

    from dipsim.io import writers

    out = tmp_path / "groups.csv"
    out.write_text("yesterday's groups", encoding="utf-8")
    # The stand-in open returns the file to write_csv's own `with`, which closes it.
    monkeypatch.setattr(writers, "open", lambda path, mode: builtins.open("/dev/full", mode),  # noqa: SIM115
                        raising=False)
    assert main(["group", str(region / "v" / "accepted"), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert err == f"dipsim group: error: cannot write {out}: No space left on device\n"
    assert out.read_text(encoding="utf-8") == "yesterday's groups"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groups.csv"]  # no temporary file left behind


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG])
def test_a_failing_parquet_write_names_the_file(region, tmp_path, capsys, monkeypatch, code):
    """pyarrow's own write error (no file name in it, "Error writing bytes to file") on settle's cases.parquet."""
    from dipsim.io import writers

    def failing(table, where, **kwargs):
        raise OSError(code, f"Error writing bytes to file. Detail: [errno {code}] {os.strerror(code)}")

    monkeypatch.setattr(writers.pq, "write_table", failing)
    out = tmp_path / "s"
    assert main(["settle", str(region / "v" / "accepted"), "--policy", str(region / "policy.toml"), "--hospitals",
                 str(region / "r" / "hospitals.parquet"), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert err == f"dipsim settle: error: cannot write {out / 'cases.parquet'}: {os.strerror(code)}\n"
    assert not list(out.glob(".*.tmp"))


def test_a_read_only_file_system_at_the_rename_names_the_file(region, tmp_path, capsys, monkeypatch):
    from dipsim.io import writers

    def read_only(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(src), None, str(dst))

    monkeypatch.setattr(writers.os, "replace", read_only)
    out = tmp_path / "v"
    assert main(["validate", str(region / "r" / "cases"), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dipsim validate: error: cannot write {out / 'accepted'}/part-00000.parquet: "
                          "Read-only file system")


def test_an_output_file_that_is_a_folder_is_exit_1(region, tmp_path, capsys):
    out = tmp_path / "groups.csv"
    out.mkdir()
    assert main(["group", str(region / "v" / "accepted"), "-o", str(out), "-q"]) == 1
    assert capsys.readouterr().err == f"dipsim group: error: cannot write {out}: Is a directory\n"


def test_a_nightly_state_folder_under_a_file_is_exit_1(region, tmp_path, capsys):
    blocker = tmp_path / "state"
    blocker.write_text("a file", encoding="utf-8")
    argv = commands(region, tmp_path / "out")["nightly"]
    argv[argv.index("--state") + 1] = str(blocker / "inner")
    assert main([*argv, "-q"]) == 1
    err = capsys.readouterr().err
    assert err == f"dipsim nightly: error: {blocker / 'inner'}: Not a directory\n"


# ---------------------------------------------------------------- faults of the input and the machine


def test_a_policy_toml_saved_in_gb18030_names_the_file(region, tmp_path, capsys):
    """Notepad on a Chinese Windows saves the auxiliary catalogue in GB18030 (ANSI)."""
    auxiliary = tmp_path / "辅助目录.toml"
    auxiliary.write_bytes('[meta]\nname = "辅助目录"\n'.encode("gb18030"))
    assert main(["settle", str(region / "v" / "accepted"), "--policy", str(region / "policy.toml"), "--hospitals",
                 str(region / "r" / "hospitals.parquet"), "--auxiliary", str(auxiliary), "-o",
                 str(tmp_path / "s"), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dipsim settle: error: {auxiliary}") and "Traceback" not in err
    assert err.count("\n") == 1


def test_running_out_of_memory_is_exit_1_with_advice(region, tmp_path, capsys, monkeypatch):
    import dipsim.grouping.drg as drg

    def too_big(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(drg, "group_table", too_big)
    assert main(["group", str(region / "v" / "accepted"), "-o", str(tmp_path / "g.csv"), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dipsim group: error: out of memory") and "split it" in err and "Traceback" not in err


def test_a_bug_is_still_exit_3_with_the_traceback(region, tmp_path, capsys, monkeypatch):
    import dipsim.grouping.drg as drg

    def bug(*args, **kwargs):
        return None + 1

    monkeypatch.setattr(drg, "group_table", bug)
    assert main(["group", str(region / "v" / "accepted"), "-o", str(tmp_path / "g.csv"), "-q"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "TypeError" in err and "internal error (a bug in dipsim" in err


# ---------------------------------------------------------------- file modes


_CHAIN = """
import os, sys
os.umask(int(sys.argv[1], 8))
from dipsim.cli import main
root, out, policy, scenario = sys.argv[2:]
cases, hospitals = out + "/v/accepted", out + "/r/hospitals.parquet"
for argv in (["synth", "--cases", "2000", "--hospitals", "5", "-o", out + "/r"],
             ["validate", out + "/r/cases", "-o", out + "/v"],
             ["group", cases, "-o", out + "/g.csv"], ["group", cases, "-o", out + "/g.parquet"],
             ["settle", cases, "--policy", policy, "--hospitals", hospitals, "-o", out + "/s"],
             ["scenarios", "run", scenario, "--cases", cases, "--hospitals", hospitals, "--no-report", "-o",
              out + "/sc"],
             ["nightly", "--claims", out + "/r/cases", "--policy", policy, "--hospitals", hospitals, "--state",
              out + "/state", "--out", out + "/n"]):
    assert main([*argv, "-q"]) == 0, argv
"""


@pytest.mark.parametrize("umask", ["022", "077"])
def test_every_result_file_and_folder_has_the_umask_mode(region, tmp_path, umask):
    """A cron job under umask 022: a web server or a colleague reads every result (before, 21 of the 40 files of
    this chain were 0600); under 077 nothing is readable by others."""
    out = tmp_path / "chain"
    subprocess.run([sys.executable, "-c", _CHAIN, umask, str(region), str(out), str(region / "policy.toml"),
                    str(region / "scenario.toml")], check=True, capture_output=True)
    umask = int(umask, 8)
    modes = {}
    for folder, dirs, files in os.walk(out):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                modes[str(path.relative_to(out))] = path.stat().st_mode & 0o777
    assert "s/hospitals.csv" in modes and "n/latest" not in modes and len(modes) > 60
    wrong = {p: oct(m) for p, m in modes.items()
             if m != (0o777 if (out / p).is_dir() else 0o666) & ~umask}
    assert wrong == {}
    run_dir = (out / "n" / "latest").resolve()
    assert run_dir.stat().st_mode & 0o777 == 0o777 & ~umask


# ---------------------------------------------------------------- CSV formula cells


def test_formula_ids_are_quoted_in_group_output_and_rejects(tmp_path, capsys):
    """A claims export whose case ids start with = + - @ (an attacker's =HYPERLINK, or ids like -0042): the group
    output and rejects.csv show them as text in Excel/WPS; the negative LOS in `value` is text too."""
    source = tmp_path / "claims.csv"
    source.write_text("病案号,性别,年龄,住院天数,诊断编码,手术操作编码\n"
                      '"=HYPERLINK(""http://x"",""查看"")",1,60,5,J18.900,\n'
                      "-0042,1,60,5,J18.900,\n"
                      "@A1,1,60,-5,J18.900,\n"    # rejected: negative LOS
                      "+86,1,60,5,J18.900,\n"
                      "C4,1,60,5,J18.900,\n", encoding="utf-8")
    out = tmp_path / "groups.csv"
    assert main(["group", str(source), "-o", str(out), "-q"]) == 0
    assert "rows read 5 = accepted 4 + rejected 1" in capsys.readouterr().out
    lines = out.read_bytes().decode("utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines] == [
        '"case_id"', '"\'=HYPERLINK(""http://x""', '"\'-0042"', '"\'+86"', '"C4"']
    rejects = pd.read_csv(tmp_path / "groups.rejects.csv", encoding="utf-8-sig", dtype=str)
    assert rejects[["case_id", "field", "value"]].values.tolist() == [["'@A1", "los_days", "'-5"]]


# ---------------------------------------------------------------- --scheme auto without discharge dates


def test_scheme_auto_does_not_guess_the_version_of_an_undated_case(tmp_path, capsys):
    """Two cases of 2024, one of 2025 and one whose 出院日期 cell is empty: the empty one was grouped under 2.0
    before; now it is 0000 with the reason, counted on stdout and warned about on stderr."""
    source = tmp_path / "claims.csv"
    source.write_text("病案号,性别,年龄,住院天数,出院日期,诊断编码,手术操作编码\n"
                      "A,1,60,5,2024-06-01,J18.900,\nB,1,60,5,2024-12-31,J18.900,\n"
                      "C,1,60,5,2025-01-02,J18.900,\nD,1,60,5,,J18.900,\n", encoding="utf-8")
    out = tmp_path / "groups.csv"
    assert main(["group", str(source), "--scheme", "auto", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert (("rows read 4 = accepted 4 + rejected 0; chs-drg-1.1 2, chs-drg-2.0 1, chs-drg-3.0 0, "
             "no discharge date (0000) 1")
            in captured.out)
    assert "warning: 1 cases have no discharge date (出院日期)" in captured.err
    groups = pd.read_csv(out, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert groups[["case_id", "drg", "reason", "scheme"]].values.tolist()[3] == [
        "D", "0000", "no discharge date: --scheme auto cannot pick the CHS-DRG version", ""]
    assert groups["scheme"].tolist()[:3] == ["chs-drg-1.1", "chs-drg-1.1", "chs-drg-2.0"]
    assert groups["drg"].tolist()[0] != "0000"


@pytest.mark.parametrize("header, row", [("住院天数", "5"), ("住院天数,出院日期", "5,")])
def test_scheme_auto_on_cases_without_any_date_is_exit_1(tmp_path, capsys, header, row):
    source = tmp_path / "claims.csv"
    source.write_text(f"病案号,诊断编码,{header}\nA,J18.900,{row}\nB,J18.900,{row}\n", encoding="utf-8")
    out = tmp_path / "g.csv"
    assert main(["group", str(source), "--scheme", "auto", "-o", str(out), "-q"]) == 1
    assert capsys.readouterr().err == (
        f"dipsim group: error: {source}: --scheme auto needs discharge dates (出院日期) and the cases have none; "
        "choose --scheme chs-drg-1.1 or --scheme chs-drg-2.0 or --scheme chs-drg-3.0\n")
    assert not out.exists()


# ---------------------------------------------------------------- control characters


def test_printable_escapes_terminal_controls_only():
    from dipsim.io.errors import printable

    assert printable("a\x1b[2J\x1b]52;c;cm0=\x07b\rc\x00d\x7f\x9b\u0085") == \
        "a\\x1b[2J\\x1b]52;c;cm0=\\x07b\\rc\\x00d\\x7f\\x9b\\x85"
    assert printable("line 1\n\tline 2 骨科 K35.800") == "line 1\n\tline 2 骨科 K35.800"


def test_a_garbage_header_does_not_reach_the_terminal_raw(tmp_path, capsys):
    """A binary file renamed .csv: its header 'line' holds ESC sequences that would clear the screen or set the
    window title; the error quotes them escaped."""
    source = tmp_path / "claims.csv"
    source.write_bytes(b"\x1b[2J\x1b]0;pwned\x07,abc\xc2\x9bdef\n1,2\n")
    assert main(["validate", str(source), "-o", str(tmp_path / "v"), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dipsim validate: error: {source}")
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in err and "abc\\x9bdef" in err
    assert not any(ch in err for ch in "\x1b\x07\x9b")


def test_explain_prints_a_case_id_with_control_bytes_escaped(tmp_path, capsys):
    source = tmp_path / "claims.csv"
    source.write_bytes("病案号,性别,年龄,住院天数,诊断编码\nE\x1b[31mX,1,60,5,J18.900\n".encode())
    assert main(["explain", str(source), "--case-id", "E\x1b[31mX"]) == 0
    out = capsys.readouterr().out
    assert "E\\x1b[31mX" in out and "\x1b" not in out and "J18.900" in out

