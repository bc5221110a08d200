"""Code dictionaries: ICD-10 医保版 2.0 diagnoses and ICD-9-CM-3 医保版 2.0 procedures.

Everything here is vectorised with ``pyarrow.compute``: codes are cleaned (`normalise_codes`), checked for shape
(`is_valid_code_shape`), encoded to int32 ids (`CodeDictionary.encode`, ``index_in`` against the sorted dictionary) and
mapped between editions (`apply_crosswalk`) without a Python loop per row. Functions accept a string array, a
``list<string>`` array (the `diagnoses` / `procedures` columns of the case schema) or a chunked array of either; list
arrays are processed on their flattened values and rebuilt with the same lengths and nulls.

The tables are built by ``tools/build_codes.py`` into ``grouper_tables/codes/`` (see its README.md for provenance).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from dipsim.paths import tables_dir as _tables_dir

ArrayLike = pa.Array | pa.ChunkedArray

# Separators between codes in one cell of a claims export. After NFKC the full-width ，；｜ are ASCII already;
# 、(ideographic comma) survives NFKC and is listed explicitly.
CODE_SEPARATORS = r"[,;|、\s]+"

SYSTEMS = ("icd10", "icd9")

# Code shapes, derived from every code in the dictionaries and the crosswalk sources (checked by tests):
# ICD-10 医保版: K35.800, I10.x05, K35.800x001, E11.401+G63.2*, A01.002+G01*, E88.902+M90.803* (国临版 secondary).
ICD10_SHAPE = r"^[A-Z][0-9]{2}\.[0-9x][0-9]{2}(x[0-9]{3})?(\+[A-Z][0-9]{2}(\.[0-9x][0-9]{0,2})?\*)?$"
# ICD-9-CM-3 医保版: 47.0900, 01.6x00, 47.0900x001, 17.91100 (5 digits), 17.912A0 (中医 letter codes), 86.700x0013
# (two such codes in the dictionary) and 66.69x001 (国临版 3.0 short form).
ICD9_SHAPE = (
    r"^[0-9]{2}\.(([0-9][0-9x][0-9]{2}|[0-9]{5}|[0-9]{3}[A-Z][0-9])(x[0-9]{3})?"
    r"|[0-9]{3}x[0-9]{4}|[0-9]{2}x[0-9]{3})$"
)
_SHAPES = {"icd10": ICD10_SHAPE, "icd9": ICD9_SHAPE}

# Missing-dot and short-decimal repairs: (pattern, RE2 rewrite) applied in order. A rewrite only fires when the
# result has a plausible shape, so garbage (``12345678``) is left as it is for validation to report.
_ICD10_REPAIRS: tuple[tuple[str, str], ...] = (
    # K35800 -> K35.800, K35800x001 -> K35.800x001, E11401+G632* -> E11.401+G632* (first component).
    (r"^([A-Z][0-9]{2})([0-9x][0-9]{0,2}(?:x[0-9]{3})?)(\+.*)?$", r"\1.\2\3"),
    # +G632* -> +G63.2* (the asterisk component).
    (r"\+([A-Z][0-9]{2})([0-9x][0-9]{0,2})\*$", r"+\1.\2*"),
    # K35.8 -> K35.800, I10.x -> I10.x00, K35.80 -> K35.800 (only without an x-suffix).
    (r"^([A-Z][0-9]{2}\.[0-9x])(\+.*)?$", r"\100\2"),
    (r"^([A-Z][0-9]{2}\.[0-9x][0-9])(\+.*)?$", r"\10\2"),
)
_ICD9_REPAIRS: tuple[tuple[str, str], ...] = (
    # 470900 -> 47.0900, 4709 -> 47.09 (padded below), 1791100 -> 17.91100.
    (r"^([0-9]{2})((?:[0-9][0-9x][0-9]{0,2}|[0-9]{5}|[0-9]{3}[A-Z][0-9])(?:x[0-9]{3})?)$", r"\1.\2"),
    # 47.09 -> 47.0900, 01.6x -> 01.6x00, 47.090 -> 47.0900 (only without an x-suffix).
    (r"^([0-9]{2}\.[0-9][0-9x])$", r"\100"),
    (r"^([0-9]{2}\.[0-9][0-9x][0-9])$", r"\10"),
)

CROSSWALKS: dict[str, tuple[str, str]] = {
    # name -> (file in grouper_tables/codes, code system of source and target)
    "icd10_guolin2.0": ("crosswalk_icd10_guolin2.0_to_yb2.0.csv", "icd10"),
    "icd10_yb1.0": ("crosswalk_icd10_yb1.0_to_yb2.0.csv", "icd10"),
    "icd9_guolin3.0": ("crosswalk_icd9_guolin3.0_to_yb2.0.csv", "icd9"),
}

PROCEDURE_KINDS = ("手术", "介入治疗", "治疗性操作", "诊断性操作")


# ---------------------------------------------------------------------------------------------------------------
# Array plumbing: apply a string -> string (or -> anything) function to plain, list and chunked arrays.


def _is_list(arr: pa.Array) -> bool:
    return pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)


def _as_string(arr: pa.Array) -> pa.Array:
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _list_parts(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Flattened string values and int64 lengths (0 for null lists) of a list array."""
    values = _as_string(pc.list_flatten(arr))
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return values, lengths


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _rebuild_list(values: pa.Array, lengths: np.ndarray, like: pa.Array | None) -> pa.ListArray:
    """A ``list<string>`` array from values and lengths, null where ``like`` is null."""
    offsets = pa.array(_offsets(lengths).astype(np.int32))
    mask = like.is_null() if like is not None and like.null_count else None
    return pa.ListArray.from_arrays(offsets, values, type=pa.list_(values.type), mask=mask)


