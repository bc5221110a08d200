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
    with pytest.raises(InputError, match=r"diagnoses .*Headers found: 病案号, 住院天数"):
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
    assert result.encoding == "utf-8"
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (3, 2, 1)
    (reject,) = result.rejects.to_pylist()
    assert (reject["row"], reject["value"]) == (2, "A\\xfe2,3,K35.800")
    assert reject["reason"] == "not UTF-8 text, the file's encoding: rejected, not read as other characters"


@pytest.mark.parametrize("encoding", ["klingon", "rot13", "hex"])  # the last two are codecs but no text encodings
def test_unknown_forced_encoding_is_an_input_error(tmp_path, encoding):
    path = tmp_path / "x.csv"
    path.write_text("病案号,住院天数,诊断编码\nA,3,K35.800\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"unknown text encoding '{encoding}'"):
        load_cases(path, encoding=encoding)


def test_forced_encoding_is_used(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes("病案号,住院天数,诊断编码,科室\nA,3,K35.800,普外科\n".encode("gbk"))
    assert load_cases(path, encoding="gbk").accepted["department"].to_pylist() == ["普外科"]


# ---------------------------------------------------------------- mixed encodings: rejected, never read as other text

MIXED_HEADER = "病案号,住院天数,诊断编码,医疗总费用,科室\n"


def _mixed_file(tmp_path, encodings: list[str]):
    """One row per entry, row i written in encodings[i]; every row's department is 骨科 (orthopaedics)."""
    data = MIXED_HEADER.encode(encodings[0]) + b"".join(
        f"M{i:02d},3,K35.800,1200.50,骨科\n".encode(enc) for i, enc in enumerate(encodings, start=1))
    path = tmp_path / "mixed.csv"
    path.write_bytes(data)
    return path


def test_utf8_file_with_two_gb18030_rows_rejects_them_with_their_bytes(tmp_path):
    """38 UTF-8 rows and 2 GB18030 rows (a file appended to from another system): the 38 read exactly, the 2 are
    rejected with their bytes shown (GB18030 骨科 is B9C7 BFC6), never read as other characters."""
    encodings = ["utf-8"] * 38 + ["gb18030"] * 2
    encodings[9], encodings[-1] = "gb18030", "utf-8"  # rows 10 and 39 are the GB18030 ones
    result = load_cases(_mixed_file(tmp_path, encodings))
    assert result.encoding == "utf-8"
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (40, 38, 2)
    assert result.accepted["department"].to_pylist() == ["骨科"] * 38
    assert result.accepted["total_cost"].to_pylist() == [1200.5] * 38
    rejects = result.rejects.to_pylist()
    assert [r["row"] for r in rejects] == [10, 39]
    assert rejects[0]["value"] == "M10,3,K35.800,1200.50,\\xb9\\xc7\\xbf\\xc6"
    assert all(r["reason"].startswith("not UTF-8 text, the file's encoding") for r in rejects)


def test_gb18030_file_with_two_utf8_rows_rejects_them_not_as_mojibake(tmp_path):
    """The report's case reversed: read as GB18030, UTF-8 骨科 (E9AAA8 E7A791) would be 楠ㄧ + a private-use
    character. The 2 UTF-8 rows are rejected with their bytes; the 38 GB18030 rows read exactly."""
    encodings = ["gb18030"] * 40
    encodings[4] = encodings[20] = "utf-8"
    result = load_cases(_mixed_file(tmp_path, encodings))
    assert result.encoding == "gb18030"
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (40, 38, 2)
    assert result.accepted["department"].to_pylist() == ["骨科"] * 38
    assert "M05" not in result.accepted["case_id"].to_pylist()
    rejects = result.rejects.to_pylist()
    assert [r["row"] for r in rejects] == [5, 21]
    assert rejects[0]["value"] == "M05,3,K35.800,1200.50,\\xe9\\xaa\\xa8\\xe7\\xa7\\x91"
    assert rejects[0]["reason"] == ("UTF-8 text in a GB18030 file: rejected, not read as other characters (save the "
                                    "file in one encoding)")


def test_forced_encoding_still_rejects_rows_in_another(tmp_path):
    path = _mixed_file(tmp_path, ["gbk", "utf-8", "gbk"])
    result = load_cases(path, encoding="gbk")
    assert (result.encoding, result.n_accepted, result.n_rejected) == ("gbk", 2, 1)
    assert result.rejects["row"].to_pylist() == [2]
    assert result.accepted["department"].to_pylist() == ["骨科", "骨科"]


def test_gb18030_row_with_broken_bytes_is_rejected(tmp_path):
    """A GB18030 file whose row 2 lost the second byte of 骨 (a cut-off copy): that row only is rejected."""
    path = _mixed_file(tmp_path, ["gb18030"] * 3)
    path.write_bytes(path.read_bytes().replace("M02,3,K35.800,1200.50,骨".encode("gb18030"),
                                                "M02,3,K35.800,1200.50,".encode("gb18030") + b"\xb9"))
    result = load_cases(path)
    assert (result.encoding, result.n_accepted, result.n_rejected) == ("gb18030", 2, 1)
    (reject,) = result.rejects.to_pylist()
    assert reject["row"] == 2 and reject["value"] == "M02,3,K35.800,1200.50,\\xb9\\xbf\\xc6"
    assert reject["reason"].startswith("not GB18030 text, the file's encoding")


def test_a_replacement_character_written_as_text_is_kept_not_taken_for_broken_bytes(tmp_path):
    """U+FFFD is a character like any other in valid UTF-8 (an export that once lost a byte writes it): the reader
    decides what is undecodable, line by line, so the row is accepted with the text as written."""
    path = tmp_path / "fffd.csv"
    path.write_text("case_id,los_days,diagnoses,total_cost,department\nR1,3,K35.800,100,骨\ufffd科\n",
                    encoding="utf-8")
    result = load_cases(path)
    assert (result.n_accepted, result.n_rejected) == (1, 0)
    assert result.accepted["department"].to_pylist() == ["骨\ufffd科"]


def test_a_replacement_character_is_kept_when_another_line_is_undecodable(tmp_path):
    """The same U+FFFD line in a file where another line is not UTF-8 (the line-by-line path, not the whole-file
    check): still valid UTF-8, so still accepted; only the GB18030 line is rejected."""
    path = tmp_path / "fffd_mixed.csv"
    path.write_bytes("case_id,los_days,diagnoses,total_cost,department\nR1,3,K35.800,100,骨\ufffd科\n"
                     "R2,3,K35.800,100,骨科\nR3,3,K35.800,100,".encode("utf-8") + "骨科\n".encode("gb18030"))
    result = load_cases(path)
    assert (result.encoding, result.n_accepted, result.n_rejected) == ("utf-8", 2, 1)
    assert result.accepted["department"].to_pylist() == ["骨\ufffd科", "骨科"]
    assert result.rejects["row"].to_pylist() == [3]


def test_header_in_another_encoding_than_the_rows_is_an_error(tmp_path):
    path = tmp_path / "header.csv"
    path.write_bytes(MIXED_HEADER.encode("gb18030") + "".join(
        f"M{i},3,K35.800,1,骨科\n" for i in range(5)).encode("utf-8"))
    with pytest.raises(InputError, match=r"header\.csv: the header line is not valid UTF-8 text, the file's "
                                         r"encoding \(\\xb2\\xa1\\xb0\\xb8.*--encoding"):
        load_cases(path)
    path.write_bytes(MIXED_HEADER.encode("utf-8") + "M1,3,K35.800,1,骨科\n".encode("gbk"))
    with pytest.raises(InputError, match="the header line is UTF-8 text, not GBK text"):
        load_cases(path, encoding="gbk")


def test_excel_unicode_text_export_utf16_is_read(tmp_path):
    """Excel's "Unicode text" (.txt): UTF-16 with a BOM, tab-separated, CRLF."""
    path = tmp_path / "unicode.txt"
    path.write_bytes(CHINESE_ROWS.to_csv(index=False, sep="\t", lineterminator="\r\n").encode("utf-16"))
    result = load_cases(path)
    assert result.encoding == "utf-16"
    _check(result)


# ---------------------------------------------------------------- line ends, quotes, huge fields

def _claims(tmp_path, body: bytes, name="claims.csv"):
    path = tmp_path / name
    path.write_bytes(MIXED_HEADER.encode() + body)
    return path


@pytest.mark.parametrize("line_end", [b"\r", b"\r\n", b"\n"])
def test_every_line_end_reads_every_row(tmp_path, line_end):
    """CR alone is what old Mac exports write; it used to stop the reader with an internal error."""
    body = b"".join(f"C{i},3,K35.800,100,骨科".encode() + line_end for i in range(1, 6))
    result = load_cases(_claims(tmp_path, body.replace(b"\r\n", line_end)))
    assert (result.rows_read, result.n_accepted) == (5, 5)
    assert result.accepted["case_id"].to_pylist() == ["C1", "C2", "C3", "C4", "C5"]
    assert result.accepted["department"].to_pylist() == ["骨科"] * 5


def test_stray_quote_rejects_its_line_only(tmp_path):
    """5 data lines, line 3 with a quote that never closes: it used to fold lines 3-5 into one reject (rows read
    3). Now rows read 5 = accepted 4 + rejected 1."""
    body = b'Q1,3,K35.800,100,x\nQ2,3,K35.800,100,x\nQ3,3,"K35.800,100,x\nQ4,3,K35.800,100,x\nQ5,3,K35.800,100,x\n'
    result = load_cases(_claims(tmp_path, body))
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (5, 4, 1)
    assert result.accepted["case_id"].to_pylist() == ["Q1", "Q2", "Q4", "Q5"]
    (reject,) = result.rejects.to_pylist()
    assert (reject["row"], reject["value"]) == (3, 'Q3,3,"K35.800,100,x')
    assert reject["reason"].startswith('unbalanced quote (")')


def test_two_stray_quotes_do_not_make_one_row_of_three_lines(tmp_path):
    """Line 3's stray quote "closes" at line 5's, with the right number of fields: pyarrow alone reads lines 3-5
    as one case Q3 and loses Q4 and Q5. The closing quote is not followed by a delimiter, so it is no field."""
    body = b'Q1,3,K35.800,100,x\nQ2,3,K35.800,100,x\nQ3,3,"K35.800,100,x\nQ4,3,K35.800,100,x\nQ5,3,"K35.800,100,x\n'
    result = load_cases(_claims(tmp_path, body))
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (5, 3, 2)
    assert result.accepted["case_id"].to_pylist() == ["Q1", "Q2", "Q4"]
    assert result.rejects["row"].to_pylist() == [3, 5]
    assert all(r.startswith("unbalanced quote") for r in result.rejects["reason"].to_pylist())


def test_quoted_field_over_two_lines_is_one_row_numbered_by_its_first_line(tmp_path):
    """A department typed with a line break in Excel is one field over two lines: one row. Row numbers are the
    line under the header a row starts on (as a text editor shows: line 2 of the file is row 1), blank lines
    are no rows."""
    body = ('L1,3,K35.800,100,"骨科\n一病区"\n'
            '\n'
            'L2,-3,K35.800,100,骨科\n').encode()
    result = load_cases(_claims(tmp_path, body))
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (2, 1, 1)
    assert result.accepted["department"].to_pylist() == ["骨科\n一病区"]
    assert result.rejects.to_pylist()[0]["row"] == 4  # L2 is on line 5 of the file


def test_ten_megabyte_field_rejects_its_row_only(tmp_path):
    """One 10 MB field used to make the whole file unreadable (pyarrow: "straddling object")."""
    body = b"H1,3,K35.800,100,x\nH2,3,K35.800,100," + b"y" * 10_000_000 + b"\nH3,3,K35.800,100,x\n"
    result = load_cases(_claims(tmp_path, body))
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (3, 2, 1)
    assert result.accepted["case_id"].to_pylist() == ["H1", "H3"]
    (reject,) = result.rejects.to_pylist()
    assert (reject["row"], reject["field"]) == (2, "department") and len(reject["value"]) == 200
    assert reject["reason"] == ("field of 10,000,000 characters, longer than a spreadsheet cell holds (32,767): "
                                "not a claims value")


def test_spreadsheet_empty_rows_and_unnamed_empty_columns_are_not_data(tmp_path):
    """Saved from Excel: trailing empty columns (no header, no values) and rows of empty cells."""
    path = tmp_path / "excel_saved.csv"
    path.write_text("病案号,住院天数,诊断编码,,\r\nE1,3,K35.800,,\r\n,,,,\r\nE2,4,J18.900,,\r\n,,,,\r\n",
                    encoding="utf-8")
    result = load_cases(path)
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (2, 2, 0)
    assert result.accepted_rows.tolist() == [1, 3]
    assert result.unmapped_columns == []


# ---------------------------------------------------------------- headers: two alike are an error, split codes join

def test_two_identical_headers_are_an_error_naming_both_columns(tmp_path):
    path = tmp_path / "two_costs.csv"
    path.write_text("病案号,住院天数,诊断编码,总费用,总费用\nA,3,K35.800,100,200\n", encoding="utf-8")
    with pytest.raises(InputError, match="column 4 '总费用' and column 5 '总费用' both map to 'total_cost'"):
        load_cases(path)


def test_two_identical_headers_in_excel_are_an_error(tmp_path):
    import openpyxl

    path = tmp_path / "two_costs.xlsx"
    book = openpyxl.Workbook()
    for row in (["病案号", "住院天数", "诊断编码", "医疗总费用", "医疗总费用"], ["A", 3, "K35.800", 100, 200]):
        book.active.append(row)
    book.save(path)
    with pytest.raises(InputError, match="column 4 '医疗总费用' and column 5 '医疗总费用' both map"):
        load_cases(path)


def test_repeated_other_diagnosis_headers_are_joined_in_order(tmp_path):
    path = tmp_path / "repeated.csv"
    path.write_text("病案号,住院天数,主要诊断编码,其他诊断编码,其他诊断编码,其他诊断编码\n"
                    "R1,3,K35.800,E11.900,,I10.x00\n", encoding="utf-8")
    assert load_cases(path).accepted["diagnoses"].to_pylist() == [["K35.800", "E11.900", "I10.x00"]]


# ---------------------------------------------------------------- files that are not what their name says

def _xlsx_bytes(tmp_path) -> bytes:
    path = tmp_path / "real.xlsx"
    CHINESE_ROWS.to_excel(path, index=False)
    return path.read_bytes()


def _zip_without_workbook() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    return buffer.getvalue()


NOT_WHAT_THEY_SAY = [
    ("renamed.xlsx", lambda tmp: CHINESE_ROWS.to_csv(index=False).encode(), "it is a text file, perhaps a CSV"),
    ("archive.xlsx", lambda tmp: _zip_without_workbook(), "a zip archive that is not an Excel workbook"),
    ("blob.xlsx", lambda tmp: bytes(range(256)) * 40, r"starts with the bytes \\x00\\x01\\x02"),
    ("empty.xlsx", lambda tmp: b"", "the file is empty"),
    ("cut.xlsx", lambda tmp: _xlsx_bytes(tmp)[:3000], "cannot read as an Excel workbook"),
    ("binary.csv", lambda tmp: b"\x00\x01\x02\x03" * 500, r"not a text .CSV. file: it holds NUL or control "
                                                          r"bytes, starting \\x00\\x01"),
    ("workbook.csv", _xlsx_bytes, "it is a zip archive, such as an .xlsx workbook: give it the .xlsx suffix"),
    ("empty.csv", lambda tmp: b"", "empty file"),
    ("blank.csv", lambda tmp: b"\r\n\r\n", "empty file"),
    ("commas.csv", lambda tmp: b",,,\nA,3,K35.800,1\n", "empty header line"),
]


@pytest.mark.parametrize("name, content, message", NOT_WHAT_THEY_SAY, ids=[c[0] for c in NOT_WHAT_THEY_SAY])
def test_file_that_is_not_what_its_name_says_is_exit_1_with_one_line(tmp_path, capsys, name, content, message):
    from dipsim.cli import main

    path = tmp_path / name
    path.write_bytes(content(tmp_path))
    with pytest.raises(InputError, match=message):
        load_cases(path)
    assert main(["validate", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "internal error" not in err


def test_damaged_workbooks_are_input_errors(tmp_path):
    """Bytes of a real .xlsx changed at random: every failure openpyxl meets (zip, deflate, XML, its own checks)
    is a one-line InputError, never an internal error."""
    import random

    good = _xlsx_bytes(tmp_path)
    rng = random.Random(15)
    path = tmp_path / "damaged.xlsx"
    for _ in range(60):
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            damaged[rng.randrange(4, len(damaged))] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        try:
            load_cases(path)
        except InputError as exc:
            assert "\n" not in str(exc)


def test_excel_formula_without_a_saved_value_is_a_missing_total_cost(tmp_path):
    """A workbook written by a program (openpyxl here) holds formulas without the values Excel would compute:
    the total cost reads as missing and the claim is rejected, not paid 0 points."""
    import openpyxl

    path = tmp_path / "formula.xlsx"
    book = openpyxl.Workbook()
    for row in (["病案号", "住院天数", "诊断编码", "药品费", "医疗总费用"],
                ["F1", 3, "K35.800", 800, 1200.5], ["F2", 3, "K35.800", 800, "=D3*1.5"]):
        book.active.append(row)
    book.save(path)
    result = load_cases(path)
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (2, 1, 1)
    assert result.accepted["total_cost"].to_pylist() == [1200.5]
    (reject,) = result.rejects.to_pylist()
    assert (reject["row"], reject["field"]) == (2, "total_cost")
    assert reject["reason"] == "missing total cost (医疗总费用): the case cannot be priced"


# ---------------------------------------------------------------- an empty principal is no principal

SPLIT_HEADER = ("病案号,性别,年龄,住院天数,主要诊断编码,其他诊断编码1,其他诊断编码2,"
                "主要手术操作编码,其他手术操作编码1,医疗总费用\n")


def test_empty_principal_cells_do_not_promote_the_next_code(tmp_path):
    """Cataract (H25.900) with phacoemulsification (13.4100x001) groups to CB39 (chs-drg-1.1). With the principal
    diagnosis cell empty the case has no principal (0000), not H25.900 promoted; with the principal procedure
    cell empty, the operation stays secondary and the case is medical (CW19), not CB39."""
    from dipsim.grouping.drg import group_table

    path = tmp_path / "split.csv"
    path.write_text(SPLIT_HEADER + "P1,2,60,1,H25.900,E14.900x001,,13.4100x001,,9000\n"
                                   "P2,2,60,1,,H25.900,E14.900x001,13.4100x001,,9000\n"
                                   "P3,2,60,1,H25.900,E14.900x001,,,13.4100x001,9000\n", encoding="utf-8")
    result = load_cases(path)
    assert (result.rows_read, result.n_accepted) == (3, 3)
    assert result.accepted["diagnoses"].to_pylist() == [["H25.900", "E14.900x001"], ["", "H25.900", "E14.900x001"],
                                                        ["H25.900", "E14.900x001"]]
    assert result.accepted["procedures"].to_pylist() == [["13.4100x001"], ["13.4100x001"], ["", "13.4100x001"]]
    warnings = [(w["row"], w["field"], w["value"], w["reason"]) for w in result.warnings.to_pylist()]
    assert warnings == [
        (2, "diagnoses", ",H25.900,E14.900x001", "missing principal diagnosis (主要诊断) although other diagnoses "
         "are given (none is taken as principal): will be ungroupable"),
        (3, "procedures", ",13.4100x001", "missing principal procedure (主要手术操作) although other procedures are "
         "given: no procedure is taken as principal"),
    ]
    grouped = group_table(result.accepted, "chs-drg-1.1").to_pylist()
    assert [(g["drg"], g["reason"]) for g in grouped] == [("CB39", ""), ("0000", "no principal diagnosis"),
                                                          ("CW19", "")]


def test_list_cell_starting_with_a_separator_has_no_principal(tmp_path):
    """`",I10.x00"`: the principal was left out of a list cell; I10.x00 stays secondary. With
    --missing-principal reject the claim is rejected."""
    from dipsim.io import ValidationOptions

    path = tmp_path / "list.csv"
    path.write_text('病案号,住院天数,诊断编码,医疗总费用\nL1,3,",I10.x00",100\nL2,3," I10.x00",100\n', encoding="utf-8")
    result = load_cases(path)
    assert result.accepted["diagnoses"].to_pylist() == [["", "I10.x00"], ["I10.x00"]]  # a leading space is padding
    assert [w["row"] for w in result.warnings.to_pylist() if "missing principal" in w["reason"]] == [1]
    strict = load_cases(path, options=ValidationOptions(missing_principal="reject"))
    assert (strict.n_accepted, strict.rejects["row"].to_pylist()) == (1, [1])
    assert strict.rejects["reason"][0].as_py() == ("missing principal diagnosis (主要诊断) although other diagnoses "
                                                   "are given (none is taken as principal)")


def test_empty_principal_is_ungroupable_in_dip(tmp_path):
    """DIP keys on the principal subcategory: K35.8 + 47.0901 is core group K35.8/47.0901, but with the principal
    cell empty the case is ungroupable, not that group."""
    from dipsim.catalog import CATALOG_SCHEMA, CatalogOptions
    from dipsim.grouping.dip import DipCatalog, group_dip_table

    groups = pa.table({"group_id": ["K35.8/47.0901"], "kind": ["core"], "diagnosis": ["K35.8"],
                       "procedures": ["47.0901"], "treatment": ["相关手术"], "name": [""], "points": [800.0],
                       "cases": [100], "cases_used": [100], "mean_cost": [12_000.0], "cv_cost": [0.1]},
                      schema=CATALOG_SCHEMA)
    catalog = DipCatalog(groups=groups, options=CatalogOptions(), source="hand")
    path = tmp_path / "split.csv"
    path.write_text(SPLIT_HEADER + "D1,1,30,4,K35.800,,,47.0901,,12000\nD2,1,30,4,,K35.800,,47.0901,,12000\n",
                    encoding="utf-8")
    grouped = group_dip_table(load_cases(path).accepted, catalog).to_pylist()
    assert [(g["dip_group"], g["dip_points"], g["reason"]) for g in grouped] == [
        ("K35.8/47.0901", 800.0, ""), ("", None, "no principal diagnosis")]


def test_undecodable_line_inside_a_row_over_two_lines_rejects_that_row_once(tmp_path):
    """Row 2's department has a line break, and its second line (with a stray extra field) was saved as GB18030
    in a UTF-8 file: row 2 is rejected, with both reasons, and counts once."""
    data = (MIXED_HEADER + "M1,3,K35.800,1,骨科\nM2,3,K35.800,1,\"骨科\n").encode() + "一病区\",extra\n".encode("gbk") \
        + "M3,3,K35.800,1,骨科\n".encode()
    path = tmp_path / "two_lines.csv"
    path.write_bytes(data)
    result = load_cases(path)
    assert (result.rows_read, result.n_accepted, result.n_rejected) == (3, 2, 1)
    assert result.accepted_rows.tolist() == [1, 4]
    reasons = [(r["row"], r["reason"][:30]) for r in result.rejects.to_pylist()]
    assert reasons == [(2, "row has 6 fields, the header h"), (2, "not UTF-8 text, the file's enc")]
