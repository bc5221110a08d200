"""Validation gives exactly what its row-at-a-time reference gives (issue 17): the same accepted rows (values and
types), the same rejects and the same warnings, line for line and in the same order, and no row lost, on

(a) the inputs the fuzz tests generate (tests/test_reader_fuzz.py's CSV exports and workbooks, tests/test_validate.py's
    malformed rows), with each set of validation options;
(b) the hand-written bad inputs of the other tests (bad rows, mixed encodings, stray quotes, huge fields, split code
    columns, spreadsheets, typed Parquet);
(c) the real case files in ../shared/reference/cases (skipped where that folder is absent);
(d) a synthetic region with defects injected: one raw Parquet file of its typed rows (whole and in batches), the same
    rows as a GB18030 CSV export with Chinese headers, and its folder of monthly partitions with a month copied.

The reference is tests/validation_reference.py. Where the two disagree and the reference is right by the docstrings
and the README, the test is marked xfail(strict=True) with the reason, so that fixing validation flips it.
(Set DIPSIM_CHECK_VALIDATION=1 to compare every `validate_cases` call of the whole test suite too: conftest.py.)
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
import shutil

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import test_validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reader_fuzz import CASE_ID_PREFIXES, DEPARTMENTS, DIAGNOSES, exports
from test_readers import CHINESE_ROWS, MIXED_HEADER, SPLIT_HEADER
from validation_reference import assert_same, reference_folder, reference_validate

from dipsim.io import InputError, ValidationOptions, load_cases
from dipsim.io.readers import RawCases, read_cases_raw
from dipsim.io.validate import ValidationResult, iter_cases, iter_load_cases, validate_cases
from dipsim.schema import CASE_SCHEMA

OPTIONS = [
    ValidationOptions(),
    ValidationOptions(missing_principal="reject", los_date_tolerance_days=0, check_dictionary=False),
    ValidationOptions(max_los_days=30, max_age_years=90, max_birth_weight_g=5000, max_cost_yuan=5000.0,
                      diagnosis_crosswalk="icd10_yb1.0", procedure_crosswalk="icd9_guolin3.0"),
]
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])


def check(path, options: ValidationOptions | None = None, **read) -> ValidationResult | None:
    """`load_cases(path)` against the reference on the same raw read; None when both refuse the file."""
    try:
        result = load_cases(path, options, **read)
    except InputError:
        with pytest.raises(InputError):
            reference_validate(read_cases_raw(path, **read), options)
        return None
    raw = read_cases_raw(path, **read)
    assert_same(result, reference_validate(raw, options), raw.unmapped)
    return result


def check_raw(raw: RawCases, options: ValidationOptions | None = None) -> ValidationResult:
    result = validate_cases(raw, options)
    assert_same(result, reference_validate(raw, options), raw.unmapped)
    return result


# ---------------------------------------------------------------- (a) the fuzz tests' inputs


@settings(max_examples=40, **SETTINGS)
@given(export=exports(), options=st.sampled_from(OPTIONS))
def test_fuzzed_csv_exports(tmp_path, export, options):
    """tests/test_reader_fuzz.py's exports: encodings mixed, delimiters, quotes, line ends, damaged rows."""
    path = tmp_path / "export.csv"
    path.write_bytes(export.data)
    result = check(path, options)
    if result is not None:  # no row lost: every true row is accepted or rejected
        assert result.rows_read == result.n_accepted + result.n_rejected == len(export.rows)


def _write_rows(path, lines: list[bytes]) -> None:
    path.write_bytes(test_validate.HEADER.encode("utf-8") + b"\n" + b"\n".join(lines) + b"\n")


def _quoted(cells: list[str]) -> bytes:
    return ",".join('"' + c.replace('"', "") + '"' if "," in c else c.replace('"', "") for c in cells).encode()


@settings(max_examples=25, **SETTINGS)
@given(rows=st.lists(st.tuples(test_validate._row_strategy, test_validate._bad_bytes), min_size=1, max_size=25),
       options=st.sampled_from(OPTIONS))
