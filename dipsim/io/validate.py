"""Validation that loses nothing: every row read ends in `accepted` or in `rejects`, with row, field, value, reason.

Rows read = rows accepted + rows rejected, always (a rejected row may have several problems; each is one line of the
rejects table). Problems that do not stop grouping (an unknown secondary code, a missing sex) keep the row and are
recorded as warnings. All checks are vectorised over columns; there is no per-row Python loop.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dipsim import __version__, codes
from dipsim.schema import CASE_FIELDS, CASE_SCHEMA, DISCHARGE_MODES, REJECT_SCHEMA

from .errors import InputError
from .readers import RawCases

MISSING_TOKENS = frozenset({"", "null", "none", "nan", "na", "n/a", "#n/a", "-", "--", "\\n"})
_SEX_WORDS = {"男": 1, "m": 1, "male": 1, "女": 2, "f": 2, "female": 2, "未知": 0, "未说明": 9}
_DISCHARGE_WORDS = {label: code for code, label in DISCHARGE_MODES.items()} | {"转院": 2, "离院": 1}
_INSURANCE_WORDS = {
    "employee": "employee", "职工": "employee", "城镇职工": "employee", "职工基本医疗保险": "employee",
    "城镇职工基本医疗保险": "employee", "310": "employee",
    "resident": "resident", "居民": "resident", "城乡居民": "resident", "城乡居民基本医疗保险": "resident",
    "城镇居民": "resident", "新农合": "resident", "390": "resident",
}
_TRUE_WORDS = {"1": 1, "true": 1, "t": 1, "y": 1, "yes": 1, "是": 1,
               "0": 0, "false": 0, "f": 0, "n": 0, "no": 0, "否": 0}
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
DAYS_PER_YEAR = 365.25
# The most text a spreadsheet cell holds (Excel: 32,767 characters). A longer field comes from no claims export:
# it is a file fault (a lost quote, a blob), not a value to carry into the outputs.
MAX_FIELD_CHARS = 32_767


@dataclass(frozen=True)
class ValidationOptions:
    """Thresholds and switches of validation; defaults follow the 结算清单 filling rules (docs/domain.md §3)."""

    # A claim without a principal diagnosis is still a paid stay: by default it is kept (the grouper marks it
    # ungroupable, 0000) so that its cost stays in the budget. "reject" drops it into the rejects file instead.
    missing_principal: Literal["warn", "reject"] = "warn"
    # 住院天数 = 出院日期 - 入院日期, a same-day stay counting 1; exports differ by a day, so allow that much.
    los_date_tolerance_days: int = 1
    max_los_days: int = 3650
    max_age_years: int = 150
    max_birth_weight_g: int = 10_000
    max_cost_yuan: float = 1e8
    # 国临版 / 医保版 1.0 codes are translated to 医保版 2.0 on request: "icd10_guolin2.0", "icd10_yb1.0".
    diagnosis_crosswalk: str | None = None
    procedure_crosswalk: str | None = None  # "icd9_guolin3.0"
    check_dictionary: bool = True  # warn about codes not in the 医保版 2.0 dictionaries


@dataclass
class ValidationResult:
    accepted: pa.Table
    accepted_rows: np.ndarray  # 1-based data row number of each accepted row
    rejects: pa.Table  # REJECT_SCHEMA, one line per problem
    warnings: pa.Table  # REJECT_SCHEMA, rows that were kept
    rows_read: int
    source: str
    encoding: str = ""
    unmapped_columns: list[str] = field(default_factory=list)  # input columns kept as they are
    absent_columns: list[str] = field(default_factory=list)  # canonical fields the input did not have (null)
    trusted: bool = False  # the input was one complete `dipsim validate` output with the same options
    # A folder's partitions stacked (`_stacked`): each accepted row's partition file; None when all are `source`.
    accepted_files: np.ndarray | None = None

    @property
    def accepted_sources(self) -> np.ndarray | str:
        """The file of each accepted row (with `accepted_rows`, where a later stage's reject points to)."""
        return self.source if self.accepted_files is None else self.accepted_files

    @property
    def n_accepted(self) -> int:
        return self.accepted.num_rows

    @property
    def n_rejected(self) -> int:
        return rejected_rows(self.rejects)

    @property
    def n_warnings(self) -> int:
        return self.warnings.num_rows

    def counts(self) -> dict[str, int]:
        """The row accounting for a manifest: rows read, accepted, rejected, and of the rejected the duplicate ids."""
        return {"rows_read": self.rows_read, "accepted": self.n_accepted, "rejected": self.n_rejected,
                "duplicate_case_ids": duplicate_rows(self.rejects)}

    def counts_line(self) -> str:
        return counts_line(self.rows_read, self.n_accepted, self.n_rejected,
                           {"duplicate case ids": duplicate_rows(self.rejects)})

    def check_counts(self) -> None:
        """The invariant of the whole io layer; raises if it is ever broken."""
        if self.rows_read != self.n_accepted + self.n_rejected:
            raise AssertionError(
                f"{self.source}: rows read {self.rows_read} != accepted {self.n_accepted} + rejected {self.n_rejected}"
            )


DUPLICATE_CASE_ID = "duplicate case id"  # how every reason for a repeated case id begins (file, folder, nightly)


def counts_line(rows_read: int, accepted: int, rejected: int, of_which: dict[str, int] | None = None) -> str:
    """The line every command prints, so that nothing is lost unseen: `rows read N = accepted A + rejected R`, and
    what some of the rejected were (`of_which`: label -> rows, those above 0 shown), e.g. duplicate case ids."""
    notes = "; ".join(f"{label} {n:,}" for label, n in (of_which or {}).items() if n)
    return f"rows read {rows_read:,} = accepted {accepted:,} + rejected {rejected:,}" + (f" ({notes})" if notes else "")


def reject_lines(file, row, case_id, field_name, value, reason) -> pa.Table:
    """Lines of a rejects (or warnings) table, REJECT_SCHEMA: `row` the rows' numbers; each other column a string
    for all of them or values aligned with `row` (an Arrow array, or a sequence; null is written as "")."""
    n = len(row)

    def text(values) -> pa.Array:
        if isinstance(values, str):
            return pa.repeat(pa.scalar(values, pa.string()), n)
        if not isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = pa.array(np.asarray(values, dtype=object), pa.string(), from_pandas=True)
        return pc.fill_null(pc.cast(values, pa.string()), "")

    return pa.table({"file": text(file), "row": pa.array(np.asarray(row, np.int64), pa.int64()),
                     "case_id": text(case_id), "field": text(field_name), "value": text(value),
                     "reason": text(reason)}, schema=REJECT_SCHEMA)


def duplicate_case_id_lines(file, row, case_id, first_row, first_file) -> pa.Table:
    """Reject lines of case ids met before in an earlier partition: `duplicate case id (first at row R of FILE)`,
    the first kept (a folder's partitions, `EarlierCaseIds`; nightly's partitions over the year)."""
    reason = pc.binary_join_element_wise(f"{DUPLICATE_CASE_ID} (first at row ",
                                         pc.cast(pa.array(np.asarray(first_row, np.int64)), pa.string()), " of ",
                                         first_file, ")", "")
    return reject_lines(file, row, case_id, "case_id", case_id, reason)


def rejected_rows(rejects: pa.Table) -> int:
    """Rows with at least one reject line (the rows of a folder's partitions are told apart by their file): how
    validation and settlement (`region.Settleable`) both count their rejected rows."""
    return rejects.group_by(["file", "row"]).aggregate([]).num_rows


def duplicate_rows(rejects: pa.Table) -> int:
    """Reject lines that are repeated case ids."""
    return pc.sum(pc.starts_with(rejects["reason"], DUPLICATE_CASE_ID)).as_py() or 0


class _Problems:
    """Collects (mask, field, values, reason) findings and turns them into REJECT_SCHEMA tables."""

    def __init__(self, source: str, rows: np.ndarray, case_ids: pa.Array):
        self.source, self.rows, self.case_ids = source, rows, case_ids
        self.rejects: list[pa.Table] = []
        self.warnings: list[pa.Table] = []
        self.rejected = np.zeros(len(rows), dtype=bool)

    def _table(self, idx: np.ndarray, field_name: str, values, reasons) -> pa.Table:
        values = pd.Series([values] * len(idx) if isinstance(values, str) else values)
        values = values.astype("string").fillna("").str.slice(0, 200)  # a value is shown, not carried whole
        return reject_lines(self.source, self.rows[idx], self.case_ids.take(pa.array(idx, pa.int64())), field_name,
                            values.to_numpy(dtype=object), reasons if isinstance(reasons, str) else list(reasons))

    def reject(self, mask, field_name: str, values, reason) -> None:
        """Reject the rows in `mask`; `values` and `reason` are scalars or aligned with all rows."""
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            idx = np.flatnonzero(mask)
            self.rejects.append(self._table(idx, field_name, _at(values, idx), _at(reason, idx)))
            self.rejected |= mask

    def warn(self, mask, field_name: str, values, reason) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            idx = np.flatnonzero(mask)
            self.warnings.append(self._table(idx, field_name, _at(values, idx), _at(reason, idx)))

    def warn_items(self, parents: np.ndarray, field_name: str, values: np.ndarray, reason: str) -> None:
        """One warning per list item (a code) belonging to table row `parents[i]`."""
        if len(parents):
            self.warnings.append(self._table(parents, field_name, values, reason))


def _at(values, idx: np.ndarray):
    """The reported values of rows `idx`: `values` is a scalar, an Arrow array, a Series, a numpy array, or a
    function of `idx` (a message built only for the rows it names)."""
    if isinstance(values, str):
        return values
    if callable(values):
        return np.asarray(values(idx), dtype=object)
    if isinstance(values, (int, float)) or values is None:
        return [values] * len(idx)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return np.asarray(values.take(pa.array(idx, pa.int64())).to_pylist(), dtype=object)
    if isinstance(values, pd.Series):
        return values.iloc[idx].to_numpy(dtype=object)
    return np.asarray(values)[idx].astype(object)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables) if tables else REJECT_SCHEMA.empty_table()


