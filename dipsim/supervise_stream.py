"""The supervision screens of `dipsim.supervise` over cases given piece by piece, in memory that does not grow with
the number of cases: what `dipsim screen` runs. The flags and the per-hospital table are those of
`supervise.screen_region` on the same cases stacked: the same lines, in the same order, with the same values (the
tests compare them).

How: one read of the input, then passes over compact files in a temporary folder.

1. Each piece is grouped (CHS-DRG for MCC/CC levels and, without a DIP catalogue, the groups) and its text columns
   become integer codes of region-wide dictionaries (groups, DRGs, hospitals, principal diagnoses and procedures,
   in first-seen order, as `supervise` codes the whole table). Kept in memory: integer counts per group, hospital
   and diagnosis. Written to disk: per case the fixed-width columns the screens read (`_Spill`, 40 bytes), its case
   and patient ids (for the flag lines), and its stay (patient, dates, codes) into one of `buckets` files chosen by
   a hash of the patient id, so that all stays of a patient, in whatever piece they came, meet in one bucket.
2. Group medians (cost, LOS) and the weight calibration's quartiles are exact order statistics, found by radix
   selection over the spilled values (`_select`): a pass for each group's range, then passes that each narrow every
   sought value by 8 bits with a 256-bin histogram per (group, rank), and one that sorts the few candidates left.
   The weights follow `weights.calibrate_weights` with its sums in its order (Kahan sums per group as pandas adds
   them, the overall mean's pairwise sum as numpy's, `_pairwise_sum`); the upcoding indicators add per hospital in
   row order as `np.bincount` does.
3. Repeats (split readmissions, "five same"): one bucket at a time, each patient's stays sorted by admission,
   discharge and row, as `supervise._repeats` sorts the whole table; the flags are put back in its order (patients
   by their first row) through files by range of that row.
4. The flags go to `flags` screen by screen, in `screen_cases`' order, a part at a time.

Memory bound: a piece of the input (the reader's batch) and its grouping; a chunk of spilled rows (`chunk_rows`);
one bucket (about cases / `buckets` stays, at least all stays of one patient); the flags of one range (flags /
`buckets`); 256 counts per (group, rank) sought and at most 2^20 candidates; arrays per group, DRG, hospital and
diagnosis. None of it grows with the number of cases when `buckets` grows with it (`bucket_count`): measured, 0.7 GB
peak at 10M cases and 0.77 GB at 100M (benchmarks/bench_screen.py). Disk, in `work_dir` while it runs: about 135
bytes a case (13 GB at 100M).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from dipsim.schema import DISCHARGE_DEATH, float_column
from dipsim.supervise import FLAG_COLUMNS, SCREENS, TRANSFER_MODES, _days, first_codes

CHUNK_ROWS = 1 << 18  # spilled rows read back at a time
BUCKET_STAYS = 500_000  # stays per patient bucket that `bucket_count` aims at
FLAG_SCHEMA = pa.schema([(name, pa.string()) for name in FLAG_COLUMNS])
# The case columns the screens and the CHS-DRG grouping read (a `dipsim validate` output is read with only these).
SCREEN_COLUMNS = ("case_id", "patient_id", "hospital_id", "admission_date", "discharge_date", "los_days",
                  "total_cost", "discharge_mode", "diagnoses", "procedures", "sex", "age_years", "age_days",
                  "birth_weight_g", "ventilation_hours")
_STAY_SCHEMA = pa.schema([("patient", pa.string()), ("case_id", pa.string()), ("row", pa.int64()),
                          ("admission", pa.float64()), ("discharge", pa.float64()), ("group", pa.int32()),
                          ("hospital", pa.int32()), ("dx", pa.int32()), ("px", pa.int32())])
_HIT_SCHEMA = pa.schema([("first_row", pa.int64()), ("position", pa.int64()), ("case_id", pa.string()),
                         ("related_case_id", pa.string()), ("patient", pa.string()), ("hospital", pa.int32()),
                         ("gap", pa.float64()), ("code", pa.int32()), ("code2", pa.int32())])
_ID_SCHEMA = pa.schema([("case_id", pa.string()), ("patient", pa.string())])


def bucket_count(expected_cases: int) -> int:
    """Patient buckets for about `expected_cases` cases: one per `BUCKET_STAYS` stays, 1 to 1,024."""
    return int(min(1024, max(1, -(-int(expected_cases) // BUCKET_STAYS))))


@dataclass
class StreamedScreens:
    """What `screen_stream` found: per hospital the table of `supervise.Screens.hospitals`, the flag lines per
    screen (the flags themselves went to the `flags` callback), the screens that did not run and why, the cases."""

    hospitals: pd.DataFrame
    flag_counts: dict[str, int]
    skipped: dict[str, str]
    cases: int


class _Labels:
    """A region-wide dictionary of a text column: codes in first-seen order over the pieces (an empty text is
    missing, -1), as `supervise._Coded` codes the whole column."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.labels: list[str] = []

    def encode(self, column) -> np.ndarray:
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        text = pc.cast(column, pa.string())
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        encoded = pc.dictionary_encode(text)
        mapping = np.empty(len(encoded.dictionary), np.int32)
        for i, label in enumerate(encoded.dictionary.to_pylist()):
            code = self.codes.get(label)
            if code is None:
                code = self.codes[label] = len(self.labels)
                self.labels.append(label)
            mapping[i] = code
        index = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        return np.where(index >= 0, mapping[np.maximum(index, 0)] if len(mapping) else -1, -1).astype(np.int32)

    def __len__(self) -> int:
        return len(self.labels)

    def array(self) -> np.ndarray:
        return np.array(self.labels, dtype=object)

    def arrow(self) -> pa.Array:
        return pa.array(self.labels, pa.string())


def _grown(counts: np.ndarray, size: int) -> np.ndarray:
    return counts if len(counts) >= size else np.concatenate([counts, np.zeros(size - len(counts), counts.dtype)])


