"""Validate a case file or a folder of Parquet partitions into an output folder, partition by partition.

Writes `accepted/part-NNNNN.parquet` (CASE_SCHEMA), `rejects.csv`, `warnings.csv` (UTF-8 with BOM for Excel) and
`manifest.json` (inputs' sha256, counts, dipsim version, the parts written), the manifest last. A folder is streamed
one file at a time and a Parquet file `VALIDATE_BATCH_ROWS` rows at a time (one part per input file, a row group
per batch), so memory stays bounded by the batch (and a file's case ids as 64-bit hashes, 8 bytes a row, checked
whole for repeats, and those of earlier files, 12 bytes an id, for repeats across them); a text or Excel file is
read whole.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dipsim import __version__
from dipsim.schema import CASE_SCHEMA, REJECT_SCHEMA

from .errors import InputError
from .readers import CSV_SUFFIXES, PARQUET_SUFFIXES, VALIDATED_KEY, parquet_files, read_cases_raw, validated_stamp
from .validate import (
    DUPLICATE_CASE_ID,
    EarlierCaseIds,
    ValidationOptions,
    ValidationResult,
    counts_line,
    iter_csv_cases,
    iter_load_cases,
    validate_cases,
    with_last,
)
from .writers import atomic_path, sha256_file, write_csv, write_json


@dataclass
class ValidateSummary:
    rows_read: int
    accepted: int
    rejected: int
    warnings: int
    out_dir: Path
    inputs: list[Path]
    reject_reasons: dict[str, int]  # problem lines by field and reason, most frequent first
    warning_reasons: dict[str, int]

    @property
    def accepted_path(self) -> Path:
        return self.out_dir / "accepted"

    @property
    def rejects_path(self) -> Path:
        return self.out_dir / "rejects.csv"

    @property
    def warnings_path(self) -> Path:
        return self.out_dir / "warnings.csv"

    def counts_line(self) -> str:
        duplicates = self.reject_reasons.get(f"case_id: {DUPLICATE_CASE_ID}", 0)
        return (counts_line(self.rows_read, self.accepted, self.rejected, {"duplicate case ids": duplicates})
                + f"; warnings {self.warnings:,}")


def _stamp(input_digests: list[str], options: ValidationOptions) -> bytes:
    """What the accepted partitions carry so that `load_cases` can trust them later: the version, the options,
    the number of parts and a run id (which the manifest repeats: a part of another run is refused)."""
    body = {"dipsim_version": __version__, "options": asdict(options), "parts": len(input_digests)}
    run = hashlib.sha256(json.dumps([input_digests, body], sort_keys=True).encode()).hexdigest()[:16]
    return json.dumps({**body, "run": run}, sort_keys=True).encode()


def _reasons(problems: pa.Table) -> dict[str, int]:
    """Problem lines by field and reason; a duplicate's reason without the row it points to ("first at row 7 of
    ..."), so that the duplicates are counted as one kind, not one kind each."""
    if problems.num_rows == 0:
        return {}
    reason = pc.replace_substring_regex(problems["reason"], f"^{DUPLICATE_CASE_ID} \\(first at row .*\\)$",
                                        DUPLICATE_CASE_ID)
    problems = problems.set_column(problems.schema.get_field_index("reason"), "reason", reason)
    counts = problems.group_by(["field", "reason"]).aggregate([("row", "count")]).sort_by([("row_count", "descending")])
    # a row rejected whole by the reader (undecodable, a stray quote) has no field: its reason stands alone
    return {f"{f}: {r}" if f else r: n
            for f, r, n in zip(*(counts[c].to_pylist() for c in ("field", "reason", "row_count")))}