def _map_strings(arr: ArrayLike, fn: Callable[[pa.Array], pa.Array]) -> ArrayLike:
    """Apply ``fn`` (string array -> string array of equal length) to strings or to list values."""
    if isinstance(arr, pa.ChunkedArray):
        chunks = [_map_strings(c, fn) for c in arr.chunks]
        return pa.chunked_array(chunks, type=chunks[0].type if chunks else None)
    if _is_list(arr):
        values, lengths = _list_parts(arr)
        return _rebuild_list(fn(values), lengths, arr)
    return fn(_as_string(arr))


def _flat_values(arr: ArrayLike) -> pa.Array:
    """All code strings of a (chunked) string or list array, in order, as one string array."""
    if isinstance(arr, pa.ChunkedArray):
        parts = [_flat_values(c) for c in arr.chunks]
        return pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    return _as_string(pc.list_flatten(arr)) if _is_list(arr) else _as_string(arr)


def _to_arrow(arr) -> ArrayLike:
    if isinstance(arr, (pa.Array, pa.ChunkedArray)):
        return arr
    if isinstance(arr, pd.Series):
        return pa.array(arr, from_pandas=True)
    return pa.array(arr)


# ---------------------------------------------------------------------------------------------------------------
# Splitting and normalising

# The separators of CODE_SEPARATORS that are ASCII: RE2's \s is [\t\n\f\r ] (not \v, not the Unicode spaces).
# `_split_at_separators` turns each into a comma byte (a UTF-8 byte below 0x80 is always a whole character).
_ASCII_SEPARATORS = b",;| \t\n\f\r"
_TO_COMMA = np.arange(256, dtype=np.uint8)
_TO_COMMA[list(_ASCII_SEPARATORS)] = ord(",")
_PAIR_SPACES = r"[ \t\n\f\r]*([+†])[ \t\n\f\r]*"  # white space around the + (or †) of a dagger-asterisk pair
# A column of code cells is split once per distinct cell when its first rows repeat cells (fewer distinct cells
# than this share of them): a region's diagnoses repeat over the rows more than within the first rows.
_SAMPLE_CELLS = 4096
_DISTINCT_SHARE = 7 / 8


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The int64 offsets (from 0) and the bytes of a string array without nulls (of its slice only)."""
    if not len(arr):
        return np.zeros(1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], np.int32, count=len(arr) + 1, offset=4 * arr.offset).astype(np.int64)
    data = arr.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[offsets[0]:offsets[-1]]


def _split_at_separators(arr: pa.Array) -> pa.ListArray:
    """The cells (nulls as "") after NFKC, trimmed of Unicode white space at both ends, split at every separator
    character: what ``split_pattern_regex(text, CODE_SEPARATORS)`` gives but for the empty items between two
    separators of a run (which `_split_one` drops as it drops every empty item but a first). NFKC leaves ASCII as
    it is, so an all-ASCII array skips it; then each ASCII separator byte becomes a comma (a UTF-8 byte below 0x80
    is a whole character), as does 、, and the text is split at commas: a fixed pattern, 4-5x faster than the
    regex."""
    text = pc.fill_null(_as_string(arr), "")
    ascii_only = not (_string_buffers(text)[1] >= 0x80).any()
    if not ascii_only:
        text = pc.utf8_normalize(text, "NFKC")
    text = pc.utf8_trim_whitespace(text)
    if not ascii_only:
        text = pc.replace_substring(text, "、", ",")
    if not ascii_only or (_string_buffers(text)[1] == ord("+")).any():
        # a dagger-asterisk pair is one code of 医保版 2.0 (E10.300x051+H42.0*): white space around its + or † does
        # not separate two codes ("E10.300x051 + H42.0*" would otherwise give E10.300x051, "+" and H42.0*)
        text = pc.replace_substring_regex(text, _PAIR_SPACES, r"\1")
    offsets, data = _string_buffers(text)
    commas = pa.StringArray.from_buffers(len(text), pa.py_buffer(offsets.astype(np.int32)),
                                         pa.py_buffer(_TO_COMMA[data]))
    return pc.split_pattern(commas, ",")


def _split_one(arr: pa.Array) -> pa.ListArray:
    parts = _split_at_separators(arr)
    values, lengths = _list_parts(parts)
    parent = pc.list_parent_indices(parts).to_numpy()
    filled = pc.not_equal(values, "").to_numpy(zero_copy_only=False)
    first = np.zeros(len(values), bool)
    first[_offsets(lengths)[:-1][lengths > 0]] = True
    has_code = np.bincount(parent[filled], minlength=len(arr)) > 0
    keep = filled | (first & has_code[parent])  # an empty principal before other codes stays (see below)
    kept_lengths = np.bincount(parent[keep], minlength=len(arr)).astype(np.int64)
    return _rebuild_list(pc.filter(values, pa.array(keep)), kept_lengths, None)


def split_code_list(arr: ArrayLike) -> ArrayLike:
    """Split cells such as ``"K35.800, K37.x00；E11.900|I10.x00 、J18.900"`` into ``list<string>``.

    Separators (after NFKC, so full-width ，；｜ count): comma, semicolon, pipe, whitespace and 、, but not white space
    around the ``+`` or ``†`` of a dagger-asterisk pair (``"E10.300x051 + H42.0*"`` is one code). Empty items are
    dropped, but for one: a cell that starts with a separator before other codes (``",I10.x00"``, what a
    split-column export with an empty 主要诊断编码 joins to) keeps an empty first item ``""``, the missing
    principal, so that the first other code is not promoted to principal. A null, empty or blank cell gives an
    empty list (never null). The first item stays first (the principal code).
    """
    arr = _to_arrow(arr)
    if isinstance(arr, pa.ChunkedArray):
        return pa.chunked_array([_split_one(c) for c in arr.chunks], type=pa.list_(pa.string()))
    return _split_one(arr)


def split_code_ids(arr: ArrayLike) -> pa.ListArray:
    """`split_code_list` with the items dictionary-encoded: ``list<dictionary<int32, string>>``, each distinct item
    once in the dictionary (in the order the rows first give them), no null list and no null item. A column
    whose first rows repeat cells is split once per distinct cell, and each row takes its cell's items."""
    arr = _to_arrow(arr)
    if isinstance(arr, pa.ChunkedArray):
        arr = (arr.chunk(0) if arr.num_chunks == 1 else pa.concat_arrays(arr.chunks) if arr.num_chunks
               else pa.array([], pa.string()))
    arr = _as_string(arr)
    cells, index = arr, None
    if len(arr) > 4 * _SAMPLE_CELLS and \
            pc.count_distinct(arr.slice(0, _SAMPLE_CELLS)).as_py() < _DISTINCT_SHARE * _SAMPLE_CELLS:
        encoded = pc.dictionary_encode(arr)  # a null cell: a null index, an empty list
        cells, index = encoded.dictionary, encoded.indices
    values, lengths = _list_parts(_split_one(cells))
    items = pc.dictionary_encode(values)
    ids = items.indices.to_numpy(zero_copy_only=False)
    if index is not None:  # each row its cell's items: cell c's are ids[starts[c]:starts[c] + lengths[c]]
        cell = pc.fill_null(index, len(cells)).to_numpy(zero_copy_only=False)
        starts = np.append(_offsets(lengths)[:-1], 0)
        lengths = np.append(lengths, 0)[cell]  # a null cell (the spare last slot) has none
        row_starts = _offsets(lengths)
        ids = ids[np.repeat(starts[cell] - row_starts[:-1], lengths) + np.arange(row_starts[-1])]
    return pa.ListArray.from_arrays(pa.array(_offsets(lengths).astype(np.int32)),
                                    pa.DictionaryArray.from_arrays(pa.array(ids, pa.int32()), items.dictionary))


