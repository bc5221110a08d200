"""CHS-DRG grouping of whole case tables with the Numba kernel (`kernels.group_cases`).

``group_table(cases)`` reads the grouping columns of a case table (`dipsim.schema`), encodes the code lists into the
scheme's vocabularies with ``pyarrow.compute.index_in``, runs the kernel chunk by chunk and decodes the ids back to
strings with numpy / pyarrow indexing: no Python loop per case. ``group_arrays`` is the numpy-in / numpy-out form.

Results agree with the plain-Python reference (`reference.group_case`): same DRG, ADRG, MDC, CC level, and for an
ungroupable case (DRG ``0000``) the same reason in words.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import kernels
from .compiled import (
    MISSING,
    STATUS_GROUPED,
    STATUS_NO_MDC,
    CompiledScheme,
    compile_scheme,
)
from .reference import no_mdc_reason
from .scheme_cache import load_compiled
from .tables import DrgScheme

# The case columns grouping reads (dipsim.schema names); an absent one counts as missing for every case.
GROUPING_COLUMNS = ("case_id", "diagnoses", "procedures", "sex", "age_years", "age_days", "birth_weight_g",
                    "ventilation_hours", "los_days")
# What `dipsim group` reads and validates of a raw input: the columns grouping reads, and the admission and
# discharge dates, from which a missing length of stay is derived and against which a given one is checked.
GROUPING_INPUT_COLUMNS = (*GROUPING_COLUMNS, "admission_date", "discharge_date")

OUTPUT_SCHEMA = pa.schema([
    ("case_id", pa.string()),
    ("drg", pa.string()),
    ("adrg", pa.string()),
    ("mdc", pa.string()),
    ("cc_level", pa.int8()),
    ("reason", pa.string()),
])


@dataclass
class EncodedCases:
    """The kernel's case inputs: CSR code ids and numeric columns with missing values filled."""

    dx: np.ndarray  # int32
    dx_offsets: np.ndarray  # int64, n + 1
    px: np.ndarray
    px_offsets: np.ndarray
    sex: np.ndarray  # int8, 0 unknown
    age_years: np.ndarray  # int32, -1 missing
    age_days: np.ndarray  # int32, -1 missing
    birth_weight: np.ndarray  # int32, -1 missing
    ventilation_hours: np.ndarray  # float64, NaN missing
    los_days: np.ndarray  # int32, -1 missing

    def __len__(self) -> int:
        return len(self.dx_offsets) - 1


@dataclass
class GroupedArrays:
    """Kernel outputs: ids into `CompiledScheme.mdc_codes` / `adrg_codes` / `drg_codes` (-1 none)."""

    mdc: np.ndarray  # int8
    adrg: np.ndarray  # int16
    drg: np.ndarray  # int16
    cc_level: np.ndarray  # int8
    status: np.ndarray  # int8


def _compiled(scheme: str | DrgScheme | CompiledScheme) -> CompiledScheme:
    if isinstance(scheme, CompiledScheme):
        return scheme
    return load_compiled(scheme) if isinstance(scheme, str) else compile_scheme(scheme)


# ---------------------------------------------------------------------------------------------------------------
# Encoding