def test_fuzzed_malformed_rows(tmp_path, rows, options):
    """tests/test_validate.py's random malformed rows (field counts wrong, bytes not text, cells of junk)."""
    path = tmp_path / "fuzz.csv"
    _write_rows(path, [_quoted(cells) + junk for cells, junk in rows])
    result = check(path, options)
    if result is not None:
        assert result.rows_read == result.n_accepted + result.n_rejected == len(rows)


_GOOD_CELLS = next(csv.reader([test_validate.GOOD]))
_fuzzed_row = st.one_of(
    st.lists(test_validate._cell, min_size=12, max_size=12),  # every cell junk: many lines for one row
    st.lists(st.tuples(st.integers(0, 11), test_validate._cell), max_size=3).map(  # a good row, a few cells changed
        lambda changes: [dict(changes).get(i, c) for i, c in enumerate(_GOOD_CELLS)]),
)


@settings(max_examples=40, **SETTINGS)
@given(rows=st.lists(_fuzzed_row, min_size=1, max_size=60), options=st.sampled_from(OPTIONS))
def test_fuzzed_cells(tmp_path, rows, options):
    """tests/test_validate.py's cells in rows of the header's length, whole rows of them or a few in a good row:
    every check meets numbers, dates, codes and junk, several in one row."""
    path = tmp_path / "cells.csv"
    _write_rows(path, [_quoted([f"G{i}" if j == 0 and c == "X" else c for j, c in enumerate(cells)])
                       for i, cells in enumerate(rows)])
    result = check(path, options)
    rows_written = sum(any(cells) for cells in rows)  # a row of empty cells is no row, as a blank line
    assert result.rows_read == result.n_accepted + result.n_rejected == rows_written


@settings(max_examples=6, **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1))
def test_fuzzed_workbooks(tmp_path, seed):
    """Workbooks as tests/test_reader_fuzz.py writes them: typed numbers, formula-like text, formulas without a
    saved value, empty rows, trailing empty columns."""
    rng = random.Random(seed)
    book = openpyxl.Workbook()
    book.active.append(["病案号", "住院天数", "诊断编码", "医疗总费用", "科室", None, None])
    rows = 0
    for i in range(rng.randint(1, 30)):
        if rng.random() < 0.1:
            book.active.append([])
            continue
        case_id = f"{rng.choice(CASE_ID_PREFIXES[:1] + CASE_ID_PREFIXES[2:])}{i:03d}" if i % 3 else i + 1000
        book.active.append([case_id, rng.randint(1, 30), rng.choice(DIAGNOSES),
                            "=1+1" if rng.random() < 0.2 else 1200.5,
                            rng.choice([d for d in DEPARTMENTS if not d.startswith("=")])])
        rows += 1
    path = tmp_path / "book.xlsx"
    book.save(path)
    assert check(path).rows_read == rows


# ---------------------------------------------------------------- (b) the other tests' hand-written bad inputs

WARNING_CHANGES = [{"诊断编码": "K35.800,E11.999"}, {"诊断编码": "K35.800,garbage"}, {"手术操作编码": "99.9999"},
                   {"性别": ""}, {"离院方式": ""}, {"诊断编码": ""}]  # tests/test_validate.py's warnings