def _check_system(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"unknown code system {system!r}; expected one of {SYSTEMS}")


def _normalise_strings(values: pa.Array, system: str) -> pa.Array:
    # Fast path: a code that already has a valid shape is a fixed point of the rules below (tested on every
    # dictionary code), so only the others go through the regex passes.
    todo = pc.invert(pc.fill_null(pc.match_substring_regex(values, _SHAPES[system]), True))
    if not pc.any(todo).as_py():
        return values
    return pc.replace_with_mask(values, todo, _apply_rules(pc.filter(values, todo), system))


def _apply_rules(values: pa.Array, system: str) -> pa.Array:
    out = pc.utf8_normalize(values, "NFKC")  # full-width Ｋ３５．８００ -> K35.800
    out = pc.replace_substring_regex(out, r"\s+", "")  # spaces inside a code
    out = pc.replace_substring(out, "†", "+")  # dagger (剑号) -> the + used by 医保版
    out = pc.utf8_upper(out)
    # The x of x-suffixes and .x placeholders is lower case; an X that starts a component (chapter X: X59.900,
    # or after +) stays upper case.
    out = pc.replace_substring(out, "X", "x")
    out = pc.replace_substring_regex(out, r"^x", "X")
    out = pc.replace_substring_regex(out, r"\+x", "+X")
    for pattern, rewrite in _ICD10_REPAIRS if system == "icd10" else _ICD9_REPAIRS:
        out = pc.replace_substring_regex(out, pattern, rewrite)  # RE2 rewrites: \1 is one digit, \100 = \1 + "00"
    return out


