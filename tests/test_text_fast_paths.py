"""The fast paths of reading text claims (issue 17) give what the general paths give, on tricky cells.

- Code cells are split at commas after every other separator byte is made a comma, NFKC skipped for ASCII
  (`codes._split_at_separators`), and once per distinct cell when cells repeat (`codes.split_code_ids`).
- ASCII text without white space at its ends is taken from its buffers (`validate._plain_text_values`).
- Numbers, dates and words of a column that repeats its values are parsed and checked once per distinct value and
  spread to the rows (`validate._encoded_text`, `_spread`).
- A CSV piece's columns are dictionary-encoded and its code lists split in the reader's thread
  (`validate.read_ahead_work`), its first batches are shorter (`readers.iter_csv_raw`), and a plain block is
  looked at once in the encoding scan (`readers._ranges`).

Expected values are written by hand (each cell's list, number, date or word), repeated where a path needs a long
column; the splitting is also compared with the plain-Python reference (tests/validation_reference.py).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from validation_reference import split_codes

from dipsim import codes as C
from dipsim.io import validate as V
from dipsim.io.readers import RawCases

LONG = 4 * 4096 + 1  # rows from which a column's repeats are looked for (`_repeats`, `split_code_ids`)

# (cell, its codes as split by hand): separators are , ; | 、 and \t \n \f \r space after NFKC (full-width ，；｜
# and the spaces U+3000, U+00A0 become ASCII), runs of them count as one, the cell is trimmed of Unicode white
# space first, and an empty first item stays only before other codes (a missing principal).
SPLITS = [
    ("K35.800，K37.x00", ["K35.800", "K37.x00"]),  # full-width comma
    ("，I10.x00", ["", "I10.x00"]),  # a full-width separator first: the principal is missing
    (",I10.x00", ["", "I10.x00"]),
    (" ,I10.x00", ["", "I10.x00"]),  # trimmed first, then the comma leads
    ("\t,I10.x00;", ["", "I10.x00"]),
    ("\u3000I10.x00", ["I10.x00"]),  # an ideographic space is trimmed: no empty principal
    ("、I10.x00；E11.900", ["", "I10.x00", "E11.900"]),
    ("K35.800 , ,K37.x00", ["K35.800", "K37.x00"]),
    ("K35.800|;K37.x00\r\nJ18.900\f", ["K35.800", "K37.x00", "J18.900"]),
    ("K35.800\u00a0K37.x00", ["K35.800", "K37.x00"]),  # no-break space: NFKC makes it a space
    ("K35.800\x0bK37.x00", ["K35.800\x0bK37.x00"]),  # a vertical tab is no separator (trimmed at the ends only)
    ("\x1cK35.800\x1f", ["K35.800"]),
    ("K35.800\u2028K37.x00", ["K35.800\u2028K37.x00"]),  # nor is a line separator
    ("ｋ３５．８００", ["k35.800"]),  # full-width letters and digits (normalised later)
    ("骨折,K35.800", ["骨折", "K35.800"]),
    ("K35.800;", ["K35.800"]),
    (",,,", []),
    (";", []),
    ("  ", []),
    ("", []),
    (None, []),
]
ASCII_SPLITS = [(cell, codes) for cell, codes in SPLITS if cell is None or cell.isascii()]


def _lists(arr) -> list:
    return arr.to_pylist()


@pytest.mark.parametrize("cases", [SPLITS, ASCII_SPLITS], ids=["mixed", "ascii"])
def test_split_tricky_cells(cases):
    cells = pa.array([c for c, _ in cases], pa.string())
    expected = [codes for _, codes in cases]
    assert C.split_code_list(cells).to_pylist() == expected
    assert C.split_code_ids(cells).to_pylist() == expected
    # a slice (an offset into the buffers) and chunks
    assert C.split_code_list(cells.slice(3, 6)).to_pylist() == expected[3:9]
    assert C.split_code_ids(cells.slice(3, 6)).to_pylist() == expected[3:9]
    chunked = pa.chunked_array([cells.slice(0, 5), cells.slice(5)])
    assert C.split_code_list(chunked).to_pylist() == expected
    assert C.split_code_ids(chunked).to_pylist() == expected


def test_split_empty_and_null_arrays():
    for cells in (pa.array([], pa.string()), pa.array([None, None], pa.string()), pa.array(["", ""])):
        assert C.split_code_list(cells).to_pylist() == [[]] * len(cells)
        assert C.split_code_ids(cells).to_pylist() == [[]] * len(cells)


@pytest.mark.parametrize("ascii_only", [True, False])
def test_split_once_per_distinct_cell(ascii_only):
    """A long column repeating its cells is split once per distinct cell: each row gets its cell's codes."""
    cases = ASCII_SPLITS if ascii_only else SPLITS
    order = np.random.default_rng(7).integers(0, len(cases), LONG)
    cells = pa.array([cases[i][0] for i in order], pa.string())
    out = C.split_code_ids(cells)
    assert out.to_pylist() == [cases[i][1] for i in order]
    items = out.values
    assert pa.types.is_dictionary(items.type) and items.null_count == 0 and out.null_count == 0
    assert len(items.dictionary) == len(set(items.dictionary.to_pylist()))  # each distinct item once