def _combine(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def encode_codes(lists: pa.Array | pa.ChunkedArray, vocabulary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """CSR (int32 ids, int64 offsets) of a ``list<string>`` column in a scheme vocabulary: -1 for a code the
    scheme does not know, -2 for a null or empty code; a null list is empty. A ``list<dictionary<string>>``
    column (validated Parquet read with `dictionary_codes`) is looked up once per distinct code."""
    chunks = lists.chunks if isinstance(lists, pa.ChunkedArray) else [lists]
    if not (pa.types.is_list(lists.type) or pa.types.is_large_list(lists.type)):
        raise TypeError(f"expected a list<string> column, got {lists.type}")
    lengths = [pc.fill_null(pc.list_value_length(c), 0).to_numpy(zero_copy_only=False) for c in chunks]
    offsets = np.zeros(sum(len(x) for x in lengths) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    ids = [_code_ids(pc.list_flatten(c), vocabulary) for c in chunks]
    return (np.concatenate(ids) if ids else np.zeros(0, np.int32)), offsets


def _code_ids(values: pa.Array, vocabulary: pa.Array) -> np.ndarray:
    if pa.types.is_dictionary(values.type):
        distinct = _code_ids(values.dictionary, vocabulary)
        index = pc.fill_null(values.indices, -1).to_numpy(zero_copy_only=False)
        return np.where(index >= 0, distinct[index], MISSING).astype(np.int32, copy=False)
    if values.type != pa.string():
        values = values.cast(pa.string())
    ids = pc.fill_null(pc.index_in(values, value_set=vocabulary), -1).to_numpy(zero_copy_only=False)
    ids = ids.astype(np.int32)  # a copy: to_numpy may give a read-only view of the Arrow buffer
    ids[pc.fill_null(pc.equal(values, ""), True).to_numpy(zero_copy_only=False)] = MISSING
    return ids


def _int_column(table: pa.Table, name: str, n: int, missing: int, dtype) -> np.ndarray:
    if name not in table.column_names:
        return np.full(n, missing, dtype=dtype)
    col = pc.fill_null(_combine(table[name]), missing)
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def encode_table(cases: pa.Table, scheme: str | DrgScheme | CompiledScheme = "chs-drg-1.1") -> EncodedCases:
    """The kernel inputs of a case table (columns of `dipsim.schema`; absent optional columns count as missing)."""
    compiled = _compiled(scheme)
    n = cases.num_rows
    dx, dx_offsets = encode_codes(cases["diagnoses"], compiled.dx_codes)
    if "procedures" in cases.column_names:
        px, px_offsets = encode_codes(cases["procedures"], compiled.px_codes)
    else:
        px, px_offsets = np.zeros(0, np.int32), np.zeros(n + 1, np.int64)
    if "ventilation_hours" in cases.column_names:
        vent = _combine(cases["ventilation_hours"]).cast(pa.float64())
        vent = pc.fill_null(vent, float("nan")).to_numpy(zero_copy_only=False)
    else:
        vent = np.full(n, np.nan)
    if compiled.vent_px[0] >= 0:
        px, px_offsets = _with_ventilation(px, px_offsets, vent >= compiled.vent_hours_min[0], compiled.vent_px[0])
    return EncodedCases(
        dx=dx, dx_offsets=dx_offsets, px=px, px_offsets=px_offsets,
        sex=_int_column(cases, "sex", n, 0, np.int8),
        age_years=_int_column(cases, "age_years", n, -1, np.int32),
        age_days=_int_column(cases, "age_days", n, -1, np.int32),
        birth_weight=_int_column(cases, "birth_weight_g", n, -1, np.int32),
        ventilation_hours=np.ascontiguousarray(vent, dtype=np.float64),
        los_days=_int_column(cases, "los_days", n, -1, np.int32),
    )


def _with_ventilation(px: np.ndarray, offsets: np.ndarray, ventilated: np.ndarray, code: int):
    """CSR procedures with `code` appended to each `ventilated` row that lacks it: where a scheme's ventilation
    rule reads a procedure (2.0 AH2: 96.7201 呼吸机治疗[≥96 小时]), recorded hours stand for it."""
    counts = np.diff(offsets)
    row = np.repeat(np.arange(len(counts)), counts)
    has = np.zeros(len(counts), bool)
    has[row[px == code]] = True
    add = ventilated & ~has
    if not add.any():
        return px, offsets
    new_offsets = np.zeros(len(offsets), np.int64)
    np.cumsum(counts + add, out=new_offsets[1:])
    new_px = np.empty(new_offsets[-1], np.int32)
    new_px[new_offsets[row] + np.arange(len(px)) - offsets[row]] = px
    new_px[new_offsets[1:][add] - 1] = code
    return new_px, new_offsets


# ---------------------------------------------------------------------------------------------------------------
# Kernel


def group_encoded(encoded: EncodedCases, scheme: str | DrgScheme | CompiledScheme = "chs-drg-1.1") -> GroupedArrays:
    compiled = _compiled(scheme)
    return group_arrays(encoded.dx, encoded.dx_offsets, encoded.px, encoded.px_offsets, encoded.sex,
                        encoded.age_years, encoded.age_days, encoded.birth_weight, encoded.ventilation_hours,
                        encoded.los_days, compiled)


def group_arrays(dx: np.ndarray, dx_offsets: np.ndarray, px: np.ndarray, px_offsets: np.ndarray,
                 sex: np.ndarray, age_years: np.ndarray, age_days: np.ndarray, birth_weight: np.ndarray,
                 ventilation_hours: np.ndarray, los_days: np.ndarray,
                 scheme: str | DrgScheme | CompiledScheme = "chs-drg-1.1") -> GroupedArrays:
    """Group CSR-encoded cases (ids from `encode_codes` with the scheme's vocabularies, offsets of length n + 1;
    sex 0/1/2, ages, weight and length of stay -1 when missing, ventilation NaN when missing) with the Numba
    kernel."""
    compiled = _compiled(scheme)
    n = len(dx_offsets) - 1
    for name, arr in (("sex", sex), ("age_years", age_years), ("age_days", age_days),
                      ("birth_weight", birth_weight), ("ventilation_hours", ventilation_hours),
                      ("los_days", los_days)):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} values for {n} cases")
    out = GroupedArrays(mdc=np.empty(n, np.int8), adrg=np.empty(n, np.int16), drg=np.empty(n, np.int16),
                        cc_level=np.empty(n, np.int8), status=np.empty(n, np.int8))
    if n == 0:
        return out
    # Writable C arrays of fixed dtypes: Numba compiles (and caches) one signature, whatever Arrow handed over.
    def arr(a, dtype):
        return np.require(a, dtype=dtype, requirements=("C", "W"))

    kernels.group_cases(
        arr(dx, np.int32), arr(dx_offsets, np.int64), arr(px, np.int32), arr(px_offsets, np.int64),
        arr(sex, np.int8), arr(age_years, np.int32), arr(age_days, np.int32), arr(birth_weight, np.int32),
        arr(ventilation_hours, np.float64), arr(los_days, np.int32),
        compiled.kernel_tables,
        out.mdc, out.adrg, out.drg, out.cc_level, out.status,
    )
    return out


def warm_up(scheme: str | DrgScheme | CompiledScheme = "chs-drg-1.1") -> threading.Thread:
    """Load the compiled kernels from Numba's cache (about 0.5 s: Numba sets up its compiler) in a background
    thread, by grouping one empty case; the caller reads its input meanwhile (Arrow's readers release the GIL).
    A later call waits for the load if it is not finished."""
    compiled = _compiled(scheme)

    def run() -> None:
        from dipsim.io.case_id_hashes import case_id_hashes

        # the case-id hash first: validation needs it before grouping does (the first kernel a process loads also
        # pays for Numba's CPU target, about 0.4 s)
        case_id_hashes(pa.array([""]))
        one, empty = np.zeros(2, np.int64), np.zeros(1, np.int32)
        one[1] = 1
        group_arrays(np.full(1, MISSING, np.int32), one, np.zeros(0, np.int32), np.zeros(2, np.int64),
                     np.zeros(1, np.int8), empty - 1, empty - 1, empty - 1, np.full(1, np.nan), empty - 1, compiled)

    thread = threading.Thread(target=run, name="dipsim-kernel-warm-up", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------------------------------
# Decoding


def _take(lookup: pa.Array, ids: np.ndarray) -> pa.Array:
    """lookup[ids], the lookup's last entry where ids < 0."""
    idx = np.where(ids < 0, len(lookup) - 1, ids).astype(np.int32)
    return pc.take(lookup, pa.array(idx))


def decode(result: GroupedArrays, compiled: CompiledScheme, case_id: pa.Array,
           principal: pa.Array | None = None) -> pa.Table:
    """The output table of `group_table` from kernel ids. `principal` (the principal diagnosis strings of the
    status-2 cases, in row order: `_principal`) names the code in the reason, as the reference does."""
    tables = compiled.decode_tables
    status = result.status
    drg = _take(tables["drg"], np.where(status == STATUS_GROUPED, result.drg, -1))
    adrg = _take(tables["adrg"], result.adrg)
    mdc = _take(tables["mdc"], result.mdc)
    reason = pc.take(tables["reason"], pa.array(compiled.reason_index(status, result.mdc, result.adrg,
                                                                       result.cc_level)))
    no_mdc = status == STATUS_NO_MDC
    if no_mdc.any():
        rows = np.flatnonzero(no_mdc)
        codes = principal.to_pylist() if principal is not None else [""] * len(rows)
        invalid = frozenset(compiled.invalid_principal.tolist())
        texts = pa.array([no_mdc_reason(c or "", invalid) for c in codes], pa.string())
        full = np.zeros(len(status), dtype=np.int64)
        full[rows] = np.arange(len(rows))
        reason = pc.if_else(pa.array(no_mdc), pc.take(texts, pa.array(full)), reason)
    return pa.table([case_id, drg, adrg, mdc, pa.array(result.cc_level, pa.int8()), reason], schema=OUTPUT_SCHEMA)


def _principal(diagnoses: pa.ChunkedArray | pa.Array, status: np.ndarray) -> pa.Array | None:
    """The principal diagnosis (as text) of the cases with status 2 (in no MDC), in row order; None if none."""
    rows = np.flatnonzero(status == STATUS_NO_MDC)
    if len(rows) == 0:
        return None
    lists = pc.take(diagnoses, pa.array(rows))
    return pc.cast(pc.list_element(_combine(lists).cast(pa.list_(pa.string())), 0), pa.string())


# ---------------------------------------------------------------------------------------------------------------
# Tables


def group_table(cases: pa.Table, scheme: str | DrgScheme = "chs-drg-1.1", chunk_size: int = 1_000_000) -> pa.Table:
    """Group a case table (columns of `dipsim.schema`: GROUPING_COLUMNS, of which only diagnoses is required) with
    the Numba kernel.

    Returns case_id, drg (``0000`` when ungroupable), adrg, mdc, cc_level (int8: 0 none, 1 CC, 2 MCC) and reason
    (empty when grouped). QY cases get drg and adrg ``<MDC>QY``. Works `chunk_size` rows at a time.
    """
    compiled = _compiled(scheme)
    if "diagnoses" not in cases.column_names:
        raise KeyError("group_table needs a 'diagnoses' column (list<string>, principal first)")
    columns = [c for c in GROUPING_COLUMNS if c in cases.column_names]
    cases = cases.select(columns)
    n = cases.num_rows
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    parts = []
    for start in range(0, max(n, 1), chunk_size):
        chunk = cases.slice(start, chunk_size)
        encoded = encode_table(chunk, compiled)
        result = group_encoded(encoded, compiled)
        if "case_id" in chunk.column_names:
            case_id = _combine(chunk["case_id"]).cast(pa.string())
        else:
            case_id = pa.array(np.arange(start, start + chunk.num_rows).astype(str), pa.string())
        parts.append(decode(result, compiled, case_id, _principal(chunk["diagnoses"], result.status)))
    return pa.concat_tables(parts) if parts else OUTPUT_SCHEMA.empty_table()