MORE_CHANGES = [  # one row each, beside good ones: what exports write
    {"性别": "男", "离院方式": "死亡", "年龄": "50岁", "医疗总费用": "9,000.00元"},
    {"性别": "F", "离院方式": "转院", "入院日期": "2025年3月1日", "出院日期": "20250305"},
    {"性别": "9.0", "离院方式": "5.00", "入院日期": "2025/3/1 08:00", "出院日期": "2025-03-05T10:20:00"},
    {"入院日期": "45717", "出院日期": "45721"},  # Excel serial days
    {"入院日期": "", "出院日期": "2025-03-05", "住院天数": ""},
    {"入院日期": "2025-03-01", "出院日期": "2025-03-01", "住院天数": ""},
    {"住院天数": "4.0"}, {"住院天数": "-0"}, {"住院天数": "1e309"}, {"住院天数": "NULL"}, {"住院天数": "n/a"},
    {"年龄": "-1"}, {"年龄": "12.5"}, {"年龄": "abc"}, {"年龄": ""}, {"性别": "unknown"}, {"性别": "NaN"},
    {"医疗总费用": "-"}, {"医疗总费用": " NaN "}, {"医疗总费用": "inf"}, {"医疗总费用": "-inf"},
    {"统筹基金支付": "-5", "个人支付": "9100"}, {"统筹基金支付": "", "个人支付": "9000.01"},
    {"统筹基金支付": "abc"}, {"个人支付": "1e9"},
    {"病案号": "ｘ１"}, {"病案号": " X "}, {"病案号": "null"}, {"病案号": "G1"},  # G1 is the first row's id
    {"诊断编码": "k35.8；e11.9、I10.x"}, {"诊断编码": ",I10.x00"}, {"诊断编码": "Z37.000"},  # 灰码 principal
    {"诊断编码": "K35800x001+G632*"}, {"诊断编码": "？？，E11.900"}, {"诊断编码": "NULL"},
    {"手术操作编码": ",47.0900"}, {"手术操作编码": "4709；5451、99.9999 garbage"}, {"手术操作编码": "１７９１１００"},
    {"离院方式": "医嘱转社区卫生服务机构/乡镇卫生院"}, {"离院方式": "0"}, {"离院方式": "其他"},
]
HAND_ROWS = [c for c, _, _ in test_validate.REJECT_CASES] + WARNING_CHANGES + MORE_CHANGES


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "strict", "crosswalks"])
def test_hand_written_rows(tmp_path, options):
    """tests/test_validate.py's bad rows (and more), each in a file beside good rows, in one file of them all too."""
    rows = [test_validate._row(病案号="G1")]
    for i, changes in enumerate(HAND_ROWS):
        rows.append(test_validate._row(**{"病案号": f"B{i}", **changes}))
        rows.append(test_validate._row(病案号=f"G{i + 2}"))
    check(test_validate._write(tmp_path, rows), options)


def test_typed_parquet_rows(tmp_path):
    """tests/test_validate.py's and test_folders.py's Parquet tables: typed numbers, NaN, lists, no case ids."""
    tables = {
        "nan.parquet": pa.table({"case_id": ["P1", "P2", "P1"], "los_days": [3, 3, -1],
                                 "diagnoses": ["K35.800", "K35.800", "x"], "total_cost": [1000.0, math.nan, None]}),
        "lists.parquet": pa.table({"los_days": [3, 4, None], "diagnoses": [["K35.800"], ["", "J18.900"], None],
                                   "procedures": [["47.0900", None], ["4709"], []]}),
        "typed.parquet": pa.table({
            "case_id": ["T1", "T2", "T3", "T4"], "sex": pa.array([1, 2, None, 9], pa.int8()),
            "age_years": pa.array([30, None, 200, 1], pa.int16()), "age_days": pa.array([None, 40, None, 3000]),
            "admission_date": [dt.date(2025, 3, 1), None, dt.date(2025, 3, 9), dt.date(2025, 3, 1)],
            "discharge_date": pa.array([dt.datetime(2025, 3, 5, 10, 20), dt.datetime(2025, 3, 5),
                                        dt.datetime(2025, 3, 1), None], pa.timestamp("us")),
            "los_days": [4, None, 3, None], "discharge_mode": pa.array([1, None, 5, 9], pa.int32()),
            "diagnoses": [["K35.800"], ["J18.900", "E11.999"], ["K35.800"], ["I10.x00"]],
            "ventilation_hours": [None, 10.0, -1.0, 500.0], "total_cost": [100.0, 200.0, 300.0, math.inf],
            "fund_paid": [120.0, None, 1.0, 1.0], "tcm_treated": [True, None, False, True],
            "insurance_type": ["职工", "resident", "商业保险", None], "备注": [1, 2, 3, 4]}),
    }
    for name, table in tables.items():
        pq.write_table(table, tmp_path / name)
        check(tmp_path / name)