def test_split_all_distinct_long_column():
    cells = pa.array([f"K{i:05d},、E11.900" if i % 3 else f",K{i:05d}" for i in range(LONG)])
    expected = [[f"K{i:05d}", "E11.900"] if i % 3 else ["", f"K{i:05d}"] for i in range(LONG)]
    assert C.split_code_ids(cells).to_pylist() == expected
    assert C.split_code_list(cells).to_pylist() == expected


CELL_TEXT = st.text(alphabet=list("AK35.8x0, ;|、，；｜\t\n\r\f\v\x1c \u3000\u00a0\u2028ｋ３骨"), max_size=14)


@given(st.lists(st.one_of(st.none(), CELL_TEXT), max_size=30))
@settings(max_examples=300, deadline=None)
def test_split_as_the_reference_splits(cells):
    """Against the plain-Python reference (Python's re and unicodedata), cell by cell."""
    expected = [split_codes(c) for c in cells]
    arr = pa.array(cells, pa.string())
    assert C.split_code_list(arr).to_pylist() == expected
    assert C.split_code_ids(arr).to_pylist() == expected


# ------------------------------------------------------------------------------------------- text of a column

# (cell, its text: trimmed, NFKC, None where missing)
TEXTS = [
    ("H001", "H001"), ("0", "0"), ("NA1", "NA1"), ("", None), ("NULL", None), ("n/a", None), ("N/A", None),
    ("-", None), ("--", None), ("\\N", None), ("none", None), ("nan", None), ("NaN", None), ("#N/A", None),
    (None, None),
]
TEXTS_TRIMMED = [(" 5", "5"), ("5\x1c", "5"), ("null ", None), ("\t-", None)]
TEXTS_NON_ASCII = [("Ｎ/Ａ", None), ("１２", "12"), ("骨科", "骨科"), ("\u3000H002\u3000", "H002")]


@pytest.mark.parametrize("cases", [TEXTS, TEXTS + TEXTS_TRIMMED, TEXTS + TEXTS_TRIMMED[1:3],
                                   TEXTS + TEXTS_NON_ASCII, TEXTS_TRIMMED + TEXTS_NON_ASCII],
                         ids=["plain", "trimmed", "trailing", "non-ascii", "both"])
