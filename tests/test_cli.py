"""The `dipsim` command line: counts printed, rejects written, exit codes as DESIGN.md says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pytest

from dipsim.cli import main

CSV = (
    "病案号,住院天数,诊断编码,医疗总费用\n"
    "A1,3,K35.800,1000\n"
    "A2,-1,K35.800,1000\n"  # negative LOS: rejected
    "A3,2,\"J18.900,E11.999\",500\n"  # unknown secondary code: warning, kept
)


def test_validate_prints_counts_and_writes_rejects(tmp_path, capsys):
    source = tmp_path / "claims.csv"
    source.write_bytes(CSV.encode("gb18030"))
    out = tmp_path / "out"
    assert main(["validate", str(source), "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "rows read 3 = accepted 2 + rejected 1; warnings 1" in printed
    rejects = pd.read_csv(out / "rejects.csv", encoding="utf-8-sig")
    assert rejects[["row", "case_id", "field"]].values.tolist() == [[2, "A2", "los_days"]]
    accepted = pd.read_parquet(out / "accepted")
    assert accepted["case_id"].tolist() == ["A1", "A3"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["totals"] == {"rows_read": 3, "accepted": 2, "rejected": 1, "warnings": 1}
    assert len(manifest["inputs"][0]["sha256"]) == 64


def test_missing_input_is_exit_1_with_the_path(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o")]) == 1
    assert "nope.csv: no such file" in capsys.readouterr().err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2
    assert main([]) == 2


def test_synth_then_validate_a_partitioned_region(tmp_path, capsys):
    region = tmp_path / "region"
    assert main(["synth", "--cases", "3000", "--hospitals", "12", "--seed", "7", "-o", str(region), "-q"]) == 0
    assert main(["validate", str(region / "cases"), "-o", str(tmp_path / "v"), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "rows read 3,000 = accepted 3,000 + rejected 0" in printed


def test_entry_point_help_answers():
    for args in (["--help"], ["validate", "--help"], ["synth", "--help"], ["demo", "--help"]):
        done = subprocess.run([sys.executable, "-m", "dipsim.cli", *args], capture_output=True, text=True)
        assert done.returncode == 0 and "usage: dipsim" in done.stdout


def test_a_case_id_in_two_partitions_is_rejected_the_second_time(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "parts"
    for month, ids in (("2025-01", ["A", "B"]), ("2025-02", ["C", "A"])):
        part = folder / f"discharge_month={month}"
        part.mkdir(parents=True)
        pq.write_table(pa.table({"case_id": ids, "los_days": [3, 4], "diagnoses": [["K35.800"], ["J18.900"]]}),
                       part / "part-0.parquet")
    assert main(["validate", str(folder), "-o", str(tmp_path / "v"), "-q"]) == 0
    assert "rows read 4 = accepted 3 + rejected 1" in capsys.readouterr().out
    rejects = pd.read_csv(tmp_path / "v" / "rejects.csv", encoding="utf-8-sig")
    assert rejects[["row", "case_id", "reason"]].values.tolist() == [
        [2, "A", "duplicate case id (first at row 1 of discharge_month=2025-01/part-0.parquet)"]]
    assert sorted(pd.read_parquet(tmp_path / "v" / "accepted")["case_id"]) == ["A", "B", "C"]


def test_explain_says_which_rule_and_which_exclusion_table(tmp_path, capsys):
    source = tmp_path / "claims.csv"
    source.write_text("病案号,性别,年龄,住院天数,诊断编码,手术操作编码\n"
                      "E1,1,60,5,\"J95.000,J96.000,K92.210\",\n", encoding="utf-8")
    assert main(["explain", str(source), "--case-id", "E1"]) == 0
    text = capsys.readouterr().out
    assert "J96.000 would be MCC but the principal J95.000 is in its exclusion table 109" in text
    assert "K92.210 is CC" in text
    assert "ADRG DZ1" in text and "result: DRG DZ19" in text
    assert "J95.000  " in text  # each code is shown with its Chinese name
    assert main(["explain", str(source), "--case-id", "nope"]) == 1


def test_group_writes_the_interface_columns_and_rejects(tmp_path, capsys):
    source = tmp_path / "claims.csv"
    source.write_bytes(("病案号,性别,年龄,住院天数,诊断编码,手术操作编码\n"
                        "A,1,60,5,\"J18.900,J96.000\",\n"       # 肺炎 with an MCC
                        "B,1,60,5,K92.210,81.5100\n"           # an unrelated operation: QY
                        "C,1,60,-5,J18.900,\n"                 # rejected: negative LOS
                        "D,1,60,5,,\n").encode("gb18030"))     # no principal: ungroupable
    out = tmp_path / "groups.csv"
    assert main(["group", str(source), "--scheme", "chs-drg-1.1", "--qy", "on", "-o", str(out), "-q"]) == 0
    assert "accepted 3 + rejected 1; grouped 2, ungroupable (0000) 1" in capsys.readouterr().out
    groups = pd.read_csv(out, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(groups.columns[:6]) == ["case_id", "drg", "adrg", "mdc", "cc_level", "reason"]
    rows = {r.case_id: r for r in groups.itertuples()}
    assert (rows["A"].drg, rows["A"].adrg, rows["A"].mdc, rows["A"].cc_level) == ("ES31", "ES3", "E", "2")
    assert rows["B"].drg == "GQY"
    assert rows["D"].drg.startswith("0000") and rows["D"].reason
    rejects = pd.read_csv(tmp_path / "groups.rejects.csv", encoding="utf-8-sig")
    assert rejects["case_id"].tolist() == ["C"]
    assert main(["group", str(source), "-o", str(tmp_path / "x.txt")]) == 1


def test_validated_output_is_trusted_only_as_written(tmp_path):
    """A folder written by `dipsim validate` reads back without a second validation; other options mean it is
    validated again, a missing part that it is refused (issue 15)."""
    from dipsim.io import InputError, ValidationOptions, load_cases
    from dipsim.io.readers import read_cases_raw
    from dipsim.io.validate import validate_cases

    region = tmp_path / "region"
    assert main(["synth", "--cases", "2000", "--hospitals", "8", "--seed", "3", "-o", str(region), "-q"]) == 0
    assert main(["validate", str(region / "cases"), "-o", str(tmp_path / "v"), "-q"]) == 0
    accepted = tmp_path / "v" / "accepted"
    trusted = load_cases(accepted)
    checked = validate_cases(read_cases_raw(accepted))
    assert trusted.trusted and not checked.trusted
    assert trusted.accepted.equals(checked.accepted)
    narrow = load_cases(accepted, columns=["case_id", "diagnoses", "los_days", "not_a_column"])
    assert narrow.trusted and narrow.accepted.column_names == ["case_id", "los_days", "diagnoses"]
    assert narrow.accepted.equals(checked.accepted.select(narrow.accepted.column_names))
    coded = load_cases(accepted, columns=["case_id", "diagnoses", "procedures"], dictionary_codes=True)
    assert coded.trusted and pa.types.is_dictionary(coded.accepted.schema.field("diagnoses").type.value_type)
    assert coded.accepted["diagnoses"].to_pylist() == checked.accepted["diagnoses"].to_pylist()
    assert not load_cases(accepted, options=ValidationOptions(missing_principal="reject")).trusted
    sorted(accepted.glob("part-*.parquet"))[0].unlink()
    with pytest.raises(InputError, match="11 of 12 parts"):
        load_cases(accepted)


def test_demo_runs_the_whole_chain(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--cases", "3000", "--hospitals", "10", "-o", str(out), "-q"]) == 0
    for path in ("grouped.parquet", "drg_weights.csv", "dip_catalog/catalog.parquet", "dip_grouped.parquet",
                 "settlement/hospitals.csv", "settlement/pools.csv"):
        assert (out / path).is_file(), path
    reports = sorted(p.parent.name for p in (out / "scenarios").glob("*/report.html"))
    assert reports == ["budget_growth", "outlier_thresholds", "special_case_review", "supervision",
                       "tcm_weighting"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc is chosen on Linux only")
def test_the_command_line_takes_arrow_s_jemalloc_pool_unless_told_otherwise():
    """`dipsim` sets ARROW_DEFAULT_MEMORY_POOL=jemalloc before pyarrow is imported (issue 17: less system time and
    peak memory than mimalloc); a pool the user names is kept."""
    if "jemalloc" not in pa.supported_memory_backends():
        pytest.skip("this pyarrow has no jemalloc")
    code = "import dipsim.cli, pyarrow as pa, os; print(pa.default_memory_pool().backend_name)"
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    for given, expected in ((None, "jemalloc"), ("", "jemalloc"), ("mimalloc", "mimalloc"), ("system", "system")):
        run_env = env if given is None else {**env, "ARROW_DEFAULT_MEMORY_POOL": given}
        out = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected, (given, out.stderr)