def _chinese_rows_files(tmp_path):
    yield "gb18030.csv", lambda p: p.write_bytes(CHINESE_ROWS.to_csv(index=False).encode("gb18030"))
    yield "utf8-bom.csv", lambda p: p.write_bytes(CHINESE_ROWS.to_csv(index=False).encode("utf-8-sig"))
    yield "tab.tsv", lambda p: p.write_text(CHINESE_ROWS.to_csv(index=False, sep="\t"), encoding="utf-8")
    yield "utf16.txt", lambda p: p.write_bytes(
        CHINESE_ROWS.to_csv(index=False, sep="\t", lineterminator="\r\n").encode("utf-16"))
    yield "book.xlsx", lambda p: CHINESE_ROWS.to_excel(p, index=False)
    yield "claims.parquet", lambda p: pq.write_table(pa.Table.from_pandas(CHINESE_ROWS, preserve_index=False), p)


def _bodies():
    """The bad bodies of tests/test_readers.py (under MIXED_HEADER): line ends, quotes, huge fields, encodings."""
    yield "cr.csv", b"C1,3,K35.800,100,x\rC2,3,K35.800,100,x\r"
    yield "stray.csv", b'Q1,3,K35.800,100,x\nQ2,3,"K35.800,100,x\nQ3,3,K35.800,100,x\nQ4,3,"K35.800,100,x\n'
    yield "two_lines.csv", 'L1,3,K35.800,100,"骨科\n一病区"\n\nL2,-3,K35.800,100,骨科\n'.encode()
    yield "huge.csv", b"H1,3,K35.800,100,x\nH2,3,K35.800,100," + b"y" * 100_000 + b"\nH3,3,K35.800,100,x\n"
    yield "fields.csv", b"F1,3,K35.800,100\nF2,3,K35.800,100,x,extra\nF3,3,K35.800,100,x\n"
    yield "mixed.csv", b"".join(f"M{i:02d},3,K35.800,1200.50,骨科\n".encode("gb18030" if i in (3, 7) else "utf-8")
                                for i in range(1, 12))
    yield "mixed_gb.csv", b"".join(f"M{i:02d},3,K35.800,1200.50,骨科\n".encode("utf-8" if i == 4 else "gb18030")
                                   for i in range(1, 12))
    yield "cut.csv", "M1,3,K35.800,1,骨科\nM2,3,K35.800,1,\"骨科\n".encode() + "一病区\",extra\n".encode("gbk") + \
        "M3,3,K35.800,1,骨科\nM4,3,K35.800,1,骨".encode() + b"\xfe\n"
    yield "fffd.csv", "R1,3,K35.800,100,骨\ufffd科\nR2,3,K35.800,100,\x1b[31m骨科\n".encode()
    yield "costs.csv", b"N1,3,K35.800,NaN,x\nN2,3,K35.800,,x\nN3,3,K35.800,-,x\nN4,3,K35.800,1,234.5,x\n"