def normalise_codes(arr: ArrayLike, system: str) -> ArrayLike:
    """Clean codes towards the 医保版 2.0 spelling; ``system`` is ``"icd10"`` (诊断) or ``"icd9"`` (手术操作).

    Steps: NFKC (full-width -> half-width), remove whitespace, † -> +, upper case, then X -> x except where X starts
    a code component, add a missing dot (ICD-10 after 3 characters of each component, ICD-9 after 2 digits) and pad a
    short decimal part with zeros (ICD-10 ``K35.8`` -> ``K35.800``; ICD-9 ``47.09`` -> ``47.0900``; never when an
    x-suffix follows). Anything else is left as it is, so that garbage stays visible to `is_valid_code_shape`.
    Nulls stay null. Works on string arrays and on ``list<string>`` arrays (same list lengths and nulls).
    """
    _check_system(system)
    return _map_strings(_to_arrow(arr), lambda v: _normalise_strings(v, system))


def is_valid_code_shape(arr: ArrayLike, system: str) -> ArrayLike:
    """True where a (normalised) code has the shape of a 医保版 code; null stays null. Lists: per flattened value."""
    _check_system(system)
    return pc.match_substring_regex(_flat_values(_to_arrow(arr)), _SHAPES[system])


# ---------------------------------------------------------------------------------------------------------------
# Dictionaries


