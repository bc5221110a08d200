"""Validate a case file or a folder of Parquet partitions into an output folder, partition by partition.

Writes `accepted/part-NNNNN.parquet` (CASE_SCHEMA), `rejects.csv`, `warnings.csv` (UTF-8 with BOM for Excel) and
`manifest.json` (inputs' sha256, counts, dipsim version). A folder is streamed one file at a time, so memory stays
bounded by the largest partition; case ids are checked for duplicates across partitions too.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dipsim import __version__
from dipsim.schema import REJECT_SCHEMA

from .errors import InputError
from .readers import VALIDATED_KEY, parquet_files, read_cases_raw
from .validate import ValidationOptions, ValidationResult, validate_cases
from .writers import sha256_file, write_csv, write_json, write_parquet


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
        return (f"rows read {self.rows_read:,} = accepted {self.accepted:,} + rejected {self.rejected:,}; "
                f"warnings {self.warnings:,}")


def _stamp(input_digests: list[str], options: ValidationOptions) -> bytes:
    """What the accepted partitions carry so that `load_cases` can trust them later: the version, the options,
    the number of parts (a folder missing one, or mixing two runs, is validated again) and a run id."""
    body = {"dipsim_version": __version__, "options": asdict(options), "parts": len(input_digests)}
    run = hashlib.sha256(json.dumps([input_digests, body], sort_keys=True).encode()).hexdigest()[:16]
    return json.dumps({**body, "run": run}, sort_keys=True).encode()


def _reasons(problems: pa.Table) -> dict[str, int]:
    if problems.num_rows == 0:
        return {}
    counts = problems.group_by(["field", "reason"]).aggregate([("row", "count")]).sort_by([("row_count", "descending")])
    return {f"{f}: {r}": n for f, r, n in zip(*(counts[c].to_pylist() for c in ("field", "reason", "row_count")))}


def _input_files(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        return parquet_files(path)
    return [path]


def _drop_cross_file_duplicates(result: ValidationResult, seen: list[pa.Array]) -> ValidationResult:
    """Move accepted rows whose case id was accepted from an earlier partition into the rejects."""
    ids = result.accepted["case_id"].combine_chunks()
    if seen:
        dup = pc.is_in(ids, value_set=pa.concat_arrays(seen)).to_numpy(zero_copy_only=False)
    else:
        dup = np.zeros(len(ids), bool)
    seen.append(ids.filter(pa.array(~dup)))
    if not dup.any():
        return result
    idx = np.flatnonzero(dup)
    dup_ids = ids.take(pa.array(idx))
    extra = pa.table({
        "file": [result.source] * len(idx),
        "row": result.accepted_rows[idx],
        "case_id": dup_ids,
        "field": ["case_id"] * len(idx),
        "value": dup_ids,
        "reason": ["duplicate case id (accepted from an earlier file)"] * len(idx),
    }, schema=REJECT_SCHEMA)
    result.rejects = pa.concat_tables([result.rejects, extra])
    result.accepted = result.accepted.filter(pa.array(~dup))
    result.accepted_rows = result.accepted_rows[~dup]
    return result


def validate_to_dir(input_path, out_dir, options: ValidationOptions | None = None, header_mapping=None,
                    encoding: str | None = None, sheet=None, progress=None) -> ValidateSummary:
    """Validate `input_path` into `out_dir`; `progress(done_files, total_files)` is called after each file."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    files = _input_files(input_path)
    accepted_dir = out_dir / "accepted"
    accepted_dir.mkdir(parents=True, exist_ok=True)
    for old in accepted_dir.glob("part-*.parquet"):  # a re-run replaces the previous output, never mixes with it
        old.unlink()
    start = time.perf_counter()
    options = options or ValidationOptions()
    digests = [sha256_file(path) for path in files]
    stamp = _stamp(digests, options)
    rejects, warnings, per_file = [], [], []
    seen: list[pa.Array] = []  # case ids accepted from earlier files
    totals = dict(rows_read=0, accepted=0, rejected=0)
    for number, path in enumerate(files):
        result = validate_cases(read_cases_raw(path, header_mapping, encoding, sheet), options)
        if len(files) > 1:
            result = _drop_cross_file_duplicates(result, seen)
        result.check_counts()
        accepted = result.accepted.replace_schema_metadata({VALIDATED_KEY: stamp})
        write_parquet(accepted, accepted_dir / f"part-{number:05d}.parquet")
        rejects.append(result.rejects)
        warnings.append(result.warnings)
        counts = dict(rows_read=result.rows_read, accepted=result.n_accepted, rejected=result.n_rejected)
        for key in totals:
            totals[key] += counts[key]
        per_file.append({"file": str(path), "sha256": digests[number], "encoding": result.encoding,
                         "unmapped_columns": result.unmapped_columns,
                         "absent_columns": result.absent_columns, **counts, "warnings": result.n_warnings})
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
        "elapsed_s": round(time.perf_counter() - start, 3),
    }, out_dir / "manifest.json")
    return summary


__all__ = ["ValidateSummary", "validate_to_dir"]