def test_hand_written_files(tmp_path):
    """tests/test_readers.py's exports: encodings, spreadsheets, line ends, quotes, huge fields, split columns."""
    for name, write in _chinese_rows_files(tmp_path):
        write(tmp_path / name)
        assert check(tmp_path / name).n_accepted == 3, name
    for name, body in _bodies():
        (tmp_path / name).write_bytes(MIXED_HEADER.encode(
            "gb18030" if name == "mixed_gb.csv" else "utf-8") + body)
        check(tmp_path / name)
    split = tmp_path / "split.csv"
    split.write_text(SPLIT_HEADER + "P1,2,60,1,H25.900,E14.900x001,,13.4100x001,,9000\n"
                                    "P2,2,60,1,,H25.900,E14.900x001,13.4100x001,,9000\n"
                                    "P3,2,60,1,H25.900,E14.900x001,,,13.4100x001,9000\n"
                                    "P4,3,60,1,,,,,,\n", encoding="utf-8")
    check(split)
    check(split, OPTIONS[1])
    others = {
        "list.csv": '病案号,住院天数,诊断编码,医疗总费用\nL1,3,",I10.x00",100\nL2,3," I10.x00",100\nL3,3,",",100\n',
        "excel_saved.csv": "病案号,住院天数,诊断编码,,\r\nE1,3,K35.800,,\r\n,,,,\r\nE2,4,J18.900,,\r\n,,,,\r\n",
        "repeated.csv": "病案号,住院天数,主要诊断编码,其他诊断编码,其他诊断编码,其他诊断编码\n"
                        "R1,3,K35.800,E11.900,,I10.x00\n",
        "noid.csv": "住院天数,诊断编码,备注\n3,K35.800,a\n-4,J18.900,b\n",
        "derive.csv": "病案号,年龄,入院日期,出院日期,诊断编码,新生儿年龄天,新生儿出生体重\n"
                      "N,,2025-05-01,2025-05-01,P07.100,10,0\nO,0,2025-05-01,2025-05-03,P07.100,9000,20000\n"
                      "P,,2025-05-04,2025-05-01,P07.100,,\nQ,1,2025-05-01,2025-05-02,P07.100,abc,x\n"
                      "R,,2025-05-01,2025-05-02,P07.100,-1,-5\nS,2,2025-05-01,2025-05-02,P07.100,60000,3.5\n"
                      "T,3,2025-05-01,2025-05-02,P07.100,400,3000克\nU,,,2025-05-02,P07.100,1.5,\"1,200\"\n",
        "control.csv": "病案号,性别,年龄,住院天数,诊断编码\nE\x1b[31mX,1,60,5,J18.900\n=HYPERLINK(1),2,30,3,K35.800\n",
    }
    for name, content in others.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        check(tmp_path / name)
    (tmp_path / "nodx.csv").write_text("病案号,住院天数\nA,3\n", encoding="utf-8")
    assert check(tmp_path / "nodx.csv") is None  # refused by both: no diagnosis column


def test_header_mapping_and_unmapped_columns(tmp_path):
    from dipsim.io.headers import load_header_mapping

    (tmp_path / "map.toml").write_text('[columns]\n"出院科别" = "department"\n"费用合计" = "total_cost"\n',
                                       encoding="utf-8")
    path = tmp_path / "mapped.csv"
    path.write_text("病案号,住院天数,诊断编码,出院科别,费用合计,备注\nC1,3,J18.900,呼吸科,1234.5,kept\n"
                    "C2,3,J18.900,呼吸科,-1,kept too\n", encoding="utf-8")
    check(path, header_mapping=load_header_mapping(tmp_path / "map.toml"))


def test_excel_formula_without_a_saved_value(tmp_path):
    path = tmp_path / "formula.xlsx"
    book = openpyxl.Workbook()
    for row in (["病案号", "住院天数", "诊断编码", "药品费", "医疗总费用", "入院日期"],
                ["F1", 3, "K35.800", 800, 1200.5, dt.datetime(2025, 3, 1)],
                ["F2", 3, "K35.800", 800, "=D3*1.5", dt.datetime(2025, 3, 1, 10, 20)]):
        book.active.append(row)
    book.save(path)
    check(path)


# ---------------------------------------------------------------- (c) the real case files


@pytest.mark.parametrize("name", ["grouped_cases_chs_drg_1.1.csv", "costed_cases.csv"])
def test_real_case_files(shared_reference, name):
    result = check(shared_reference / "cases" / name)
    assert result.n_rejected == 0 and result.rows_read == result.n_accepted > 6_000


# ---------------------------------------------------------------- (d) a synthetic region with defects


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    from dipsim.synth import synthesize_region

    root = tmp_path_factory.mktemp("reference_region")
    synthesize_region(root / "region", cases=3_000, hospitals=8, seed=17)
    return root