# ---------------------------------------------------------------- parsing helpers (column -> values, missing, bad)
# Text columns are parsed once per distinct value (Arrow dictionary encoding), not once per row: a million rows of
# claims hold a few hundred distinct dates, sexes or LOS values, and the per-value parsing may then use pandas.

_MISSING_VALUES = pa.array(sorted(MISSING_TOKENS), pa.string())
_LONGEST_MISSING_TOKEN = max(len(t.encode()) for t in MISSING_TOKENS)  # bytes


def text_column(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as trimmed, NFKC-normalised text (full-width digits and letters become ASCII); missing -> null.
    A column that repeats its values (hospital, pool, department; told from its first rows) is normalised once
    per distinct value."""
    texts, indices = _encoded_text(col)
    return texts if indices is None else pc.take(texts, indices)


def _encoded_text(col: pa.ChunkedArray | pa.Array, always: bool = False) -> tuple[pa.Array, pa.Array | None]:
    """`text_column` of a column as the text of its distinct cells and each row's position among them (`indices`,
    null for a null cell; `texts` may hold a null, a missing value, and the same text twice, " 1" and "1"), when
    the column is read dictionary-encoded, when `always`, or when its first rows repeat values; else the text of
    each row and None. What a parse once per distinct value starts from (`_spread` takes it back to the rows)."""
    arr = _one_array(col)
    if pa.types.is_dictionary(arr.type):
        return _text_values(pc.cast(arr.dictionary, pa.string())), arr.indices
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    if always or _repeats(arr):
        encoded = pc.dictionary_encode(arr)
        return _text_values(encoded.dictionary), encoded.indices
    return _text_values(arr), None


def _repeats(arr: pa.Array) -> bool:
    """A long column whose first rows repeat their values (a few hundred distinct dates in a million rows)."""
    return len(arr) > 4 * _SAMPLE_ROWS and pc.count_distinct(arr.slice(0, _SAMPLE_ROWS)).as_py() < _SAMPLE_ROWS // 4


# What validation reads once per distinct value: always (`_date`, `_lookup`), or when it repeats (`_repeats`).
_ENCODED_ALWAYS = frozenset({"admission_date", "discharge_date", "sex", "discharge_mode", "tcm_treated",
                             "insurance_type"})
_ENCODED_IF_REPEATED = frozenset({"patient_id", "hospital_id", "pool", "tcm_diagnosis", "department", "insurer_drg",
                                  "age_years", "age_days", "birth_weight_g", "los_days", "ventilation_hours",
                                  "total_cost", "fund_paid", "patient_paid", "tcm_cost"})


def read_ahead_work(raw: RawCases) -> RawCases:
    """Do ahead the work of validation on single columns that is most of its time and lets other threads run
    (Arrow's kernels let go of the GIL): the text columns it reads once per distinct value dictionary-encoded,
    the code lists split (`codes.split_code_ids`), into `raw.ahead`, which validation then reads in place of the
    table's columns (the same values, and so the same results). A CSV file's reader thread does it while the
    piece before is validated (`iter_csv_cases`)."""
    for name in raw.table.column_names:
        column = raw.table[name]
        if not pa.types.is_string(column.type):
            continue
        column = _one_array(column)
        if name in ("diagnoses", "procedures"):
            raw.ahead[name] = codes.split_code_ids(column)
        elif name in _ENCODED_ALWAYS or (name in _ENCODED_IF_REPEATED and _repeats(column)):
            raw.ahead[name] = pc.dictionary_encode(column)
    return raw


def _one_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as one array: its only chunk as it is (not copied, as `combine_chunks` would), else its chunks
    concatenated."""
    if not isinstance(col, pa.ChunkedArray):
        return col
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _column(raw: RawCases, name: str):
    """A column as validation reads it: as made ahead (`read_ahead_work`), else as read."""
    return raw.ahead[name] if name in raw.ahead else raw.table[name]


def _plain_text_values(arr: pa.Array) -> pa.Array | None:
    """`_text_values` of an ASCII string array none of whose values starts or ends with white space (ids, amounts,
    dates as most exports write them), from its buffers: nothing to normalise or trim, and only a value of a few
    bytes can be a missing token. None for any other array (`_text_values` then does it all)."""
    n = len(arr)
    if not n or arr.type != pa.string():
        return None
    offsets = np.frombuffer(arr.buffers()[1], np.int32, count=n + 1, offset=4 * arr.offset)
    data = arr.buffers()[2]
    data = np.frombuffer(data, np.uint8)[offsets[0]:offsets[-1]] if data is not None else np.zeros(0, np.uint8)
    if data.size and data.max() >= 0x80:
        return None
    lengths = np.diff(offsets)
    ends = offsets[1:][lengths > 0] - offsets[0]  # after the last byte of each non-empty value
    if _IS_ASCII_SPACE[data[ends - 1]].any() or _IS_ASCII_SPACE[data[ends - lengths[lengths > 0]]].any():
        return None
    short = np.flatnonzero(lengths <= _LONGEST_MISSING_TOKEN)
    if not len(short):
        return arr
    shorts = arr.take(pa.array(short))
    token = pc.fill_null(pc.is_in(pc.ascii_lower(shorts), value_set=_MISSING_VALUES), False)
    token = token.to_numpy(zero_copy_only=False)
    if not token.any():
        return arr
    missing = np.zeros(n, bool)
    missing[short[token]] = True
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), arr)


def _spread(per_value: np.ndarray, indices: pa.Array | None, missing_value) -> np.ndarray:
    """Values of the distinct cells (`_encoded_text`) taken to the rows, `missing_value` for a null cell; the
    values themselves (one a row) when `indices` is None."""
    if indices is None:
        return per_value
    out = np.concatenate([per_value, np.array([missing_value], dtype=per_value.dtype)])
    return out[pc.fill_null(indices, len(per_value)).to_numpy(zero_copy_only=False)]


def _shown(texts: pa.Array, indices: pa.Array | None) -> pa.Array:
    """The rows' text (for the messages) of a column as `_encoded_text` gives it, without taking it to every row."""
    return texts if indices is None else pa.DictionaryArray.from_arrays(indices, texts)


_SAMPLE_ROWS = 4096
_ASCII_SPACE = "".join(chr(c) for c in range(128) if chr(c).isspace())  # \t\n\v\f\r\x1c-\x1f and space


_IS_ASCII_SPACE = np.zeros(256, bool)
_IS_ASCII_SPACE[[ord(c) for c in _ASCII_SPACE]] = True


def _text_values(arr: pa.Array) -> pa.Array:
    """`text_column` of a string array, value by value."""
    plain = _plain_text_values(arr)
    if plain is not None:
        return plain
    ascii_only = pc.all(pc.string_is_ascii(arr)).as_py() is not False  # NFKC changes nothing in ASCII
    # Unicode white space at the ends goes, whatever the other rows hold: in ASCII that is also \x1c-\x1f.
    arr = pc.ascii_trim(arr, _ASCII_SPACE) if ascii_only else pc.utf8_trim_whitespace(pc.utf8_normalize(arr, "NFKC"))
    if (pc.min(pc.binary_length(arr)).as_py() or 0) > _LONGEST_MISSING_TOKEN:  # ids, codes: no token fits
        return arr
    lower = pc.ascii_lower(arr) if ascii_only else pc.utf8_lower(arr)
    token = pc.fill_null(pc.is_in(lower, value_set=_MISSING_VALUES), False)
    return pc.if_else(token, pa.scalar(None, pa.string()), arr)


def _per_value(text: pa.Array, parse, missing_value):
    """Apply `parse` (a pandas Series of distinct strings -> numpy array) to each distinct value, spread to rows."""
    encoded = pc.dictionary_encode(text)
    return _spread(_parsed(encoded.dictionary, parse, missing_value), encoded.indices, missing_value)


def _parsed(texts: pa.Array, parse, missing_value) -> np.ndarray:
    """`parse` (a pandas Series of strings -> numpy array) of each text, `missing_value` where one is null."""
    valid = texts.is_valid().to_numpy(zero_copy_only=False)
    if valid.all():
        return np.asarray(parse(texts.to_pandas()))
    parsed = np.asarray(parse(texts.filter(pa.array(valid)).to_pandas()))
    out = np.full(len(texts), missing_value, dtype=parsed.dtype)
    out[valid] = parsed
    return out


def _is_numeric_type(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)


