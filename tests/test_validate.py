"""Validation loses nothing: each bad row is rejected with row, field and reason; warnings keep the row."""

from __future__ import annotations

import csv
import string

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipsim.io import InputError, ValidationOptions, load_cases

HEADER = "病案号,性别,年龄,入院日期,出院日期,住院天数,离院方式,诊断编码,手术操作编码,医疗总费用,统筹基金支付,个人支付"
GOOD = "X,1,50,2025-03-01,2025-03-05,4,1,\"K35.800,E11.900\",47.0900,9000.00,7000.00,2000.00"


def _write(tmp_path, rows: list[str], name="cases.csv"):
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def _row(**changes) -> str:
    fields = dict(zip(HEADER.split(","), next(csv.reader([GOOD]))))
    fields.update(changes)
    return ",".join(f'"{v}"' if "," in v else v for v in fields.values())


# One bad row among good ones: (changes to the good row, field reported, words in the reason).
REJECT_CASES = [
    ({"入院日期": "2025-13-45"}, "admission_date", "bad date"),
    ({"出院日期": "yesterday"}, "discharge_date", "bad date"),
    ({"出院日期": "2025-02-01", "住院天数": "1"}, "discharge_date", "discharge before admission"),
    ({"住院天数": "20"}, "los_days", "LOS inconsistent with the dates"),
    ({"住院天数": "-3", "入院日期": "", "出院日期": ""}, "los_days", "negative length of stay"),
    ({"住院天数": "3.5", "入院日期": "", "出院日期": ""}, "los_days", "not a whole number"),
    ({"住院天数": "", "入院日期": "", "出院日期": ""}, "los_days", "missing length of stay"),
    ({"医疗总费用": "-12.00"}, "total_cost", "negative amount"),
    ({"医疗总费用": "1e12"}, "total_cost", "implausible amount"),
    ({"医疗总费用": "abc"}, "total_cost", "not a number"),
    ({"统筹基金支付": "8000.00"}, "fund_paid", "exceed the total cost"),
    ({"诊断编码": "???"}, "diagnoses", "principal diagnosis is not an ICD-10 code"),
    ({"性别": "7"}, "sex", "sex must be"),
    ({"年龄": "200"}, "age_years", "age above 150"),
    ({"离院方式": "8"}, "discharge_mode", "离院方式"),
    ({"病案号": ""}, "case_id", "missing case id"),
    ({"医疗总费用": ""}, "total_cost", "missing total cost (医疗总费用): the case cannot be priced"),
    ({"医疗总费用": "NaN"}, "total_cost", "missing total cost (医疗总费用): the case cannot be priced"),
    ({"医疗总费用": "nan", "统筹基金支付": "", "个人支付": ""}, "total_cost", "missing total cost"),
]


@pytest.mark.parametrize("changes, field, reason", REJECT_CASES)
def test_bad_row_is_rejected_with_its_reason(tmp_path, changes, field, reason):
    rows = [_row(病案号="G1"), _row(**{"病案号": "B1", **changes}), _row(病案号="G2")]
    result = load_cases(_write(tmp_path, rows))
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (3, 2, 1)
    found = result.rejects.to_pylist()
    assert any(r["row"] == 2 and r["field"] == field and reason in r["reason"] for r in found), found
    assert result.accepted["case_id"].to_pylist() == ["G1", "G2"]


def test_claims_without_a_total_cost_are_rejected_not_paid_nothing(tmp_path):
    """An export where two claims lost their total cost (an empty cell, a pandas "NaN"): priced, they would be
    paid 0 points as low outliers. They are rejected; the total of the accepted claims is the other two's."""
    rows = [_row(病案号="T1"), _row(病案号="T2", 医疗总费用=""), _row(病案号="T3", 医疗总费用="NaN"),
            _row(病案号="T4", 医疗总费用="1,200.50", 统筹基金支付="", 个人支付="")]
    result = load_cases(_write(tmp_path, rows))
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (4, 2, 2)
    assert result.accepted["total_cost"].to_pylist() == [9000.0, 1200.5]
    assert [(r["row"], r["value"]) for r in result.rejects.to_pylist()] == [(2, ""), (3, "NaN")]


