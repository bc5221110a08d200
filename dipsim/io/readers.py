"""Read claims files (CSV in UTF-8 / UTF-8-BOM / GB18030 / GBK, Excel .xlsx, Parquet) into a raw Arrow table.

A reader only reads: it maps headers onto canonical names (headers.py), keeps every data row with its row number,
and turns rows it cannot even split into fields, or that are not text in the file's encoding, into rejects. Types,
ranges and codes are checked in validate.py, so that the row accounting (read = accepted + rejected) lives in one
place.

A text file is decoded line by line (`decode_lines`: a row in another encoding is rejected with its bytes, never
read as other characters) and split into rows by pyarrow; a row's number is the line under the header it starts
on, and a stray quote rejects its own line instead of folding the lines after it into one row (`_text_rows`). It
is read in blocks of whole lines (`_CsvText`), each block's rows and rejects those of one read of the whole file,
so that a large file can be validated a piece at a time (`iter_csv_raw`).
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import itertools
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import InputError
from .headers import SPLIT_CODE_COLUMNS, map_header_list

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
_DELIMITERS = (",", "\t", ";", "|")
# Schema metadata key that `dipsim validate` writes on its accepted partitions (see io/pipeline.py).
VALIDATED_KEY = b"dipsim.validated"


@dataclass
class RawCases:
    """What a reader returns: canonical-named columns (strings for text files), row numbers, early rejects."""

    table: pa.Table
    rows: np.ndarray  # int64, each table row's number: 1 for the first under the header (text: its line)
    source: str
    encoding: str = ""
    header_map: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)  # rows not split into fields or not decodable
    validated: dict | None = None  # the stamp of one complete `dipsim validate` output, when the input is one
    # Columns as validation reads them, made ahead in the reader's thread (`validate.read_ahead_work`): a text
    # column dictionary-encoded, a code list split. The same values as the table's, which stays as read.
    ahead: dict[str, pa.Array] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return len(self.rows) + len({r["row"] for r in self.rejects})


def decode_text(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Decode a small side table (hospitals, weights) whole, detecting UTF-8 (with or without BOM) or GB18030 (a
    superset of GBK and GB2312). Undecodable bytes become U+FFFD. Claims files are decoded line by line instead
    (`decode_lines`), so that a row in another encoding is rejected, never read as other text."""
    if encoding:
        try:
            return data.decode(encoding, errors="replace"), encoding
        except LookupError as exc:
            raise InputError(f"unknown text encoding {encoding!r} (try gb18030, utf-8 or utf-8-sig)") from exc
    if data.startswith(_UTF8_BOM):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        pass
    # Neither decodes cleanly: keep the reading with fewer undecodable characters. Ties go to UTF-8.
    as_utf8 = data.decode("utf-8", errors="replace")
    as_gb = data.decode("gb18030", errors="replace")
    if as_gb.count("\ufffd") < as_utf8.count("\ufffd"):
        return as_gb, "gb18030"
    return as_utf8, "utf-8"


# ---------------------------------------------------------------- text files: bytes -> UTF-8 lines

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_GB_ENCODINGS = {"gb18030", "gbk", "gb2312"}  # codecs.lookup names (cp936 is gbk)
_NON_ASCII = re.compile(rb"[\x80-\xff]+")
# Bytes no text export holds (C0 controls but tab, LF, CR): many of them, or a NUL in the header, mean a binary file.
_CONTROL_BYTES = bytes(range(0, 9)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20)) + b"\x7f"
_MAGIC = (
    (b"PK\x03\x04", "a zip archive, such as an .xlsx workbook: give it the .xlsx suffix"),
    (b"PAR1", "a Parquet file: give it the .parquet suffix"),
    (b"\xd0\xcf\x11\xe0", "an old .xls workbook: save it as .xlsx or CSV"),
)


def escaped(data: bytes, limit: int = 200) -> str:
    """Bytes for a message: printable ASCII as is, every other byte as \\xNN (`\\xe9\\xaa\\xa8` for UTF-8 骨)."""
    text = "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in data[:limit])
    return text[:limit]


def _display(codec: str) -> str:
    return {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "gb18030": "GB18030", "gbk": "GBK", "gb2312": "GB2312"}.get(
        codec, codec)


def _codec(encoding: str) -> str:
    try:
        "\n".encode(encoding)  # LookupError too for codecs that are no text encoding (rot13, hex, base64)
        return codecs.lookup(encoding).name
    except LookupError as exc:
        raise InputError(f"unknown text encoding {encoding!r} (try gb18030, utf-8 or utf-8-sig)") from exc


def _magic(data: bytes) -> str | None:
    """What kind of file `data` starts like, when it is one a claims export is often mistaken for."""
    return next((f"it is {what}" for magic, what in _MAGIC if data.startswith(magic)), None)


def _refuse_binary(path: Path, data: bytes) -> None:
    """A CSV export holds no NUL byte in its header line and few control bytes: anything else is another kind of
    file under a text suffix (a workbook, a Parquet file, a binary dump), refused as a whole. (A garbage file that
    passes is refused by its header: no column it needs, or not text in the file's encoding.)"""
    if data.startswith(_UTF16_BOMS):
        return
    head = data[:65536]
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if b"\x00" in re.match(rb"[^\r\n]*", head).group() or controls * 4 > len(head):
        raise InputError(f"{path}: not a text (CSV) file: "
                         f"{_magic(data) or 'it holds NUL or control bytes, starting ' + escaped(data, 16)}")


def _lf_line_ends(data: bytes) -> bytes:
    """LF line ends: a CR-only file (old Mac exports) or one mixing lone CRs into its line ends is rewritten; LF
    and CRLF files are kept as they are (CRLF is read as one line end)."""
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def _span(data: bytes | bytearray, lo: int = 0, hi: int | None = None) -> pa.Array:
    """Bytes lo..hi of `data` as one Arrow string value, not copied (for Arrow's checks over them)."""
    hi = len(data) if hi is None else hi
    offsets = pa.py_buffer(np.array([lo, hi], np.int64))
    return pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])


def _is_utf8(data: bytes | bytearray, lo: int = 0, hi: int | None = None) -> bool:
    """Arrow's UTF-8 check of bytes lo..hi (several times faster than decoding them to test)."""
    try:
        _span(data, lo, hi).validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


def _is_ascii(data: bytes | bytearray, lo: int = 0, hi: int | None = None) -> bool:
    return pc.string_is_ascii(_span(data, lo, hi))[0].as_py()


def _is_utf8_line(line: bytes) -> bool:
    """Whether `line` is valid UTF-8 (a U+FFFD written as text, EF BF BD, is: it is no sign of broken bytes)."""
    try:
        line.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _start_encoding(data: bytes, encoding: str | None) -> tuple[str | None, str | None, int]:
    """The codec named (None: to be detected), the label it is reported as, and the length of a UTF-8 BOM to skip,
    from `encoding` and the first bytes of the file."""
    codec = _codec(encoding) if encoding else None
    label = codec
    if data.startswith(_UTF8_BOM) and codec in (None, "utf-8", "utf-8-sig"):
        return "utf-8", "utf-8-sig", len(_UTF8_BOM)
    if codec == "utf-8-sig":
        return "utf-8", label, 0
    if codec is None and data.startswith(_UTF16_BOMS):
        return "utf-16", "utf-16", 0
    return codec, label, 0


def _line_by_line(codec: str | None) -> bool:
    """Whether text in `codec` can be cut into lines before decoding (ASCII-compatible: not UTF-16/32)."""
    return codec is None or "\n,\"".encode(codec, errors="replace") == b"\n,\""


def _line_counts(lines: list[bytes], valid_utf8: bool = False) -> tuple[int, int]:
    """How many of `lines` are not ASCII, and how many of those are valid UTF-8 (all when `valid_utf8`)."""
    non_ascii = [line for line in lines if not line.isascii()]
    return len(non_ascii), len(non_ascii) if valid_utf8 else sum(map(_is_utf8_line, non_ascii))


