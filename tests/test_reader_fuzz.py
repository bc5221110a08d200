"""Fuzz the claims readers with the files real exports and their accidents make.

Each example writes a CSV from known true rows: an encoding for the file (UTF-8, UTF-8 with BOM, GB18030) and a few
rows in the other one, a delimiter, a quoting style, CR / LF / CRLF line ends, blank lines, a BOM, Excel's trailing
empty columns, and rows damaged on purpose (a field too few or too many, a stray quote, a huge field, a total cost
of "NaN"). The text fields hold what exports hold: Chinese, formula-like cells (=1+1, +86..., -5, @x), control
bytes, quotes, delimiters and line breaks inside quoted fields, thousands separators.

What must hold, through `dipsim.io.load_cases`: no exception but InputError (and that only for a whole-file fault);
rows read = accepted + rejected = the true rows; every reject has a reason, on the line where its row starts; every
undamaged row is accepted with its text exactly as written, and every damaged one is rejected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipsim.io import InputError, load_cases

HEADER = ["病案号", "住院天数", "诊断编码", "医疗总费用", "科室"]
# Department texts: Chinese (none of whose GB18030 bytes are valid UTF-8, checked below), ASCII, cells that
# spreadsheets take for formulas, a delimiter, a quote and a line break inside a field.
DEPARTMENTS = ["骨科", "心血管内科", "普外科", "新生儿科", "呼吸内科", "神经外科一病区", "Ward 3", "ICU", "=1+1",
               "+86 10 8888 6666", "-5", "@x", "骨科\n一病区", "眼科, 二病区", '他说"好"', "a;b|c\td"]
CONTROLS = ["\x01", "\x07", "\x1b", "\x00", "\x7f"]
CASE_ID_PREFIXES = ["F", "=F", "+F", "-F", "@F"]
DIAGNOSES = ["K35.800", "K35.800,E11.900", ",I10.x00", "J18.900 I10.x00"]
COSTS = [("1200.50", 1200.5), ("1,234.50", 1234.5), ("8000", 8000.0)]
DAMAGES = ["short", "long", "stray quote", "huge", "NaN cost", "other encoding"]
OTHER = {"utf-8": "gb18030", "utf-8-sig": "gb18030", "gb18030": "utf-8"}


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


assert not any(_valid_utf8(d.encode("gb18030")) for d in DEPARTMENTS if not d.isascii())


@dataclass
class TrueRow:
    """One claim as written: its text, the damage done to it, where it starts."""

    case_id: str
    department: str
    cost: float
    cells: list[str]
    damage: str | None = None
    encoding: str = ""  # the encoding its line is written in
    line: int = 0  # the line under the header it starts on (the row number the reader must give)

    def __repr__(self) -> str:
        return f"TrueRow({self.line}: {self.cells[:4]!r} {self.department[:40]!r}, {self.damage}, {self.encoding})"


@dataclass
class Export:
    rows: list[TrueRow] = field(default_factory=list)
    data: bytes = b""

    def __repr__(self) -> str:  # the bytes can be megabytes: Hypothesis prints the example on failure
        return f"Export(rows={self.rows!r}, data={self.data[:2000]!r}{'...' if len(self.data) > 2000 else ''})"


def _quote(cell: str, delimiter: str, quote_all: bool) -> str:
    if quote_all or any(c in cell for c in (delimiter, '"', "\n", "\r")) or cell.startswith(" "):
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def exports(draw) -> Export:
    """A CSV export from true rows (see the module docstring); rows know the damage done to them."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 40))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
    delimiter = draw(st.sampled_from([",", "\t", ";", "|"]))
    quote_all = draw(st.booleans())
    line_end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    trailing = draw(st.sampled_from([0, 0, 2]))  # Excel's trailing empty columns
    damage_share = draw(st.sampled_from([0.0, 0.1, 0.3]))
    export = Export()
    for i in range(n):
        department = rng.choice(DEPARTMENTS)
        if rng.random() < 0.15:  # a control byte inside the text (not at its ends, which are trimmed)
            department = department[:1] + rng.choice(CONTROLS) + department[1:] + "x"
        text, cost = rng.choice(COSTS)
        cells = [f"{rng.choice(CASE_ID_PREFIXES)}{i:03d}", str(rng.randint(1, 30)), rng.choice(DIAGNOSES), text,
                 department] + [""] * trailing
        row = TrueRow(cells[0], department, cost, cells, encoding=encoding)
        if rng.random() < damage_share:
            row.damage = rng.choice(DAMAGES)
        export.rows.append(row)
    lines, line = [], 1
    for row in export.rows:
        cells = [_quote(c, delimiter, quote_all) for c in row.cells]
        if row.damage == "short":
            cells = cells[:-1 - trailing]
        elif row.damage == "long":
            cells.append("extra")
        elif row.damage == "stray quote":  # a quote that opens a field and does not close where it ends
            at = rng.choice([2, 4])  # (a row with a line break in a field then has no true end: not drawn)
            cells = [c.replace("\n", " ") for c in cells]
            cells[at] = '"' + row.cells[at].replace('"', "").replace("\n", "").replace(delimiter, "")
        elif row.damage == "huge":
            cells[4] = "长" * rng.choice([40_000, 40_000, 1_100_000])
        elif row.damage == "NaN cost":
            cells[3] = "NaN"
        elif row.damage == "other encoding":
            row.encoding = OTHER[encoding]
        text = delimiter.join(cells)
        if rng.random() < 0.1:  # a blank line before it: not a row
            lines.append(("", encoding))
            line += 1
        row.line = line
        line += text.count("\n") + 1
        lines.append((text, row.encoding))
    header = delimiter.join(HEADER + [""] * trailing)
    # A line break inside a quoted field stays LF whatever the file's line ends, as Excel writes it.
    body = b"".join(t.encode("gb18030" if e == "gb18030" else "utf-8") + line_end.encode() for t, e in lines)
    bom = b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b""
    export.data = bom + (header + line_end).encode("gb18030" if encoding == "gb18030" else "utf-8") + body
    _expect_encoding(export, encoding)
    return export