def test_parquet_total_cost_nan_is_rejected(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "claims.parquet"
    pq.write_table(pa.table({"case_id": ["P1", "P2"], "los_days": [3, 3], "diagnoses": ["K35.800", "K35.800"],
                             "total_cost": [1000.0, float("nan")]}), path)
    result = load_cases(path)
    assert (result.n_accepted, result.rejects["row"].to_pylist()) == (1, [2])
    assert result.rejects["reason"][0].as_py() == "missing total cost (医疗总费用): the case cannot be priced"


def test_file_without_a_total_cost_column_is_still_read_for_grouping(tmp_path):
    path = tmp_path / "grouping_only.csv"
    path.write_text("病案号,住院天数,诊断编码\nG1,3,K35.800\nG2,4,J18.900\n", encoding="utf-8")
    result = load_cases(path)
    assert (result.n_accepted, result.n_rejected) == (2, 0)
    assert "total_cost" in result.absent_columns


def test_duplicate_case_id_keeps_the_first(tmp_path):
    result = load_cases(_write(tmp_path, [_row(病案号="D"), _row(病案号="E"), _row(病案号="D")]))
    assert result.accepted["case_id"].to_pylist() == ["D", "E"]
    (reject,) = result.rejects.to_pylist()
    assert reject["row"] == 3 and reject["reason"] == "duplicate case id (first at row 1)"


def test_row_with_too_many_fields_is_rejected(tmp_path):
    rows = [_row(病案号="A"), _row(病案号="B") + ",extra", _row(病案号="C")]
    result = load_cases(_write(tmp_path, rows))
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (3, 2, 1)
    assert result.rejects["row"].to_pylist() == [2]
    assert "13 fields, the header has 12" in result.rejects["reason"][0].as_py()


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"诊断编码": "K35.800,E11.999"}, "not in ICD-10 医保版 2.0"),
        ({"诊断编码": "K35.800,garbage"}, "not an ICD-10 code"),
        ({"手术操作编码": "99.9999"}, "not in ICD-9-CM-3 医保版 2.0"),
        ({"性别": ""}, "missing sex"),
        ({"离院方式": ""}, "missing discharge mode"),
        ({"诊断编码": ""}, "missing principal diagnosis"),
    ],
)
def test_problems_that_do_not_stop_grouping_are_warnings(tmp_path, changes, reason):
    result = load_cases(_write(tmp_path, [_row(病案号="W", **changes)]))
    assert (result.n_accepted, result.n_rejected) == (1, 0)
    assert any(reason in r for r in result.warnings["reason"].to_pylist()), result.warnings.to_pylist()


def test_missing_principal_can_be_made_a_reject(tmp_path):
    path = _write(tmp_path, [_row(病案号="W", 诊断编码="")])
    result = load_cases(path, options=ValidationOptions(missing_principal="reject"))
    assert (result.n_accepted, result.n_rejected) == (0, 1)


def test_los_is_derived_from_dates_and_age_from_days(tmp_path):
    path = tmp_path / "derive.csv"
    path.write_text("病案号,入院日期,出院日期,诊断编码,新生儿年龄天\nN,2025-05-01,2025-05-01,P07.100,10\n",
                    encoding="utf-8")
    result = load_cases(path)
    assert result.accepted["los_days"].to_pylist() == [1]  # a same-day stay counts one day
    assert result.accepted["age_years"].to_pylist() == [0]


def test_file_without_case_ids_gets_ids_from_row_numbers(tmp_path):
    path = tmp_path / "noid.csv"
    path.write_text("住院天数,诊断编码\n3,K35.800\n4,J18.900\n", encoding="utf-8")
    result = load_cases(path)
    assert result.accepted["case_id"].to_pylist() == ["noid.csv#1", "noid.csv#2"]


def test_full_width_and_odd_code_forms_are_normalised(tmp_path):
    path = _write(tmp_path, [_row(病案号="F", 诊断编码="ｋ３５．８００ｘ００１；e11900", 手术操作编码="470900")])
    result = load_cases(path)
    assert result.accepted["diagnoses"].to_pylist() == [["K35.800x001", "E11.900"]]
    assert result.accepted["procedures"].to_pylist() == [["47.0900"]]


def test_crosswalk_applied_on_request(tmp_path):
    from dipsim.codes import load_crosswalk

    table = load_crosswalk("icd10_yb1.0").table
    changed = table[table["source_code"] != table["target_code"]].iloc[0]
    path = _write(tmp_path, [_row(病案号="C", 诊断编码=f"{changed.source_code},E11.900")])
    plain = load_cases(path)
    walked = load_cases(path, options=ValidationOptions(diagnosis_crosswalk="icd10_yb1.0"))
    assert plain.accepted["diagnoses"].to_pylist()[0][0] == changed.source_code
    assert walked.accepted["diagnoses"].to_pylist()[0][0] == changed.target_code


def test_empty_file_is_an_input_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError):
        load_cases(path)


# ---------------------------------------------------------------- property: random malformed rows

_cell_text = st.text(
    alphabet=st.sampled_from(list(string.ascii_letters + string.digits + ".-/;| ,") + list("男女中医诊断ｋ３５．")),
    max_size=12,
)
_cell = st.one_of(
    _cell_text,
    st.sampled_from(["", "NULL", "-1", "1e309", "99999999999", "2025-02-30", "K35.800", "47.0900", "0", "3"]),
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
_row_strategy = st.lists(_cell, min_size=10, max_size=14)  # wrong field counts included on purpose
_bad_bytes = st.sampled_from([b"", b"\xff", b"\xfe\xfe", b"\x80abc", b"\xc3", b"\xa1\xa1"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_row_strategy, _bad_bytes), min_size=1, max_size=25))
def test_random_malformed_rows_never_lose_a_row(tmp_path, rows):
    lines = []
    for cells, junk in rows:
        quoted = ",".join('"' + c.replace('"', "") + '"' if "," in c else c.replace('"', "") for c in cells)
        lines.append(quoted.encode("utf-8") + junk)
    path = tmp_path / "fuzz.csv"
    path.write_bytes(HEADER.encode("utf-8") + b"\n" + b"\n".join(lines) + b"\n")
    try:
        result = load_cases(path)
    except InputError:
        return  # a clear, typed refusal of the whole file is allowed; a crash is not
    assert result.rows_read == len(rows)
    assert result.rows_read == result.n_accepted + result.n_rejected
    assert set(result.rejects["row"].to_pylist()) <= set(range(1, len(rows) + 1))
    assert all(result.rejects["reason"].to_pylist())