def _count(counts: np.ndarray, codes: np.ndarray, size: int, where=None) -> np.ndarray:
    """`counts` (per code, grown to `size`) plus the rows of each code (where `where`)."""
    keep = codes >= 0 if where is None else (codes >= 0) & where
    return _grown(counts, size) + np.bincount(codes[keep], minlength=size)[:size]


class _Spill:
    """Fixed-width per-case columns, one raw file each, appended piece by piece, read back in chunks."""

    def __init__(self, folder: Path, dtypes: dict[str, type]):
        self.dtypes = {name: np.dtype(kind) for name, kind in dtypes.items()}
        self.paths = {name: folder / f"{name}.bin" for name in dtypes}
        self._files = {name: open(path, "wb") for name, path in self.paths.items()}  # noqa: SIM115

    def append(self, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            np.ascontiguousarray(values, self.dtypes[name]).tofile(self._files[name])

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()

    def chunks(self, names: Iterable[str], sizes: Iterable[int]) -> Iterator[dict[str, np.ndarray]]:
        with contextlib.ExitStack() as stack:
            files = {name: stack.enter_context(open(self.paths[name], "rb")) for name in names}
            for size in sizes:
                yield {name: np.fromfile(fh, self.dtypes[name], count=size) for name, fh in files.items()}


# ---------------------------------------------------------------- exact order statistics

_SIGN = np.uint64(1 << 63)


def _keys(values: np.ndarray) -> np.ndarray:
    """float64 -> uint64 in the same order (for NaN-free values; -0.0 sorts before 0.0)."""
    bits = np.ascontiguousarray(values, np.float64).view(np.uint64)
    return np.where((bits & _SIGN) != 0, ~bits, bits | _SIGN)


def _floats(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, np.uint64)
    return np.where((keys & _SIGN) != 0, keys & ~_SIGN, ~keys).astype(np.uint64).view(np.float64)


def _select(chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], ranks: np.ndarray,
            collect: int = 1 << 14, budget: int = 1 << 20) -> np.ndarray:
    """The values of the given ranks (0-based, ascending, NaN left out) within each group: `ranks[g, t]` (-1: none)
    -> result[g, t] (NaN for none). `chunks()` iterates over (group code, value) pairs of arrays, -1 for a row of
    no group, afresh at each call. Radix selection on the values' bits: a pass for each group's smallest and
    largest value (their common leading bits are every value's), then passes that each fix 8 more bits of every
    sought value with a 256-bin histogram per (group, rank), and, once a sought value has at most `collect`
    candidates left (and all such at most `budget`), one that collects and sorts them. Exact; memory: the
    histograms (256 counts per group and rank) and the candidates."""
    n_groups, n_ranks = ranks.shape
    out = np.full(ranks.shape, np.nan)
    if not (ranks >= 0).any():
        return out
    low = np.full(n_groups, np.iinfo(np.uint64).max, np.uint64)
    high = np.zeros(n_groups, np.uint64)
    size = np.zeros(n_groups, np.int64)
    for group, key in _keyed(chunks):
        _ranges(group, key, low, high, size)
    rank = ranks.astype(np.int64).copy()
    active = (rank >= 0) & (size[:, None] > 0)
    # the bits still open of each sought value (its `shift` low bits); the common leading bits are the prefix
    spread = np.array([int(x).bit_length() for x in (low ^ high)], np.uint64)
    shift = np.repeat(spread[:, None], n_ranks, axis=1)
    prefix = np.repeat(np.where(spread >= 64, np.uint64(0), low >> np.minimum(spread, np.uint64(63)))[:, None],
                       n_ranks, axis=1)
    count = np.repeat(size[:, None], n_ranks, axis=1)
    done = active & (shift == 0)
    out[done] = _floats(prefix[done])
    active &= ~done

    while active.any():
        small = active & (count <= collect)
        if small.any():  # collect the smallest first, within the budget
            order = np.argsort(np.where(small, count, np.iinfo(np.int64).max), axis=None, kind="stable")
            fits = np.cumsum(count.ravel()[order]) <= budget
            chosen = np.zeros(count.size, bool)
            chosen[order[fits & small.ravel()[order]]] = True
            small = chosen.reshape(count.shape)
        refine = active & ~small
        slot = np.full(count.shape, -1, np.int64)
        slot[refine] = np.arange(refine.sum())
        cslot = np.full(count.shape, -1, np.int64)
        cslot[small] = np.arange(small.sum())
        hist = np.zeros((int(refine.sum()), 256), np.int64)
        found_slot = np.zeros(int(count[small].sum()), np.int64)
        found_key = np.zeros(len(found_slot), np.uint64)
        cursor = np.zeros(1, np.int64)
        for group, key in _keyed(chunks):
            _radix_pass(group, key, refine, small, shift, prefix, slot, cslot, hist, found_slot, found_key, cursor)
        if refine.any():
            h = hist
            cum = np.cumsum(h, axis=1)
            rk = rank[refine]
            digit = (cum <= rk[:, None]).sum(axis=1)
            rows = np.arange(len(rk))
            before = np.where(digit > 0, cum[rows, np.maximum(digit - 1, 0)], 0)
            width = np.minimum(shift[refine], np.uint64(8))
            rank[refine] = rk - before
            count[refine] = h[rows, digit]
            prefix[refine] = (prefix[refine] << width) | digit.astype(np.uint64)
            shift[refine] = shift[refine] - width
            finished = refine & (shift == 0)
            out[finished] = _floats(prefix[finished])
            active &= ~finished
        if small.any():
            slots, keys = found_slot, found_key
            order = np.lexsort((keys, slots))
            starts = np.searchsorted(slots[order], np.arange(int(small.sum())))
            out[small] = _floats(keys[order][starts + rank[small]])
            active &= ~small
    return out


def _keyed(chunks) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(group, key) of each chunk: -1 for a row without a group or a value."""
    for group, values in chunks():
        ok = (group >= 0) & ~np.isnan(values)
        yield np.where(ok, group, -1).astype(np.int64), _keys(np.where(ok, values, 0.0))


@njit(cache=True)
def _ranges(group, key, low, high, size):  # pragma: no cover - compiled
    """Each group's smallest and largest key and its number of values."""
    for i in range(len(group)):
        g = group[i]
        if g >= 0:
            low[g] = min(low[g], key[i])
            high[g] = max(high[g], key[i])
            size[g] += 1


