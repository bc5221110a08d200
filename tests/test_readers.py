"""Every reader round-trips a small claims table written the way real exports are written."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dipsim.io import InputError, load_cases
from dipsim.io.headers import header_key, load_header_mapping, map_headers
from dipsim.io.readers import decode_text
from dipsim.schema import CASE_SCHEMA

# Three stays as a hospital's export would have them, with the values we expect after reading.
CHINESE_ROWS = pd.DataFrame(
    {
        "病案号": ["A001", "A002", "A003"],
        "定点医疗机构编码": ["H0001", "H0001", "H0002"],
        "性别": ["1", "女", "2"],
        "年龄": ["70", "35", "0"],
        "新生儿年龄天": ["", "", "12"],
        "新生儿出生体重": ["", "", "3100"],
        "入院日期": ["2025-01-03", "2025/2/1", "20250310"],
        "出院日期": ["2025-01-10", "2025/2/4", "20250315"],
        "住院天数": ["7", "3", "5"],
        "离院方式": ["1", "5", "1"],
        "诊断编码": ["I63.900,E11.900", "K35.800x001", "P07.100；P59.900"],
        "手术操作编码": ["", "47.0900", ""],
        "医疗总费用(元)": ["12000.50", "8000", "3100.25"],
        "科室": ["神经内科", "普外科", "新生儿科"],
    }
)
EXPECTED = {
    "case_id": ["A001", "A002", "A003"],
    "hospital_id": ["H0001", "H0001", "H0002"],
    "sex": [1, 2, 2],
    "age_years": [70, 35, 0],
    "age_days": [None, None, 12],
    "birth_weight_g": [None, None, 3100],
    "admission_date": [dt.date(2025, 1, 3), dt.date(2025, 2, 1), dt.date(2025, 3, 10)],
    "discharge_date": [dt.date(2025, 1, 10), dt.date(2025, 2, 4), dt.date(2025, 3, 15)],
    "los_days": [7, 3, 5],
    "discharge_mode": [1, 5, 1],
    "diagnoses": [["I63.900", "E11.900"], ["K35.800x001"], ["P07.100", "P59.900"]],
    "procedures": [[], ["47.0900"], []],
    "total_cost": [12000.50, 8000.0, 3100.25],
    "department": ["神经内科", "普外科", "新生儿科"],
}


def _check(result) -> None:
    assert result.rows_read == 3
    assert result.n_rejected == 0, result.rejects.to_pylist()
    assert result.accepted.schema == CASE_SCHEMA
    for name, values in EXPECTED.items():
        assert result.accepted[name].to_pylist() == values, name


@pytest.mark.parametrize("written, detected", [("gb18030", "gb18030"), ("gbk", "gb18030"), ("utf-8-sig", "utf-8-sig"),
                                               ("utf-8", "utf-8")])
def test_csv_with_chinese_headers_in_each_encoding(tmp_path, written, detected):
    path = tmp_path / f"claims_{written}.csv"
    path.write_bytes(CHINESE_ROWS.to_csv(index=False).encode(written))
    result = load_cases(path)
    assert result.encoding == detected
    _check(result)


def test_tab_separated_utf8(tmp_path):
    path = tmp_path / "claims.tsv"
    path.write_text(CHINESE_ROWS.to_csv(index=False, sep="\t"), encoding="utf-8")
    _check(load_cases(path))


def test_excel(tmp_path):
    path = tmp_path / "claims.xlsx"
    CHINESE_ROWS.to_excel(path, index=False)
    _check(load_cases(path))


def test_excel_typed_cells(tmp_path):
    """Excel keeps numbers and dates as typed cells; they must read the same as text."""
    frame = CHINESE_ROWS.copy()
    frame["住院天数"] = [7, 3, 5]
    frame["年龄"] = [70, 35, 0]
    frame["入院日期"] = pd.to_datetime(["2025-01-03", "2025-02-01", "2025-03-10"])
    frame["出院日期"] = pd.to_datetime(["2025-01-10", "2025-02-04", "2025-03-15"])
    frame["医疗总费用(元)"] = [12000.50, 8000, 3100.25]
    path = tmp_path / "typed.xlsx"
    frame.to_excel(path, index=False)
    _check(load_cases(path))


def test_parquet_with_chinese_headers(tmp_path):
    path = tmp_path / "claims.parquet"
    pq.write_table(pa.Table.from_pandas(CHINESE_ROWS, preserve_index=False), path)
    _check(load_cases(path))


def test_canonical_parquet_round_trip(tmp_path):
    """Accepted cases written as Parquet read back identical (the synth and validate outputs use this)."""
    source = tmp_path / "claims.csv"
    source.write_text(CHINESE_ROWS.to_csv(index=False), encoding="utf-8")
    first = load_cases(source)
    path = tmp_path / "accepted.parquet"
    pq.write_table(first.accepted, path)
    second = load_cases(path)
    assert second.n_rejected == 0
    assert second.accepted.equals(first.accepted)


def test_split_principal_and_other_code_columns(tmp_path):
    frame = pd.DataFrame(
        {
            "病案号": ["B1", "B2"],
            "住院天数": ["4", "2"],
            "主要诊断编码": ["K35.800", "J18.900"],
            "其他诊断编码1": ["E11.900", ""],
            "其他诊断编码2": ["I10.x00", ""],
            "主要手术操作编码": ["47.0900", ""],
            "其他手术操作编码1": ["54.5100", ""],
        }
    )
    path = tmp_path / "split.csv"
    path.write_text(frame.to_csv(index=False), encoding="utf-8")
    result = load_cases(path)
    assert result.accepted["diagnoses"].to_pylist() == [["K35.800", "E11.900", "I10.x00"], ["J18.900"]]
    assert result.accepted["procedures"].to_pylist() == [["47.0900", "54.5100"], []]


def test_header_mapping_file(tmp_path):
    mapping_file = tmp_path / "map.toml"
    mapping_file.write_text('[columns]\n"出院科别" = "department"\n"费用合计" = "total_cost"\n', encoding="utf-8")
    mapping = load_header_mapping(mapping_file)
    frame = pd.DataFrame({"病案号": ["C1"], "住院天数": ["3"], "诊断编码": ["J18.900"], "出院科别": ["呼吸科"],
                          "费用合计": ["1234.5"], "备注": ["kept as is"]})
    path = tmp_path / "mapped.csv"
    path.write_text(frame.to_csv(index=False), encoding="utf-8")
    result = load_cases(path, header_mapping=mapping)
    assert result.accepted["department"].to_pylist() == ["呼吸科"]
    assert result.accepted["total_cost"].to_pylist() == [1234.5]
    assert result.accepted["备注"].to_pylist() == ["kept as is"]  # unknown columns ride along
    assert result.unmapped_columns == ["备注"]


def test_mapping_to_unknown_canonical_name_is_an_error(tmp_path):
    mapping_file = tmp_path / "bad.toml"
    mapping_file.write_text('[columns]\n"费用" = "no_such_column"\n', encoding="utf-8")
    with pytest.raises(InputError, match="no_such_column"):
        load_header_mapping(mapping_file)


def test_two_headers_for_one_field_is_an_error():
    with pytest.raises(InputError, match="both map to 'total_cost'"):
        map_headers(["总费用", "医疗总费用"], source="x.csv")


def test_missing_diagnosis_column_names_the_headers(tmp_path):
    path = tmp_path / "nodx.csv"
    path.write_text("病案号,住院天数\nA,3\n", encoding="utf-8")
    with pytest.raises(InputError, match="diagnoses .*Headers found: 病案号, 住院天数"):
        load_cases(path)


@pytest.mark.parametrize(
    "header, canonical",
    [
        ("住院天数（天）", "los_days"),
        (" 总费用(元) ", "total_cost"),
        ("ＤＲＧ编码", "insurer_drg"),
        ("Discharge_Date", "discharge_date"),
        ("其他诊断编码12", "_other_diagnoses"),
        ("性 别", "sex"),
    ],
)
def test_header_variants(header, canonical):
    assert map_headers([header]) == {header: canonical}


def test_header_key_ignores_width_case_and_units():
    assert header_key("医疗总费用（元）") == header_key("医疗总费用") == "医疗总费用"


def test_utf8_with_a_few_bad_bytes_stays_utf8():
    text = "病案号,诊断编码\n" + "\n".join(f"A{i},K35.800" for i in range(100)) + "\n"
    data = text.encode("utf-8").replace(b"A7,", b"A\xff7,")
    decoded, encoding = decode_text(data)
    assert encoding == "utf-8"
    assert decoded.count("\ufffd") == 1 and "病案号" in decoded


def test_row_with_bad_bytes_is_rejected_not_mangled(tmp_path):
    lines = ["病案号,住院天数,诊断编码", "A1,3,K35.800", "A2,3,K35.800", "A3,2,J18.900"]
    data = "\n".join(lines).encode("utf-8").replace(b"A2,", b"A\xfe2,") + b"\n"
    path = tmp_path / "bad_bytes.csv"
    path.write_bytes(data)
    result = load_cases(path)
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (3, 2, 1)
    reject = result.rejects.to_pylist()[0]
    assert reject["row"] == 2 and reject["field"] == "case_id" and "undecodable" in reject["reason"]


def test_unknown_forced_encoding_is_an_input_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("病案号,住院天数,诊断编码\nA,3,K35.800\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown text encoding 'klingon'"):
        load_cases(path, encoding="klingon")


def test_forced_encoding_is_used(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes("病案号,住院天数,诊断编码,科室\nA,3,K35.800,普外科\n".encode("gbk"))
    assert load_cases(path, encoding="gbk").accepted["department"].to_pylist() == ["普外科"]