@dataclass(frozen=True, eq=False)
class CodeDictionary:
    """One code system's dictionary: sorted unique ``codes`` and its ``attributes`` (Arrow) in the same order.

    The id of a code is its position in ``codes`` (int32); -1 means unknown or null: ``flag(name)[ids]`` or
    ``attributes[col].take(ids)`` look attributes up. ``table`` is the same as a pandas DataFrame with a RangeIndex
    aligned with the ids (``table.iloc[ids]``), made when first asked for.
    ICD-10: ``name``, ``allowed_as_principal`` (False for the 不能作为主要诊断 list, "灰码"), ``category``,
    ``subcategory``. ICD-9: ``name``, ``kind`` (手术 / 介入治疗 / 治疗性操作 / 诊断性操作 or ""), ``kind_source``,
    ``gray`` (灰码), ``chapter``, ``chapter_name``, ``category``, ``category_name``, ``subcategory``, ``detail``.
    """

    system: str
    version: str
    codes: pa.Array
    attributes: pa.Table = field(repr=False)

    def __len__(self) -> int:
        return len(self.codes)

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        return self.attributes.to_pandas()

    def flag(self, name: str) -> np.ndarray:
        """A yes/no attribute (``allowed_as_principal``, ``gray``) as a bool array aligned with the ids."""
        return self.attributes[name].to_numpy()

    def encode(self, arr: ArrayLike) -> np.ndarray:
        """int32 ids of the codes (for list arrays: of the flattened values); -1 for unknown or null."""
        values = _flat_values(_to_arrow(arr))
        ids = pc.index_in(values, value_set=self.codes)
        return pc.fill_null(ids, -1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)

    def encode_lists(self, arr: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """CSR form of a ``list<string>`` array: (int32 ids of all values, int64 offsets of length n + 1).

        Row ``i`` holds ``ids[offsets[i]:offsets[i + 1]]``; null lists are empty.
        """
        arr = _to_arrow(arr)
        chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
        lengths = [pc.fill_null(pc.list_value_length(c), 0).to_numpy(zero_copy_only=False) for c in chunks]
        all_lengths = np.concatenate(lengths).astype(np.int64) if lengths else np.zeros(0, np.int64)
        return self.encode(arr), _offsets(all_lengths)

    def decode(self, ids) -> pa.Array:
        """Codes for int ids; -1 (or any negative id) gives null."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and ids.max(initial=-1) >= len(self.codes):
            raise IndexError(f"code id {int(ids.max())} out of range for {len(self.codes)} codes")
        return pc.take(self.codes, pa.array(ids, mask=ids < 0))

    def contains(self, arr: ArrayLike) -> np.ndarray:
        """Boolean numpy array: the code (each flattened value for lists) is in the dictionary."""
        return self.encode(arr) >= 0

    def name(self, code: str) -> str | None:
        """The Chinese name of one code, or None when it is not in the dictionary."""
        i = int(self.encode(pa.array([code], pa.string()))[0])
        return None if i < 0 else str(self.table["name"].iat[i])

    def names(self, arr: ArrayLike) -> pa.Array:
        """Chinese names for codes (flattened values for lists); null where unknown."""
        ids = self.encode(arr)
        names = pa.array(self.table["name"].to_numpy(), pa.string())
        return pc.take(names, pa.array(ids, mask=ids < 0))


_BOOL_COLUMNS = ("allowed_as_principal", "gray")


def _read_table(path: Path) -> pa.Table:
    """A code table as written by tools/build_codes.py: every cell text ('' for an empty one, never null), the
    yes/no columns (`_BOOL_COLUMNS`, written true/false) as bool."""
    if not path.is_file():
        raise FileNotFoundError(f"code table not found: {path} (rebuild with tools/build_codes.py)")
    with path.open(encoding="utf-8", newline="") as file:
        header = next(csv.reader(file), [])
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header}, strings_can_be_null=False,
        quoted_strings_can_be_null=False))
    for name in _BOOL_COLUMNS:
        if name in table.column_names:
            flags = table[name]
            if not pc.all(pc.is_in(flags, value_set=pa.array(["true", "false"]))).as_py():
                raise ValueError(f"{path}: column {name} holds other values than true and false")
            table = table.set_column(table.column_names.index(name), name, pc.equal(flags, "true"))
    return table


def _load_dictionary(system: str, file: str, tables_dir: str | Path | None) -> CodeDictionary:
    root = Path(tables_dir) if tables_dir is not None else _tables_dir()
    table = _read_table(root / "codes" / file)
    codes = table["code"].combine_chunks()
    # The build script writes codes sorted and unique; check rather than trust, ids depend on it.
    if len(codes) > 1 and not pc.all(pc.less(codes[:-1], codes[1:])).as_py():
        raise ValueError(f"{root / 'codes' / file}: codes are not sorted and unique")
    return CodeDictionary(system=system, version="医保版 2.0", codes=codes,
                          attributes=table.drop_columns(["code"]).combine_chunks())


@functools.lru_cache(maxsize=8)
def load_icd10(tables_dir: str | Path | None = None) -> CodeDictionary:
    """ICD-10 医保版 2.0 diagnoses (诊断), from ``<tables>/codes/icd10_yb2.0.csv``."""
    return _load_dictionary("icd10", "icd10_yb2.0.csv", tables_dir)


@functools.lru_cache(maxsize=8)
def load_icd9(tables_dir: str | Path | None = None) -> CodeDictionary:
    """ICD-9-CM-3 医保版 2.0 procedures (手术操作), from ``<tables>/codes/icd9cm3_yb2.0.csv``."""
    return _load_dictionary("icd9", "icd9cm3_yb2.0.csv", tables_dir)


# ---------------------------------------------------------------------------------------------------------------
# Crosswalks (编码映射)


@dataclass(frozen=True, eq=False)
class Crosswalk:
    """A mapping from an older edition to 医保版 2.0: unique ``source`` codes and their ``target`` codes."""

    name: str
    system: str
    source: pa.Array
    target: pa.Array
    attributes: pa.Table = field(repr=False)

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """The crosswalk file as a pandas DataFrame (source_code, target_code, ...)."""
        return self.attributes.to_pandas()


@functools.lru_cache(maxsize=8)
def load_crosswalk(name: str, tables_dir: str | Path | None = None) -> Crosswalk:
    """Load a crosswalk: ``"icd10_guolin2.0"`` (国临版 2.0 -> 医保版 2.0), ``"icd10_yb1.0"`` (医保版 1.0 -> 2.0) or
    ``"icd9_guolin3.0"`` (国临版 3.0 -> 医保版 2.0 procedures)."""
    if name not in CROSSWALKS:
        raise ValueError(f"unknown crosswalk {name!r}; expected one of {tuple(CROSSWALKS)}")
    file, system = CROSSWALKS[name]
    root = Path(tables_dir) if tables_dir is not None else _tables_dir()
    table = _read_table(root / "codes" / file)
    source = table["source_code"].combine_chunks()
    if len(pc.unique(source)) != len(source):
        raise ValueError(f"{root / 'codes' / file}: source codes are not unique")
    return Crosswalk(name=name, system=system, source=source, target=table["target_code"].combine_chunks(),
                     attributes=table)


def _apply_strings(values: pa.Array, cw: Crosswalk) -> pa.Array:
    idx = pc.index_in(values, value_set=cw.source)
    return pc.if_else(pc.is_valid(idx), pc.take(cw.target, idx), values)


def apply_crosswalk(arr: ArrayLike, name: str, tables_dir: str | Path | None = None) -> ArrayLike:
    """Replace each code found in the crosswalk's source column by its 医保版 2.0 target; others are unchanged.

    Apply it only on request, to data known to be coded in the older edition: some old codes are also valid 2.0
    codes with another meaning (国临版 ``A19.000x001`` -> ``A19.001``). Normalise first (`normalise_codes`).
    Works on string and ``list<string>`` arrays.
    """
    cw = load_crosswalk(name, tables_dir)
    return _map_strings(_to_arrow(arr), lambda v: _apply_strings(v, cw))