def _typed_defects(rows: list[dict], rng: random.Random) -> None:
    """Damage about one row in six, in its schema types (what a Parquet export from another system holds)."""
    ids = [r["case_id"] for r in rows]

    def cost(r) -> float:  # the row's total cost, or a stand-in where an earlier defect took it
        return r["total_cost"] if r["total_cost"] is not None and r["total_cost"] == r["total_cost"] else 100.0

    def dx(r) -> list:
        return r["diagnoses"] or ["K35.800"]

    defects = [
        dict(case_id=None), lambda r: dict(case_id=rng.choice(ids)), lambda r: dict(case_id=f"  {r['case_id']} "),
        dict(total_cost=math.nan), dict(total_cost=None), lambda r: dict(total_cost=-cost(r)),
        dict(total_cost=2e8), lambda r: dict(fund_paid=cost(r) + 1), lambda r: dict(tcm_cost=cost(r) * 2),
        dict(los_days=None), dict(los_days=-2), dict(los_days=5_000), lambda r: dict(los_days=(r["los_days"] or 0) + 5),
        lambda r: dict(admission_date=r["discharge_date"], discharge_date=r["admission_date"]),
        dict(admission_date=None, los_days=None), dict(age_years=None), dict(age_years=None, age_days=400),
        dict(age_days=20_000), dict(age_years=200), dict(birth_weight_g=0), dict(birth_weight_g=20_000),
        dict(sex=None), dict(discharge_mode=None), dict(diagnoses=[]), lambda r: dict(diagnoses=["", *dx(r)]),
        lambda r: dict(diagnoses=[dx(r)[0].lower().replace(".", ""), *dx(r)[1:]]),
        lambda r: dict(diagnoses=["garbage", *dx(r)]), dict(diagnoses=None),
        lambda r: dict(diagnoses=[*dx(r), "E11.999", "junk", None]), lambda r: dict(diagnoses=["Z37.000", *dx(r)]),
        dict(procedures=["", "47.0900"]), dict(procedures=["9999", "470900"]), dict(procedures=None),
        dict(ventilation_hours=-1.0), lambda r: dict(ventilation_hours=24.0 * ((r["los_days"] or 0) + 3)),
        dict(tcm_treated=None), dict(insurance_type="商业保险"), dict(insurance_type=None),
        dict(insurance_type="城乡居民"), dict(department="长" * 40_000), dict(hospital_id=" NULL "),
        dict(patient_id="Ｐ１２３"),
    ]
    for r in rows:
        if rng.random() < 1 / 6:
            for defect in rng.sample(defects, rng.choice([1, 1, 2, 3])):
                r.update(defect(r) if callable(defect) else defect)


def _typed_file(region, tmp_path):
    table = pq.read_table(region / "region" / "cases").drop_columns(["discharge_month"])
    rows = table.to_pylist()
    _typed_defects(rows, random.Random(17))
    path = tmp_path / "claims.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=CASE_SCHEMA), path, row_group_size=500)
    return path, len(rows)


def test_synthetic_region_as_one_parquet_file(region, tmp_path):
    """Read whole (`load_cases`) and in batches (`iter_load_cases`, ids repeated across batches, what `dipsim group`
    reads): each is the reference's one read."""
    path, n = _typed_file(region, tmp_path)
    want = reference_validate(read_cases_raw(path))
    result = load_cases(path)
    assert_same(result, want, [])
    assert result.rows_read == n == result.n_accepted + result.n_rejected and result.n_rejected > 200
    assert result.n_warnings > 100
    pieces = list(iter_load_cases(path, 700))
    assert len(pieces) > 3
    assert_same(_stacked(pieces, path), want, [])


def _stacked(pieces: list[ValidationResult], path) -> ValidationResult:
    """The pieces of one input as one result, to compare with the reference's one read of it."""
    return ValidationResult(
        accepted=pa.concat_tables([p.accepted for p in pieces]),
        accepted_rows=pd.concat([pd.Series(p.accepted_rows, dtype="int64") for p in pieces]).to_numpy(),
        rejects=pa.concat_tables([p.rejects for p in pieces]), warnings=pa.concat_tables([p.warnings for p in pieces]),
        rows_read=sum(p.rows_read for p in pieces), source=str(path))