@njit(cache=True)
def _radix_pass(group, key, refine, collect, shift, prefix, slot, cslot, hist, found_slot, found_key, cursor
                ):  # pragma: no cover - compiled
    """One pass of `_select`: each key that has a sought value's open bits' prefix counts, for a value to
    `refine`, in the histogram of its next (up to) 8 bits; for a value to `collect`, it is collected."""
    one, eight = np.uint64(1), np.uint64(8)
    for i in range(len(group)):
        g = group[i]
        if g < 0:
            continue
        k = key[i]
        for t in range(refine.shape[1]):
            if not (refine[g, t] or collect[g, t]):
                continue
            sh = shift[g, t]
            head = np.uint64(0) if sh >= np.uint64(64) else k >> sh
            if head != prefix[g, t]:
                continue
            if refine[g, t]:
                width = min(sh, eight)
                hist[slot[g, t], np.int64((k >> (sh - width)) & ((one << width) - one))] += 1
            else:
                found_slot[cursor[0]] = cslot[g, t]
                found_key[cursor[0]] = k
                cursor[0] += 1


# ---------------------------------------------------------------- sums in the reference's order


@njit(cache=True)
def _kahan_add(groups, values, keep, total, compensation, cases):  # pragma: no cover - compiled
    """pandas' groupby mean: per group, Kahan sums in row order (carried over the chunks)."""
    for i in range(len(groups)):
        if keep[i]:
            g = groups[i]
            cases[g] += 1
            y = values[i] - compensation[g]
            t = total[g] + y
            compensation[g] = t - total[g] - y
            if compensation[g] != compensation[g]:
                compensation[g] = 0.0
            total[g] = t


def _pairwise_sum(n: int, take: Callable[[int], np.ndarray], limit: int = 1 << 20) -> float:
    """numpy's sum of `n` values (pairwise: halves cut at multiples of 8, blocks of up to 128 added 8-wide),
    the values taken in order from `take(k)`; each part of up to `limit` values summed by numpy itself."""
    if n <= limit:
        return np.sum(np.ascontiguousarray(take(n), np.float64))
    half = n // 2
    half -= half % 8
    return _pairwise_sum(half, take, limit) + _pairwise_sum(n - half, take, limit)


class _Take:
    """Values from an iterator of arrays, `k` at a time."""

    def __init__(self, parts: Iterator[np.ndarray]):
        self.parts, self.buffer = parts, np.zeros(0)

    def __call__(self, k: int) -> np.ndarray:
        pieces, have = [self.buffer], len(self.buffer)
        while have < k:
            part = next(self.parts)
            pieces.append(part)
            have += len(part)
        values = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        self.buffer = values[k:]
        return values[:k]


def _add_at(total: np.ndarray, index: np.ndarray, weights: np.ndarray) -> None:
    """total[index] += weights, one by one in order (np.add.at: the sums of np.bincount, carried over chunks)."""
    np.add.at(total, index, weights)


# ---------------------------------------------------------------- the stream