def _majority(non_ascii: int, utf8: int) -> str:
    """The encoding of a file none of whose encodings was named: UTF-8 when at least half its non-ASCII lines are
    valid UTF-8, else GB18030."""
    return "utf-8" if 2 * utf8 >= non_ascii else "gb18030"


def decode_lines(data: bytes, encoding: str | None = None) -> tuple[bytes, str, dict[int, tuple[bytes, str]]]:
    """A text file as UTF-8, line by line: returns the UTF-8 bytes (line i of the file is line i here, lone CRs
    made line ends: `_lf_line_ends`), the encoding, and the lines that are not text in it, {line index: (their
    bytes, reason)}. Those lines stay in place with their non-ASCII bytes turned into U+FFFD, so that the rows
    around them split as in the file; the reader rejects the rows holding them.

    The encoding is `encoding` when given, else UTF-8 when the whole file is (the fast path, no work per line),
    else that of most non-ASCII lines: UTF-8 or GB18030 (a superset of GBK and GB2312). A line that is not valid
    in it is undecodable; in a GB18030/GBK file so is a non-ASCII line that is valid UTF-8, because UTF-8 Chinese
    is mostly valid GB18030 too and would read as other characters (骨科 -> 楠ㄧ), while GB18030 Chinese is almost
    never valid UTF-8. Neither encoding has a line-end byte (0x0A) inside a character, so lines are cut before
    decoding. UTF-16 (with its BOM, as Excel's "Unicode text" writes it) is decoded whole.

    The claims reader does the same a block of lines at a time (`_CsvText`); this whole-file form is its way for
    the files it cannot read in blocks (UTF-16, lone CR line ends)."""
    codec, label, bom = _start_encoding(data, encoding)
    data = data[bom:]
    if not _line_by_line(codec):  # UTF-16/32: not line by line
        try:
            return _lf_line_ends(data.decode(codec).encode("utf-8")), label, {}
        except UnicodeDecodeError as exc:
            raise InputError(f"not valid {codec} text (byte {exc.start})") from None
    data = _lf_line_ends(data)
    if codec in (None, "utf-8") and _is_utf8(data):
        return data, label or "utf-8", {}
    lines = data.split(b"\n")
    if codec is None:
        codec = label = _majority(*_line_counts(lines))
    bad = _decode_line_list(lines, codec)
    return b"\n".join(lines), label, bad


def _decode_line_list(lines: list[bytes], codec: str) -> dict[int, tuple[bytes, str]]:
    """Turn `lines` (in `codec`) into UTF-8 in place; returns the undecodable ones, {index: (bytes, reason)}, left
    in place with their non-ASCII bytes as U+FFFD (see `decode_lines`)."""
    non_ascii = [i for i, line in enumerate(lines) if not line.isascii()]
    name = _display(codec)
    undecodable = f"not {name} text, the file's encoding: rejected, not read as other characters"
    if codec == "utf-8":
        bad = {i: (lines[i], undecodable) for i in non_ascii if not _is_utf8_line(lines[i])}
        for i in bad:
            lines[i] = _NON_ASCII.sub("\ufffd".encode(), lines[i])
        return bad
    bad = {}
    if codec in _GB_ENCODINGS:
        bad = {i: (lines[i], f"UTF-8 text in a {name} file: rejected, not read as other characters (save "
                             "the file in one encoding)") for i in non_ascii if _is_utf8_line(lines[i])}
    # Only the non-ASCII lines need decoding (ASCII is the same bytes in UTF-8): in a bureau's GB18030 export of
    # codes and amounts that is often the header alone, and decoding line by line is no slower than the whole file.
    for i in non_ascii:
        if i not in bad:
            try:
                lines[i] = lines[i].decode(codec).encode("utf-8")
                continue
            except UnicodeDecodeError:
                bad[i] = (lines[i], undecodable)
        lines[i] = _NON_ASCII.sub("\ufffd".encode(), lines[i])
    return bad


# ---------------------------------------------------------------- CSV: lines -> rows


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    return max(counts, key=counts.get) if any(counts.values()) else ","


def _dedupe(names: list[str]) -> list[str]:
    """Unique column names: an empty header cell becomes `column<N>` (N its position), a repeated one gets .1, .2
    (the header check, `map_header_list`, sees the cells as written)."""
    taken: set[str] = set()
    out = []
    for position, name in enumerate(names, start=1):
        name = name.strip().lstrip("\ufeff") or f"column{position}"
        unique, k = name, 0
        while unique in taken:
            k += 1
            unique = f"{name}.{k}"
        taken.add(unique)
        out.append(unique)
    return out


@functools.cache
def _field_patterns(delimiter: str) -> tuple[re.Pattern, re.Pattern]:
    quoted = re.compile(rb'"[^"]*(?:""[^"]*)*"')  # a quoted field, "" inside it being one quote
    rest = re.compile(rb"[^" + re.escape(delimiter.encode()) + rb"\n]*")  # up to the next delimiter or line end
    return quoted, rest


def _quote_fault(record: bytes, delimiter: str, strict: bool = False) -> str | None:
    """How the quotes in the raw text of one row break RFC 4180, read as pyarrow reads them (a quote opens a
    quoted field only at the start of a field): "open" when a quoted field runs to the end of the text, "stray"
    when one closes without a delimiter or line end after it (and, with `strict`, when an unquoted field holds a
    quote: a CSV writer never writes that, so in a row over several lines it is the other half of a stray
    quote), None when the quotes are proper."""
    quoted, rest = _field_patterns(delimiter)
    end = len(record.rstrip(b"\r\n"))
    fault = None
    pos = 0
    while pos < end:
        if record[pos] == 0x22:
            match = quoted.match(record, pos)
            if match is None:
                return "open"
            pos = match.end()
            if pos < end and record[pos] not in (ord(delimiter), 0x0A, 0x0D):
                fault = "stray"
        field_end = rest.match(record, pos).end()
        if strict and record.find(b'"', pos, field_end) >= 0:
            fault = "stray"
        pos = field_end + 1
    return fault


_NOT_LINE_END = re.compile(rb"[^\r\n]")


@dataclass(frozen=True)
class _Lines:
    """Bytes lo..hi of the decoded file: whole lines under the header, read in place (not copied)."""

    data: bytes
    lo: int
    hi: int

    def __len__(self) -> int:
        return self.hi - self.lo

    def __getitem__(self, offsets: slice) -> bytes:
        return self.data[self.lo + (offsets.start or 0):self.lo + (len(self) if offsets.stop is None else offsets.stop)]

    def after(self, offset: int, stop: int | None = None) -> _Lines:
        return _Lines(self.data, self.lo + offset, self.hi if stop is None else self.lo + stop)

    def count(self, sub: bytes, start: int = 0, stop: int | None = None) -> int:
        return self.data.count(sub, self.lo + start, self.lo + (len(self) if stop is None else stop))

    def blank(self) -> bool:
        return _NOT_LINE_END.search(self.data, self.lo, self.hi) is None

    @functools.cached_property
    def line_ends(self) -> int:
        return self.count(b"\n")

    def lines(self) -> int:
        return self.line_ends + (self.data[self.hi - 1] != 0x0A)

    def last_line(self) -> bytes:
        return self.data[self.data.rfind(b"\n", self.lo, self.hi - 1) + 1 or self.lo:self.hi]


def _parse_csv(text: _Lines, names: list[str], delimiter: str, path: Path) -> tuple[pa.Table, list[tuple]]:
    """pyarrow's CSV parse of `text` (no header), all columns text; rows with another number of fields are
    returned apart as (record number, fields, text)."""
    invalid: list[tuple[int, int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.actual_columns, row.text or ""))
        return "skip"

    def read(block_size: int) -> pa.Table:
        invalid.clear()
        return pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(text.data).slice(text.lo, len(text))),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=block_size),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                             invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False),
        )

    try:
        try:
            return read(1 << 20), invalid
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):
                raise
            # A row longer than pyarrow's 1 MB block (a 10 MB field): read the text as one block.
            return read(min(len(text) + 1, 2**31 - 1)), invalid
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: cannot parse as CSV: {exc}") from exc