def test_one_problem_gives_one_line(tmp_path):
    """A negative total is reported once, not again as 'fund and patient amounts exceed the total'."""
    result = load_cases(_write(tmp_path, [_row(病案号="N", 医疗总费用="-5", 统筹基金支付="", 个人支付="")]))
    assert [(r["field"], r["reason"]) for r in result.rejects.to_pylist()] == [("total_cost", "negative amount (yuan)")]


def test_cli_summary_counts_reasons(tmp_path):
    from dipsim.io.pipeline import validate_to_dir

    rows = [_row(病案号="A", 住院天数="-1", 入院日期="", 出院日期=""),
            _row(病案号="B", 住院天数="-2", 入院日期="", 出院日期="")]
    summary = validate_to_dir(_write(tmp_path, rows), tmp_path / "out")
    assert summary.reject_reasons == {"los_days: negative length of stay": 2}


# ---------------------------------------------------------------- batches: the same answer as one read

_BAD = [{"医疗总费用": "-12.00"}, {"年龄": "200"}, {"病案号": ""}, {"出院日期": "yesterday"}]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from("ABCDEFGHIJKLMNOPQRST"), st.sampled_from([None, *range(len(_BAD))])),
                     min_size=1, max_size=40),
       batch_rows=st.integers(1, 12))
def test_a_parquet_file_validated_in_batches_equals_one_read(tmp_path, rows, batch_rows):
    """Ids repeat across batches and bad rows fall anywhere: accepted rows, rejects (duplicates with their first
    row) and counts are those of one read of the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dipsim.io.validate import iter_load_cases

    lines = [next(csv.reader([_row(**{"病案号": cid, **(_BAD[bad] if bad is not None else {})})])) for cid, bad in rows]
    header = HEADER.split(",")
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({h: [line[i] for line in lines] for i, h in enumerate(header)}), path,
                   row_group_size=5)
    whole = load_cases(path)
    parts = list(iter_load_cases(path, batch_rows))
    assert sum(p.rows_read for p in parts) == whole.rows_read == len(rows)
    assert pa.concat_tables([p.accepted for p in parts]).equals(whole.accepted)
    assert pa.concat_tables([p.rejects for p in parts]).to_pylist() == whole.rejects.to_pylist()
    assert sum(p.n_rejected for p in parts) == whole.n_rejected


def test_row_numbers_past_a_million_are_written_whole():
    """A repeated case id's reason names the first row as an integer, and a LOS/dates mismatch its day counts, far
    into a file (rows 1,234,567 and on: formatted as floats, they read 1.23457e+06)."""
    from dipsim.io.readers import RawCases
    from dipsim.io.validate import validate_cases

    table = pa.table({"case_id": ["A", "B", "A"], "diagnoses": ["K35.800", "K35.800", "K35.800"],
                      "los_days": ["3", "40", "3"], "admission_date": ["2025-01-01"] * 3,
                      "discharge_date": ["2025-01-04", "2025-01-04", "2025-01-04"]})
    rows = np.array([1_234_567, 1_234_568, 1_234_569], np.int64)
    result = validate_cases(RawCases(table, rows, "big.csv"))
    reasons = {(r["row"], r["reason"], r["value"]) for r in result.rejects.to_pylist()}
    assert (1_234_569, "duplicate case id (first at row 1234567)", "A") in reasons
    assert (1_234_568, "LOS inconsistent with the dates", "40 vs dates 3 days") in reasons


@pytest.mark.parametrize("loaded", ["hash kernel", "numba", "nothing"])
def test_repeated_case_ids_are_told_the_same_either_way(monkeypatch, loaded):
    """`_no_repeats` hashes the ids when Numba is loaded (a few ids only once the hash kernel is) and counts
    distinct ids otherwise: same answers."""
    import sys

    from dipsim.io import validate

    if loaded == "hash kernel":
        from dipsim.io.case_id_hashes import case_id_hashes

        case_id_hashes(pa.array(["a"]))
        assert validate._hash_kernel_loaded()
    elif loaded == "numba":
        import numba  # noqa: F401

        monkeypatch.setattr(validate, "_hash_kernel_loaded", lambda: False)
    else:
        monkeypatch.delitem(sys.modules, "numba", raising=False)
    assert validate._first_positions(pa.array(["a", "b", None, None, "c"])) is None  # missing ids never repeat
    assert validate._first_positions(pa.array(["a", "b", "a", None, "b"])).tolist() == [0, 1, 0, -1, 1]
    assert not validate._no_repeats(pa.array(["x", "y", "x"]))
