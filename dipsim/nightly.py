"""The nightly year-to-date point-value recalculation (每日点值测算): safe to run from cron, never half-written.

    dipsim nightly --claims DIR --policy P --hospitals H [--catalog CAT] --state DIR --out DIR

1. **Lock**: `STATE/lock` holds the running process's id; a second run exits with code 4. A lock left by a process
   that no longer exists (killed) is taken over.
2. **Partitions**: every Parquet file under the claims folder is hashed (sha256); a partition whose hash is in
   `STATE/partitions/` was grouped before and is read back; only new or changed ones are validated and grouped
   (each cached file written atomically, so a failure part-way keeps the partitions already done), two at a time
   in worker processes from a few million cases on (`_Workers`; `--processes`), with the same files as in one.
   **Duplicates**: a case id is paid once in the year. Each cached partition keeps its case ids' 64-bit hashes,
   sorted (`STATE/partitions/ids/`); every run compares them across all partitions, cached tonight or before
   (`_repeated_case_ids`), and a case whose id an earlier partition (sorted path order) has is rejected with the
   file and row of the first and left out of the settlement: a month's file copied beside itself, or January's
   folder copied as December, changes nothing but the rejects.
3. **Year to date**: all cached partitions are priced under the policy and settled with the year-to-date share of
   the annual budget: pro-rata by months (m / 12), or by last year's seasonality (`--seasonality`, the share of the
   year's cost in each month). The point value that spends that share is the projection of the year's value.
   A hospital's growth-cap reference (`reference_points`, `payment.caps`) is taken at the same share.
4. **Output**: the results go to `OUT/runs/<id>/` (id = hash of the inputs, policy and version), written in a
   temporary folder and renamed into place, then `OUT/latest` (a symbolic link) is switched atomically. A failure
   at any step leaves the previous `latest` as it was. A rerun with the same data gives the same id and
   byte-identical files (the manifest holds no clock time; `STATE/nightly.log` has the timings).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dipsim import __version__
from dipsim.grouping.grouped_cases import GroupedCases
from dipsim.io.case_id_hashes import case_id_hashes
from dipsim.io.errors import DipsimError, InputError
from dipsim.io.readers import validated_stamp
from dipsim.monitor import budget_share
from dipsim.schema import CASE_SCHEMA, REJECT_SCHEMA

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

EXIT_LOCKED = 4
BATCH_ROWS = 1 << 20  # cases validated, grouped and priced at a time: what bounds the chunked engine's memory
# `dipsim nightly` reads, groups and prices partitions in this many worker processes (`_Workers`), each
# `BATCH_ROWS / processes` cases at a time: as many cases in flight as one process held. --processes or
# DIPSIM_NIGHTLY_PROCESSES sets it (1: all in this process); by default 2 (as the CPUs allow) when the partitions
# to do hold PARALLEL_MIN_ROWS cases or more: a worker's start (imports, Numba's cache) costs about 2 s of CPU,
# repaid from a few million cases on.
PROCESSES = 2
PROCESSES_ENV = "DIPSIM_NIGHTLY_PROCESSES"
PARALLEL_MIN_ROWS = 2_000_000
# Of the state's cache files; a new format groups every partition again (3: cases without a pool or hospital
# rejected; 4: each case's row in its partition, and the sorted case-id hashes beside the file; 5: the case columns
# the payment chain reads (discharge date for dated parameters, stay and ventilation for special-case review, the
# principal codes, patient and dates for the supervision screens), and DRG group points as relative weights).
CACHE_FORMAT = 5
COUNTS_KEY = "dipsim.nightly"  # cache-file metadata: the partition's row counts, months and last discharge day
# The validated case columns kept in the cache: what `payment.chain.CaseSet` and the supervision screens read (the
# screens read the principal diagnosis and procedure only: the lists are cut to their first code).
CASE_COLUMNS = ("case_id", "hospital_id", "patient_id", "pool", "insurance_type", "admission_date", "discharge_date",
                "los_days", "discharge_mode", "ventilation_hours", "total_cost", "patient_paid", "diagnoses",
                "procedures")


class LockedError(DipsimError):
    exit_code = EXIT_LOCKED


@dataclass
class NightlyResult:
    run_dir: Path
    run_id: str
    partitions: int
    grouped_now: int  # partitions grouped in this run (the others came from the state's cache)
    months: int
    budget_share: float
    totals: dict  # rows_read = accepted + rejected; duplicates_of_earlier_partitions (among the rejected)


class _Lock:
    def __init__(self, state: Path):
        self.path = state / "lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                return self
            except FileExistsError:
                try:
                    holder = int(self.path.read_text() or "0")
                except (OSError, ValueError):
                    holder = 0
                if holder and _alive(holder):
                    raise LockedError(f"{self.path}: another nightly run (process {holder}) holds the lock") from None
                self.path.unlink(missing_ok=True)  # left by a killed run: take it over
        raise LockedError(f"{self.path}: cannot take the lock")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_partition(path: Path, target: Path, catalog, scheme: str, batch_rows: int | None = None) -> None:
    """Validate and group one partition, `batch_rows` (default `BATCH_ROWS`) cases at a time, into its cache file
    `target`: the per-case columns the year-to-date settlement needs and each case's row in the partition, with the
    partition's row counts and months in the file's metadata. Its rejects and its sorted case-id hashes go beside
    it first (`rejects/<name>`, `ids/<name>.npy`); `target` appears last and whole (atomic), so a cache file that
    exists is complete. Only the columns `read_columns` names are read, code lists dictionary-encoded (validated
    once per distinct code): the rejects are those of validating every column (`dipsim settle`'s)."""
    from dipsim.io.validate import iter_load_cases, rejected_rows
    from dipsim.io.writers import atomic_path, write_parquet
    from dipsim.payment.chain import discharge_months
    from dipsim.region import settleable

    rejects, hashes, rows_read, months, last_day = [], [], 0, set(), None
    with atomic_path(target) as tmp:
        writer = None
        try:
            for result in iter_load_cases(path, batch_rows or BATCH_ROWS, columns=read_columns(path),
                                          dictionary_codes=True):
                settled = settleable(result.accepted, result.accepted_rows, result.accepted_sources)
                table = _grouped_columns(settled.cases, catalog, scheme)
                table = table.append_column("row", pa.array(settled.rows, pa.int64()))
                hashes.append(case_id_hashes(table["case_id"]))
                writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd", write_statistics=False,
                                                    use_dictionary=[n for n in table.column_names
                                                                    if n not in _DISTINCT_COLUMNS])
                writer.write_table(table)
                rejects += [result.rejects, settled.rejects]
                rows_read += result.rows_read
                months.update(np.unique(discharge_months(table["discharge_date"])).tolist())
                last = pc.max(table["discharge_date"]).as_py()
                last_day = max(filter(None, (last_day, last)), default=None)
            rejected = pa.concat_tables(rejects) if rejects else REJECT_SCHEMA.empty_table()
            writer.add_key_value_metadata({COUNTS_KEY: json.dumps({
                "rows_read": rows_read, "rejected": rejected_rows(rejected),
                "months": sorted(months - {0}), "last_day": last_day.isoformat() if last_day else None})})
        finally:
            if writer is not None:
                writer.close()
        write_parquet(rejected, target.parent / "rejects" / target.name)
        with atomic_path(_ids_path(target)) as ids_tmp, open(ids_tmp, "wb") as f:
            np.save(f, np.sort(np.concatenate(hashes)))