def _expect_encoding(export: Export, encoding: str) -> None:
    """Which rows the reader must reject for their encoding: the file's encoding is UTF-8 with a BOM, else that of
    most non-ASCII lines (the header counts); a row written in the other one is damaged when its bytes differ."""
    lines = export.data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    non_ascii = [line for line in lines if not line.isascii()]
    utf8 = sum(_valid_utf8(line) for line in non_ascii)
    chosen = "utf-8" if encoding == "utf-8-sig" or 2 * utf8 >= len(non_ascii) else "gb18030"
    for row in export.rows:
        written = "\x1f".join(row.cells)
        if row.damage is None and not written.isascii() and (row.encoding == "gb18030") != (chosen == "gb18030"):
            row.damage = "other encoding"
        elif row.damage == "other encoding" and (written.isascii() or
                                                 (row.encoding == "gb18030") == (chosen == "gb18030")):
            row.damage = None  # an ASCII row reads the same in both; a majority flipped by the draw reads fine


def _check(export: Export, path) -> None:
    path.write_bytes(export.data)
    try:
        result = load_cases(path)
    except InputError as exc:  # only a fault of the whole file: here, a header in the losing encoding
        assert "the header line is" in str(exc), exc
        return
    rows = export.rows
    assert result.rows_read == result.n_accepted + result.n_rejected == len(rows)
    assert all(result.rejects["reason"].to_pylist())
    clean = [r for r in rows if r.damage is None]
    assert result.accepted["case_id"].to_pylist() == [r.case_id for r in clean]
    assert result.accepted["department"].to_pylist() == [r.department for r in clean]
    assert result.accepted["total_cost"].to_pylist() == [r.cost for r in clean]
    assert result.accepted_rows.tolist() == [r.line for r in clean]
    assert sorted(set(result.rejects["row"].to_pylist())) == [r.line for r in rows if r.damage is not None]


SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])


@settings(max_examples=400, **SETTINGS)
@given(export=exports())
def test_fuzzed_csv_exports_lose_and_change_nothing(tmp_path, export):
    _check(export, tmp_path / "export.csv")


@pytest.mark.slow
@settings(max_examples=3000, **SETTINGS)
@given(export=exports())
def test_fuzzed_csv_exports_lose_and_change_nothing_long_run(tmp_path, export):
    _check(export, tmp_path / "export.csv")


@settings(max_examples=30, **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1))
def test_fuzzed_workbooks_lose_nothing(tmp_path, seed):
    """Workbooks as a program writes them: typed numbers, formula-like text, empty rows (no rows), trailing
    empty columns, and total costs as formulas without a saved value (rejected: missing total cost)."""
    rng = random.Random(seed)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([*HEADER, None, None])
    expected, excel_row = [], 1  # (row number, case id, department, total cost or None)
    for i in range(rng.randint(1, 30)):
        excel_row += 1
        if rng.random() < 0.1:
            sheet.append([])
            continue
        case_id = f"{rng.choice(CASE_ID_PREFIXES[:1] + CASE_ID_PREFIXES[2:])}{i:03d}" if i % 3 else i + 1000
        department = rng.choice([d for d in DEPARTMENTS if not d.startswith("=")])  # "=..." is a formula
        formula = rng.random() < 0.2
        sheet.append([case_id, rng.randint(1, 30), rng.choice(DIAGNOSES), "=1+1" if formula else 1200.5,
                      department])
        expected.append((excel_row - 1, str(case_id), department, None if formula else 1200.5))
    path = tmp_path / "book.xlsx"
    book.save(path)
    result = load_cases(path)
    assert result.rows_read == result.n_accepted + result.n_rejected == len(expected)
    kept = [e for e in expected if e[3] is not None]
    assert result.accepted_rows.tolist() == [e[0] for e in kept]
    assert result.accepted["case_id"].to_pylist() == [e[1] for e in kept]
    assert result.accepted["department"].to_pylist() == [e[2] for e in kept]
    assert result.rejects["row"].to_pylist() == [e[0] for e in expected if e[3] is None]
    assert set(result.rejects["reason"].to_pylist()) <= {"missing total cost (医疗总费用): the case cannot be priced"}