def test_text_column_tricky_cells(cases):
    cells = pa.array([c for c, _ in cases], pa.string())
    expected = [t for _, t in cases]
    assert V.text_column(cells).to_pylist() == expected
    assert V.text_column(cells.slice(2, 5)).to_pylist() == expected[2:7]
    long = pa.array([c for c, _ in cases] * (LONG // len(cases) + 1), pa.string())  # per distinct value
    assert V.text_column(long).to_pylist() == expected * (LONG // len(cases) + 1)


def test_plain_text_is_taken_only_when_nothing_needs_doing():
    assert V._plain_text_values(pa.array(["H001", "12.5", ""])).to_pylist() == ["H001", "12.5", None]
    assert V._plain_text_values(pa.array(["H001", "123456"])).to_pylist() == ["H001", "123456"]
    for cells in (["H001", " 5"], ["5\x1f"], ["骨科"], ["Ｈ1"]):
        assert V._plain_text_values(pa.array(cells)) is None  # trimming or NFKC: the general path


# ------------------------------------------------------------------------ numbers, dates, words per distinct value

NUMBERS = [("3", 3.0, False, False), (" 4", 4.0, False, False), ("x", np.nan, False, True),
           ("", np.nan, True, False), ("1,200元", 1200.0, False, False), (None, np.nan, True, False),
           ("NaN", np.nan, True, False), ("-5", -5.0, False, False), ("３", 3.0, False, False)]
DAY = dt.date(2025, 1, 3)
DATES = [("2025-01-03", DAY, False, False), ("2025/1/3", DAY, False, False), ("20250103", DAY, False, False),
         ("2025年1月3日", DAY, False, False), ("2025-01-03 10:20:00", DAY, False, False),
         ("45000", dt.date(2023, 3, 15), False, False), ("1899-12-31", None, False, True),
         ("2025-02-30", None, False, True), ("", None, True, False), (None, None, True, False),
         ("abc", None, False, True)]
SEXES = [("男", 1.0, False, False), ("2", 2.0, False, False), ("F", 2.0, False, False), ("9.0", 9.0, False, False),
         ("x", np.nan, False, True), ("", np.nan, True, False), (None, np.nan, True, False), ("０", 0.0, False, False)]
INSURANCE = [("职工", "employee", False, False), ("390", "resident", False, False),
             ("310.0", "employee", False, False), ("x", None, False, True), ("", None, True, False),
             (None, None, True, False)]


def _long(cases, as_dictionary: bool):
    repeat = LONG // len(cases) + 1
    cells = pa.array([c[0] for c in cases] * repeat, pa.string())
    return (pc.dictionary_encode(cells) if as_dictionary else cells), repeat


def _check(got, cases, repeat, shown):
    values, missing, bad, text = got
    assert missing.tolist() == [c[2] for c in cases] * repeat
    assert bad.tolist() == [c[3] for c in cases] * repeat
    assert text.to_pylist() == [shown(c) for c in cases] * repeat
    return values


@pytest.mark.parametrize("as_dictionary", [False, True])
@pytest.mark.parametrize("long", [False, True])
def test_numbers_per_distinct_value(long, as_dictionary):
    cells, repeat = _long(NUMBERS, as_dictionary) if long else (pa.array([c[0] for c in NUMBERS]), 1)
    values = _check(V._number(cells), NUMBERS, repeat,
                    lambda c: None if c[2] else {" 4": "4", "３": "3"}.get(c[0], c[0]))
    np.testing.assert_array_equal(values, [c[1] for c in NUMBERS] * repeat)


@pytest.mark.parametrize("as_dictionary", [False, True])
def test_dates_per_distinct_value(as_dictionary):
    cells, repeat = _long(DATES, as_dictionary)
    values = _check(V._date(cells), DATES, repeat, lambda c: None if c[2] else c[0])
    expected = [np.datetime64(c[1], "D") if c[1] else np.datetime64("NaT", "D") for c in DATES] * repeat
    np.testing.assert_array_equal(values, np.array(expected, "datetime64[D]"))


@pytest.mark.parametrize("as_dictionary", [False, True])
def test_words_per_distinct_value(as_dictionary):
    cells, repeat = _long(SEXES, as_dictionary)
    values = _check(V._lookup(cells, V._SEX_WORDS, allowed={0, 1, 2, 9}), SEXES, repeat,
                    lambda c: None if c[2] else {"０": "0"}.get(c[0], c[0]))
    np.testing.assert_array_equal(values, [c[1] for c in SEXES] * repeat)
    cells, repeat = _long(INSURANCE, as_dictionary)
    values = _check(V.insurance_types(cells), INSURANCE, repeat, lambda c: None if c[2] else c[0])
    assert pa.array(values, pa.string(), from_pandas=True).to_pylist() == [c[1] for c in INSURANCE] * repeat


# ------------------------------------------------------------------------------- a CSV piece's work done ahead


def _tricky_raw() -> RawCases:
    """A long piece whose columns repeat tricky values, so that every column is made ahead."""
    n = LONG
    rng = np.random.default_rng(3)

    def cycle(values):
        return pa.array([values[i] for i in rng.integers(0, len(values), n)], pa.string())

    table = pa.table({
        "case_id": pa.array([f"C{i}" if i % 997 else "" for i in range(n)]),
        "hospital_id": cycle(["H1", " H2", "Ｈ3", "", None]),
        "pool": cycle(["990100", "n/a"]),
        "insurance_type": cycle([c[0] for c in INSURANCE]),
        "sex": cycle([c[0] for c in SEXES]),
        "age_years": cycle(["50", "x", "200", "", "3.5"]),
        "admission_date": cycle(["2025-01-01", "2025/1/2", "bad", ""]),
        "discharge_date": cycle(["2025-01-04", "2025-01-03 08:00", "1800-01-01"]),
        "los_days": cycle(["3", "2", "", "-1"]),
        "discharge_mode": cycle(["1", "死亡", "8", ""]),
        "diagnoses": cycle([c[0] for c in SPLITS] + ["K35.800,E11.900", "Z99.999,K35.800", "???"]),
        "procedures": cycle(["47.0900", ",47.0900", "", "99.9999x"]),
        "total_cost": cycle(["9000", "1,000元", "abc", "", "-3"]),
        "fund_paid": cycle(["100", ""]),
        "tcm_treated": cycle(["是", "否", "2"]),
    })
    return RawCases(table, np.arange(1, n + 1, dtype=np.int64), "tricky.csv")


@pytest.mark.parametrize("dictionary_codes", [False, True])
def test_work_done_ahead_validates_the_same(dictionary_codes):
    plain, ahead = _tricky_raw(), _tricky_raw()
    table = ahead.table
    V.read_ahead_work(ahead)
    assert ahead.table.equals(table)  # the table stays as read
    assert set(ahead.ahead) == set(table.column_names) - {"case_id"}  # all but the ids (no repeats) made ahead
    want = V.validate_cases(plain, dictionary_codes=dictionary_codes)
    got = V.validate_cases(ahead, dictionary_codes=dictionary_codes)
    assert got.accepted.equals(want.accepted)
    assert got.accepted_rows.tolist() == want.accepted_rows.tolist()
    assert got.rejects.to_pylist() == want.rejects.to_pylist()
    assert got.warnings.to_pylist() == want.warnings.to_pylist()
    assert want.n_rejected > 0 and want.n_warnings > 0 and want.n_accepted > 0
    # some of it by hand: the rows of a malformed principal and of a missing case id
    reasons = {(r["field"], r["reason"]) for r in want.rejects.to_pylist()}
    assert ("diagnoses", "principal diagnosis is not an ICD-10 code") in reasons
    assert ("case_id", "missing case id") in reasons
    rows = plain.table["diagnoses"].to_pylist()
    bad = {r["row"] for r in want.rejects.to_pylist() if r["reason"] == "principal diagnosis is not an ICD-10 code"}
    malformed = ("???", "骨折,K35.800", "K35.800\x0bK37.x00", "K35.800\u2028K37.x00")  # ｋ３５．８００ is K35.800
    assert bad == {i + 1 for i, cell in enumerate(rows) if cell in malformed}


# ------------------------------------------------------------------------------------------------- CSV reading


def test_csv_first_batches_are_shorter(tmp_path):
    from dipsim.io.readers import iter_csv_raw

    path = tmp_path / "cases.csv"
    lines = ["病案号,住院天数,诊断编码,医疗总费用"] + [f"A{i},3,K35.800,{100 + i}" for i in range(6000)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    even = [len(raw.rows) for raw in iter_csv_raw(path, 1000)]  # validate's pieces: its row groups
    assert sum(even) == 6000 and min(even[:-1]) > 800 and max(even) < 1200
    sizes = [len(raw.rows) for raw in iter_csv_raw(path, 1000, ramp=True)]
    assert sum(sizes) == 6000
    assert sizes[0] < 1000 / 8  # about a 16th
    assert sizes[0] < sizes[1] < sizes[2] < sizes[3]  # then twice as long each time, up to about 1000
    assert max(sizes) < 1500
    pieces = list(V.iter_cases(path, 1000))
    whole = V.load_cases(path)
    assert [int(r) for p in pieces for r in p.accepted_rows] == whole.accepted_rows.tolist() == list(range(1, 6001))
    assert pa.concat_tables([p.accepted for p in pieces]).equals(whole.accepted)


def test_a_plain_block_is_looked_at_once():
    from dipsim.io.readers import _is_ascii, _ranges

    line = b"A1,3,K35.800,100\n"
    data = line * (3 * (1 << 20) // len(line))
    calls = []

    def plain(d, a, b):
        calls.append((a, b))
        return _is_ascii(d, a, b)

    assert _ranges(data, 0, len(data), plain) == [] and calls == [(0, len(data))]
    odd = "B1,3,K35.800,骨科\n".encode("gb18030")
    at = len(data) - 10 * len(line)
    mixed = data[:at] + odd + data[at:]
    ranges = _ranges(mixed, 0, len(mixed), _is_ascii)
    assert len(ranges) == 1
    a, b = ranges[0]
    assert a <= at and at + len(odd) <= b  # the non-ASCII line is in it, and it is whole lines
    assert (a == 0 or mixed[a - 1] == 0x0A) and (b == len(mixed) or mixed[b - 1] == 0x0A)
    assert mixed[:a].isascii() and mixed[b:].isascii()