def _numeric_column(col) -> np.ndarray:
    """A writable float64 copy (NaN for null) of a numeric or boolean column."""
    return np.array(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _number(col) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """float64 values (NaN where missing or bad), missing mask, bad mask, and the text for messages."""
    if _is_numeric_type(col.type):
        values = _numeric_column(col)
        return values, np.isnan(values), np.zeros(len(values), bool), values
    texts, indices = _encoded_text(col)  # a column that repeats its values is read once per distinct value
    missing = _spread(texts.is_null().to_numpy(zero_copy_only=False), indices, True)
    try:
        values = pc.cast(texts, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # thousands separators, units, garbage: per value
        def parse(uniq: pd.Series) -> np.ndarray:
            cleaned = uniq.str.replace(",", "", regex=False).str.replace(r"(元|天|小时|克|g|岁)$", "", regex=True)
            return pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

        values = _per_value(texts, parse, np.nan)
    values = np.where(missing, np.nan, _spread(values, indices, np.nan))
    return values, missing, np.isnan(values) & ~missing, _shown(texts, indices)


def _parse_dates(uniq: pd.Series) -> np.ndarray:
    s = uniq.str.replace(r"[年月/.]", "-", regex=True).str.replace("日", "", regex=False)
    s = s.str.replace(r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3", regex=True)
    parsed = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
    # An Excel serial day, with a time of day as its fraction (45000.5): matched before '.' became '-'.
    serial = pd.to_numeric(uniq.where(uniq.str.fullmatch(r"\d{5}(\.\d+)?").fillna(False)), errors="coerce")
    parsed = parsed.fillna(_EXCEL_EPOCH + pd.to_timedelta(serial.where(serial.between(1, 2_958_465)), unit="D"))
    return parsed.to_numpy(dtype="datetime64[D]")


def _date(col) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """datetime64[D] values (NaT where missing or bad), missing, bad, text. Accepts 2025-01-03, 2025/1/3,
    20250103, 2025年1月3日, '2025-01-03 10:20:00' and Excel serial day numbers."""
    if pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):
        values = pc.cast(col, pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
        missing, text = np.isnat(values), values.copy()  # the dates as given, for the messages
        bad = ~missing & _implausible(values)
        values[bad] = np.datetime64("NaT")
        return values, missing, bad, text
    texts, indices = _encoded_text(col, always=True)  # each distinct date once, its checks too
    nat = np.datetime64("NaT", "D")
    day = pc.replace_substring_regex(texts, r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "")  # time of day dropped
    values = np.array(_parsed(day, _parse_dates, nat))
    missing = texts.is_null().to_numpy(zero_copy_only=False)
    bad = ~missing & _implausible(values)
    values[bad] = nat
    return (_spread(values, indices, nat), _spread(missing, indices, True), _spread(bad, indices, False),
            _shown(texts, indices))


def _implausible(days: np.ndarray) -> np.ndarray:
    """NaT, or a year outside 1900-2100 (typed dates or text, the same years)."""
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    return np.isnat(days) | (years < 1900) | (years > 2100)


def _lookup(col, words: dict, allowed: set | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """Map text through `words` (or accept numbers in `allowed`); returns values, missing, bad, text.

    Values are float64 when every target in `words` is a number (NaN where missing or bad), else objects (None
    where missing or bad; from text, an Arrow array)."""
    numeric = all(isinstance(v, (int, float)) for v in words.values())
    if _is_numeric_type(col.type):
        given = _numeric_column(col)  # as given, for the messages
        missing = np.isnan(given)
        if numeric:
            bad = ~missing & ~np.isin(given, list(allowed or ()))
            return np.where(bad, np.nan, given), missing, bad, given
        # A typed code of a text field (险种 310) reads as its text would: looked up by its digits.
        distinct, index = np.unique(given, return_inverse=True)
        mapped = np.array([words.get(str(int(v)) if float(v).is_integer() else repr(float(v))) for v in distinct]
                          + [None], dtype=object)
        values = mapped[np.where(missing, len(distinct), index)]
        return values, missing, ~missing & pd.isna(values), given
    texts, indices = _encoded_text(col, always=True)  # each distinct word once
    missing = _spread(texts.is_null().to_numpy(zero_copy_only=False), indices, True)

    def parse(uniq: pd.Series) -> np.ndarray:
        key = uniq.str.lower().str.replace(r"\.0+$", "", regex=True)
        mapped = key.map(words)
        if allowed is not None:
            as_number = pd.to_numeric(key, errors="coerce")
            mapped = mapped.where(mapped.notna(), as_number.where(as_number.isin(allowed)))
        return mapped.to_numpy(dtype=np.float64, na_value=np.nan) if numeric else mapped.to_numpy(dtype=object)

    empty = np.nan if numeric else None
    values = _parsed(texts, parse, empty)  # each distinct text's value, and whether it is bad
    bad = ~texts.is_null().to_numpy(zero_copy_only=False) & (np.isnan(values) if numeric else pd.isna(values))
    bad = _spread(bad, indices, False)
    if numeric:
        return _spread(values, indices, np.nan), missing, bad, _shown(texts, indices)
    words_given = pa.array(values, pa.string(), from_pandas=True)
    return _shown(words_given, indices), missing, bad, _shown(texts, indices)


# ---------------------------------------------------------------- the checks


def _require_columns(raw: RawCases) -> None:
    names = set(raw.table.column_names)
    missing = []
    if "diagnoses" not in names:
        missing.append("diagnoses (诊断编码 / 主要诊断编码)")
    if "los_days" not in names and not {"admission_date", "discharge_date"} <= names:
        missing.append("los_days (住院天数) or both admission_date and discharge_date")
    if missing:
        original = {canonical: header for header, canonical in raw.header_map.items()}
        found = ", ".join(original.get(name, name) for name in raw.table.column_names)
        raise InputError(
            f"{raw.source}: no column for {', '.join(missing)}. Headers found: {found}."
            " Map yours with a header mapping file (--mapping FILE, see README)."
        )


def _case_ids(raw: RawCases) -> tuple[pa.Array, bool]:
    if "case_id" in raw.table.column_names:
        return text_column(raw.table["case_id"]), True
    stem = raw.source.replace("\\", "/").rsplit("/", 1)[-1]
    return pa.array([f"{stem}#{r}" for r in raw.rows], pa.string()), False


def _first_positions(ids: pa.Array) -> np.ndarray | None:
    """Each row's position of the first row with its case id (-1 where the id is missing); None when no id
    repeats. The usual case, no id twice, is told quickly (`_no_repeats`); otherwise the exact check finds them."""
    if _no_repeats(ids.drop_null()):  # a missing id is never a repeat (it is rejected as missing)
        return None
    encoded = pc.dictionary_encode(ids)
    index = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    present = index >= 0
    if np.bincount(index[present]).max(initial=0) <= 1:
        return None
    ids_seen, first = np.unique(index, return_index=True)
    first_of = np.full(len(encoded.dictionary) + 1, -1, np.int64)  # a missing id (-1) takes the spare last slot
    first_of[ids_seen] = first
    return np.where(present, first_of[index], -1)


def _no_repeats(ids: pa.Array) -> bool:
    """True when no id occurs twice. When Numba is loaded already (a grouping command), from the ids' sorted 64-bit
    hashes (`case_id_hashes`; different hashes, different ids; two equal ones, a repeat or a shared hash, answer
    False and go to the exact check): 0.06 s for 1M ids. Otherwise by Arrow's distinct count, 0.3 s, rather than
    load Numba for it (0.5 s); so are a few ids while the hash kernel is not loaded yet (the first piece of a CSV
    file, while another thread loads it: `_with_first_rows`)."""
    if "numba" not in sys.modules or (len(ids) <= _FEW_IDS and not _hash_kernel_loaded()):
        return len(pc.unique(ids)) == len(ids)
    from .case_id_hashes import case_id_hashes

    hashes = np.sort(case_id_hashes(ids))
    return not (hashes[1:] == hashes[:-1]).any()


_FEW_IDS = 1 << 16  # ids Arrow counts in less time (20 ms) than the hash kernel takes to load


def _hash_kernel_loaded() -> bool:
    """Whether the case id hash kernel is compiled (or Numba's JIT is off: it is a plain function)."""
    kernel = getattr(sys.modules.get("dipsim.io.case_id_hashes"), "_fnv1a_mixed", None)  # a module being imported
    return kernel is not None and bool(getattr(kernel, "signatures", True))  # in another thread has none yet


def _check_case_ids(p: _Problems, ids: pa.Array, first_rows: np.ndarray | None = None) -> None:
    """Missing ids are rejected; of rows sharing an id the first is kept and the others rejected. `first_rows`:
    the row number of each row's id's first row, when it was found over more rows than these (a file read in
    batches); 0 for a missing id, or for every row when no id repeats."""
    if len(ids) == 0:
        return
    missing = ids.is_null().to_numpy(zero_copy_only=False)
    p.reject(missing, "case_id", ids, "missing case id")
    if first_rows is None:
        first = _first_positions(ids)
        if first is None:
            return
        first_rows = np.where(first >= 0, p.rows[np.maximum(first, 0)], 0)
    dup = (first_rows > 0) & (first_rows != p.rows)
    p.reject(dup, "case_id", ids, lambda at: [f"{DUPLICATE_CASE_ID} (first at row {first_rows[i]})" for i in at])


def _code_lists(col, system: str, crosswalk: str | None) -> tuple[pa.ListArray, pa.Array, np.ndarray]:
    """Split, normalise and (on request) crosswalk a code-list column, working on its distinct codes.

    Returns the list<dictionary<string>> array (each row's codes as positions among the distinct codes), the
    distinct normalised codes and, per list item, the index of its code among them (so that every per-code check
    runs once per distinct code, not once per row). A column read dictionary-encoded (`dictionary_codes`) is not
    encoded again."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):  # text: split, items encoded
        chunks = [codes.split_code_ids(_one_array(col))]
    elif not (pa.types.is_dictionary(col.type.value_type) and chunks):  # chunks of a dictionary column may each
        chunks = [_one_array(col) if chunks else pa.array([], col.type)]  # have their own dictionary
    lengths = np.concatenate([pc.fill_null(pc.list_value_length(c), 0).to_numpy(zero_copy_only=False)
                              for c in chunks]).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    flats = [pc.list_flatten(c) for c in chunks]
    if pa.types.is_dictionary(flats[0].type):  # read dictionary-encoded: each chunk's dictionary, a null item ""
        dictionaries = [pc.fill_null(pc.cast(f.dictionary, pa.string()), "") for f in flats]
        starts = np.cumsum([0] + [len(d) + 1 for d in dictionaries])
        raw_item = np.concatenate([pc.fill_null(f.indices, len(d)).to_numpy(zero_copy_only=False) + start
                                   for f, d, start in zip(flats, dictionaries, starts)])
        as_read = pa.concat_arrays([a for d in dictionaries for a in (d, pa.array([""], pa.string()))])
    else:
        encoded = pc.dictionary_encode(pc.fill_null(pc.cast(flats[0], pa.string()), ""))
        as_read, raw_item = encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False)
    distinct = codes.normalise_codes(as_read, system)
    if crosswalk:
        distinct = codes.apply_crosswalk(distinct, crosswalk)
    # Normalising can merge distinct raw forms (k35.800 and K35.800): encode again so checks see one code once.
    merged = pc.dictionary_encode(distinct)
    item = merged.indices.to_numpy(zero_copy_only=False)[raw_item]
    distinct = merged.dictionary
    values = pa.DictionaryArray.from_arrays(pa.array(item, pa.int32()), distinct)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values), distinct, item


def _joined(lists: pa.ListArray) -> pa.Array:
    """Each row's codes as one text, 'A,B' (what a reject line shows)."""
    return pc.binary_join(pc.cast(lists, pa.list_(pa.string())), ",")


def _codes(raw: RawCases, p: _Problems, name: str, system: str, crosswalk: str | None,
           opts: ValidationOptions) -> pa.Array:
    """Code-list column: reject a malformed principal, warn about other code problems. (Bytes not valid in a text
    file's encoding are rejected by the reader, line by line: `readers.decode_lines`.)"""
    n = raw.table.num_rows
    if name not in raw.table.column_names:
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()))
    lists, distinct, item = _code_lists(_column(raw, name), system, crosswalk)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    listed = np.flatnonzero(lengths)  # the rows with codes; a row's first code, its principal, is at offsets[row]
    distinct_text = distinct.to_numpy(zero_copy_only=False)  # each distinct code once; items index it
    # What is told of each distinct code, as bits; each item then takes its code's (one byte an item).
    flags = np.where(distinct_text == "", _EMPTY, 0).astype(np.uint8)
    flags |= np.where(pc.fill_null(codes.is_valid_code_shape(distinct, system), False).to_numpy(
        zero_copy_only=False), _SHAPE_OK, 0).astype(np.uint8)
    check_dictionary = opts.check_dictionary and len(item)
    if check_dictionary:
        dictionary = codes.load_icd10() if system == "icd10" else codes.load_icd9()
        ids = dictionary.encode(distinct)
        flags |= np.where(ids >= 0, _KNOWN, 0).astype(np.uint8)
        if name == "diagnoses":
            allowed = dictionary.flag("allowed_as_principal")[np.maximum(ids, 0)]
            flags |= np.where((ids >= 0) & ~allowed, _NOT_ALLOWED, 0).astype(np.uint8)
    flag = flags[item]
    principal = np.zeros(n, np.uint8)  # the principal's bits, 0 for a row without codes
    principal[listed] = flag[offsets[listed]]

    def items(mask: np.ndarray, others_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The rows and codes (text) of the items in `mask` (the principals left out with `others_only`)."""
        at = np.flatnonzero(mask)
        rows = np.searchsorted(offsets, at, side="right") - 1
        if others_only:
            at, rows = at[at != offsets[rows]], rows[at != offsets[rows]]
        return rows, distinct_text[item[at]]

    # An empty item is a missing principal (`split_code_list` keeps one only first, before other codes): the case
    # has no principal, and its other codes stay secondary.
    label = "ICD-10" if system == "icd10" else "ICD-9-CM-3"
    given = lengths > 0
    if name == "diagnoses":
        has_principal = given & (principal & _EMPTY == 0)
        bad_principal = has_principal & (principal & _SHAPE_OK == 0)
        principal_text = np.full(n, "", dtype=object)
        if bad_principal.any():
            principal_text[listed] = distinct_text[item[offsets[listed]]]
        p.reject(bad_principal, name, principal_text, f"principal diagnosis is not an {label} code")
        others = np.zeros(0, np.int64)
        if not has_principal.all():  # the rows of other codes, for the reason of a missing principal
            others = items(flag & _EMPTY == 0, others_only=True)[0]
        _missing_principal(p, ~has_principal, lists, others, opts)
    else:
        no_principal = given & (principal & _EMPTY != 0)
        if no_principal.any():
            p.warn(no_principal, name, _joined(lists), "missing principal procedure (主要手术操作) "
                   "although other procedures are given: no procedure is taken as principal")
    rows, text = items(flag & (_EMPTY | _SHAPE_OK) == 0, others_only=name == "diagnoses")
    p.warn_items(rows, name, text, f"not an {label} code: ignored by grouping")
    if check_dictionary:
        rows, text = items(flag & (_SHAPE_OK | _KNOWN) == _SHAPE_OK)
        p.warn_items(rows, name, text, f"not in {label} 医保版 2.0")
        if name == "diagnoses":
            rows = np.flatnonzero(principal & _NOT_ALLOWED)
            p.warn_items(rows, name, distinct_text[item[offsets[rows]]],
                         "not allowed as principal diagnosis (灰码) in 医保版 2.0")
    return lists


_EMPTY, _SHAPE_OK, _KNOWN, _NOT_ALLOWED = 1, 2, 4, 8  # what `_codes` tells of a code, as bits


def _missing_principal(p: _Problems, missing: np.ndarray, lists: pa.ListArray, others: np.ndarray,
                       opts: ValidationOptions) -> None:
    """A claim without a principal diagnosis is still a paid stay: a warning (it will be ungroupable), or a reject
    with --missing-principal reject. `others`: the rows of its other diagnoses (they stay secondary)."""
    if not missing.any():
        return
    reason = np.full(len(missing), "missing principal diagnosis (主要诊断)", dtype=object)
    with_others = np.zeros(len(missing), bool)
    with_others[others] = True
    reason[with_others] += " although other diagnoses are given (none is taken as principal)"
    codes_given = _joined(lists)
    if opts.missing_principal == "reject":
        p.reject(missing, "diagnoses", codes_given, reason)
    else:
        p.warn(missing, "diagnoses", codes_given, reason + ": will be ungroupable")


def _integer(p: _Problems, raw: RawCases, name: str, low: float, high: float, label: str) -> np.ndarray:
    """Parse a whole-number column; reject text, fractions and values outside [low, high]."""
    n = raw.table.num_rows
    if name not in raw.table.column_names:
        return np.full(n, np.nan)
    values, _missing, bad, text = _number(_column(raw, name))
    p.reject(bad, name, text, f"{label} is not a number")
    fraction = ~np.isnan(values) & (values != np.round(values))
    p.reject(fraction, name, text, f"{label} is not a whole number")
    out_of_range = ~np.isnan(values) & ((values < low) | (values > high))
    p.reject(out_of_range & (values < 0), name, text, f"negative {label}")
    p.reject(out_of_range & (values >= 0), name, text, f"{label} above {high:g}")
    return values


def _non_negative(p: _Problems, raw: RawCases, name: str, label: str, maximum: float = np.inf,
                  missing_reason: str | None = None) -> np.ndarray:
    """Parse an amount or a duration: reject text, negatives and values above `maximum`, and missing values with
    `missing_reason` when one is given (a column the file does not have is not checked)."""
    if name not in raw.table.column_names:
        return np.full(raw.table.num_rows, np.nan)
    values, missing, bad, text = _number(_column(raw, name))
    p.reject(bad, name, text, f"{label} is not a number")
    if missing_reason:
        p.reject(missing, name, raw.table[name], missing_reason)  # the cell as given ("NaN", "-", "")
    p.reject(~np.isnan(values) & (values < 0), name, text, f"negative {label}")
    p.reject(~np.isnan(values) & (values > maximum), name, text, f"implausible {label} (above {maximum:,.0f})")
    return values


def _dates(p: _Problems, raw: RawCases) -> dict[str, np.ndarray]:
    out = {}
    for name in ("admission_date", "discharge_date"):
        if name in raw.table.column_names:
            values, _missing, bad, text = _date(_column(raw, name))
            p.reject(bad, name, text, "bad date")
        else:
            values = np.full(raw.table.num_rows, np.datetime64("NaT"), dtype="datetime64[D]")
        out[name] = values
    return out


def validate_cases(raw: RawCases, options: ValidationOptions | None = None,
                   first_rows: np.ndarray | None = None, dictionary_codes: bool = False) -> ValidationResult:
    """Check every row of a raw read; return the accepted cases in CASE_SCHEMA, the rejects and the warnings.
    `first_rows`: see `_check_case_ids` (a batch of a larger file). `dictionary_codes`: the accepted code lists
    as list<dictionary<string>> (what `group_table` encodes fastest), else list<string>."""
    opts = options or ValidationOptions()
    _require_columns(raw)
    ids, has_id_column = _case_ids(raw)
    p = _Problems(raw.source, raw.rows, ids)
    _check_field_lengths(p, raw)
    columns = {
        **_check_identity(p, raw, ids, has_id_column, first_rows),
        "diagnoses": _codes(raw, p, "diagnoses", "icd10", opts.diagnosis_crosswalk, opts),
        "procedures": _codes(raw, p, "procedures", "icd9", opts.procedure_crosswalk, opts),
        **_check_person(p, raw, opts),
        **_check_stay(p, raw, opts),
        **_check_money(p, raw, opts),
    }
    keep = ~p.rejected
    accepted = _assemble(columns, keep, dictionary_codes)
    for name in raw.unmapped:  # columns we do not know ride along unchanged (nothing lost)
        accepted = accepted.append_column(name, raw.table[name].filter(pa.array(keep)))
    result = ValidationResult(
        accepted=accepted,
        accepted_rows=raw.rows[keep],
        rejects=_concat([*p.rejects, _early_rejects(raw)]).sort_by([("row", "ascending")]),
        warnings=_concat(p.warnings).sort_by([("row", "ascending")]),
        rows_read=raw.rows_read,
        source=raw.source,
        encoding=raw.encoding,
        unmapped_columns=list(raw.unmapped),
        absent_columns=[f.name for f in CASE_FIELDS if f.name not in raw.table.column_names],
    )
    result.check_counts()
    return result


def _check_field_lengths(p: _Problems, raw: RawCases) -> None:
    """Reject rows with a text field longer than a spreadsheet cell (MAX_FIELD_CHARS)."""
    for name in raw.table.column_names:
        column = raw.table[name]
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) or \
                (pc.max(pc.binary_length(column)).as_py() or 0) <= MAX_FIELD_CHARS:  # bytes >= characters
            continue
        chars = pc.fill_null(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False)
        too_long = chars > MAX_FIELD_CHARS
        reasons = np.full(len(chars), "", dtype=object)
        reasons[too_long] = [f"field of {c:,} characters, longer than a spreadsheet cell holds "
                             f"({MAX_FIELD_CHARS:,}): not a claims value" for c in chars[too_long]]
        p.reject(too_long, name, column, reasons)


def _check_identity(p: _Problems, raw: RawCases, ids: pa.Array, has_id_column: bool,
                    first_rows: np.ndarray | None = None) -> dict:
    """Case id (missing, duplicate) and the other text fields."""
    if not has_id_column and len(ids):
        p.warn(np.arange(len(ids)) == 0, "case_id", "", "no case id column: ids made from the file name and row")
    _check_case_ids(p, ids, first_rows)
    texts = {name: text_column(_column(raw, name))
             for name in ("patient_id", "hospital_id", "pool", "tcm_diagnosis", "department", "insurer_drg")
             if name in raw.table.column_names}
    insurance = None
    if "insurance_type" in raw.table.column_names:
        insurance, _, bad, text = insurance_types(_column(raw, "insurance_type"))
        p.warn(bad, "insurance_type", text,
               "unknown insurance type (险种): left empty; the case is rejected at settlement (no settlement pool)")
    return {"case_id": ids, **texts, "insurance_type": insurance}


def insurance_types(column) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """险种 as `employee` / `resident` (职工, 城乡居民, 310, 390 ...; None where missing or unknown), with the missing
    and unknown masks and the text: what validation keeps, and what `region.partition_region` reads ahead."""
    return _lookup(column, _INSURANCE_WORDS)


def _check_person(p: _Problems, raw: RawCases, opts: ValidationOptions) -> dict:
    """Sex, age in years and days (each derivable from the other), birth weight."""
    names = set(raw.table.column_names)
    # 性别: a missing sex does not stop grouping (only sex-restricted MDCs use it), an unreadable one is an error.
    sex = np.zeros(raw.table.num_rows)
    if "sex" in names:
        values, missing, bad, text = _lookup(_column(raw, "sex"), _SEX_WORDS, allowed={0, 1, 2, 9})
        p.reject(bad, "sex", text, "sex must be 1 (男), 2 (女), 0 or 9 (unknown)")
        p.warn(missing, "sex", "", "missing sex: treated as unknown (0)")
        sex = np.nan_to_num(values, nan=0.0)
    age = _integer(p, raw, "age_years", 0, opts.max_age_years, "age")
    age_days = _integer(p, raw, "age_days", 0, opts.max_age_years * 366, "age in days")
    derivable = np.isnan(age) & ~np.isnan(age_days)
    age = np.where(derivable, np.floor(age_days / DAYS_PER_YEAR), age)
    if {"age_years", "age_days"} & names:  # an absent column is reported once (absent_columns), not per row
        p.warn(np.isnan(age), "age_years", "", "missing age")
    inconsistent = ~np.isnan(age_days) & ~derivable & (np.abs(age_days / DAYS_PER_YEAR - age) > 1.5)
    p.warn(inconsistent, "age_days", age_days, "age in days disagrees with age in years")
    birth_weight = _integer(p, raw, "birth_weight_g", 0, opts.max_birth_weight_g, "birth weight")
    birth_weight[birth_weight == 0] = np.nan  # many exports write 0 for "not a newborn"
    return {"sex": sex, "age_years": age, "age_days": age_days, "birth_weight_g": birth_weight}


def _check_stay(p: _Problems, raw: RawCases, opts: ValidationOptions) -> dict:
    """Dates, length of stay (derived from the dates when missing), discharge mode, ventilation hours."""
    dates = _dates(p, raw)
    admission, discharge = dates["admission_date"], dates["discharge_date"]
    span = (discharge - admission).astype("timedelta64[D]").astype("float64")
    span[np.isnat(admission) | np.isnat(discharge)] = np.nan
    p.reject(span < 0, "discharge_date", discharge, "discharge before admission")
    los = _integer(p, raw, "los_days", 0, opts.max_los_days, "length of stay")
    from_dates = np.isnan(los) & ~np.isnan(span) & (span >= 0)
    los = np.where(from_dates, np.maximum(span, 1), los)  # a same-day stay counts one day
    p.reject(np.isnan(los) & ~p.rejected, "los_days", "", "missing length of stay (住院天数) and dates")
    inconsistent = ~np.isnan(span) & (span >= 0) & (np.abs(los - span) > opts.los_date_tolerance_days)
    p.reject(inconsistent, "los_days", lambda at: [f"{los[i]:g} vs dates {span[i]:g} days" for i in at],
             "LOS inconsistent with the dates")
    discharge_mode = np.full(raw.table.num_rows, np.nan)
    if "discharge_mode" in raw.table.column_names:
        discharge_mode, missing, bad, text = _lookup(_column(raw, "discharge_mode"), _DISCHARGE_WORDS,
                                                     allowed=set(DISCHARGE_MODES))
        p.reject(bad, "discharge_mode", text, "discharge mode (离院方式) must be 1, 2, 3, 4, 5 or 9")
        p.warn(missing, "discharge_mode", "", "missing discharge mode (离院方式)")
    ventilation = _non_negative(p, raw, "ventilation_hours", "ventilation hours")
    p.reject(~np.isnan(ventilation) & ~np.isnan(los) & (ventilation / 24 > los + 1), "ventilation_hours",
             ventilation, "ventilation hours longer than the stay")
    return {"admission_date": admission, "discharge_date": discharge, "los_days": los,
            "discharge_mode": discharge_mode, "ventilation_hours": ventilation}


def _check_money(p: _Problems, raw: RawCases, opts: ValidationOptions) -> dict:
    """Amounts in yuan: readable, not negative, plausible; the fund/patient split and TCM cost within the total."""
    # A claim without its total cost cannot be priced: kept, it would be paid 0 points as a low outlier. The
    # other amounts may be missing. A file without a total cost column can still be grouped (settlement refuses
    # it).
    money = {name: _non_negative(p, raw, name, "amount (yuan)", opts.max_cost_yuan,
                                 "missing total cost (医疗总费用): the case cannot be priced"
                                 if name == "total_cost" else None)
             for name in ("total_cost", "fund_paid", "patient_paid", "tcm_cost")}
    split_sum = np.nan_to_num(money["fund_paid"]) + np.nan_to_num(money["patient_paid"])
    has_split = ~np.isnan(money["fund_paid"]) | ~np.isnan(money["patient_paid"])
    over = has_split & (money["total_cost"] >= 0) & (split_sum > money["total_cost"] + 0.005)
    p.reject(over, "fund_paid", split_sum, "fund and patient amounts exceed the total cost")
    p.reject(money["tcm_cost"] > money["total_cost"] + 0.005, "tcm_cost", money["tcm_cost"],
             "TCM cost exceeds the total cost")
    tcm_treated = np.full(raw.table.num_rows, np.nan)
    if "tcm_treated" in raw.table.column_names:
        tcm_treated, _, bad, text = _lookup(_column(raw, "tcm_treated"), _TRUE_WORDS, allowed={0, 1})
        p.reject(bad, "tcm_treated", text, "TCM flag (中医治疗标识) must be 1/0, 是/否 or true/false")
    return {**money, "tcm_treated": tcm_treated}


def _early_rejects(raw: RawCases) -> pa.Table:
    if not raw.rejects:
        return REJECT_SCHEMA.empty_table()
    return pa.Table.from_pylist(
        [{"file": raw.source, "case_id": "", **r} for r in raw.rejects], schema=REJECT_SCHEMA
    )


def _arrow(value, f, keep: np.ndarray, dictionary_codes: bool = False) -> pa.Array:
    """The kept rows of one column as Arrow in the schema's type (numpy NaN / NaT become null); with
    `dictionary_codes` a code list stays dictionary-encoded."""
    if value is None:
        return pa.nulls(int(keep.sum()), f.type)
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        value = value.filter(pa.array(keep)) if not keep.all() else value
        same = _same_type(value.type, f.type) if dictionary_codes else value.type == f.type
        return value if same else pc.cast(value, f.type)
    value = np.asarray(value) if keep.all() else np.asarray(value)[keep]
    if value.dtype.kind == "M":
        return pa.array(value.astype("datetime64[D]"), from_pandas=True).cast(f.type)
    if value.dtype.kind == "f":
        missing = np.isnan(value)
        if pa.types.is_boolean(f.type):
            return pa.array(value == 1, mask=missing)
        return pa.array(np.where(missing, 0, value), mask=missing).cast(f.type)
    return pa.array(value, pa.string(), from_pandas=True).cast(f.type)


def _assemble(columns: dict, keep: np.ndarray, dictionary_codes: bool = False) -> pa.Table:
    """The accepted rows in CASE_SCHEMA order and types; fields the input lacks are all-null columns."""
    return pa.table({f.name: _arrow(columns.get(f.name), f, keep, dictionary_codes) for f in CASE_FIELDS})


def load_cases(path, options: ValidationOptions | None = None, header_mapping: dict | None = None,
               encoding: str | None = None, sheet=None, columns: list[str] | None = None,
               dictionary_codes: bool = False) -> ValidationResult:
    """Read and validate a case file, or a folder of Parquet partitions: the one call notebooks and the CLI use.

    The accepted partitions of one complete `dipsim validate` run, read back with the same options, are not checked
    again (the nightly job and `dipsim group` re-read them often): every row was accepted then, so all are now.
    From Parquet, `columns` (canonical names) reads and checks only the columns that map onto them (`dipsim group`
    reads 12 of 25: a row is then rejected only for what those hold), and `dictionary_codes` gives diagnoses and
    procedures as list<dictionary<string>> (what `group_table` encodes fastest); a text or Excel file is read whole.
    A file is read and validated whole; a folder partition by partition (`_load_folder`)."""
    from .readers import read_cases_raw

    opts = options or ValidationOptions()
    if Path(path).is_dir():
        return _load_folder(_FolderListing.of(Path(path)), opts, header_mapping, columns, dictionary_codes)
    raw = read_cases_raw(path, header_mapping, encoding, sheet, columns=columns, dictionary_codes=dictionary_codes)
    return _result(raw, opts, columns, dictionary_codes=dictionary_codes)


@dataclass
class _FolderListing:
    """A folder's Parquet files, listed once, their footers read once, and their `dipsim validate` stamp (an
    incomplete validate output is an InputError here): what `load_cases` and `iter_cases` both start from."""

    folder: Path
    files: list[Path]
    footers: list
    stamp: dict | None

    @classmethod
    def of(cls, folder: Path) -> _FolderListing:
        from .readers import parquet_files, parquet_metadata, validated_stamp

        files = parquet_files(folder)
        footers = [parquet_metadata(f) for f in files]
        return cls(folder, files, footers, validated_stamp(files, folder=True, footers=footers))


def _load_folder(listing: _FolderListing, opts: ValidationOptions, header_mapping: dict | None,
                 columns: list[str] | None, dictionary_codes: bool) -> ValidationResult:
    """A folder of Parquet partitions: as read when it is one complete `dipsim validate` output (an incomplete one
    is an InputError), else each partition validated alone, in sorted path order, and a case id accepted from an
    earlier partition rejected in a later one (`EarlierCaseIds`). Rejects name the partition and its row."""
    from .readers import canonical, read_parquet_raw

    folder = listing.folder
    if _stamp_fits(listing.stamp, opts):
        table, rows = read_parquet_raw(folder, columns, dictionary_codes, listing.files, listing.footers)
        raw = canonical(table, rows, folder, header_mapping, validated=listing.stamp)
        if _trusted(raw, opts, columns):
            return _result(raw, opts, columns)
    # all are held in the end anyway: two partitions at a time, one on each core
    results = list(_partition_results(listing, opts, header_mapping, columns, dictionary_codes, threads=2))
    return results[0] if len(results) == 1 else _stacked(folder, results)


def _partition_results(listing: _FolderListing, opts: ValidationOptions, header_mapping: dict | None,
                       columns: list[str] | None = None, dictionary_codes: bool = False, threads: int = 0
                       ) -> Iterator[ValidationResult]:
    """Each partition validated alone, in order, a case id accepted from an earlier one rejected. `columns`,
    `dictionary_codes`: as in `load_cases`. `threads`: partitions read and validated at a time in threads of their
    own (`readers.in_threads`; that many more partitions in memory), 0: one after the other in this thread."""
    from .readers import in_threads, read_cases_raw

    def validated(file: Path) -> ValidationResult:
        raw = read_cases_raw(file, header_mapping, columns=columns, dictionary_codes=dictionary_codes)
        return validate_cases(raw, opts, dictionary_codes=dictionary_codes)

    earlier = EarlierCaseIds(listing.folder, header_mapping)
    results = in_threads(validated, listing.files, threads) if threads else map(validated, listing.files)
    for result in results:
        yield earlier.reject_repeats(result)


def with_last(items: Iterator) -> Iterator[tuple]:
    """(item, is it the last) for each item."""
    previous, started = None, False
    for item in items:
        if started:
            yield previous, False
        previous, started = item, True
    if started:
        yield previous, True


class EarlierCaseIds:
    """The case ids accepted from the earlier files of a folder (sorted path order), each with the file and row it
    was accepted at. A later file's row with one of them is rejected and the first kept, as within one file: a
    month's partition copied beside itself (`part-0 copy.parquet`) or January's folder copied as December must not
    be paid twice (issue 15). Reasons name the first file relative to `folder`.

    The ids are kept as 64-bit hashes (`case_id_hashes`), each with its row over the folder (`HashRuns`: 12 bytes an
    id, not the ids themselves; 100M cases in 1.2 GB). A row whose hash an earlier file has is a candidate only: the
    earlier file's id at that row is read back (the row groups of its case id column that hold those rows,
    normalised as validation normalised them; `header_mapping`: as the files were read) and compared, so that two
    ids sharing a hash never reject a good row. A file read in pieces has, at its first piece with a candidate, the
    earlier ids of all its candidates read back at once (its own id column hashed): each earlier file is read back
    once a file, not once a piece. A file's ids are hashed only when a later file comes (one file alone, as
    `dipsim validate` of one file, never loads Numba for them)."""

    def __init__(self, folder: Path, header_mapping: dict | None = None):
        self.folder = folder
        self.header_mapping = header_mapping
        self._files: list[str] = []  # each file met, relative to `folder` (what a reason names)
        self._sources: list[tuple[Path, bool]] = []  # each file's path, and whether its ids were taken as stored
        self._starts: list[int] = []  # each file's first place: an accepted row's place is its file's start + row
        self._next_start = 0
        self._runs = None  # `HashRuns` (made when a second file comes): sealed, the files before the current one
        self._pending: list[tuple[pa.Array, np.ndarray]] = []  # the first file's pieces, not hashed yet: ids, rows
        self._known: tuple[np.ndarray, pa.Array] | None = None  # the current file's candidates: places, their ids
        self._open = False  # a file's pieces are coming

    def reject_repeats(self, result: ValidationResult, last_piece: bool = True) -> ValidationResult:
        """Move `result`'s accepted rows whose case id an earlier file has into its rejects; remember the others.
        A file without a case id column is left as it is (its ids are made from its name and row numbers).
        `result` may be a piece of a file (`iter_load_cases`, repeats within the file rejected there already):
        `last_piece` False until its last, whose ids are then looked for in the files after it."""
        if "case_id" in result.absent_columns:
            return result
        if not self._open:
            self._start_file(result)
        ids = pc.cast(result.accepted["case_id"], pa.string()).combine_chunks()
        hashes = None
        repeat = np.zeros(len(ids), bool)
        if self._runs is not None and len(ids):
            from .case_id_hashes import case_id_hashes

            hashes = case_id_hashes(pc.fill_null(ids, ""))
            at, files, rows = self._met_before(ids, hashes, last_piece)
            repeat[at] = True
        if repeat.any():
            extra = duplicate_case_id_lines(result.source, result.accepted_rows[repeat],
                                            ids.take(pa.array(at)), rows, pa.array(self._files).take(pa.array(files)))
            result.rejects = pa.concat_tables([result.rejects, extra]).sort_by([("row", "ascending")])
            result.accepted = result.accepted.filter(pa.array(~repeat))
            result.accepted_rows = result.accepted_rows[~repeat]
        if self._runs is None:
            self._pending.append((ids.filter(pa.array(~repeat)), result.accepted_rows))
        elif hashes is not None:
            self._runs.add(hashes[~repeat], self._starts[-1] + result.accepted_rows)
        if len(result.accepted_rows):
            self._next_start = max(self._next_start, self._starts[-1] + int(result.accepted_rows.max()))
        self._open = not last_piece
        if last_piece and self._runs is not None:
            self._runs.seal()
        result.check_counts()
        return result

    def _start_file(self, result: ValidationResult) -> None:
        """This file is numbered; the ids of the first file are hashed when a second one comes."""
        if self._runs is None and self._pending:
            from .case_id_hashes import HashRuns, case_id_hashes

            self._runs = HashRuns()
            while self._pending:
                ids, rows = self._pending.pop(0)
                self._runs.add(case_id_hashes(pc.fill_null(ids, "")), self._starts[-1] + rows)
            self._runs.seal()
        self._files.append(Path(result.source).relative_to(self.folder).as_posix())
        self._sources.append((Path(result.source), result.trusted))
        self._starts.append(self._next_start)
        self._known = None

    def _met_before(self, ids: pa.Array, hashes: np.ndarray, last_piece: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The positions of `ids` that an earlier file has, each with the file (its number) and row it was first
        accepted at. Hash matches are compared on the ids, read back from the earlier files."""
        at, places = self._runs.find(hashes)
        if not len(at):
            return at, at, at
        if self._known is None and not last_piece:  # more pieces to come: all the file's candidates at once
            self._known = self._ids_of(np.unique(self._runs.find(self._file_hashes())[1]))
        known_places, known_ids = self._known or (np.zeros(0, np.uint64), pa.array([], pa.string()))
        k = np.minimum(np.searchsorted(known_places, places), max(len(known_places) - 1, 0))
        found = np.zeros(len(places), bool) if not len(known_places) else known_places[k] == places
        unknown = np.unique(places[~found])  # none when the file was looked at whole
        unknown_ids = self._ids_of(unknown)[1]
        earlier = pa.chunked_array([known_ids.take(pa.array(k[found])),
                                    unknown_ids.take(pa.array(np.searchsorted(unknown, places[~found])))],
                                   pa.string()).combine_chunks()
        order = np.concatenate([np.flatnonzero(found), np.flatnonzero(~found)])
        earlier = earlier.take(pa.array(np.argsort(order)))  # aligned with `places` again
        same = pc.equal(pc.fill_null(ids, "").take(pa.array(at)), pc.fill_null(earlier, ""))
        same = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
        at, places = at[same], places[same]
        first = np.ones(len(at), bool)  # `find` orders each position's places: the earliest first
        first[1:] = at[1:] != at[:-1]
        files, rows = self._file_rows(places[first])
        return at[first], files, rows

    def _file_rows(self, places: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The file (its number) and row of each place."""
        starts = np.array(self._starts, np.int64)
        places = places.astype(np.int64)
        files = np.searchsorted(starts, places, side="left") - 1  # a row is >= 1: its file's start < its place
        return files, places - starts[files]

    def _ids_of(self, places: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """`places` (ascending, distinct) and the ids accepted there, read back file by file."""
        files, rows = self._file_rows(places)
        ids = [self._ids_at(int(file), rows[files == file]) for file in np.unique(files)]
        return places, pa.chunked_array(ids, pa.string()).combine_chunks()

    def _case_id_column(self, file: int, row_groups: list[int] | None = None) -> Iterator[pa.Array]:
        """A file's case id column, a row group at a time (`row_groups`: those only), as its accepted table held
        it: normalised as validation normalises it (`text_column`), or as stored when the file was a trusted
        `dipsim validate` output."""
        import pyarrow.parquet as pq

        from .headers import map_header_list
        from .readers import _unreadable, parquet_metadata

        path, trusted = self._sources[file]
        footer = parquet_metadata(path)
        names = footer.schema.to_arrow_schema().names
        header = names[map_header_list(names, self.header_mapping, str(path)).index("case_id")]
        try:
            parquet = pq.ParquetFile(path, metadata=footer)
            for group in range(footer.num_row_groups) if row_groups is None else row_groups:
                column = parquet.read_row_group(group, columns=[header])[header]
                yield pc.cast(column.combine_chunks(), pa.string()) if trusted else text_column(column)
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(path, exc) from exc

    def _ids_at(self, file: int, rows: np.ndarray) -> pa.Array:
        """The case ids of an earlier file at `rows` (1-based, ascending, as validation numbered them), read back
        from the row groups that hold them."""
        from .readers import parquet_metadata

        footer = parquet_metadata(self._sources[file][0])
        bounds = np.cumsum([0] + [footer.row_group(g).num_rows for g in range(footer.num_row_groups)])
        group_of = np.searchsorted(bounds, rows - 1, side="right") - 1
        groups = np.unique(group_of).tolist()
        pieces = [values.take(pa.array(rows[group_of == group] - 1 - bounds[group]))
                  for group, values in zip(groups, self._case_id_column(file, groups))]
        return pa.chunked_array(pieces, pa.string()).combine_chunks()

    def _file_hashes(self) -> np.ndarray:
        """The hashes of the current file's case ids, every row's."""
        from .case_id_hashes import case_id_hashes

        return np.concatenate([case_id_hashes(pc.fill_null(ids, ""))
                               for ids in self._case_id_column(len(self._sources) - 1)] or [np.zeros(0, np.uint64)])


def _stacked(folder: Path, results: list[ValidationResult]) -> ValidationResult:
    """The results of a folder's partitions as one: rows stacked in file order (`accepted_rows` and the rejects'
    rows are numbered within each file, the rejects' `file` tells which)."""
    try:
        accepted = pa.concat_tables([r.accepted for r in results], promote_options="permissive")
    except pa.ArrowException as exc:
        raise InputError(f"{folder}: its partitions have a column of different types ({exc}): "
                         "export them with the same columns") from exc
    unmapped = list(dict.fromkeys(name for r in results for name in r.unmapped_columns))
    absent = [f.name for f in CASE_FIELDS if any(f.name in r.absent_columns for r in results)]
    stacked = ValidationResult(accepted=accepted, accepted_rows=np.concatenate([r.accepted_rows for r in results]),
                               rejects=_concat([r.rejects for r in results]),
                               warnings=_concat([r.warnings for r in results]),
                               rows_read=sum(r.rows_read for r in results), source=str(folder),
                               unmapped_columns=unmapped, absent_columns=absent,
                               accepted_files=np.repeat(np.array([r.source for r in results], dtype=object),
                                                        [r.n_accepted for r in results]))
    stacked.check_counts()
    return stacked


def iter_cases(path, batch_rows: int, options: ValidationOptions | None = None, header_mapping: dict | None = None,
               encoding: str | None = None, sheet=None, columns: list[str] | None = None,
               dictionary_codes: bool = False) -> Iterator[ValidationResult]:
    """`load_cases` in pieces whose memory is bounded, for a command that handles its cases piece by piece: a raw
    Parquet file `batch_rows` rows at a time (`iter_load_cases`), a folder of raw partitions one partition at a time
    (each validated alone and a case id of an earlier partition rejected, as `load_cases` does), a CSV (text) file
    about `batch_rows` rows at a time (`iter_csv_cases`), any other input (Excel, a complete `dipsim validate`
    output, read with `columns` / `dictionary_codes`) whole. The pieces'
    accepted rows, rejects and warnings, in order, are those of `load_cases` (tested)."""
    from .readers import CSV_SUFFIXES, PARQUET_SUFFIXES

    opts = options or ValidationOptions()
    path = Path(path)
    if path.suffix.lower() in CSV_SUFFIXES and path.is_file():
        yield from iter_csv_cases(path, batch_rows, opts, header_mapping, encoding, ramp=True)
        return
    if path.is_dir():  # listed and its footers read once, for the stamp and the read
        listing = _FolderListing.of(path)
        if _stamp_fits(listing.stamp, opts):
            yield _load_folder(listing, opts, header_mapping, columns, dictionary_codes)
        else:
            yield from _partition_results(listing, opts, header_mapping, columns, dictionary_codes)
        return
    if path.suffix.lower() in PARQUET_SUFFIXES and path.is_file():
        yield from iter_load_cases(path, batch_rows, opts, header_mapping, columns, dictionary_codes)
        return
    yield load_cases(path, opts, header_mapping, encoding, sheet, columns, dictionary_codes)


def iter_csv_cases(path, batch_rows: int, options: ValidationOptions | None = None,
                   header_mapping: dict | None = None, encoding: str | None = None,
                   ramp: bool = False) -> Iterator[ValidationResult]:
    """`load_cases` of a CSV (text) file about `batch_rows` rows at a time (`readers.iter_csv_raw`: blocks of whole
    lines, rows numbered and rejected as one read has them), memory bounded by the piece: each piece is validated
    alone, a case id met in an earlier piece is rejected as in one read (`_FirstRows`), and the warning that the
    file has no case id column is given once, at its first row. The next piece is read (its columns prepared,
    `read_ahead_work`, and its ids looked up) in a thread of its own while this one is validated. `ramp`: the
    first pieces shorter (`iter_csv_raw`), for a caller that works on each as it comes (`iter_cases`: group,
    screen) rather than writing each as a row group (validate)."""
    from .readers import iter_csv_raw, read_ahead

    opts = options or ValidationOptions()
    first_rows = _FirstRows()
    pieces = _with_first_rows(iter_csv_raw(path, batch_rows, header_mapping, encoding, ahead=False, ramp=ramp),
                              first_rows)
    # the next piece is read while this one is validated
    yield from _warned_once(validate_cases(raw, opts, first) for raw, first in read_ahead(pieces))


def _with_first_rows(pieces: Iterator[RawCases], first_rows: _FirstRows) -> Iterator[tuple[RawCases, object]]:
    """Each piece, its work on single columns done ahead (`read_ahead_work`), with its rows' first rows over the
    file (`_FirstRows.of`). The first piece has no earlier one (None): it goes out at once, and its ids are
    remembered after, before the next piece is looked up (hashing them may first load Numba's kernel, a few
    tenths of a second the validation of the first piece need not wait for)."""
    for number, raw in enumerate(pieces):
        read_ahead_work(raw)
        if number:
            yield raw, first_rows.of(raw)
        else:
            yield raw, None
            first_rows.of(raw)


def _warned_once(results: Iterator[ValidationResult]) -> Iterator[ValidationResult]:
    """The pieces of one file, the warning that it has no case id column kept at its first piece only (each
    piece's validation gives it at its first row; one read gives it once)."""
    warned = False
    for result in results:
        if "case_id" in result.absent_columns and result.n_warnings:
            once = pc.starts_with(result.warnings["reason"], _NO_CASE_ID_COLUMN).to_numpy(zero_copy_only=False)
            if warned and once.any():
                result.warnings = result.warnings.filter(pa.array(~once))
            warned = warned or bool(once.any())
        yield result


_NO_CASE_ID_COLUMN = "no case id column"  # how the warning of a file without case ids begins (`_check_identity`)


class _FirstRows:
    """The case ids of the pieces of a file validated so far, each with the row it was first met at, so that a
    later piece's `_check_case_ids` finds each row's first row over the file, as one read does (`first_rows`).

    The earlier ids are looked up by their 64-bit hashes in a `case_id_hashes.HashRuns` (a run a piece, the shortest
    merged), each hash with its id's place among the kept ids; a hash found is checked on the ids. Places follow
    the rows, so the first place of an id found is its first row."""

    def __init__(self) -> None:
        from .case_id_hashes import HashRuns

        self._ids: list[pa.Array] = []  # the kept ids (the rows no earlier piece had), piece by piece
        self._rows: list[np.ndarray] = []  # their rows
        self._kept = 0
        self._runs = HashRuns()

    def of(self, raw: RawCases) -> np.ndarray | None:
        """Each row's first row over the file (0: a missing id) when a row's id was met in an earlier piece; None
        when none was (the piece alone then tells the first rows, as `validate_cases` finds them). The piece's
        new ids are remembered."""
        from .case_id_hashes import case_id_hashes

        if "case_id" not in raw.table.column_names or not len(raw.rows):
            return None
        ids, _ = _case_ids(raw)
        missing = ids.is_null().to_numpy(zero_copy_only=False)
        hashes = case_id_hashes(pc.fill_null(ids, ""))
        met = self._met(ids, hashes, missing)
        keep = ~missing & (met == 0)
        if keep.any():
            self._ids.append(ids.filter(pa.array(keep)))
            self._rows.append(raw.rows[keep])
            self._runs.add(hashes[keep], self._kept + np.arange(int(keep.sum())))
            self._runs.seal()
            self._kept += int(keep.sum())
        if not met.any():
            return None
        first = _first_positions(ids)
        within = raw.rows if first is None else np.where(first >= 0, raw.rows[np.maximum(first, 0)], 0)
        return np.where(met > 0, met, np.where(missing, 0, within))

    def _met(self, ids: pa.Array, hashes: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """The earliest row at which an earlier piece had each row's id (0: none)."""
        met = np.zeros(len(ids), np.int64)
        at, places = self._runs.find(hashes)  # by position, then place: the earliest first
        places = places.astype(np.int64)
        present = ~missing[at]
        at, places = at[present], places[present]
        if not len(at):
            return met
        same = pc.equal(ids.take(pa.array(at)), pa.chunked_array(self._ids, pa.string()).take(pa.array(places)))
        same = same.to_numpy(zero_copy_only=False)
        at, places = at[same], places[same]
        first = np.ones(len(at), bool)
        first[1:] = at[1:] != at[:-1]
        at, places = at[first], places[first]
        met[at] = np.concatenate(self._rows)[places]
        return met


def iter_case_batches(path, batch_rows: int, options: ValidationOptions | None = None,
                      header_mapping: dict | None = None, encoding: str | None = None, sheet=None,
                      columns: list[str] | None = None, dictionary_codes: bool = False) -> Iterator[ValidationResult]:
    """`iter_cases` with a folder read `batch_rows` rows at a time too, not a partition at a time: a complete
    `dipsim validate` output with only `columns`, file by file, rows numbered over the folder as `load_cases`
    numbers them; a folder of raw partitions each in batches (`iter_load_cases`), a case id accepted from an earlier
    partition rejected (`EarlierCaseIds`, as `load_cases` does). What `dipsim screen` reads through. Every other
    input as `iter_cases` gives it."""
    opts = options or ValidationOptions()
    path = Path(path)
    if not path.is_dir():
        yield from iter_cases(path, batch_rows, opts, header_mapping, encoding, sheet, columns, dictionary_codes)
        return
    listing = _FolderListing.of(path)
    if _stamp_fits(listing.stamp, opts) and _trusted_files(listing, opts, header_mapping, columns):
        yield from _trusted_batches(listing, opts, header_mapping, columns, dictionary_codes, batch_rows)
    elif _stamp_fits(listing.stamp, opts):  # as `_load_folder` reads it (whole, then validated when not trusted)
        yield _load_folder(listing, opts, header_mapping, columns, dictionary_codes)
    else:
        earlier = EarlierCaseIds(listing.folder, header_mapping)
        for file in listing.files:
            for result, last in with_last(iter_load_cases(file, batch_rows, opts, header_mapping)):
                yield earlier.reject_repeats(result, last_piece=last)


def _trusted_files(listing: _FolderListing, opts: ValidationOptions, header_mapping: dict | None,
                   columns: list[str] | None) -> bool:
    """Every file of a stamped folder has the schema's columns in the schema's types (as `_load_folder` checks
    on the stacked table), judged from the footers."""
    from .readers import canonical

    return all(_trusted(canonical(footer.schema.to_arrow_schema().empty_table(), np.zeros(0, np.int64),
                                  listing.folder, header_mapping, validated=listing.stamp), opts, columns)
               for footer in listing.footers)


def _trusted_batches(listing: _FolderListing, opts: ValidationOptions, header_mapping: dict | None,
                     columns: list[str] | None, dictionary_codes: bool, batch_rows: int
                     ) -> Iterator[ValidationResult]:
    import pyarrow.parquet as pq

    from .readers import _batches, _unreadable, canonical, parquet_selection

    start, yielded = 1, False
    for file, footer in zip(listing.files, listing.footers):
        wanted, codes = parquet_selection(footer.schema.to_arrow_schema(), columns, dictionary_codes,
                                          header_mapping, str(file))
        try:
            batches = _batches(pq.ParquetFile(file, metadata=footer, read_dictionary=codes), batch_rows, wanted,
                               codes)
            for batch in batches:
                rows = np.arange(start, start + batch.num_rows, dtype=np.int64)
                start += batch.num_rows
                raw = canonical(pa.Table.from_batches([batch]), rows, listing.folder, header_mapping,
                                validated=listing.stamp)
                yielded = True
                yield _result(raw, opts, columns)
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(file, exc) from exc
    if not yielded:
        yield _load_folder(listing, opts, header_mapping, columns, dictionary_codes)


def iter_load_cases(path, batch_rows: int, options: ValidationOptions | None = None,
                    header_mapping: dict | None = None, columns: list[str] | None = None,
                    dictionary_codes: bool = False, recheck: bool = False) -> Iterator[ValidationResult]:
    """`load_cases` of one Parquet file, `batch_rows` rows at a time (memory bounded by the batch): each batch is
    validated alone, and a case id repeated from an earlier batch is rejected as in one read (the file's case id
    column is checked whole first, when the file is larger than a batch). `columns`, `dictionary_codes`: as in
    `load_cases`; `recheck`: validate a `dipsim validate` output again rather than take it as read."""
    yield from _warned_once(_parquet_pieces(path, batch_rows, options or ValidationOptions(), header_mapping,
                                            columns, dictionary_codes, recheck))


def _parquet_pieces(path, batch_rows: int, opts: ValidationOptions, header_mapping: dict | None,
                    columns: list[str] | None, dictionary_codes: bool, recheck: bool) -> Iterator[ValidationResult]:
    from .readers import iter_parquet_raw, parquet_metadata

    repeats = None
    pieces = iter_parquet_raw(path, batch_rows, header_mapping, columns, dictionary_codes)
    for number, raw in enumerate(pieces):
        trusted = _trusted(raw, opts, columns) and not recheck
        if number == 0 and not trusted and parquet_metadata(Path(path)).num_rows > batch_rows:
            repeats = _file_first_rows(Path(path), raw.header_map)
        part = None if repeats is None or not len(raw.rows) else repeats.first_rows(raw.rows)
        yield _result(raw, opts, columns) if trusted else validate_cases(raw, opts, part, dictionary_codes)


@dataclass
class _FileRepeats:
    """The rows of a file whose case id an earlier row of the file has (1-based, ascending), each with the first
    row of that id."""

    rows: np.ndarray
    first: np.ndarray

    def first_rows(self, rows: np.ndarray) -> np.ndarray:
        """`_check_case_ids`'s `first_rows` of a piece of the file (`rows`: consecutive): a repeated row's first
        row, 0 for every other row (a row that is its id's first, or has none, is no repeat either way)."""
        out = np.zeros(len(rows), np.int64)
        lo, hi = np.searchsorted(self.rows, rows[0]), np.searchsorted(self.rows, rows[-1], side="right")
        out[self.rows[lo:hi] - rows[0]] = self.first[lo:hi]
        return out


_ID_BATCH_ROWS = 1 << 20  # rows of a case id column read at a time by `_file_first_rows`


def _file_first_rows(path: Path, header_map: dict[str, str]) -> _FileRepeats | None:
    """The rows of the file whose case id an earlier row has, each with that id's first row; None when the file
    has no case id column (ids are then made from the row numbers).

    The column is read `_ID_BATCH_ROWS` rows at a time and kept as 64-bit hashes (`case_id_hashes`: 8 bytes a row,
    not the whole column as normalised Arrow strings and its copies). Rows whose hash occurs once are no repeats;
    the ids of the others (nearly always none; real repeats, or a hash two ids share) are read again and compared
    themselves."""
    import pyarrow.parquet as pq

    from .case_id_hashes import case_id_hashes
    from .readers import _unreadable

    header = next((h for h, c in header_map.items() if c == "case_id"), None)
    if header is None:
        return None
    none = _FileRepeats(np.zeros(0, np.int64), np.zeros(0, np.int64))
    try:
        parquet = pq.ParquetFile(path)
        hashes = np.empty(parquet.metadata.num_rows, np.uint64)
        missing = np.empty(parquet.metadata.num_rows, bool)
        start = 0
        for batch in parquet.iter_batches(batch_size=_ID_BATCH_ROWS, columns=[header]):
            ids = text_column(batch.column(0))
            missing[start:start + len(ids)] = ids.is_null().to_numpy(zero_copy_only=False)
            hashes[start:start + len(ids)] = case_id_hashes(pc.fill_null(ids, ""))
            start += len(ids)
        present = np.sort(hashes[~missing])
        shared = np.unique(present[1:][present[1:] == present[:-1]])
        del present
        if not len(shared):
            return none
        candidates = np.flatnonzero(np.isin(hashes, shared) & ~missing)
        del hashes, missing
        pieces, start = [], 0
        for batch in parquet.iter_batches(batch_size=_ID_BATCH_ROWS, columns=[header]):
            lo, hi = np.searchsorted(candidates, [start, start + batch.num_rows])
            if hi > lo:
                pieces.append(text_column(batch.column(0)).take(pa.array(candidates[lo:hi] - start)))
            start += batch.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from exc
    first = _first_positions(pa.chunked_array(pieces, pa.string()).combine_chunks())
    if first is None:  # hashes shared by different ids only
        return none
    repeated = np.flatnonzero(first != np.arange(len(first)))  # the candidates' ids are all present: first >= 0
    return _FileRepeats(candidates[repeated] + 1, candidates[first[repeated]] + 1)


def _result(raw: RawCases, opts: ValidationOptions, columns: list[str] | None = None,
            first_rows: np.ndarray | None = None, dictionary_codes: bool = False) -> ValidationResult:
    """The accepted rows of `raw`: as read when it is `dipsim validate` output (trusted), else validated."""
    if _trusted(raw, opts, columns):
        names = [n for n in CASE_SCHEMA.names if n in raw.table.column_names]
        extras = [n for n in raw.table.column_names if n not in CASE_SCHEMA.names]
        accepted = raw.table.select(names + extras).replace_schema_metadata(None)
        return ValidationResult(accepted=accepted,
                                accepted_rows=raw.rows, rejects=REJECT_SCHEMA.empty_table(),
                                warnings=REJECT_SCHEMA.empty_table(), rows_read=len(raw.rows), source=raw.source,
                                trusted=True)
    return validate_cases(raw, opts, first_rows, dictionary_codes)


def _stamp_fits(stamp: dict | None, opts: ValidationOptions) -> bool:
    """The stamp of a `dipsim validate` run of this version with these options."""
    return bool(stamp) and stamp.get("options") == asdict(opts) and stamp.get("dipsim_version") == __version__


def _trusted(raw: RawCases, opts: ValidationOptions, columns: list[str] | None = None) -> bool:
    if not _stamp_fits(raw.validated, opts):
        return False
    schema = raw.table.schema
    wanted = CASE_SCHEMA.names if columns is None else [n for n in columns if n in CASE_SCHEMA.names]
    return all(name in schema.names and _same_type(schema.field(name).type, CASE_SCHEMA.field(name).type)
               for name in wanted)


def _same_type(read: pa.DataType, expected: pa.DataType) -> bool:
    """The column type is the schema's, or for a code list its dictionary-encoded form (`dictionary_codes`)."""
    if read == expected:
        return True
    return (pa.types.is_list(read) and pa.types.is_list(expected) and pa.types.is_dictionary(read.value_type)
            and read.value_type.value_type == expected.value_type)