def _line_bounds(text: _Lines) -> tuple[np.ndarray, np.ndarray]:
    """Start offset of every line of `text` plus its end (line i is text[bounds[i]:bounds[i + 1]], its line end
    included), and whether each line is blank (nothing but its line end)."""
    buf = np.frombuffer(text.data, np.uint8, count=len(text), offset=text.lo)
    bounds = np.concatenate([[0], np.flatnonzero(buf == 0x0A) + 1])
    if bounds[-1] != len(text):
        bounds = np.append(bounds, len(text))
    start, stop = bounds[:-1], bounds[1:]
    content = stop - start - (buf[stop - 1] == 0x0A)
    content -= (content > 0) & (buf[np.maximum(start + content - 1, 0)] == 0x0D)
    return bounds, content == 0


def _row_lines(blank: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """The line each row starts on: rows take the non-blank lines in order, and a row with a field over several
    lines takes its `extra` following lines too (blank ones included)."""
    filled = np.flatnonzero(~blank)
    start = np.empty(len(extra), np.int64)
    done = pos = 0
    for row in np.flatnonzero(extra > 0):  # few: rows whose quoted field holds a line end
        start[done:row + 1] = filled[pos:pos + row + 1 - done]
        pos = int(np.searchsorted(filled, start[row] + extra[row], side="right"))
        done = row + 1
    start[done:] = filled[pos:pos + len(extra) - done]
    return start


def _newlines_per_row(table: pa.Table) -> np.ndarray:
    counts = np.zeros(table.num_rows, np.int64)
    for column in table.columns:
        counts += pc.count_substring(column, "\n").to_numpy()
    return counts


def _quote_in_values(table: pa.Table) -> np.ndarray:
    """Which rows hold a quote in a value (looked for in the values' bytes first: most files have none)."""
    quoted = np.zeros(table.num_rows, bool)
    if any(_has_byte(piece.buffers()[2], 0x22) for column in table.columns for piece in column.chunks
           if piece.buffers()[2] is not None):
        for column in table.columns:
            quoted |= pc.match_substring(column, '"').to_numpy(zero_copy_only=False)
    return quoted


def _has_byte(buffer, byte: int, step: int = 1 << 22) -> bool:
    """Whether `byte` is in `buffer` (read in place, a few MB at a time)."""
    values = np.frombuffer(buffer, np.uint8)
    return any((values[at:at + step] == byte).any() for at in range(0, len(values), step))


@dataclass
class _Parsed:
    """One pyarrow parse of some lines, numbered from 0: the rows it read (table, first and last line of each),
    the lines rejected as they are, and the stray quotes met: (line of the quote, last line its row took,
    whether it runs to the end of the text)."""

    table: pa.Table
    start: np.ndarray
    end: np.ndarray
    rejects: list[tuple[int, str, str]]  # (line, value, reason)
    strays: list[tuple[int, int, bool]]
    bounds: np.ndarray | None  # `_line_bounds`; computed when there are strays or rows over lines


def _place_rows(text: _Lines, table: pa.Table, invalid: list[tuple], is_invalid: np.ndarray):
    """Where the rows pyarrow read lie: line bounds (None when every line is a row), the line each row starts on,
    and the lines it takes after that (a quoted field over lines)."""
    n = len(is_invalid)
    extra = np.zeros(n, np.int64)
    if n == text.lines():  # one row a line: no blank line, no field over lines (the common case)
        return None, np.arange(n), extra
    bounds, blank = _line_bounds(text)
    if n != np.count_nonzero(~blank):
        extra[~is_invalid] = _newlines_per_row(table)
        extra[is_invalid] = [raw.count("\n") for _, _, raw in invalid]
    elif n and blank[-1]:
        # As many rows as lines with text: a row takes no line with text but its first. Yet the last may take the
        # blank lines that end the text, when its quote is open to the end (a stray quote on the last line).
        extra[-1] = (invalid[-1][2].count("\n") if is_invalid[-1] else
                     int(_newlines_per_row(table.slice(table.num_rows - 1))[0]))
    return bounds, _row_lines(blank, extra), extra


def _parse_lines(text: _Lines, names: list[str], delimiter: str, path: Path) -> _Parsed:
    """pyarrow's parse of `text`, its rows placed on their lines, and its quote faults sorted out: a row whose
    quote does not close, or closes where no field ends, is a stray when it takes more than its line (or runs to
    the end); on one line, it is rejected."""
    table, invalid = _parse_csv(text, names, delimiter, path)
    n = table.num_rows + len(invalid)
    is_invalid = np.zeros(n, bool)
    is_invalid[[number - 1 for number, _, _ in invalid]] = True
    bounds, start, extra = _place_rows(text, table, invalid, is_invalid)
    last_line = n - 1 if bounds is None else len(bounds) - 2

    def lines(first: int, last: int) -> bytes:
        nonlocal bounds
        bounds = _line_bounds(text)[0] if bounds is None else bounds
        return text[bounds[first]:bounds[last + 1]]

    rejects, strays = [], []
    stray = np.zeros(n, bool)
    for number, fields, raw in invalid:
        row = number - 1
        fault = _quote_fault(raw.encode(), delimiter, strict=bool(extra[row]))
        if fault == "open" or (fault and extra[row]):
            strays.append((start[row], min(start[row] + extra[row], last_line), fault == "open"))
        else:  # one line, or a proper quoted field over lines in a row with the wrong number of fields
            rejects.append((start[row], raw, _UNBALANCED if fault else
                            f"row has {fields} fields, the header has {len(names)}"))
    for row in np.flatnonzero(~is_invalid & ((extra > 0) | (np.arange(n) == n - 1))):
        first, last = start[row], min(start[row] + extra[row], last_line)  # an open quote takes the last LF too
        raw = lines(first, last) if extra[row] else text.last_line()
        fault = _quote_fault(raw, delimiter, strict=bool(extra[row])) if b'"' in raw else None
        if fault == "open" or (fault and extra[row]):
            strays.append((first, last, fault == "open"))
            stray[row] = True
    # A stray quote that closes on its own line where no field ends ("K35.800,"1,200",x) leaves the line's other
    # quotes unpaired, and pyarrow reads them as characters of fields run together: a line of one row with an
    # odd number of quotes. Such a row has a quote in a value, which few rows have: only they are counted.
    for row in np.flatnonzero(~is_invalid)[_quote_in_values(table)]:
        if not (stray[row] or extra[row]) and (raw := lines(start[row], start[row])).count(b'"') % 2:
            rejects.append((start[row], raw.decode(), _UNBALANCED))
            stray[row] = True
    if strays:
        lines(0, 0)  # the bounds, for `_text_rows`
    good = ~is_invalid & ~stray
    if not good[~is_invalid].all():
        table = table.filter(pa.array(good[~is_invalid]))
    return _Parsed(table, start[good], start[good] + extra[good], rejects, sorted(strays), bounds)


_UNBALANCED = 'unbalanced quote ("): the line cannot be split into fields; the lines after it are read as rows'


@dataclass
class _Rows:
    """Rows read so far, numbered by line: tables with each row's first and last line, and rejects. `resume`: where
    a block's rows stop short of its end (`_text_rows` with `more`): (the row number of the line to read on from,
    its offset in the block's text, whether that line's row must be read again with the lines after the block)."""

    tables: list[pa.Table] = field(default_factory=list)
    starts: list[np.ndarray] = field(default_factory=list)
    ends: list[np.ndarray] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    resume: tuple[int, int, bool] | None = None

    def add(self, parsed: _Parsed, first: int, low: int, high: float = np.inf) -> None:
        """The rows of `parsed` that start on lines low..high-1, numbered from `first`."""
        keep = (parsed.start >= low) & (parsed.start < high)
        self.tables.append(parsed.table.filter(pa.array(keep)) if not keep.all() else parsed.table)
        self.starts.append(first + parsed.start[keep])
        self.ends.append(first + parsed.end[keep])
        for line, value, reason in parsed.rejects:
            if low <= line < high:
                self.reject(first + line, value, reason)

    def reject(self, row: int, value: str, reason: str) -> None:
        self.rejects.append({"row": int(row), "field": "", "value": value.rstrip("\r\n")[:200], "reason": reason})

    def extend(self, other: _Rows) -> None:
        self.tables += other.tables
        self.starts += other.starts
        self.ends += other.ends
        self.rejects += other.rejects


def _text_rows(text: _Lines, first: int, names: list[str], delimiter: str, path: Path,
               piece: bool = False, more: bool = False) -> _Rows | None:
    """The rows of `text`, whose line 0 is row `first` (see `_CsvText.blocks`). A `piece` is the lines a stray quote
    took, read again: None when it ends inside an open quote, which may close after it (the caller then reads on
    from the piece's first line to the end of its own text).

    `more`: `text` is a block of a file with more lines after it (`_CsvText.blocks`). Where the whole file's read
    would read on past the block's end (a quote still open at its end, or a piece read again that ends in one),
    the rows stop there and `resume` says where the next block starts: everything before it is as in one read of
    the file, because each row ends on the line where it ends in the file."""
    out = _Rows()
    if text.blank():
        return out
    parsed = _parse_lines(text, names, delimiter, path)
    bounds = parsed.bounds
    done = 0
    for line, last, to_end in parsed.strays:
        if to_end and piece:
            return None
        out.add(parsed, first, done, line)
        if to_end and more:  # its quote may close in the next block: this row is read again with it
            out.resume = (first + line, int(bounds[line]), True)
            return out
        after = bounds[line + 1]
        out.reject(first + line, text[bounds[line]:after].decode(), _UNBALANCED)
        rest = None
        if not to_end:  # the lines the stray took, read again; if they end in an open quote, read on
            rest = _text_rows(text.after(after, bounds[last + 1]), first + line + 1, names, delimiter, path,
                              piece=True)
        if rest is None:
            if more:  # the whole file's read reads on from the next line: so does the next block
                out.resume = (first + line + 1, int(after), False)
                return out
            rest = _text_rows(text.after(after), first + line + 1, names, delimiter, path, piece=piece)
            if rest is not None:
                out.extend(rest)
            return None if rest is None else out
        out.extend(rest)
        done = last + 1
    out.add(parsed, first, done)
    return out


def _stacked_rows(rows: _Rows, names: list[str]) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The rows read as one table of text, with each row's number and last line."""
    if not rows.tables:
        empty = pa.schema([pa.field(n, pa.string()) for n in names]).empty_table()
        return empty, np.zeros(0, np.int64), np.zeros(0, np.int64)
    table = rows.tables[0] if len(rows.tables) == 1 else pa.concat_tables(rows.tables)
    return table, np.concatenate(rows.starts).astype(np.int64), np.concatenate(rows.ends).astype(np.int64)


def _reject_undecodable(table: pa.Table, rows: np.ndarray, ends: np.ndarray, rejects: list[dict],
                        bad_lines: dict[int, tuple[bytes, str]]) -> tuple[pa.Table, np.ndarray]:
    """Reject every row holding an undecodable line, with the line's bytes escaped; the other rows stay. Line i
    of the file (0: the header) is in the row numbered i, or in the row before it that spans it; a line in a row
    rejected already adds a reason to that row."""
    lines = np.fromiter(bad_lines, np.int64)
    holder = np.searchsorted(rows, lines, side="right") - 1
    inside = (holder >= 0) & (ends[np.maximum(holder, 0)] >= lines) if len(rows) else np.zeros(len(lines), bool)
    rejected = np.array(sorted({r["row"] for r in rejects}), np.int64)
    for line, row, held in zip(lines, holder, inside):
        data, reason = bad_lines[int(line)]
        number = rows[row] if held else rejected[np.searchsorted(rejected, line, side="right") - 1]
        rejects.append({"row": int(number), "field": "", "value": escaped(data.rstrip(b"\r")), "reason": reason})
    drop = np.zeros(len(rows), bool)
    drop[holder[inside]] = True
    return table.filter(pa.array(~drop)), rows[~drop]


def _drop_blank_rows(table: pa.Table, rows: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Rows whose every cell is empty (a spreadsheet's empty rows) are no rows, like blank lines."""
    if table.num_columns == 0 or table.num_rows == 0:
        return table, rows
    blank = pc.equal(pc.binary_length(table.column(0)), 0)
    if not pc.any(blank).as_py():
        return table, rows
    for column in table.columns[1:]:
        blank = pc.and_(blank, pc.equal(pc.binary_length(column), 0))
    blank = blank.to_numpy(zero_copy_only=False)
    return table.filter(pa.array(~blank)), rows[~blank]


def _drop_unnamed_empty_columns(table: pa.Table, headers: list[str]) -> pa.Table:
    """Columns without a header and without a value (the trailing empty columns of spreadsheet exports)."""
    drop = [name for name, header in zip(table.column_names, headers)
            if not header.strip().lstrip("\ufeff") and not pc.max(pc.binary_length(table[name])).as_py()]
    return table.drop_columns(drop) if drop else table


# A claims text file is read in blocks of whole lines, this many bytes each (`read_csv_raw`): the parse and its
# copies stay in a few buffers of this size, whatever the file's size.
_BLOCK_BYTES = 1 << 25
_FIRST_BLOCK_SHARE = 16  # `iter_csv_raw(ramp=True)`'s first batch is this many times shorter than the others
_SCAN_BYTES = 1 << 24  # the first pass, which only counts, reads this much at a time
_HEAD_BYTES = 1 << 20  # what is looked at before reading (binary files, a BOM, the header, the length of a line)


class _LineReader:
    """A file's bytes from an offset on, a block of whole lines at a time, read into one buffer that is reused:
    `fill` reads on until buf[lo:] holds enough, the caller moves `lo` past what it has used."""

    def __init__(self, file, start: int):
        self.size = file.seek(0, io.SEEK_END)
        file.seek(start)
        self.file, self.buf, self.lo, self.hi, self.eof = file, bytearray(), 0, 0, False
        self.base = start  # the file offset of buf[0]

    def fill(self, want: int, least: int = 0) -> int:
        """Read until buf[lo:] holds `want` bytes and a line end after them, or the rest of the file; returns the
        end of the whole lines of about `want` bytes from `lo` (after the last LF before lo + want, else after the
        first LF after it; `hi` when the rest of the file is that short), more than `least` bytes from `lo` (a
        block read again must be longer). `lo` when nothing is left."""
        want = max(want, least + 1)
        while True:
            if self.eof and self.hi - self.lo <= want:
                return self.hi
            if self.hi - self.lo > want:
                cut = self.lo + want
                end = self.buf.rfind(b"\n", self.lo, cut) + 1
                if end - self.lo <= least:
                    end = self.buf.find(b"\n", max(cut, self.lo + least), self.hi) + 1
                if end:
                    return end
                if self.eof:
                    return self.hi
                want = self.hi - self.lo  # a line longer than the block: read on to its end
            self._read(want)

    def _read(self, want: int) -> None:
        keep = self.hi - self.lo
        size = max(want, keep) + max(want, keep) // 4 + 65536
        # No more than the rest of the file (+1: its end is a read of nothing). A new buffer, not a resized one: the
        # old one may still be lent to an Arrow buffer about to be freed.
        size = min(size, keep + max(self.size - self.base - self.hi, 0) + 1)
        if len(self.buf) < size:
            grown = bytearray(size)
            grown[:keep] = memoryview(self.buf)[self.lo:self.hi]
            self.buf = grown
        elif self.lo:
            self.buf[:keep] = memoryview(self.buf)[self.lo:self.hi]
        self.base += self.lo
        self.lo, self.hi = 0, keep
        with memoryview(self.buf) as view, view[keep:] as tail:
            n = self.file.readinto(tail)
        self.hi += n or 0
        self.eof = not n


def _scan_text(file, start: int, codec: str | None) -> tuple[bool, bool, int, int]:
    """One pass over a text file from `start` that only counts what its line ends and encoding are decided on
    (`decode_lines` decides them on the whole file): whether it has lone CRs (`_lf_line_ends`), whether it is all
    valid UTF-8 (checked when `codec` is UTF-8 or None), and, when `codec` is None and it is not, its non-ASCII
    lines and how many of them are valid UTF-8."""
    reader = _LineReader(file, start)
    crs = crlfs = 0
    valid_utf8 = codec in (None, "utf-8")
    counted, uncounted = [0, 0], []  # blocks valid in UTF-8 are counted only if the file turns out not to be
    while (end := reader.fill(_SCAN_BYTES)) > reader.lo:
        buf, lo = reader.buf, reader.lo
        if buf.find(b"\r", lo, end) >= 0:
            crs += buf.count(b"\r", lo, end)
            crlfs += buf.count(b"\r\n", lo, end)
        for a, b in _ranges(buf, lo, end, _is_ascii):
            valid = codec in (None, "utf-8") and _is_utf8(buf, a, b)
            valid_utf8 = valid_utf8 and valid
            if codec is None and valid:
                uncounted.append((reader.base + a, b - a))
            elif codec is None:
                counts = _line_counts(bytes(memoryview(buf)[a:b]).split(b"\n"))
                counted = [counted[0] + counts[0], counted[1] + counts[1]]
        reader.lo = end
    if codec is None and not valid_utf8:
        for offset, size in uncounted:
            file.seek(offset)
            non_ascii, _ = _line_counts(file.read(size).split(b"\n"), valid_utf8=True)
            counted = [counted[0] + non_ascii, counted[1] + non_ascii]
    return crs != crlfs, valid_utf8, counted[0], counted[1]


@dataclass
class _CsvText:
    """A claims text file, ready to be read in blocks of whole lines (`blocks`): its encoding and line ends as
    `decode_lines` decides them for the whole file (found in a first pass that only counts), its header and
    delimiter. A file that cannot be cut into lines before decoding (UTF-16) or whose line ends are rewritten
    (lone CRs) is decoded whole first, and its blocks are cut from that (`payload`)."""

    path: Path
    detected: str  # the encoding, as reported
    codec: str | None  # what non-ASCII lines are decoded from; None: the text is UTF-8 as it is
    body: int  # the offset of the line under the header, in the file or in `payload`
    headers: list[str]  # the header cells as written
    delimiter: str
    line_bytes: float  # the mean length of the first lines under the header
    payload: bytes | None = None
    bad_lines: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # `payload`'s undecodable lines

    @property
    def names(self) -> list[str]:
        return _dedupe(self.headers)

    @classmethod
    def open(cls, path: Path, encoding: str | None) -> _CsvText:
        try:
            with path.open("rb", buffering=0) as file:
                head = file.read(_HEAD_BYTES)
                if not head or (head.isspace() and _rest_is_space(file)):
                    raise InputError(f"{path}: empty file")
                _refuse_binary(path, head)
                try:
                    codec, label, bom = _start_encoding(head, encoding)
                except InputError as exc:
                    raise InputError(f"{path}: {exc}") from None
                if _line_by_line(codec):
                    lone_crs, valid_utf8, non_ascii, utf8 = _scan_text(file, bom, codec)
                    if not lone_crs:
                        if valid_utf8:
                            codec, label = None, label or "utf-8"
                        elif codec is None:
                            codec = label = _majority(non_ascii, utf8)
                        return cls._with_header(path, label, codec, bom, head[bom:], file=file)
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        try:
            payload, detected, bad_lines = decode_lines(data, encoding)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        return cls._with_header(path, detected, None, 0, payload, payload=payload, bad_lines=bad_lines)

    @classmethod
    def _with_header(cls, path: Path, detected: str, codec: str | None, start: int, head: bytes, file=None,
                     payload: bytes | None = None, bad_lines: dict | None = None) -> _CsvText:
        """Read the header line (the first of `head`, the text from offset `start`; read on in `file` for a header
        longer than `head`)."""
        if file is not None and b"\n" not in head:
            file.seek(start + len(head))
            while b"\n" not in head and (more := file.read(_HEAD_BYTES)):
                head += more
        header_end = head.find(b"\n")
        header = head if header_end < 0 else head[:header_end]
        text = cls(path, detected, codec, 0, [], ",", 0.0)
        header_lines, bad = text.decoded(header, 0, len(header), 0) if payload is None else (None, bad_lines)
        if 0 in bad:
            raw, reason = bad[0]
            what = "UTF-8 text, not" if reason.startswith("UTF-8 text in") else "not valid"
            shown = escaped(raw.rstrip(b"\r"), 40)
            raise InputError(f"{path}: the header line is {what} {_display(detected)} text, the file's encoding "
                             f"({shown}...); save the file in one encoding, or force one with --encoding")
        if header_lines is not None:
            header = header_lines[:]
        header_text = bytes(header).decode("utf-8").rstrip("\r")
        if not header_text.strip(" \t,;|\ufeff"):
            raise InputError(f"{path}: empty header line (the first line must name the columns)")
        delimiter = _sniff_delimiter(header_text)
        try:
            headers = next(csv.reader([header_text], delimiter=delimiter))
        except csv.Error as exc:
            raise InputError(f"{path}: cannot read the header line: {exc}") from exc
        body = len(head) if header_end < 0 else header_end + 1
        sample = head[body:]
        line_bytes = len(sample) / max(sample.count(b"\n"), 1) if sample else 100.0
        return cls(path, detected, codec, start + body, headers, delimiter, line_bytes, payload, bad_lines or {})

    def decoded(self, data: bytes | bytearray, lo: int, hi: int, first: int
                ) -> tuple[_Lines, dict[int, tuple[bytes, str]]]:
        """Lines lo..hi of `data` (line `first` of the file the first of them) as UTF-8, and the undecodable ones
        among them {line of the file: (bytes, reason)}, as `decode_lines` has them (not copied when they are
        UTF-8 already)."""
        if self.payload is not None:
            lines = data.count(b"\n", lo, hi) + (hi > lo and data[hi - 1] != 0x0A)
            return _Lines(data, lo, hi), {k: v for k, v in self.bad_lines.items() if first <= k < first + lines}
        codec = self.codec
        plain = _is_utf8 if codec == "utf-8" else _is_ascii  # lines that read the same in UTF-8
        if codec is None or plain(data, lo, hi):
            return _Lines(data, lo, hi), {}
        pieces, bad, at, line = [], {}, lo, first
        with memoryview(data) as view:
            for a, b in _ranges(data, lo, hi, plain):
                line += data.count(b"\n", at, a)
                lines = bytes(view[a:b]).split(b"\n")
                bad.update((line + i, value) for i, value in _decode_line_list(lines, codec).items())
                pieces += [view[at:a], b"\n".join(lines)]
                line += len(lines) - 1
                at = b
            pieces.append(view[at:hi])
            text = b"".join(pieces)
            del pieces
        return _Lines(text, 0, len(text)), bad

    def blocks(self, block_bytes: int, first_bytes: int | None = None
               ) -> Iterator[tuple[pa.Table, np.ndarray, list[dict]]]:
        """The rows under the header, a block of whole lines (about `block_bytes`) at a time: (table of text, each
        row's number, rejects), each as one read of the whole file has them (`_text_rows`' `more`). A row's number
        is the line under the header it starts on (row 1 is the line after the header; blank lines are no rows).

        A row is one line, unless a quoted field properly spans lines (its closing quote followed by a delimiter
        or the line end, no stray quote in the row). A stray quote that does not close so would fold the following
        lines into one bad row: its line is rejected, and the lines after it are read as rows of their own. A block
        ends where one of its rows would read past it: the next starts on that row (a quote open at the end of a
        block is read again with twice the lines, so that a quote that never closes costs a few reads, not one a
        block). `first_bytes`: a shorter first block, each next one twice as long up to `block_bytes` (a caller
        that works on each block as it comes starts sooner)."""
        names = self.names
        source = io.BytesIO(self.payload) if self.payload is not None else self.path.open("rb", buffering=0)
        with source:
            reader = _LineReader(source, self.body)
            size = min(first_bytes or block_bytes, block_bytes)
            line, want, least = 1, size, 0
            while (end := reader.fill(want, least)) > reader.lo:
                buf, lo = reader.buf, reader.lo
                more = end < reader.hi or not reader.eof
                text, bad = self.decoded(buf, lo, end, line)
                rows = _text_rows(text, line, names, self.delimiter, self.path, more=more)
                size = min(2 * size, block_bytes)
                want, least = size, 0
                if rows.resume is None:
                    reader.lo, line = end, line + (text.line_ends if text.data is buf else buf.count(b"\n", lo, end))
                else:
                    resume_line, offset, reread = rows.resume
                    if text.data is not buf:  # decoded: the same line in the file's bytes
                        offset = _line_offset(buf, lo, end, resume_line - line) - lo
                    bad = {k: v for k, v in bad.items() if k < resume_line}
                    reader.lo, line = lo + offset, resume_line
                    if reread:  # the next block holds more lines than this one from its start
                        least = end - reader.lo
                        want = max(size, 2 * least)
                table, starts, ends = _stacked_rows(rows, names)
                if bad:
                    table, starts = _reject_undecodable(table, starts, ends, rows.rejects, bad)
                table, starts = _drop_blank_rows(table, starts)
                yield table, starts, rows.rejects


def _ranges(data: bytes | bytearray, lo: int, hi: int, plain, step: int = 1 << 20) -> list[tuple[int, int]]:
    """The parts of lines lo..hi of `data` (whole lines, about `step` bytes, adjacent ones merged) for which
    `plain(data, a, b)` is False: the parts of a block that need work line by line (in a bureau's GB18030 export
    of codes and amounts that is often the header alone)."""
    out: list[tuple[int, int]] = []
    if hi - lo > step and plain(data, lo, hi):  # one look at a plain block, not one a step (each call lets the
        return out  # GIL go, and a thread loading Numba meanwhile makes each one wait to get it back)
    a = lo
    while a < hi:
        b = hi if a + step >= hi else data.find(b"\n", a + step, hi) + 1 or hi
        if not plain(data, a, b):
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        a = b
    return out


def _rest_is_space(file) -> bool:
    while chunk := file.read(_HEAD_BYTES):
        if not chunk.isspace():
            return False
    return True


def _line_offset(data: bytes | bytearray, lo: int, hi: int, line: int) -> int:
    """The offset in `data` of line `line` of lines lo..hi (0: lo)."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8, count=hi - lo, offset=lo) == 0x0A)
    return lo if line == 0 else lo + int(ends[line - 1]) + 1


def read_csv_raw(path: str | Path, encoding: str | None = None
                 ) -> tuple[pa.Table, np.ndarray, list[dict], str, list[str]]:
    """All columns as strings, each row with its number (the line under the header it starts on); rows that
    cannot be split into the header's fields or that hold undecodable bytes become rejects. Returns the table,
    row numbers, rejects, encoding and the header cells as written. (Read in blocks of whole lines: `_CsvText`.)"""
    text = _CsvText.open(Path(path), encoding)
    tables, rows, rejects = [], [], []
    for table, numbers, block_rejects in text.blocks(_BLOCK_BYTES):
        tables.append(table)
        rows.append(numbers)
        rejects += block_rejects
    empty = pa.schema([pa.field(n, pa.string()) for n in text.names]).empty_table()
    table = pa.concat_tables(tables) if len(tables) > 1 else (tables[0] if tables else empty)
    return table, np.concatenate(rows) if rows else np.zeros(0, np.int64), rejects, text.detected, text.headers


def iter_csv_raw(path: str | Path, batch_rows: int, header_mapping: dict[str, str] | None = None,
                 encoding: str | None = None, ahead: bool = True, ramp: bool = False) -> Iterator[RawCases]:
    """A claims text file about `batch_rows` rows at a time (blocks of whole lines, `_CsvText.blocks`), each batch
    a RawCases numbered by its lines in the file, as `read_csv_raw` numbers them: memory bounded by the batch,
    whatever the file's size. With `ahead`, the next block is parsed while the caller works on this batch
    (`read_ahead`); with `ramp`, the first batches are shorter (a 16th, then each twice the last), so that a caller
    working on each as it comes starts sooner. A file without rows gives one empty batch."""
    path = Path(path)
    text = _CsvText.open(path, encoding)
    block_bytes = max(1, int(batch_rows * text.line_bytes))
    given = False
    blocks = text.blocks(block_bytes, max(1, block_bytes // _FIRST_BLOCK_SHARE) if ramp else None)
    for table, rows, rejects in read_ahead(blocks) if ahead else blocks:
        if len(rows) or rejects:
            given = True
            yield canonical(table, rows, path, header_mapping, text.detected, rejects, headers=text.headers)
    if not given:
        empty = pa.schema([pa.field(n, pa.string()) for n in text.names]).empty_table()
        yield canonical(empty, np.zeros(0, np.int64), path, header_mapping, text.detected, [],
                        headers=text.headers)


def read_ahead(items: Iterator, depth: int = 1) -> Iterator:
    """`items`, each made while the caller works on the one before, in a thread of their own (Arrow's CSV parse
    lets go of the GIL, so the other core parses the next block while this one validates it). At most `depth`
    items are made ahead of the one the caller holds (memory: depth + 1 pieces). An exception in making one is
    raised where the caller takes it; a caller that stops early stops the thread."""
    import queue
    import threading

    box: queue.Queue = queue.Queue()
    slots = threading.Semaphore(depth)  # one is taken to make an item, given back when the caller takes it
    stop = threading.Event()
    end = object()

    def make() -> None:
        try:
            iterator = iter(items)
            while True:
                while not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(iterator, end)
                box.put((item, None))
                if item is end:
                    return
        except BaseException as exc:  # handed to the caller, raised there
            box.put((None, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=make, name="dipsim-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = box.get()
            slots.release()
            if exc is not None:
                raise exc
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def in_threads(fn: Callable, items: Iterable, workers: int = 2) -> Iterator:
    """fn(item) for each item, in order, `workers` at a time in threads of their own (reading and validating a
    partition is mostly Arrow work that lets go of the GIL, so two partitions go on the two cores). At most
    `workers` results are made ahead of the one the caller holds; an exception is raised where its result is taken;
    a caller that stops early cancels what has not started."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dipsim-partition") as pool:
        pending: deque = deque(pool.submit(fn, item) for item in itertools.islice(items, workers))
        try:
            while pending:
                result = pending.popleft().result()
                pending.extend(pool.submit(fn, item) for item in itertools.islice(items, 1))
                yield result
        finally:
            for future in pending:
                future.cancel()


_WORKBOOK_ERRORS = (OSError, ValueError, LookupError, TypeError, AttributeError, RuntimeError, EOFError,
                    SyntaxError, zipfile.BadZipFile, zlib.error)  # what openpyxl raises on damaged parts


def _check_workbook(path: Path) -> None:
    """An .xlsx is a zip archive holding [Content_Types].xml (every Office Open XML file does): anything else is
    refused with what it looks like."""
    try:
        with path.open("rb") as file:
            head = file.read(4096)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not head.startswith(b"PK\x03\x04"):
        what = ("the file is empty" if not head else _magic(head) or
                ("it is a text file, perhaps a CSV export: give it the .csv suffix" if b"\x00" not in head else
                 f"it starts with the bytes {escaped(head, 16)}"))
        raise InputError(f"{path}: not an Excel .xlsx workbook: {what}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except _WORKBOOK_ERRORS as exc:
        raise InputError(f"{path}: cannot read as an Excel workbook (a damaged zip archive: {exc})") from exc
    if "[Content_Types].xml" not in names:
        raise InputError(f"{path}: a zip archive that is not an Excel workbook (it holds "
                         f"{', '.join(names[:3]) or 'nothing'}{', ...' if len(names) > 3 else ''})")


def read_excel_raw(path: str | Path, sheet: str | int | None = None) -> tuple[pa.Table, np.ndarray, list[str]]:
    """All cells as text (pandas + openpyxl), the first row as header. Row 1 is the first row under the header
    (Excel row 2); empty rows are no rows. A formula cell reads as the value Excel saved with it, and as empty
    when the file holds none (written by a program and never opened in Excel)."""
    path = Path(path)
    _check_workbook(path)
    try:
        frame = pd.read_excel(path, sheet_name=0 if sheet is None else sheet, header=None, dtype=str,
                              keep_default_na=False)
    except _WORKBOOK_ERRORS as exc:
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"{path}: cannot read as an Excel workbook ({type(exc).__name__}: {message})") from exc
    if frame.empty:
        raise InputError(f"{path}: empty sheet")
    frame = frame.fillna("").astype(str)
    headers = frame.iloc[0].tolist()
    names = _dedupe(headers)
    table = pa.table({name: pa.array(frame.iloc[1:, i].tolist(), pa.string()) for i, name in enumerate(names)})
    table, rows = _drop_blank_rows(table, np.arange(1, table.num_rows + 1, dtype=np.int64))
    return table, rows, headers


def read_table_file(path: str | Path, what: str = "table") -> pa.Table:
    """A small side table (hospitals, quality scores, seasonality): Parquet by its suffix, an Excel workbook's first
    sheet (every cell as text, an empty cell null), else CSV in UTF-8 or GB18030 (`decode_text`) with column types
    inferred. InputError naming `what` when the file is absent or cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no {what} file")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(path, exc) from exc
    if path.suffix.lower() in EXCEL_SUFFIXES:
        table, _, _ = read_excel_raw(path)
        return pa.table({name: pc.if_else(pc.equal(pc.utf8_trim_whitespace(table[name]), ""), None, table[name])
                         for name in table.column_names})
    text, _ = decode_text(path.read_bytes())
    try:
        return pacsv.read_csv(io.BytesIO(text.encode("utf-8")))
    except pa.ArrowException as exc:  # empty, rows of another length, a stray quote
        raise InputError(f"{path}: cannot read the {what} as CSV: {' '.join(str(exc).split())}") from exc


def parquet_files(path: str | Path) -> list[Path]:
    """A Parquet file, or every Parquet file under a directory (e.g. monthly partitions), in sorted order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in PARQUET_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"{path}: directory holds no .parquet files")
        return files
    return [path]


def _unreadable(file: Path, exc: Exception) -> InputError:
    """The one-line error for a file named .parquet that is not Parquet, is cut short or is damaged."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return InputError(f"{file}: cannot read as Parquet ({detail}): is it really Parquet, and complete? "
                      "Export or copy it again")


def parquet_metadata(file: Path) -> pq.FileMetaData:
    """A Parquet file's footer (schema, metadata, row count); InputError naming the file when it cannot be read."""
    try:
        return pq.read_metadata(file)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(file, exc) from exc


def parquet_selection(schema: pa.Schema, columns: list[str] | None, dictionary_codes: bool,
                      header_mapping: dict[str, str] | None = None, source: str = ""
                      ) -> tuple[list[str] | None, list[str] | None]:
    """What to read of a Parquet file: the names of its columns whose header maps onto one of `columns` (canonical
    names; a code list's split principal / other columns with it; None: every column), and the `read_dictionary`
    paths of its list<string> code-list columns when `dictionary_codes`. Parquet is columnar: a column not named is
    never decoded (`dipsim group` reads 12 of the 25 columns of a claims export)."""
    mapped = map_header_list(schema.names, header_mapping, source)
    wanted = None
    if columns is not None:
        keep = set(columns)
        for canonical_name, parts in SPLIT_CODE_COLUMNS.items():
            if canonical_name in keep:
                keep.update(parts)
        wanted = [name for name, canonical_name in zip(schema.names, mapped) if canonical_name in keep]
    codes = [f"{name}.list.element" for name, canonical_name in zip(schema.names, mapped)
             if dictionary_codes and canonical_name in ("diagnoses", "procedures")
             and (wanted is None or name in wanted) and pa.types.is_list(schema.field(name).type)
             and pa.types.is_string(schema.field(name).type.value_type)]
    return wanted, codes or None


def read_parquet_raw(path: str | Path, columns: list[str] | None = None, dictionary_codes: bool = False,
                     files: list[Path] | None = None, footers: list[pq.FileMetaData] | None = None,
                     header_mapping: dict[str, str] | None = None) -> tuple[pa.Table, np.ndarray]:
    """Read Parquet as stored (typed); a directory's files are read in order and stacked (partition keys in the
    paths, e.g. discharge_month=2025-01, are not data). `columns` (canonical names): only the files' columns that
    map onto them (`parquet_selection`; all when None). `dictionary_codes`: the code lists (diagnoses, procedures)
    as list<dictionary<string>>, as Parquet stores them: about half the time to read, and validation and encoding
    then work once per distinct code. `files`: the `parquet_files(path)` the caller has listed already; `footers`:
    their `parquet_metadata`, when the caller has read them already (each footer is read once either way). A file
    that cannot be read is an InputError naming it."""
    files = files if files is not None else parquet_files(path)
    tables = []
    for number, file in enumerate(files):
        footer = footers[number] if footers is not None else parquet_metadata(file)
        try:
            wanted, codes = parquet_selection(footer.schema.to_arrow_schema(), columns, dictionary_codes,
                                              header_mapping, str(file))
            parquet = pq.ParquetFile(file, metadata=footer, read_dictionary=codes)
            if codes and footer.num_row_groups > 1:
                schema = parquet.schema_arrow
                schema = schema if wanted is None else pa.schema([schema.field(name) for name in wanted])
                tables.append(pa.Table.from_batches(list(_batches(parquet, None, wanted, codes)), schema))
            else:
                tables.append(parquet.read(columns=wanted))
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(file, exc) from exc
    try:
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise InputError(f"{path}: its Parquet files do not stack into one table ({exc}): "
                         "read them one by one") from exc
    return table, np.arange(1, table.num_rows + 1, dtype=np.int64)


def validated_stamp(files: list[Path], folder: bool = False, digests: list[str] | None = None,
                    footers: list[pq.FileMetaData] | None = None) -> dict | None:
    """The `dipsim validate` stamp shared by all `files` when they are exactly one run's accepted partitions.

    `folder`: `files` are what a folder holds; then every `dipsim validate` output among them must be complete and
    as it was written (`check_validated_outputs`), else InputError. Only the files' footers are read (`footers`:
    the caller's, when it has read them already)."""
    footers = footers if footers is not None else [parquet_metadata(f) for f in files]
    stamps = [(m.metadata or {}).get(VALIDATED_KEY) for m in footers]
    if folder:
        check_validated_outputs(files, footers, stamps, digests)
    if len(set(stamps)) != 1 or stamps[0] is None:
        return None
    stamp = _parsed(stamps[0])
    return stamp if stamp.get("parts") == len(files) else None


def _parsed(stamp: bytes) -> dict:
    """A stamp's fields ({} when it is not the JSON object `dipsim validate` writes)."""
    try:
        value = json.loads(stamp)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def check_validated_outputs(files: list[Path], footers: list[pq.FileMetaData], stamps: list[bytes | None],
                            digests: list[str] | None = None) -> None:
    """A `dipsim validate` output read as a folder is complete or unreadable (issue 15): its manifest.json, written
    last, must be there and list exactly the stamped parts found, each with its row count (from the footer) and
    byte size. `validate` removes the manifest before it writes anything, so a run killed part-way (a full disk)
    leaves parts without a manifest, and a reader refuses them instead of settling part of the claims.

    The parts' sha256 (in the manifest too) is compared only when the caller has hashed the files anyway
    (`digests`: the nightly job and `dipsim validate` do): hashing every part on every read would add about half
    to reading the columns `dipsim group` needs (1M cases: 0.04 s of sha256 on 0.07 s), while names, sizes and row
    counts cost nothing beyond the footers, which are read for the stamp anyway."""
    outputs: dict[Path, list[int]] = {}
    for number, stamp in enumerate(stamps):
        if stamp is not None:  # accepted/part-NNNNN.parquet: its output folder is accepted/..
            outputs.setdefault(files[number].parent.parent, []).append(number)
    for out, numbers in outputs.items():
        expected = _parsed(stamps[numbers[0]]).get("parts", "?")
        manifest = _validate_manifest(out)
        if manifest is None:
            state = "missing" if not (out / "manifest.json").exists() else "unreadable or without its part list"
            raise InputError(f"{out}: incomplete dipsim validate output: {len(numbers)} of {expected} parts, "
                             f"manifest {state}: run dipsim validate again (a copy needs the whole output folder, "
                             "manifest.json with accepted/)")
        listed = {part["file"]: part for part in manifest["parts"]}
        problems, found = [], set()
        for number in numbers:
            name = files[number].relative_to(out).as_posix()
            part = listed.get(name)
            found.add(name)
            if part is None:
                problems.append(f"{name} is not in the manifest")
            elif _parsed(stamps[number]).get("run") != manifest.get("run"):
                problems.append(f"{name} is from another dipsim validate run")
            elif footers[number].num_rows != part["rows"]:
                problems.append(f"{name} has {footers[number].num_rows:,} rows, the manifest lists {part['rows']:,}")
            elif files[number].stat().st_size != part["bytes"]:
                problems.append(f"{name} has {files[number].stat().st_size:,} bytes, the manifest lists "
                                f"{part['bytes']:,}")
            elif digests is not None and digests[number] != part["sha256"]:
                problems.append(f"{name} has changed (sha256)")
        missing = [name for name in listed if name not in found]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            problems.insert(0, f"{len(found)} of {len(listed)} parts ({shown} missing)")
        if problems:
            more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise InputError(f"{out}: incomplete dipsim validate output: {'; '.join(problems[:3])}{more}: "
                             "run dipsim validate again")


def _validate_manifest(out: Path) -> dict | None:
    """The manifest.json of the `dipsim validate` output `out`, or None when there is none with a valid part list."""
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("command") != "validate":
        return None
    parts = manifest.get("parts")
    fields = {"file": str, "rows": int, "bytes": int, "sha256": str}
    if not isinstance(parts, list) or not all(
            isinstance(p, dict) and all(isinstance(p.get(k), t) for k, t in fields.items()) for p in parts):
        return None  # written before manifests listed their parts, or edited by hand
    return manifest


def _join_split_code_columns(table: pa.Table, mapping: dict[str, str]) -> tuple[pa.Table, dict[str, str]]:
    """主要诊断编码 + 其他诊断编码1..N -> one `diagnoses` text column 'principal,other1,other2' (same for procedures).

    An empty principal cell stays first as an empty item (',I10.x00'), which `split_code_list` keeps: the case has
    no principal, and its first other code is not promoted to principal. So does a file with other-code columns
    and no principal column."""
    for canonical, (principal, others) in SPLIT_CODE_COLUMNS.items():
        principals = [h for h, c in mapping.items() if c == principal]
        sources = principals + [h for h, c in mapping.items() if c == others]
        if not sources:
            continue
        if canonical in mapping.values():
            raise InputError(f"both a {canonical} list column and separate principal/other columns: keep one")
        parts = [pc.cast(table[h], pa.string()).fill_null("") for h in sources]
        if not principals:
            parts.insert(0, pa.repeat("", table.num_rows))
        joined = pc.binary_join_element_wise(*parts, ",")
        table = table.drop_columns(sources).append_column(canonical, joined)
        mapping = {h: c for h, c in mapping.items() if h not in sources}
        mapping[canonical] = canonical
    return table, mapping


def read_cases_raw(
    path: str | Path,
    header_mapping: dict[str, str] | None = None,
    encoding: str | None = None,
    sheet: str | int | None = None,
    columns: list[str] | None = None,
    dictionary_codes: bool = False,
) -> RawCases:
    """Read any supported case file (by extension) and rename its columns to the canonical schema.

    From Parquet, `columns` (canonical names) reads only the columns that map onto them and `dictionary_codes`
    reads the code lists dictionary-encoded (`read_parquet_raw`); a text or Excel file is read whole, as text."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    rejects: list[dict] = []
    detected = ""
    validated = None
    headers = None
    if path.is_dir() or suffix in PARQUET_SUFFIXES:
        files = parquet_files(path)
        footers = [parquet_metadata(f) for f in files]  # read once, for the stamp and the read
        validated = validated_stamp(files, folder=path.is_dir(), footers=footers)
        table, rows = read_parquet_raw(path, columns, dictionary_codes, files, footers, header_mapping)
    elif suffix in CSV_SUFFIXES:
        table, rows, rejects, detected, headers = read_csv_raw(path, encoding)
    elif suffix in EXCEL_SUFFIXES:
        table, rows, headers = read_excel_raw(path, sheet)
    else:
        raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv, .xlsx or .parquet)")
    return canonical(table, rows, path, header_mapping, detected, rejects, validated, headers)


def canonical(table: pa.Table, rows: np.ndarray, path: Path, header_mapping: dict[str, str] | None,
               detected: str = "", rejects: list[dict] | None = None, validated: dict | None = None,
               headers: list[str] | None = None) -> RawCases:
    """Headers mapped onto canonical names, split code columns joined. `headers`: the header cells as written,
    one per column (a text file's: two alike are told apart only in the table's names); the table's names when
    None."""
    headers = table.column_names if headers is None else headers
    canonical = map_header_list(headers, header_mapping, source=str(path))
    mapping = {name: c for name, c in zip(table.column_names, canonical) if c is not None}
    table = _drop_unnamed_empty_columns(table, headers)
    table, mapping = _join_split_code_columns(table, mapping)
    table = table.rename_columns([mapping.get(n, n) for n in table.column_names])
    unmapped = [n for n in table.column_names if n not in mapping.values()]
    for r in rejects or []:
        r["file"] = str(path)
    return RawCases(table, rows, str(path), detected, mapping, unmapped, rejects or [], validated)


def _batches(file: pq.ParquetFile, batch_rows: int | None, columns: list[str] | None,
             codes: list[str] | None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's record batches. Code lists read dictionary-encoded (`codes`) are read a row group at a time:
    Arrow cannot decode a nested dictionary column across row groups (each has its own dictionary), so a batch then
    ends with its row group, and the caller joins small ones (a table's chunks may have different dictionaries)."""
    size = batch_rows or max(file.metadata.num_rows, 1)
    if not codes:
        yield from file.iter_batches(batch_size=size, columns=columns)
        return
    for group in range(file.metadata.num_row_groups):
        yield from file.iter_batches(batch_size=size, row_groups=[group], columns=columns)


def iter_parquet_raw(path: str | Path, batch_rows: int, header_mapping: dict[str, str] | None = None,
                     columns: list[str] | None = None, dictionary_codes: bool = False) -> Iterator[RawCases]:
    """One Parquet file `batch_rows` rows at a time (as its row groups allow), each batch a RawCases numbered by
    its rows in the file: memory bounded by the batch, whatever the file's size. `columns`, `dictionary_codes`: as
    in `read_parquet_raw`. An empty file gives one empty batch."""
    path = Path(path)
    try:
        footer = parquet_metadata(path)
        validated = validated_stamp([path], footers=[footer])
        schema = footer.schema.to_arrow_schema()
        wanted, codes = parquet_selection(schema, columns, dictionary_codes, header_mapping, str(path))
        file = pq.ParquetFile(path, metadata=footer, read_dictionary=codes)
        start, pending = 1, []
        for batch in _batches(file, batch_rows, wanted, codes):
            pending.append(batch)
            if sum(b.num_rows for b in pending) < batch_rows:
                continue  # a row group smaller than a batch (dictionary-encoded code lists): join the next
            table, pending = pa.Table.from_batches(pending), []
            rows = np.arange(start, start + table.num_rows, dtype=np.int64)
            start += table.num_rows
            yield canonical(table, rows, path, header_mapping, validated=validated)
        if pending:
            table = pa.Table.from_batches(pending)
            yield canonical(table, np.arange(start, start + table.num_rows, dtype=np.int64), path, header_mapping,
                            validated=validated)
            start += table.num_rows
        if start == 1:
            empty = file.schema_arrow.empty_table()
            yield canonical(empty if wanted is None else empty.select(wanted), np.zeros(0, np.int64), path,
                            header_mapping, validated=validated)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from exc