def _input_files(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        return parquet_files(path)
    return [path]


VALIDATE_BATCH_ROWS = 1 << 19  # rows of a Parquet file validated at a time: what bounds validate's memory


def _pieces(path: Path, options: ValidationOptions, header_mapping, encoding, sheet) -> Iterator[ValidationResult]:
    """A file validated `VALIDATE_BATCH_ROWS` rows at a time, a case id repeated across its pieces rejected as in
    one read: Parquet (`iter_load_cases`, its code lists read dictionary-encoded) and text (`iter_csv_cases`);
    Excel whole."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        yield from iter_load_cases(path, VALIDATE_BATCH_ROWS, options, header_mapping, dictionary_codes=True,
                                   recheck=True)
    elif path.suffix.lower() in CSV_SUFFIXES:
        yield from iter_csv_cases(path, VALIDATE_BATCH_ROWS, options, header_mapping, encoding)
    else:
        yield validate_cases(read_cases_raw(path, header_mapping, encoding, sheet), options)


def _part_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """The writer of one accepted part (its batches become its row groups)."""
    return pq.ParquetWriter(path, schema, compression="zstd")


def _listed_codes(accepted: pa.Table) -> pa.Table:
    """The code lists as list<string>, the case schema's type (validation may hand them dictionary-encoded)."""
    for name in ("diagnoses", "procedures"):
        if name in accepted.column_names and accepted.schema.field(name).type != CASE_SCHEMA.field(name).type:
            accepted = accepted.set_column(accepted.column_names.index(name), name,
                                           pc.cast(accepted[name], CASE_SCHEMA.field(name).type))
    return accepted


def validate_to_dir(input_path, out_dir, options: ValidationOptions | None = None, header_mapping=None,
                    encoding: str | None = None, sheet=None, progress=None, on_piece=None) -> ValidateSummary:
    """Validate `input_path` into `out_dir`; `progress(done_files, total_files)` is called after each file and
    `on_piece(result)` with each piece's ValidationResult as written (its accepted rows with their row numbers,
    its rejects; the server's uploads count rows and check settlement with them).

    The output is complete or unreadable: the previous manifest.json goes first, the parts, rejects and warnings
    are written, and the manifest (each part's name, row count, size and sha256) comes last. Readers refuse a
    folder of stamped parts without a manifest that lists them (`readers.check_validated_outputs`), so a run killed
    part-way (a full disk) is never read as all the claims."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    files = _input_files(input_path)
    accepted_dir = out_dir / "accepted"
    if any(accepted_dir.resolve() in f.resolve().parents for f in files):
        raise InputError(f"{input_path}: the input is inside the output folder {out_dir}, which validate replaces: "
                         "write to another folder (-o)")
    start = time.perf_counter()
    options = options or ValidationOptions()
    try:
        digests = [sha256_file(path) for path in files]
    except OSError as exc:
        raise InputError(f"{exc.filename}: cannot read ({exc.strerror})") from exc
    if input_path.is_dir():  # another validate output as the input: only a complete one, as written
        validated_stamp(files, folder=True, digests=digests)
    accepted_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)  # first: a half-done rerun is never taken as complete
    for old in accepted_dir.glob("part-*.parquet"):  # a re-run replaces the previous output, never mixes with it
        old.unlink()
    stamp = _stamp(digests, options)
    rejects, warnings, per_file, parts = [], [], [], []
    earlier = EarlierCaseIds(input_path if input_path.is_dir() else input_path.parent, header_mapping)
    totals = dict(rows_read=0, accepted=0, rejected=0)
    for number, path in enumerate(files):
        target = accepted_dir / f"part-{number:05d}.parquet"
        counts, n_warnings, first = dict(rows_read=0, accepted=0, rejected=0), 0, None
        with atomic_path(target) as tmp:
            writer = None
            for result, last in with_last(_pieces(path, options, header_mapping, encoding, sheet)):
                result = earlier.reject_repeats(result, last_piece=last)
                accepted = _listed_codes(result.accepted).replace_schema_metadata({VALIDATED_KEY: stamp})
                writer = writer or _part_writer(tmp, accepted.schema)
                writer.write_table(accepted)
                rejects.append(result.rejects)
                warnings.append(result.warnings)
                for key, n in (("rows_read", result.rows_read), ("accepted", result.n_accepted),
                               ("rejected", result.n_rejected)):
                    counts[key] += n
                n_warnings += result.n_warnings
                first = first or result
                if on_piece is not None:
                    on_piece(result)
            writer.close()
        parts.append({"file": target.relative_to(out_dir).as_posix(), "rows": counts["accepted"],
                      "bytes": target.stat().st_size, "sha256": sha256_file(target)})
        for key in totals:
            totals[key] += counts[key]
        per_file.append({"file": str(path), "sha256": digests[number], "encoding": first.encoding,
                         "unmapped_columns": first.unmapped_columns,
                         "absent_columns": first.absent_columns, **counts, "warnings": n_warnings})
        if progress is not None:
            progress(number + 1, len(files))
    all_rejects = pa.concat_tables(rejects) if rejects else REJECT_SCHEMA.empty_table()
    all_warnings = pa.concat_tables(warnings) if warnings else REJECT_SCHEMA.empty_table()
    write_csv(all_rejects, out_dir / "rejects.csv")
    write_csv(all_warnings, out_dir / "warnings.csv")
    summary = ValidateSummary(totals["rows_read"], totals["accepted"], totals["rejected"], all_warnings.num_rows,
                              out_dir, files, _reasons(all_rejects), _reasons(all_warnings))
    write_json({
        "dipsim_version": __version__,
        "command": "validate",
        "input": str(input_path),
        "options": asdict(options),
        "inputs": per_file,
        "totals": {**totals, "warnings": summary.warnings},
        "reject_reasons": summary.reject_reasons,
        "warning_reasons": summary.warning_reasons,
        "run": json.loads(stamp)["run"],
        "part_count": len(parts),
        "parts": parts,
        "elapsed_s": round(time.perf_counter() - start, 3),
    }, out_dir / "manifest.json")
    return summary


__all__ = ["ValidateSummary", "validate_to_dir"]
