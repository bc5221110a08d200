"""The real anonymised case files in ../shared/reference/cases load exactly as they are, with no rejects."""

from __future__ import annotations

import csv

import pytest

from dipsim.io import load_cases


@pytest.mark.parametrize("name", ["grouped_cases_chs_drg_1.1.csv", "costed_cases.csv"])
def test_real_case_file_loads_with_no_rejects(shared_reference, name):
    path = shared_reference / "cases" / name
    with open(path, encoding="utf-8", newline="") as fh:
        data_rows = sum(1 for _ in csv.reader(fh)) - 1  # counted independently of dipsim
    result = load_cases(path)
    assert result.rows_read == data_rows
    assert result.n_rejected == 0, result.rejects.to_pylist()[:5]
    assert result.n_accepted == data_rows
    # Codes came through intact: the principal of the first row is the first code in its cell.
    with open(path, encoding="utf-8", newline="") as fh:
        first = next(csv.DictReader(fh))
    assert result.accepted["diagnoses"][0].as_py()[0] == first["诊断编码"].split(",")[0]


def test_grouped_cases_keep_the_insurer_group(shared_reference):
    result = load_cases(shared_reference / "cases" / "grouped_cases_chs_drg_1.1.csv")
    groups = result.accepted["insurer_drg"].to_pylist()
    assert all(groups) and groups[0] == "RC19"