DATE_FORMATS = [lambda d: d.isoformat(), lambda d: f"{d.year}/{d.month}/{d.day}", lambda d: d.strftime("%Y%m%d"),
                lambda d: f"{d.year}年{d.month}月{d.day}日", lambda d: str((d - dt.date(1899, 12, 30)).days),
                lambda d: f"{d.isoformat()} 10:20:00", lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}"]
SEPARATORS = [",", ";", "|", " ", "、", "，", "；", ", "]
SEX_TEXT = {1: ["1", "男", "M", "male", "1.0"], 2: ["2", "女", "F", "Female"], 0: ["0", "未知"], 9: ["9", "未说明"]}
MODE_TEXT = {1: ["1", "医嘱离院", "离院"], 2: ["2", "医嘱转院", "转院"], 3: ["3"], 4: ["4", "非医嘱离院"],
             5: ["5", "死亡", "5.0"], 9: ["9", "其他"]}
TEXT_DEFECTS = [
    ("病案号", ["", "NULL", "-", "ＡＢ１２"]), ("性别", ["3", "x", "", "N/A"]), ("年龄", ["abc", "1.5", "-3", "151"]),
    ("入院日期", ["2025-02-30", "yesterday", "1899-12-31", "2101-01-01", ""]),
    ("出院日期", ["2025-13-01", "", "99999"]),
    ("住院天数", ["", "3.5", "-1", "x", "4000"]), ("离院方式", ["8", "", "died"]),
    ("诊断编码", ["", "???", ",E11.900", "k35.8；e11.9"]), ("手术操作编码", [",47.0900", "9999", "4709 5451"]),
    ("医疗总费用", ["", "NaN", "abc", "-1", "1e12", "1,200.5元"]), ("统筹基金支付", ["1e9", "x", "-"]),
    ("中医治疗标识", ["是", "否", "true", "maybe", ""]),
    ("险种类型", ["310", "390", "商业保险", "", "职工基本医疗保险"]), ("有创呼吸机使用时间", ["-2", "abc", "10000"]),
]


def _text_export(region) -> pd.DataFrame:
    """The region's rows as an export writes them: text in varied spellings, Chinese headers, defects injected."""
    from dipsim.schema import CASE_FIELDS

    rng = random.Random(71)
    rows = pq.read_table(region / "region" / "cases").drop_columns(["discharge_month"]).to_pylist()
    headers = {f.name: "病案号" if f.name == "case_id" else f.label_zh for f in CASE_FIELDS}
    out = []
    for r in rows:
        cells = {}
        for name, value in r.items():
            if value is None:
                cell = rng.choice(["", "", "NULL"])
            elif name in ("admission_date", "discharge_date"):
                cell = rng.choice(DATE_FORMATS)(value)
            elif name in ("diagnoses", "procedures"):
                cell = rng.choice(SEPARATORS).join(value)
            elif name == "sex":
                cell = rng.choice(SEX_TEXT[value])
            elif name == "discharge_mode":
                cell = rng.choice(MODE_TEXT[value])
            elif name == "tcm_treated":
                cell = rng.choice(["1", "是", "true"] if value else ["0", "否", "false", "F"])
            elif isinstance(value, float):
                cell = rng.choice([f"{value:.2f}", f"{value:,.2f}", repr(value)])
            else:
                cell = str(value)
            cells[headers[name]] = cell
        if rng.random() < 1 / 5:
            header, values = rng.choice(TEXT_DEFECTS)
            cells[header] = rng.choice(values)
        cells["备注"] = rng.choice(["", "复核", "=1+1"])
        out.append(cells)
    return pd.DataFrame(out)