class _Stream:
    """`screen_stream`'s state: the first pass over the pieces (`add`), then the passes over what it spilled."""

    def __init__(self, folder: Path, policy, scheme, catalog, on, buckets: int, chunk_rows: int):
        self.folder, self.policy, self.scheme, self.catalog, self.on = folder, policy, scheme, catalog, on
        self.buckets, self.chunk_rows = buckets, chunk_rows
        self.groups, self.drgs, self.hospitals, self.dx, self.px = (_Labels() for _ in range(5))
        self.cases = 0
        self.sizes: list[int] = []  # rows of each chunk of the spill and of the id file
        self.any = dict.fromkeys(("patient_id", "admission_date", "discharge_date", "los_days"), False)
        zeros = np.zeros(0, np.int64)
        self.group_size = self.group_deaths = self.group_costs = self.group_los = zeros
        self.drg_costs = self.hospital_cases = zeros
        self.dx_known = self.dx_cc = self.dx_mcc = self.hospital_cc = self.hospital_mcc = zeros
        self.spill: _Spill | None = None
        self.has_cc = self.has_points = self.calibrate = False  # set by the first piece
        self.ids = pa.ipc.new_stream(str(folder / "ids.arrows"), _ID_SCHEMA)
        self.stays = [pa.ipc.new_stream(str(folder / f"stays-{b}.arrows"), _STAY_SCHEMA) for b in range(buckets)]

    def get(self, path: str):
        return self.policy.get(path, self.on)

    # -------------------------------------------------- pass 1: the pieces

    def add(self, cases: pa.Table, grouping: dict | None = None) -> None:
        """A piece: grouped here as `screen_region` groups, or with its `grouping` (group, cc_level, points as
        `screen_cases` takes them)."""
        n = cases.num_rows
        if not n:
            if self.spill is None and grouping is not None:
                self._open(grouping.get("cc_level") is not None, grouping.get("points") is not None, False)
            return
        names = cases.column_names
        extra: dict[str, np.ndarray] = {}
        if grouping is None:
            group, cc = self._grouped(cases, extra)
        else:
            group = self.groups.encode(pa.array(np.asarray(grouping["group"], dtype=object), pa.string()))
            given = grouping.get("cc_level")
            cc = np.full(n, np.nan) if given is None else np.asarray(given, dtype=np.float64)
            if grouping.get("points") is not None:
                extra["points"] = np.asarray(grouping["points"], dtype=np.float64)
        if self.spill is None:
            self._open(grouping is None or grouping.get("cc_level") is not None, "points" in extra, "drg" in extra)
        assert self.spill is not None

        def coded(labels: _Labels, name: str, values=None) -> np.ndarray:
            if values is None and name not in names:
                return np.full(n, -1, np.int32)
            return labels.encode(values if values is not None else cases[name])

        hospital = coded(self.hospitals, "hospital_id")
        dx = coded(self.dx, "diagnoses", first_codes(cases["diagnoses"]))
        px = coded(self.px, "procedures", first_codes(cases["procedures"]) if "procedures" in names else None)
        admission = _days(cases["admission_date"]) if "admission_date" in names else np.full(n, np.nan)
        discharge = _days(cases["discharge_date"]) if "discharge_date" in names else np.full(n, np.nan)
        los, cost = float_column(cases, "los_days"), float_column(cases, "total_cost")
        cost_null = np.isnan(cost) & ~np.isnan(float_column(cases, "total_cost", 0.0))  # null, not NaN
        mode = float_column(cases, "discharge_mode", 0).astype(np.int16)
        case_id = pc.cast(cases["case_id"], pa.string())
        case_id = case_id.combine_chunks() if isinstance(case_id, pa.ChunkedArray) else case_id
        patient = self._patients(cases)

        self.any["patient_id"] |= bool(patient.null_count < n)
        self.any["admission_date"] |= bool((~np.isnan(admission)).any())
        self.any["discharge_date"] |= bool((~np.isnan(discharge)).any())
        self.any["los_days"] |= bool((~np.isnan(los)).any())
        g, h, d = len(self.groups), len(self.hospitals), len(self.dx)
        self.group_size = _count(self.group_size, group, g)
        self.group_deaths = _count(self.group_deaths, group, g, mode == DISCHARGE_DEATH)
        self.group_costs = _count(self.group_costs, group, g, ~np.isnan(cost))
        self.group_los = _count(self.group_los, group, g, ~np.isnan(los))
        self.hospital_cases = _count(self.hospital_cases, hospital, h)
        known = (dx >= 0) & (hospital >= 0) & ~np.isnan(cc)
        self.dx_known = _count(self.dx_known, dx, d, known)
        self.dx_cc = _count(self.dx_cc, dx, d, known & (cc >= 1))
        self.dx_mcc = _count(self.dx_mcc, dx, d, known & (cc >= 2))
        self.hospital_cc = _count(self.hospital_cc, hospital, h, known & (cc >= 1))
        self.hospital_mcc = _count(self.hospital_mcc, hospital, h, known & (cc >= 2))
        if "drg" in extra:
            calibrated = ~np.isnan(np.where(cost_null, 0.0, cost))
            self.drg_costs = _count(self.drg_costs, extra["drg"], len(self.drgs), calibrated)

        self.spill.append(group=group, hospital=hospital, dx=dx, cost=cost, cost_null=cost_null, los=los,
                          mode=mode, cc=cc, **extra)
        for start in range(0, n, self.chunk_rows):
            part = min(self.chunk_rows, n - start)
            self.ids.write_table(pa.table([case_id.slice(start, part), patient.slice(start, part)],
                                          schema=_ID_SCHEMA))
            self.sizes.append(part)
        self._stays(patient, case_id, admission, discharge, group, hospital, dx, px)
        self.cases += n

    def _open(self, cc: bool, points: bool, drg: bool) -> None:
        """The spill's columns: MCC/CC levels given or not, and per case its points or its DRG for the weights."""
        self.has_cc, self.has_points, self.calibrate = cc, points or drg, drg
        self.spill = _Spill(self.folder, {
            "group": np.int32, "hospital": np.int32, "dx": np.int32, "cost": np.float64, "cost_null": np.int8,
            "los": np.float64, "mode": np.int16, "cc": np.float64,
            **({"points": np.float64} if points else {}), **({"drg": np.int32} if drg else {})})

    def _grouped(self, cases: pa.Table, extra: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """`supervise.screen_inputs` of a piece: CHS-DRG groups and MCC/CC levels; the DRGs for the weights
        (`extra['drg']`), or the DIP catalogue's groups and their points (`extra['points']`)."""
        from dipsim.grouping.drg import group_table

        drg = group_table(cases, self.scheme)
        cc = drg["cc_level"].to_numpy(zero_copy_only=False).astype(np.float64)
        if self.catalog is not None:
            from dipsim.grouping.dip import group_dip_table

            grouped = group_dip_table(cases, self.catalog)
            extra["points"] = pc.fill_null(grouped["dip_points"], 0.0).to_numpy(zero_copy_only=False)
            return self.groups.encode(grouped["dip_group"]), cc
        codes = drg["drg"]
        extra["drg"] = self.drgs.encode(codes)
        return self.groups.encode(pc.if_else(pc.equal(codes, "0000"), pa.scalar(None, pa.string()), codes)), cc

    @staticmethod
    def _patients(cases: pa.Table) -> pa.Array:
        if "patient_id" not in cases.column_names:
            return pa.nulls(cases.num_rows, pa.string())
        column = pc.cast(cases["patient_id"], pa.string())
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)

    def _stays(self, patient: pa.Array, case_id: pa.Array, admission, discharge, group, hospital, dx, px) -> None:
        """The stays of patients known, each to the bucket of its patient id's hash."""
        has = np.flatnonzero(pc.is_valid(patient).to_numpy(zero_copy_only=False))
        if not len(has):
            return
        bucket = (_hash(patient.take(pa.array(has))) % np.uint64(self.buckets)).astype(np.int64)
        order = has[np.argsort(bucket, kind="stable")]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(bucket, minlength=self.buckets))])
        take = pa.array(order)
        rows = self.cases + order
        table = pa.table([patient.take(take), case_id.take(take), rows, admission[order], discharge[order],
                          group[order], hospital[order], dx[order], px[order]], schema=_STAY_SCHEMA)
        for b in range(self.buckets):
            if bounds[b + 1] > bounds[b]:
                self.stays[b].write_table(table.slice(bounds[b], bounds[b + 1] - bounds[b]))

    # -------------------------------------------------- the passes over the spill

    def chunks(self, *names: str) -> Iterator[dict[str, np.ndarray]]:
        assert self.spill is not None
        return self.spill.chunks(names, self.sizes)

    def finish(self, flags: Callable[[pa.Table], None]) -> StreamedScreens:
        if self.spill is None:  # no piece: a region grouped here
            self._open(True, self.catalog is not None, self.catalog is None)
        assert self.spill is not None
        self.spill.close()
        pa.default_memory_pool().release_unused()  # what the reader held (a folder's earlier case ids) goes back
        self.ids.close()
        for writer in self.stays:
            writer.close()
        n = self.cases
        g, h, d = len(self.groups), len(self.hospitals), len(self.dx)
        self.group_size, self.group_deaths = _grown(self.group_size, g), _grown(self.group_deaths, g)
        self.hospital_cases = _grown(self.hospital_cases, h)
        for name in ("dx_known", "dx_cc", "dx_mcc"):
            setattr(self, name, _grown(getattr(self, name), d))
        self.hospital_cc, self.hospital_mcc = _grown(self.hospital_cc, h), _grown(self.hospital_mcc, h)
        skipped: dict[str, str] = {}

        def need(screen: str, *columns: str) -> bool:
            missing = [c for c in columns if n and not self.any[c]]
            if missing:
                skipped[screen] = f"the cases have no {', '.join(missing)}"
            return not missing

        dated = ("patient_id", "admission_date", "discharge_date")
        run = {"split_readmission": need("split_readmission", *dated), "low_standard": need("low_standard", "los_days"),
               "long_stay": need("long_stay", "los_days"), "five_same": need("five_same", *dated)}
        min_cases = self.get("supervision.min_group_cases")
        median_cost = median_los = None
        if run["low_standard"] or run["long_stay"]:
            median_cost, median_los = self._medians(min_cases, run["low_standard"], run["long_stay"])
        low_risk, rate = self._low_risk(min_cases)
        if self.has_cc:
            indicators, flagged, share = self._upcoding(self._weights() if self.calibrate else None)
        else:
            skipped["upcoding"] = "no MCC/CC levels (group the cases with a CHS-DRG scheme)"
            indicators, flagged, share = pd.DataFrame(index=range(h)), np.zeros(h, bool), np.zeros(d)
        counts = {s: np.zeros(h, np.int64) for s in SCREENS}
        hits = self._repeats(run, counts)
        run["upcoding"] = self.has_cc
        row_flags = self._row_flags(run, median_cost, median_los, low_risk, rate, flagged, share, indicators, counts)

        flag_counts = dict.fromkeys(SCREENS, 0)
        for screen in ("split_readmission", "low_standard", "long_stay", "five_same", "low_risk_death", "upcoding"):
            parts = hits.get(screen) if screen in hits else row_flags.get(screen)
            for part in parts or ():
                flag_counts[screen] += part.num_rows
                flags(part)
        hospitals = pd.DataFrame({"hospital_id": self.hospitals.array(), "cases": self.hospital_cases})
        hospitals = pd.concat([hospitals, indicators], axis=1)
        for screen in SCREENS:
            if run.get(screen, True):
                hospitals[screen] = counts[screen]
        return StreamedScreens(hospitals.sort_values("hospital_id", ignore_index=True), flag_counts, skipped, n)

    def _medians(self, min_cases: int, cost: bool, los: bool):
        """Each group's median cost and LOS (NaN for a group under `min_cases` cases), as `_group_median`: the
        middle value, or the mean of the two middle values (pandas' (upper + lower) / 2)."""
        g = len(self.groups)
        result: list[np.ndarray | None] = []
        for name, wanted, sizes in (("cost", cost, self.group_costs), ("los", los, self.group_los)):
            sizes = _grown(sizes, g)
            if not wanted:
                result.append(None)
                continue
            usable = (self.group_size >= min_cases) & (sizes > 0)
            ranks = np.stack([sizes // 2, np.where(sizes % 2, sizes // 2, sizes // 2 - 1)], axis=1)
            ranks = np.where(usable[:, None], ranks, -1)

            def pairs(name=name):
                for chunk in self.chunks("group", name):
                    yield chunk["group"].astype(np.int64), chunk[name]

            values = _select(pairs, ranks)
            result.append(np.where(usable, (values[:, 0] + values[:, 1]) / 2, np.nan))
        return result

    def _low_risk(self, min_cases: int):
        """Groups whose ln(mortality) z-score is below `supervision.low_risk_z`, and each group's mortality."""
        size, deaths = self.group_size, self.group_deaths.astype(np.float64)
        rate = deaths / np.maximum(size, 1)
        usable = (size >= min_cases) & (rate > 0)
        low_risk = np.zeros(len(rate), bool)
        if usable.sum() > 1 and np.log(rate[usable]).std() > 0:
            log_rate = np.log(rate[usable])
            z = (log_rate - log_rate.mean()) / log_rate.std()
            low_risk[np.flatnonzero(usable)[z < self.get("supervision.low_risk_z")]] = True
        return low_risk, rate

    def _weights(self) -> np.ndarray:
        """Each DRG's RW as `weights.calibrate_weights(drg, cost)` computes it (IQR trimming), NaN for 0000."""
        k = len(self.drgs)
        valid = ~np.char.startswith(np.array(self.drgs.labels, dtype=str), "0000") if k else np.zeros(0, bool)
        m = _grown(self.drg_costs, k)

        def pairs():
            for chunk in self.chunks("drg", "cost", "cost_null"):
                code = chunk["drg"].astype(np.int64)
                yield np.where(valid[code], code, -1), np.where(chunk["cost_null"] == 1, 0.0, chunk["cost"])

        # pandas' quantile q of n values: x[i] + (x[i + 1] - x[i]) * frac, i + frac = q * (n - 1)
        position = {q: q * (m - 1).astype(np.float64) for q in (0.25, 0.75)}
        index = {q: np.floor(p).astype(np.int64) for q, p in position.items()}
        ranks = np.stack([index[0.25], np.minimum(index[0.25] + 1, m - 1), index[0.75],
                          np.minimum(index[0.75] + 1, m - 1)], axis=1)
        values = _select(pairs, np.where((m > 0)[:, None], ranks, -1))
        quartile = {}
        for q, (lo, hi) in ((0.25, (0, 1)), (0.75, (2, 3))):
            frac = position[q] - index[q]
            exact = (frac == 0) | (index[q] + 1 >= m)
            quartile[q] = np.where(exact, values[:, lo], values[:, lo] + (values[:, hi] - values[:, lo]) * frac)
        iqr = quartile[0.75] - quartile[0.25]
        low, high = quartile[0.25] - 1.5 * iqr, quartile[0.75] + 1.5 * iqr

        def kept():
            for code, cost in pairs():
                keep = code >= 0
                c = np.maximum(code, 0)
                yield code, cost, keep & (cost >= low[c]) & (cost <= high[c])

        total, compensation, used = np.zeros(k), np.zeros(k), np.zeros(k, np.int64)
        for code, cost, keep in kept():
            _kahan_add(np.maximum(code, 0), cost, keep, total, compensation, used)
        n_kept = int(used.sum())
        overall = _pairwise_sum(n_kept, _Take(cost[keep] for _, cost, keep in kept())) / n_kept if n_kept \
            else np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / used
        return np.where(valid & (used >= 1), mean / overall, np.nan)

    def _upcoding(self, rw: np.ndarray | None):
        """`supervise._upcoding`'s per-hospital indicators, its flagged hospitals, and each diagnosis's MCC/CC
        share (a case's `share`)."""
        d, h = len(self.dx), len(self.hospitals)
        per_dx = np.maximum(self.dx_known, 1)
        p = {"any_cc": self.dx_cc / per_dx, "mcc": self.dx_mcc / per_dx}
        observed = {"any_cc": self.hospital_cc, "mcc": self.hospital_mcc}
        expected = {name: np.zeros(h) for name in p}
        variance = {name: np.zeros(h) for name in p}
        pts_sum, pts_square, pts_count, pts_observed = np.zeros(d), np.zeros(d), np.zeros(d, np.int64), np.zeros(h)
        names = ("dx", "hospital", "cc", *(("drg",) if rw is not None else ("points",) if self.has_points else ()))
        for chunk in self.chunks(*names):
            dx, hospital = chunk["dx"].astype(np.int64), chunk["hospital"].astype(np.int64)
            known = (dx >= 0) & (hospital >= 0) & ~np.isnan(chunk["cc"])
            dx, hospital = dx[known], hospital[known]
            for name, share in p.items():
                _add_at(expected[name], hospital, share[dx])
                _add_at(variance[name], hospital, share[dx] * (1 - share[dx]))
            if not self.has_points:
                continue
            pts = rw[chunk["drg"][known]] if rw is not None else chunk["points"][known]
            has = np.isfinite(pts) & (pts > 0)
            _add_at(pts_sum, dx[has], pts[has])
            _add_at(pts_square, dx[has], pts[has] ** 2)
            pts_count += np.bincount(dx[has], minlength=d)
            _add_at(pts_observed, hospital[has], pts[has])
        count = np.maximum(pts_count, 1)
        mean = pts_sum / count
        var = np.maximum(pts_square / count - mean ** 2, 0.0)
        pts_expected, pts_variance = np.zeros(h), np.zeros(h)
        for chunk in self.chunks(*names) if self.has_points else ():
            dx, hospital = chunk["dx"].astype(np.int64), chunk["hospital"].astype(np.int64)
            known = (dx >= 0) & (hospital >= 0) & ~np.isnan(chunk["cc"])
            dx, hospital = dx[known], hospital[known]
            pts = rw[chunk["drg"][known]] if rw is not None else chunk["points"][known]
            has = np.isfinite(pts) & (pts > 0)
            _add_at(pts_expected, hospital[has], mean[dx[has]])
            _add_at(pts_variance, hospital[has], var[dx[has]])
        out = {}
        rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = [
            (name, observed[name], expected[name], variance[name]) for name in p]
        if self.has_points:
            rows.append(("points", pts_observed, pts_expected, pts_variance))
        for name, o, e, v in rows:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"{name}_ratio"] = np.round(np.where(e > 0, o / e, np.nan), 4)
                out[f"{name}_z"] = np.round(np.where(v > 0, (o - e) / np.sqrt(v), np.nan), 2)
        table = pd.DataFrame(out)
        excess, z_min = self.get("supervision.upcoding_excess"), self.get("supervision.upcoding_z")
        flagged = (((table["any_cc_ratio"] >= excess) & (table["any_cc_z"] >= z_min))
                   | ((table["mcc_ratio"] >= excess) & (table["mcc_z"] >= z_min))).to_numpy()
        table["upcoding_flag"] = flagged
        return table, flagged, p["any_cc"]

    # -------------------------------------------------- repeats, bucket by bucket

    def _repeats(self, run: dict[str, bool], counts: dict[str, np.ndarray]) -> dict[str, Iterator[pa.Table]]:
        """The flag lines of the repeat screens that run, in `_repeats`' order (patients by first row, then each
        patient's stays by admission, discharge and row)."""
        screens = [s for s in ("split_readmission", "five_same") if run[s]]
        if not screens:
            return {}
        prefixes = tuple(p.strip() for p in self.get("supervision.readmission_exempt_diagnoses").split(",")
                         if p.strip())
        exempt = np.array([str(label).startswith(prefixes) for label in self.dx.labels], bool) if prefixes \
            and len(self.dx) else None
        split_keys = ("group", "hospital") if self.get("supervision.readmission_same_hospital") else ("group",)
        days = {"split_readmission": self.get("supervision.readmission_days"),
                "five_same": self.get("supervision.five_same_days")}
        ranges = max(1, self.buckets)
        writers: dict[tuple[str, int], pa.ipc.RecordBatchStreamWriter] = {}
        for b in range(self.buckets):
            with _read_stream(self.folder / f"stays-{b}.arrows") as reader:
                stays = reader.read_all()
            (self.folder / f"stays-{b}.arrows").unlink()
            if not stays.num_rows:
                continue
            bucket = _Bucket(stays)
            for screen in screens:
                split = screen == "split_readmission"
                hit = bucket.hits(split_keys if split else ("hospital", "dx", "px"), days[screen],
                                  exempt if split else None)
                flagged = hit.column("hospital").to_numpy()
                counts[screen] += np.bincount(flagged[flagged >= 0], minlength=len(counts[screen]))
                part = hit.column("first_row").to_numpy() * ranges // max(self.cases, 1)
                for r in np.unique(part):
                    if (screen, r) not in writers:
                        writers[screen, r] = pa.ipc.new_stream(str(self.folder / f"{screen}-{r}.arrows"),
                                                         _HIT_SCHEMA)
                    writers[screen, r].write_table(hit.filter(pa.array(part == r)))
        for writer in writers.values():
            writer.close()
        return {screen: self._hit_lines(screen, sorted(r for s, r in writers if s == screen)) for screen in screens}

    def _hit_lines(self, screen: str, ranges: list[int]) -> Iterator[pa.Table]:
        groups, dxs, pxs = self.groups.array(), self.dx.array(), self.px.array()
        for r in ranges:
            path = self.folder / f"{screen}-{r}.arrows"
            with _read_stream(path) as reader:
                hit = reader.read_all()
            path.unlink()
            hit = hit.take(pa.array(np.lexsort((hit.column("position").to_numpy(),
                                                hit.column("first_row").to_numpy()))))
            gap = hit.column("gap").to_numpy()
            code, code2 = hit.column("code").to_numpy(), hit.column("code2").to_numpy()
            if screen == "split_readmission":
                reasons = [f"readmitted {g:.0f} days after discharge to the same group {grp}"
                           for g, grp in zip(gap, groups[code])]
            else:
                dx = np.where(code >= 0, dxs[np.maximum(code, 0)] if len(dxs) else None, None)
                px = np.where(code2 >= 0, pxs[np.maximum(code2, 0)] if len(pxs) else None, None)
                reasons = [f"same patient, hospital, diagnosis {d} and procedure {p or '(none)'} again {g:.0f} "
                           "days later" for g, d, p in zip(gap, dx, px)]
            yield self._lines(hit.column("case_id"), hit.column("hospital").to_numpy(), hit.column("patient"),
                              screen, reasons, hit.column("related_case_id"))

    def _lines(self, case_id, hospital: np.ndarray, patient, screen: str, reasons: list[str], related=None
               ) -> pa.Table:
        n = len(reasons)
        labels = self.hospitals.arrow()
        hospital_id = labels.take(pa.array(hospital, pa.int64(), mask=hospital < 0)) if len(labels) else \
            pa.nulls(n, pa.string())
        return pa.table([case_id, hospital_id, patient, pa.repeat(pa.scalar(screen, pa.string()), n),
                         pa.array(reasons, pa.string()), related if related is not None else pa.nulls(n, pa.string())],
                        schema=FLAG_SCHEMA)

    # -------------------------------------------------- the screens of one case, in row order

    def _row_flags(self, run, median_cost, median_los, low_risk, rate, flagged, share, indicators, counts
                   ) -> dict[str, Iterator[pa.Table]]:
        """The flag lines of low_standard, long_stay, low_risk_death and upcoding, in row order, written to a
        file each in one pass over the spill and the ids."""
        screens = [s for s in ("low_standard", "long_stay", "low_risk_death", "upcoding") if run.get(s, True)]
        writers = {s: pa.ipc.new_stream(str(self.folder / f"{s}.arrows"), FLAG_SCHEMA) for s in screens}
        groups, dxs = self.groups.array(), self.dx.array()
        ratio_any = indicators["any_cc_ratio"].to_numpy() if "any_cc_ratio" in indicators else np.zeros(0)
        params = {path: self.get(path) for path in (
            "supervision.low_standard_los_days", "supervision.low_standard_cost_ratio",
            "supervision.long_stay_ratio", "supervision.long_stay_min_days")}
        reader = _read_stream(self.folder / "ids.arrows")
        with reader:
            for chunk, ids in zip(self.chunks("group", "hospital", "dx", "cost", "los", "mode", "cc"), reader):
                group, hospital = chunk["group"].astype(np.int64), chunk["hospital"].astype(np.int64)
                cost, los, mode, cc = chunk["cost"], chunk["los"], chunk["mode"], chunk["cc"]
                g = np.maximum(group, 0)
                found: dict[str, tuple[np.ndarray, list[str]]] = {}
                if "low_standard" in writers:
                    median = np.where(group >= 0, median_cost[g] if len(median_cost) else np.nan, np.nan)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        ratio = cost / np.where(median > 0, median, np.nan)
                    idx = np.flatnonzero((los <= params["supervision.low_standard_los_days"])
                                         & (ratio < params["supervision.low_standard_cost_ratio"])
                                         & (mode != DISCHARGE_DEATH) & ~np.isin(mode, TRANSFER_MODES))
                    found["low_standard"] = (idx, [
                        f"LOS {d:.0f} days, cost {x:.2f} = {r:.0%} of the group's median {m:.2f}"
                        for d, x, r, m in zip(los[idx], cost[idx], ratio[idx], median[idx])])
                if "long_stay" in writers:
                    median = np.where(group >= 0, median_los[g] if len(median_los) else np.nan, np.nan)
                    with np.errstate(invalid="ignore"):
                        idx = np.flatnonzero((los > params["supervision.long_stay_ratio"] * median)
                                             & (los >= params["supervision.long_stay_min_days"]))
                    found["long_stay"] = (idx, [f"LOS {d:.0f} days = {d / m:.1f} x the group's median {m:g}"
                                                for d, m in zip(los[idx], median[idx])])
                grouped = group >= 0
                idx = np.flatnonzero((mode == DISCHARGE_DEATH) & grouped & (low_risk[g] if len(low_risk) else False))
                found["low_risk_death"] = (idx, [f"death in the low-risk group {grp} (regional mortality {r:.2%})"
                                                 for grp, r in zip(groups[group[idx]], rate[group[idx]])])
                dx = chunk["dx"].astype(np.int64)
                known = (dx >= 0) & (hospital >= 0) & ~np.isnan(cc)
                h, d = np.maximum(hospital, 0), np.maximum(dx, 0)
                pick = known & (flagged[h] if len(flagged) else False) & (cc >= 1) & \
                    (share[d] < 0.5 if len(share) else False)
                idx = np.flatnonzero(pick)
                found["upcoding"] = (idx, [
                    f"MCC/CC coded for {label}, which the region codes with MCC/CC in {s:.0%} of its stays; the "
                    f"hospital codes MCC/CC {r:.2f} x as often as expected"
                    for label, s, r in zip(dxs[dx[idx]], share[dx[idx]], ratio_any[hospital[idx]])])
                for screen, (idx, reasons) in found.items():
                    at = hospital[idx]
                    counts[screen] += np.bincount(at[at >= 0], minlength=len(counts[screen]))
                    if len(idx):
                        take = pa.array(idx)
                        writers[screen].write_table(self._lines(ids.column("case_id").take(take), at,
                                                                ids.column("patient").take(take), screen, reasons))
        for writer in writers.values():
            writer.close()
        return {screen: self._read_lines(screen) for screen in screens}

    def _read_lines(self, screen: str) -> Iterator[pa.Table]:
        path = self.folder / f"{screen}.arrows"
        with _read_stream(path) as reader:
            for batch in reader:
                yield pa.Table.from_batches([batch])


_BYTE_WEIGHTS = np.random.default_rng(17).integers(1, 1 << 63, 64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _hash(text: pa.Array) -> np.ndarray:
    """A 64-bit hash of each non-empty string (the same bytes, the same hash, in any piece): each byte times a
    weight of its position, summed, then mixed (splitmix64's finaliser)."""
    text = pc.cast(text, pa.string())
    offsets = np.frombuffer(text.buffers()[1], np.int32)[text.offset:text.offset + len(text) + 1].astype(np.int64)
    if not len(text):
        return np.zeros(0, np.uint64)
    data = np.frombuffer(text.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    starts, lengths = offsets[:-1] - offsets[0], np.diff(offsets)
    position = np.arange(len(data)) - np.repeat(starts, lengths)
    h = np.add.reduceat(data.astype(np.uint64) * _BYTE_WEIGHTS[position % 64], starts) if len(data) else \
        np.zeros(len(text), np.uint64)
    h = np.where(lengths > 0, h, np.uint64(0))
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _read_stream(path: Path) -> pa.ipc.RecordBatchStreamReader:
    """An Arrow stream file read with plain reads (a memory map would keep every page read resident: the ids of all
    cases by the end of a pass)."""
    return pa.ipc.open_stream(pa.OSFile(str(path), "rb"))


class _Bucket:
    """One bucket's stays (all stays of its patients) in `supervise._repeats`' order: each patient's stays by
    admission, discharge and row; sorted once for both repeat screens."""

    def __init__(self, stays: pa.Table):
        self.stays = stays
        patient = pc.dictionary_encode(stays.column("patient").combine_chunks()).indices.to_numpy().astype(np.int64)
        row = stays.column("row").to_numpy()
        self.admission, self.discharge = stays.column("admission").to_numpy(), stays.column("discharge").to_numpy()
        self.column = {name: stays.column(name).to_numpy() for name in ("group", "hospital", "dx", "px")}
        first = row[np.unique(patient, return_index=True)[1]]  # rows ascend within a bucket: each patient's first
        self.first_row = first[patient]
        self.order = np.lexsort((row, self.discharge, self.admission, patient))
        self.same_patient = patient[self.order][:-1] == patient[self.order][1:]
        self.gap = self.admission[self.order][1:] - self.discharge[self.order][:-1]

    def hits(self, keys: tuple[str, ...], days: int, exempt: np.ndarray | None) -> pa.Table:
        """Consecutive stays of a patient with equal `keys` (both missing equal; a stay without a group matches
        none) whose gap is 0 to `days` days, neither `exempt` by its principal diagnosis. The hit lines
        (_HIT_SCHEMA) name the flagged stay: the earlier for a split readmission (`keys` with the group), the later
        for "five same"."""
        order, same = self.order, self.same_patient.copy()
        for key in keys:
            k = self.column[key][order]
            same &= k[:-1] == k[1:]
            if key == "group":
                same &= k[:-1] >= 0
        with np.errstate(invalid="ignore"):
            hit = same & (self.gap >= 0) & (self.gap <= days)
        if exempt is not None:
            dx = self.column["dx"][order]
            ex = exempt[np.maximum(dx, 0)] & (dx >= 0)
            hit &= ~ex[:-1] & ~ex[1:]
        at = np.flatnonzero(hit)
        earlier, later = order[at], order[at + 1]
        split = "group" in keys
        flagged, related = (earlier, later) if split else (later, earlier)
        take, other = pa.array(flagged), pa.array(related)
        code = self.column["group" if split else "dx"][flagged]
        ids = self.stays.column("case_id")
        return pa.table([self.first_row[flagged], at.astype(np.int64), ids.take(take), ids.take(other),
                         self.stays.column("patient").take(take), self.column["hospital"][flagged], self.gap[at],
                         code, self.column["px"][flagged]], schema=_HIT_SCHEMA)


def screen_stream(pieces: Iterable[pa.Table], policy, scheme="chs-drg-1.1", catalog=None, on=None,
                  flags: Callable[[pa.Table], None] | None = None, buckets: int | None = None,
                  chunk_rows: int = CHUNK_ROWS, work_dir: str | Path | None = None) -> StreamedScreens:
    """`supervise.screen_region` over the accepted cases given in `pieces` (in order), in bounded memory; or
    `supervise.screen_cases`, when each piece is a (table, grouping) pair, the grouping a dict of the piece's `group`
    and optionally `cc_level` and `points` (all pieces alike). The flag lines go to `flags` (tables of
    FLAG_COLUMNS, in the reference's order), the rest is returned. `buckets` (default 8): the patient buckets,
    `bucket_count` of the expected cases; `work_dir`: where the temporary folder goes (the system's by default)."""
    with tempfile.TemporaryDirectory(prefix=".dipsim-screen-", dir=work_dir) as folder:
        stream = _Stream(Path(folder), policy, scheme, catalog, on, buckets or 8, chunk_rows)
        for piece in pieces:
            if isinstance(piece, tuple):
                stream.add(*piece)
            else:
                stream.add(piece)
        return stream.finish(flags or (lambda part: None))