# Case fields that validation only checks for length (a text cell longer than a spreadsheet holds: `validate.
# MAX_FIELD_CHARS`) and only warns about otherwise, and that the cache does not keep: not read and validated
# with the others, only their lengths checked first (`read_columns`). So are the columns no case field maps onto.
_LENGTH_ONLY = ("department", "insurer_drg")


def read_columns(path: Path) -> list[str] | None:
    """The case fields read from the raw partition `path` (canonical names; None: all its columns): all but
    `_LENGTH_ONLY` and the columns no field maps onto, unless one of those holds a text longer than validation
    allows (then it is read whole and its rows rejected as `dipsim settle` rejects them). Each left-out text column
    is read dictionary-encoded, one row group at a time, and only its distinct values' lengths looked at."""
    from dipsim.io.readers import parquet_metadata, parquet_selection
    from dipsim.io.validate import MAX_FIELD_CHARS

    columns = [name for name in CASE_SCHEMA.names if name not in _LENGTH_ONLY]
    footer = parquet_metadata(path)
    schema = footer.schema.to_arrow_schema()
    wanted, _ = parquet_selection(schema, columns, False, None, str(path))
    text = [f.name for f in schema if f.name not in (wanted or ()) and _is_text(f.type)]
    if not text:
        return columns
    file = pq.ParquetFile(path, metadata=footer, read_dictionary=text)
    for group in range(footer.num_row_groups):
        for column in file.read_row_group(group, columns=text).columns:
            for chunk in column.chunks:
                values = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
                if (pc.max(pc.binary_length(values)).as_py() or 0) > MAX_FIELD_CHARS:  # bytes >= characters
                    return None
    return columns


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _first_items(lists: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    """Each list cut to its first item, as `kind` (list<string>): `pc.list_slice(lists, 0, 1)` cast, taken at the
    lists' offsets (a list<dictionary<string>> through its indices), which is ten times faster."""
    out = []
    for chunk in lists.chunks:
        offsets = chunk.offsets.to_numpy(zero_copy_only=False)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else np.ones(len(chunk), bool)
        has = (offsets[1:] > offsets[:-1]) & valid
        at = pa.array(offsets[:-1][has].astype(np.int64))
        values = chunk.values
        first = (pa.DictionaryArray.from_arrays(values.indices.take(at), values.dictionary)
                 if pa.types.is_dictionary(values.type) else values.take(at))
        starts = np.zeros(len(chunk) + 1, np.int32)
        np.cumsum(has, out=starts[1:])
        out.append(pa.ListArray.from_arrays(pa.array(starts), pc.cast(first, kind.value_type),
                                            mask=pa.array(~valid) if chunk.null_count else None).cast(kind))
    return pa.chunked_array(out, kind)


# Cached columns whose values are (nearly) all different: Parquet's dictionary encoding would be tried on them and
# dropped page by page (a fifth of the writing time); the others repeat (hospitals, dates, codes, groups).
_DISTINCT_COLUMNS = ("case_id", "patient_id", "total_cost", "patient_paid", "row")


def _grouped_columns(cases: pa.Table, catalog, scheme: str) -> pa.Table:
    """The cached per-case columns of validated, settleable cases (`region.settleable`: each has a pool and a
    hospital, as in `dipsim settle`): `CASE_COLUMNS` (nulls where the claims lack one), the
    pool key (统筹区-险种) and the grouping (`grouping.grouped_cases`)."""
    from dipsim.grouping.grouped_cases import group_dip, group_drg

    grouped = group_dip(cases, catalog) if catalog is not None else group_drg(cases, scheme)
    columns = {}
    for name in CASE_COLUMNS:
        kind = CASE_SCHEMA.field(name).type
        column = cases[name] if name in cases.column_names else pa.nulls(cases.num_rows, kind)
        if name in ("diagnoses", "procedures") and isinstance(column, pa.ChunkedArray):
            columns[name] = _first_items(column, kind)
        else:
            columns[name] = pc.cast(pc.list_slice(column, 0, 1) if name in ("diagnoses", "procedures") else column,
                                    kind)
    # `payment.chain.case_pools`, kept in Arrow (every settleable case has a pool and an insurance type)
    pools = pc.binary_join_element_wise(*(pc.cast(cases[name], pa.string()) for name in ("pool", "insurance_type")),
                                        "-")
    return pa.table({**columns, "settlement_pool": pools,
                     **{name: values for name, values in grouped.arrays().items()},
                     "group": pa.array(grouped.group, pa.string())})  # not through numpy's fixed-width text


def _grouped(table: pa.Table, catalog) -> GroupedCases:
    """The grouping of cached cases (the group read as text or dictionary-encoded: `_texts`)."""
    arrays = {name: table[name].to_numpy(zero_copy_only=False)
              for name in ("group_points", "standard_cost", "tcm_group_case", "tcm_treated")}
    return GroupedCases(group=_texts(table["group"]), group_points=np.asarray(arrays["group_points"], np.float64),
                        standard_cost=np.asarray(arrays["standard_cost"], np.float64),
                        tcm_group_case=np.asarray(arrays["tcm_group_case"], bool),
                        tcm_treated=np.asarray(arrays["tcm_treated"], bool),
                        unit="points" if catalog is not None else "rw")


def _texts(column: pa.ChunkedArray) -> np.ndarray:
    """A text column without nulls as an object array of str; a dictionary-encoded one made from its distinct
    values (a few thousand groups, not a million strings converted)."""
    parts = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            parts.append(chunk.dictionary.to_numpy(zero_copy_only=False).astype(object)[
                chunk.indices.to_numpy(zero_copy_only=False)])
        else:
            parts.append(chunk.to_numpy(zero_copy_only=False).astype(object))
    return np.concatenate(parts) if parts else np.zeros(0, object)


def _check_configuration(files: list[Path], hospitals: pa.Table, hospitals_path, policy, log,
                         workers: _Workers | None = None) -> None:
    """Before any partition is grouped: every hospital of the claims priceable under the policy and every pool of
    the claims with an annual budget (read from the partitions' pool, insurance type and hospital columns only,
    partition by partition in `workers` when they take the job); a budget for a pool the claims do not have is
    logged as a warning."""
    from dipsim.region import partition_region, region_problems, unused_budgets

    found = None if workers is None else workers.map(_region_job, [[f] for f in files], list(map(_rows, files)))
    if found is None:
        pools, hospital_ids = partition_region(files)
    else:
        pools, hospital_ids = set().union(*(p for p, _ in found)), set().union(*(h for _, h in found))
    problems = region_problems(hospitals, hospital_ids, pools, [("", policy)],
                               budget_hint="set budget.total in the policy (the annual budget)")
    if problems:
        raise InputError(f"{hospitals_path} and the claims: {len(problems)} problem(s), found before grouping:\n  "
                         + "\n  ".join(problems))
    unused = unused_budgets(pools, policy)
    if unused:
        log(f"warning: budget.total has pool(s) {', '.join(unused)} that the claims do not have (pools of the "
            f"claims: {', '.join(sorted(pools))})")


def _ids_path(cached: Path) -> Path:
    """Where a cache file's sorted case-id hashes are."""
    return cached.parent / "ids" / f"{cached.stem}.npy"


def _shared_hashes(sorted_hashes: list[np.ndarray]) -> np.ndarray:
    """The hashes held by more than one of the partitions' sorted hash arrays (or twice by one), sorted. The hash
    range is cut into buckets of about `BATCH_ROWS` hashes of all partitions together; a bucket's slice of each
    array is found by binary search (the arrays are memory-mapped: only a few pages are read) and read from the
    file (`_hash_slice`), and the slices, each sorted, are merged (a stable sort finds them as runs): memory
    bounded by the bucket, whatever the year's size."""
    total = sum(len(h) for h in sorted_hashes)
    buckets = max(1, -(-total // BATCH_ROWS))
    lower = np.array([((1 << 64) * b) // buckets for b in range(buckets)], np.uint64)  # each bucket's first hash
    cuts = [np.append(np.searchsorted(h, lower), len(h)) for h in sorted_hashes]
    none = np.zeros(0, np.uint64)
    shared = [none]
    for b in range(buckets):
        together = np.sort(np.concatenate([none] + [_hash_slice(h, cut[b], cut[b + 1])
                                                    for h, cut in zip(sorted_hashes, cuts)]), kind="stable")
        shared.append(np.unique(together[1:][together[1:] == together[:-1]]))
    return np.concatenate(shared)


def _hash_slice(hashes: np.ndarray, start: int, stop: int) -> np.ndarray:
    """hashes[start:stop]; of a memory-mapped file read from the file, so that the pages of a year's hashes are
    not all left mapped in this process (they would count in its resident memory: 0.8 GB at 100M cases)."""
    if not isinstance(hashes, np.memmap) or hashes.filename is None or stop <= start:
        return np.asarray(hashes[start:stop])
    return np.fromfile(hashes.filename, hashes.dtype, stop - start,
                       offset=hashes.offset + start * hashes.dtype.itemsize)


def _repeated_case_ids(files: list[Path], cached: list[Path], claims: Path) -> list[tuple[np.ndarray, pa.Table]]:
    """Per partition, its cases whose id an earlier partition (sorted path order) has: their positions in its cache
    file (left out of the settlement) and their reject lines, with the file and row of the first. Candidates are
    the cases whose id hash another case shares (`_shared_hashes`); their ids are then compared, so a hash
    collision never drops a case. Partitions whose hashes hold no candidate are not read."""
    from dipsim.io.validate import _first_positions, duplicate_case_id_lines

    none = [(np.zeros(0, np.int64), REJECT_SCHEMA.empty_table())] * len(files)
    sorted_hashes = [np.load(_ids_path(c), mmap_mode="r") for c in cached]
    shared = _shared_hashes(sorted_hashes)
    if not len(shared):
        return none
    candidates = []
    for number, (hashes, cache) in enumerate(zip(sorted_hashes, cached)):
        at = np.minimum(np.searchsorted(hashes, shared), max(len(hashes) - 1, 0))
        if not len(hashes) or not (hashes[at] == shared).any():
            continue
        table = pq.read_table(cache, columns=["case_id", "row"])
        position = np.flatnonzero(np.isin(case_id_hashes(table["case_id"]), shared))
        candidates.append(pa.table({"partition": np.full(len(position), number, np.int64), "position": position,
                                    "row": table["row"].take(position),
                                    "case_id": table["case_id"].take(position).combine_chunks()}))
    candidates = pa.concat_tables(candidates).combine_chunks()
    first = _first_positions(candidates["case_id"].chunk(0))  # None: the shared hashes were collisions only
    if first is None:
        return none
    repeat = (first >= 0) & (first != np.arange(len(first)))
    partition, position, row = (candidates[c].to_numpy() for c in ("partition", "position", "row"))
    names = pa.array([f.relative_to(claims).as_posix() for f in files])
    lines = duplicate_case_id_lines(pa.array([str(f) for f in files]).take(pa.array(partition[repeat])),
                                    row[repeat], candidates["case_id"].filter(pa.array(repeat)),
                                    row[first[repeat]], names.take(pa.array(partition[first[repeat]])))
    out = []
    for number in range(len(files)):
        mine = partition[repeat] == number
        out.append((np.sort(position[repeat][mine]), lines.filter(pa.array(mine))))
    return out


def _counts(cached: Path) -> dict:
    """A cache file's partition counts: rows read, rejected (accepted = the file's rows) and months."""
    meta = pq.ParquetFile(cached).metadata
    return {**json.loads(meta.metadata[COUNTS_KEY.encode()]), "accepted": meta.num_rows}


def run_nightly(claims: Path, policy_path: Path, hospitals_path: Path, state: Path, out: Path, catalog_path=None,
                scheme: str | None = None, seasonality: dict[int, float] | None = None, log=print,
                engine: str = "chunked", scheduler: str | None = None,
                processes: int | None = 1) -> NightlyResult:
    """One nightly run (see the module's docstring); returns where the results are. `engine`: "chunked" prices
    one cached partition at a time and keeps only per-hospital sums (memory bounded whatever the year's size);
    "memory" loads the year at once (needed, and used, for special-case review and history coefficients);
    "dask" groups new partitions and prices cached ones on a Dask cluster (`scheduler` address, or a local cluster
    of two processes), the sums added and the pools solved on the client. `processes`: the chunked engine's
    worker processes (`_Workers`; 1: none, all in this process; None: DIPSIM_NIGHTLY_PROCESSES, else 2 for a few
    million cases or more, as `dipsim nightly` does); the results are the same, byte for byte, whatever their
    number. Workers are spawned: a script that calls this with processes other than 1 needs the usual
    `if __name__ == "__main__":` guard."""
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    from dipsim.io.readers import parquet_files
    from dipsim.io.writers import OutputFolder, sha256_file, temp_dir
    from dipsim.payment.caps import scaled_references
    from dipsim.payment.terms import command_line_scheme, every_case_terms
    from dipsim.policy import load_policy
    from dipsim.region import load_hospitals

    start = time.perf_counter()
    policy = load_policy(policy_path)
    # DRG mode: the policy's payment.drg_scheme (its latest value: the year to date is settled before its last day
    # is known), else `scheme` (--scheme), else chs-drg-1.1; the policy and --scheme naming two is an error
    scheme = command_line_scheme(policy, None, scheme)
    catalog = None
    if policy.get("payment.mode") == "dip":
        from dipsim.grouping.dip import load_catalog

        if catalog_path is None:
            raise InputError("payment.mode = dip needs --catalog")
        catalog = load_catalog(catalog_path)
    hospitals = load_hospitals(hospitals_path)
    with _Lock(Path(state)), contextlib.closing(_Workers(processes)) as workers:
        cache = Path(state) / "partitions"
        cache.mkdir(parents=True, exist_ok=True)
        files = parquet_files(claims)
        # the files hashed (two at a time: hashlib lets go of the interpreter) while the configuration is checked
        with ThreadPoolExecutor(2) as threads:
            digests = [threads.submit(sha256_file, f) for f in files]
            try:
                _check_configuration(files, hospitals, hospitals_path, policy, log, workers)
            except BaseException:
                for digest in digests:
                    digest.cancel()
                raise
            try:
                hashes = [digest.result() for digest in digests]
            except OSError as exc:
                raise InputError(f"{exc.filename}: cannot read ({exc.strerror})") from exc
        validated_stamp(files, folder=True, digests=hashes)  # a `dipsim validate` output only when complete
        setup = hashlib.sha256(f"{__version__}\0{CACHE_FORMAT}\0{scheme}\0".encode())
        if catalog is not None:
            for f in sorted(Path(catalog.source).glob("*")):
                setup.update(f.name.encode() + f.read_bytes())
        setup_key = setup.hexdigest()[:16]
        cached = [cache / f"{setup_key}-{d[:32]}.parquet" for d in hashes]
        new: dict[Path, Path] = {}  # cache file -> the first partition with its content (a copy is grouped once)
        for path, target in zip(files, cached):
            if not (target.is_file() and _ids_path(target).is_file()):
                new.setdefault(target, path)
        todo = [(path, target) for target, path in new.items()]
        grouped_now = len(todo)
        if engine == "dask":  # each worker groups partitions and writes their cache files (atomically)
            _dask_map(_group_to_cache, [(p, c, catalog, scheme) for p, c in todo], scheduler)
            log(f"grouped {len(todo)} partitions on Dask")
        else:
            jobs = [(path, target, catalog, scheme) for path, target in todo]
            done = workers.map(_group_job, jobs, [_rows(path) for path, _ in todo], lambda number: log(
                f"grouped partition {number + 1}/{len(todo)}: {todo[number][0]}"))
            if done is None:  # in this process, one partition after the other
                for number, (path, target) in enumerate(todo):
                    _group_partition(path, target, catalog, scheme)
                    log(f"grouped partition {number + 1}/{len(todo)}: {path}")
        repeats = _repeated_case_ids(files, cached, Path(claims))
        counts = [_counts(f) for f in cached]
        months = sorted(set().union(*(c["months"] for c in counts)))
        share = budget_share(months, seasonality)
        annual = policy.get("budget.total")
        ytd_policy = policy.overlay({"budget.total": {p: round(b * share, 2) for p, b in annual.items()}})
        hospitals = scaled_references(hospitals, share)  # the growth cap's references, as the budget: year to date
        last_days = [c["last_day"] for c in counts if c["last_day"]]
        day = dt.date.fromisoformat(max(last_days)) if last_days else None  # the settlement day: the last discharge
        # special-case review, history coefficients and supervision screens look at every case of the year at once
        needs_all = ytd_policy.get("review.in_effect", day) or any(
            t.coefficient_mode == "history" or t.has_consequences for t in every_case_terms(ytd_policy))
        drops = [positions for positions, _ in repeats]
        if engine in ("chunked", "dask") and not needs_all:
            tables = _settle_chunked(cached, drops, hospitals, ytd_policy, catalog, day,
                                     scheduler if engine == "dask" else False, workers)
        else:
            tables = _settle_in_memory(cached, drops, hospitals, ytd_policy, catalog)
        inputs = [{"file": str(f), "sha256": d, "rows_read": c["rows_read"], "accepted": c["accepted"] - len(drop),
                   "rejected": c["rejected"] + len(drop), "duplicates_of_earlier_partitions": len(drop)}
                  for f, d, c, drop in zip(files, hashes, counts, drops)]
        totals = {k: sum(i[k] for i in inputs)
                  for k in ("rows_read", "accepted", "rejected", "duplicates_of_earlier_partitions")}
        if totals["duplicates_of_earlier_partitions"]:
            log(f"{totals['duplicates_of_earlier_partitions']:,} cases repeat a case id of an earlier partition: "
                "rejected, not settled")
        if totals["rejected"]:
            log(f"{totals['rejected']:,} of {totals['rows_read']:,} rows rejected: see rejects.csv")
        hospitals_sha256 = sha256_file(hospitals_path)
        run_id = hashlib.sha256(json.dumps([__version__, policy.digest(), setup_key, hashes, share,
                                            hospitals_sha256]).encode()).hexdigest()[:16]
        runs = Path(out) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        final = runs / run_id
        tmp = temp_dir(runs, prefix=f".{run_id}-")  # the umask's mode: readable by the analysts, as a normal folder
        try:
            folder = OutputFolder(tmp)
            folder.csv(tables[0], "hospitals.csv")
            folder.csv(tables[1], "pools.csv")
            folder.csv(_run_rejects(files, cached, repeats), "rejects.csv")
            folder.manifest({"command": "nightly", "run_id": run_id, "policy": str(policy_path),
                             "policy_sha256": policy.digest(), "catalog": str(catalog_path),
                             "scheme": scheme if catalog is None else None, "months": months,
                             "policy_day": day.isoformat() if day else None, "budget_share": share,
                             "projection": "seasonality" if seasonality else "pro rata", "partitions": inputs,
                             "totals": totals, "hospitals": {"file": str(hospitals_path), "sha256": hospitals_sha256}})
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        link = Path(out) / "latest"
        temp_link = Path(out) / f".latest-{os.getpid()}"
        temp_link.unlink(missing_ok=True)
        temp_link.symlink_to(Path("runs") / run_id)
        os.replace(temp_link, link)  # the switch: readers see the old results or the new ones, never a mix
        elapsed = time.perf_counter() - start
        with open(Path(state) / "nightly.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} run {run_id}: {len(files)} partitions, {grouped_now} "
                    f"grouped, months {len(months)}, budget share {share:.4f}, {elapsed:.2f} s\n")
    return NightlyResult(final, run_id, len(files), grouped_now, len(months), share, totals)


def _run_rejects(files: list[Path], cached: list[Path], repeats: list[tuple[np.ndarray, pa.Table]]) -> pa.Table:
    """The run's rejects, partition by partition: those found when it was grouped (named by its path tonight: the
    cache is keyed by content, so a copy or a renamed file shares the lines of the file grouped first) and its
    repeats of earlier partitions' case ids, by row."""
    tables = []
    for path, cache, (_, repeated) in zip(files, cached, repeats):
        own = pq.read_table(cache.parent / "rejects" / cache.name)
        own = own.set_column(own.schema.get_field_index("file"), "file",
                             pa.array([str(path)] * own.num_rows, pa.string()))
        tables.append(pa.concat_tables([own, repeated]).sort_by([("row", "ascending")]))
    return pa.concat_tables(tables)


def _partition_sums(path: Path, drop: np.ndarray, hospitals: pa.Table, policy, catalog, day,
                    batch_rows: int | None = None):
    """Steps 1-7 of the payment chain (`payment.chain.price_cases`) on one cached partition, `batch_rows` (default
    `BATCH_ROWS`) cases at a time, but the cases at positions `drop` (sorted: repeats of an earlier partition's case
    ids), with the settlement day `day` of the whole year to date; its per (pool, hospital) sums."""
    import pandas as pd

    from dipsim.payment.chain import CaseSet, price_cases
    from dipsim.payment.terms import resolve

    sums, start = [], 0
    columns = ["hospital_id", "settlement_pool", "discharge_date", "total_cost", "patient_paid", "group",
               "group_points", "standard_cost", "tcm_group_case", "tcm_treated"]  # what steps 1-5 read
    for batch in pq.ParquetFile(path, read_dictionary=["group"]).iter_batches(batch_size=batch_rows or BATCH_ROWS,
                                                                              columns=columns):
        part = pa.Table.from_batches([batch])
        if len(drop):
            part = _without(part, drop[(drop >= start) & (drop < start + part.num_rows)] - start)
        start += batch.num_rows
        case_set = CaseSet.of(part, part["settlement_pool"].to_numpy(zero_copy_only=False))
        terms = resolve(policy, case_set.discharge_days, len(case_set), settlement=day)
        priced = price_cases(case_set, _grouped(part, catalog), hospitals, terms)
        frame = case_set.frame  # (pool, hospital) rows x months, summed by bincount on integer codes
        cells = {"points": frame.monthly(priced["case_points"]),
                 "cost": frame.monthly(case_set.cost), "patient_paid": frame.monthly_patient_paid,
                 "item": frame.monthly(case_set.cost * priced["item_share"]),
                 "cases": frame.monthly(np.ones(len(case_set)))}
        row, month = np.nonzero(cells["cases"])
        months = frame.month_values if frame.month_values is not None else np.zeros(1, np.int64)
        index = pd.MultiIndex.from_arrays([frame.pools[row], frame.hospitals[row], months[month]],
                                          names=["pool", "hospital_id", "month"])
        sums.append(pd.DataFrame({name: values[row, month] for name, values in cells.items()}, index=index))
    return pd.concat(sums).groupby(level=[0, 1, 2], sort=False).sum() if sums else None  # None: an empty partition


def _group_to_cache(job) -> None:
    _group_partition(*job)


def _group_job(job, batch_rows: int) -> None:
    path, target, catalog, scheme = job
    try:
        _group_partition(path, target, catalog, scheme, batch_rows)
    finally:
        _release_memory()


def _sums_job(job, batch_rows: int | None = None):
    path, drop, hospitals, policy, catalog, day = job
    try:
        return _partition_sums(path, drop, hospitals, policy, catalog, day, batch_rows)
    finally:
        _release_memory()


def _region_job(files: list[Path], batch_rows: int) -> tuple[set[str], set[str]]:
    from dipsim.region import partition_region

    try:
        return partition_region(files)
    finally:
        _release_memory()


def _release_memory() -> None:
    """After a job in a worker: the memory its batches held given back to the system (Arrow's pool keeps freed
    blocks, and so does the C heap, for the next job), so that an idle worker does not hold its peak while the
    run goes on (the duplicate check, the other worker's jobs)."""
    import contextlib
    import ctypes

    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(None).malloc_trim(0)


def _rows(path: Path) -> int:
    """A Parquet file's rows, from its footer (InputError naming the file when it is not Parquet)."""
    from dipsim.io.readers import parquet_metadata

    return parquet_metadata(path).num_rows


class _Workers:
    """The chunked engine's worker processes, started when a map first needs them and kept for the next one (the
    grouping of new partitions, then the pricing of all): each job a partition, `BATCH_ROWS / processes` cases at
    a time, so that the cases in flight are those of one batch in one process. Spawned, not forked (a fork of a
    process with Arrow's and Numba's threads may hang); each watches this process and exits when it has gone (a
    killed run leaves no worker behind). A job's cache files are written atomically, as in one process."""

    def __init__(self, processes: int | None):
        self.requested = processes
        self.pool: ProcessPoolExecutor | None = None
        self.processes = 0

    def count(self, rows: int, jobs: int) -> int:
        """How many processes for `jobs` partitions of `rows` cases in all (1: this one)."""
        processes = self.requested
        if processes is None:
            value = os.environ.get(PROCESSES_ENV, "")
            if value:
                try:
                    processes = int(value)
                except ValueError:
                    raise InputError(f"{PROCESSES_ENV}={value!r}: a number of processes (1: no workers)") from None
            elif rows < PARALLEL_MIN_ROWS:
                return 1
            else:
                processes = min(PROCESSES, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                else os.cpu_count() or 1)
        return max(1, min(processes, jobs))

    def map(self, function, jobs: list, sizes: list[int], done=None) -> list | None:
        """`function(job, batch_rows)` of every job in the workers, results in the jobs' order, `done(number)` called
        as each job ends; None (nothing run) when this process is to run them (`count` of their `sizes`, the cases
        of each, is 1). The largest jobs start first, so that the processes end together (a month of 9M cases
        last would keep one process busy alone). On a failure the jobs not started are cancelled, those running
        end, and the failure of the first of them in the jobs' order is raised."""
        from concurrent.futures import FIRST_EXCEPTION, wait

        processes = self.count(sum(sizes), len(jobs))
        if processes <= 1:
            return None
        pool = self._pool(processes)
        batch_rows = max(1, BATCH_ROWS // processes)
        order = sorted(range(len(jobs)), key=lambda n: -sizes[n])  # stable: equal sizes in the jobs' order
        futures: list = [None] * len(jobs)
        for n in order:
            futures[n] = pool.submit(function, jobs[n], batch_rows)
        number = {future: n for n, future in enumerate(futures)}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in finished):
                for other in pending:
                    other.cancel()
                wait(pending)
                raise next(f.exception() for f in futures if not f.cancelled() and f.exception() is not None)
            for future in sorted(finished, key=lambda f: number[f]):
                if done is not None:
                    done(number[future])
        return [future.result() for future in futures]

    def _pool(self, processes: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self.pool is not None and self.processes != processes:
            self.close()
        if self.pool is None:
            self.pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_start, initargs=(os.getpid(),))
            self.processes = processes
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _worker_start(parent: int) -> None:
    """In a worker: one thread for Arrow and Numba (the processes share the CPUs), and a watcher that ends the
    worker when `parent` (the nightly run) has gone."""
    import threading

    pa.set_cpu_count(1)
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):  # pragma: no cover
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="dipsim-nightly-parent-watch", daemon=True).start()


def _dask_map(function, items: list, scheduler: str | None, shared=None) -> list:
    """`function` over `items` on a Dask cluster: the scheduler at `scheduler`, or a local one (2 processes). With
    `shared`, `function(shared, item)`: `shared` is sent to every worker once (scattered), not once per item."""
    from dask.distributed import Client, LocalCluster

    if not items:
        return []

    def gather(client) -> list:
        if shared is None:
            return client.gather(client.map(function, items, pure=False))
        sent = client.scatter(shared, broadcast=True)
        return client.gather(client.map(function, [sent] * len(items), items, pure=False))

    if scheduler:
        with Client(scheduler) as client:
            return gather(client)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        return gather(client)


def _settle_chunked(cached: list[Path], drops: list[np.ndarray], hospitals: pa.Table, policy, catalog, day,
                    scheduler=False, workers: _Workers | None = None) -> tuple[pa.Table, pa.Table]:
    """Price one cached partition at a time (on Dask when `scheduler` is not False, else in `workers` when they
    take the job), keep per (pool, hospital, month) sums, settle them on the client (steps 8-11,
    `payment.chain.settle_pools`: the hospitals' growth caps on their year's sums, the months for the monthly
    prepayment). The sums are added in partition order whatever the engine."""
    import pandas as pd

    from dipsim.budget import SettlementFrame
    from dipsim.payment.chain import settle_pools
    from dipsim.payment.terms import resolve

    jobs = [(path, drop, hospitals, policy, catalog, day) for path, drop in zip(cached, drops)]
    sums = None
    if scheduler is not False:
        sums = _dask_map(_sums_job, jobs, scheduler)
    elif workers is not None:
        sums = workers.map(_sums_job, jobs, list(map(_rows, cached)))  # None: too few cases for worker processes
    if sums is None:  # in this process, one partition after the other
        sums = [_partition_sums(*job) for job in jobs]
    monthly = pd.concat([s for s in sums if s is not None]).groupby(level=[0, 1, 2]).sum()
    total = monthly.groupby(level=[0, 1]).sum()
    by_month = {name: monthly[name].unstack(fill_value=0.0).reindex(total.index).to_numpy()
                for name in ("points", "item", "patient_paid")}
    pools, hospital_ids = (np.asarray(total.index.get_level_values(i), dtype=object) for i in (0, 1))
    frame = SettlementFrame.from_sums(pools, hospital_ids, total["cases"].to_numpy(), total["cost"].to_numpy(),
                                      by_month["patient_paid"])
    terms = resolve(policy, None, 0, settlement=day)
    result = settle_pools(frame, None, None, terms, row_sums=(by_month["points"], by_month["item"]),
                          hospitals=hospitals)
    return result.tables()


def _without(table: pa.Table, drop: np.ndarray) -> pa.Table:
    """`table` but its rows at positions `drop`."""
    keep = np.ones(table.num_rows, bool)
    keep[drop] = False
    return table.filter(pa.array(keep))


def _settle_in_memory(cached: list[Path], drops: list[np.ndarray], hospitals: pa.Table, policy,
                      catalog) -> tuple[pa.Table, pa.Table]:
    """The whole payment chain (`payment.chain.run_chain`) on all cached partitions at once, but the cases at
    positions `drops` (repeats of an earlier partition's case ids)."""
    from dipsim.payment.chain import CaseSet, run_chain

    year = pa.concat_tables([_without(pq.read_table(f), drop) for f, drop in zip(cached, drops)])
    case_set = CaseSet.of(year, year["settlement_pool"].to_numpy(zero_copy_only=False))
    run = run_chain(case_set, _grouped(year, catalog), hospitals, policy)
    return run.hospitals, run.pools