def test_synthetic_region_as_a_gb18030_csv_export(region, tmp_path):
    path = tmp_path / "export.csv"
    frame = _text_export(region)
    path.write_bytes(frame.to_csv(index=False).encode("gb18030"))
    want = reference_validate(read_cases_raw(path))
    result = load_cases(path)
    assert_same(result, want, ["备注"])
    assert result.rows_read == len(frame) == result.n_accepted + result.n_rejected and result.n_rejected > 100
    assert result.encoding == "gb18030" and result.unmapped_columns == ["备注"]
    # piece by piece (`iter_cases`, what `dipsim group` reads), the pieces together are the reference's one read
    assert_same(_stacked(list(iter_cases(path, 500)), path), want, ["备注"])


def test_synthetic_region_as_a_folder_with_a_month_copied(region, tmp_path):
    """Monthly partitions, March with defects and copied beside itself, January copied as December: a case id
    accepted from an earlier partition is rejected in a later one, naming the first file and row."""
    folder = tmp_path / "cases"
    shutil.copytree(region / "region" / "cases", folder)
    march = folder / "discharge_month=2025-03" / "part-0.parquet"
    rows = pq.read_table(march).to_pylist()
    _typed_defects(rows, random.Random(3))
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(march)), march)
    shutil.copy(march, march.with_name("part-0 copy.parquet"))
    december = folder / "discharge_month=2025-12"
    shutil.copy(folder / "discharge_month=2025-01" / "part-0.parquet", december / "part-1.parquet")
    files = sorted(folder.rglob("*.parquet"))
    want = reference_folder(files, folder, read=read_cases_raw)
    result = load_cases(folder)
    assert_same(result, want)
    assert result.counts()["duplicate_case_ids"] > 400
    pieces = list(iter_cases(folder, 10_000))  # a partition at a time
    assert len(pieces) == len(files)
    assert_same(_stacked(pieces, folder), want)


# ---------------------------------------------------------------- disagreements: the reference is right


def _raw(columns: dict, rows=None, source="claims.parquet") -> RawCases:
    table = pa.table(columns)
    return RawCases(table, pd.RangeIndex(1, table.num_rows + 1).to_numpy() if rows is None else rows, source)


def test_a_typed_bad_code_is_shown_in_its_reject():
    check_raw(_raw({"case_id": ["a", "b"], "los_days": [3, 3], "diagnoses": ["K35.800"] * 2,
                    "sex": pa.array([7, 1], pa.int8()), "discharge_mode": pa.array([1, 8], pa.int8()),
                    "tcm_treated": pa.array([2, 1], pa.int8())}))


def test_a_typed_insurance_code_reads_as_its_text():
    check_raw(_raw({"case_id": ["a", "b"], "los_days": [3, 3], "diagnoses": ["K35.800"] * 2,
                    "insurance_type": [310, 390]}))


def test_a_duplicate_past_row_a_million_names_its_first_row():
    check_raw(_raw({"case_id": ["a", "a"], "los_days": [3, 3], "diagnoses": ["K35.800"] * 2},
                   rows=pd.Series([1_234_567, 1_234_568]).to_numpy()))


def test_a_typed_date_outside_the_plausible_years_is_a_bad_date():
    check_raw(_raw({"case_id": ["a", "b"], "diagnoses": ["K35.800"] * 2,
                    "admission_date": [dt.date(2200, 1, 1), dt.date(1850, 1, 1)],
                    "discharge_date": [dt.date(2200, 1, 3), dt.date(1850, 1, 3)]}))


def test_trimming_a_cell_does_not_depend_on_the_other_rows():
    check_raw(_raw({"case_id": ["\x1fA1", "B2"], "los_days": ["3", "3"], "diagnoses": ["K35.800"] * 2,
                    "department": ["\x1fd", "x"]}, source="claims.csv"))


def test_an_excel_serial_with_a_time_of_day_is_a_date():
    check_raw(_raw({"case_id": ["a"], "diagnoses": ["K35.800"], "admission_date": ["45000.5"],
                    "discharge_date": ["45002"]}, source="claims.csv"))
