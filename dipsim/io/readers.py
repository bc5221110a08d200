"""Read claims files (CSV in UTF-8 / UTF-8-BOM / GB18030 / GBK, Excel .xlsx, Parquet) into a raw Arrow table.

A reader only reads: it maps headers onto canonical names (headers.py), keeps every data row with its 1-based row
number, and turns rows it cannot even split into fields into rejects. Types, ranges and codes are checked in
validate.py, so that the row accounting (read = accepted + rejected) lives in one place.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import InputError
from .headers import SPLIT_CODE_COLUMNS, map_headers

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
    rows: np.ndarray  # int64, 1-based data row number of each table row
    source: str
    encoding: str = ""
    header_map: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)  # rows that could not be split into fields
    validated: dict | None = None  # the stamp of one complete `dipsim validate` output, when the input is one

    @property
    def rows_read(self) -> int:
        return len(self.rows) + len({r["row"] for r in self.rejects})


def decode_text(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Decode a text file, detecting UTF-8 (with or without BOM) or GB18030 (a superset of GBK and GB2312).

    Undecodable bytes become U+FFFD; validation rejects the rows that contain it, so nothing is silently mangled.
    """
    if encoding:
        try:
            return data.decode(encoding, errors="replace"), encoding
        except LookupError as exc:
            raise InputError(f"unknown text encoding {encoding!r} (try gb18030, utf-8 or utf-8-sig)") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        pass
    # Neither decodes cleanly: keep the reading with fewer undecodable characters. A UTF-8 file with a few corrupt
    # bytes then stays UTF-8 (read as GB18030 most of its Chinese text would break), and a GB18030 file with a few
    # corrupt bytes stays GB18030. Ties go to UTF-8.
    as_utf8 = data.decode("utf-8", errors="replace")
    as_gb = data.decode("gb18030", errors="replace")
    if as_gb.count("\ufffd") < as_utf8.count("\ufffd"):
        return as_gb, "gb18030"
    return as_utf8, "utf-8"


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    return max(counts, key=counts.get) if any(counts.values()) else ","


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        name = name.strip().lstrip("\ufeff")
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


def read_csv_raw(path: str | Path, encoding: str | None = None) -> tuple[pa.Table, np.ndarray, list[dict], str]:
    """All columns as strings. Rows with the wrong number of fields become rejects with their row number."""
    path = Path(path)
    data = path.read_bytes()
    text, detected = decode_text(data, encoding)
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if not first_line.strip():
        raise InputError(f"{path}: empty file or empty header line")
    delimiter = _sniff_delimiter(first_line)
    names = _dedupe(next(csv.reader([first_line], delimiter=delimiter)))
    if detected.startswith("utf-8") and "\ufffd" not in text:
        payload = data[3:] if detected == "utf-8-sig" else data  # already UTF-8: no copy
    else:
        payload = text.encode("utf-8")
    bad_rows: list[dict] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # `number` counts records including the header (pyarrow docs), so data row = number - 1.
        bad_rows.append(
            {
                "row": int(row.number) - 1 if row.number is not None else -1,
                "field": "",
                "value": (row.text or "")[:200],
                "reason": f"row has {row.actual_columns} fields, the header has {row.expected_columns}",
            }
        )
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(payload),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: cannot parse as CSV ({detected}): {exc}") from exc
    bad = {r["row"] for r in bad_rows}
    total = table.num_rows + len(bad)
    rows = np.arange(1, total + 1, dtype=np.int64)
    if bad:
        rows = rows[~np.isin(rows, np.fromiter(bad, dtype=np.int64))]
    return table, rows, bad_rows, detected


def read_excel_raw(path: str | Path, sheet: str | int | None = None) -> tuple[pa.Table, np.ndarray]:
    """All cells as text (pandas + openpyxl). Row 1 is the first row under the header (Excel row 2)."""
    try:
        frame = pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype=str, keep_default_na=False)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot read as Excel: {exc}") from exc
    frame.columns = _dedupe([str(c) for c in frame.columns])
    frame = frame.fillna("").astype(str)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.cast(pa.schema([pa.field(n, pa.string()) for n in table.column_names]))
    return table, np.arange(1, table.num_rows + 1, dtype=np.int64)


def read_table_file(path: str | Path, what: str = "table") -> pa.Table:
    """A small side table (hospitals, quality scores, seasonality): Parquet by its suffix, else CSV in UTF-8 or
    GB18030 (`decode_text`) with column types inferred. InputError naming `what` when the file is absent."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no {what} file")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return pq.read_table(path)
    text, _ = decode_text(path.read_bytes())
    return pacsv.read_csv(io.BytesIO(text.encode("utf-8")))


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


def read_parquet_raw(path: str | Path, columns: list[str] | None = None, dictionary_codes: bool = False,
                     files: list[Path] | None = None) -> tuple[pa.Table, np.ndarray]:
    """Read Parquet as stored (typed); a directory's files are read in order and stacked (partition keys in the
    paths, e.g. discharge_month=2025-01, are not data). `columns`: only those of them the files have (all when
    None). `dictionary_codes`: the code lists (diagnoses, procedures) as list<dictionary<string>>, as Parquet
    stores them: about half the time to read, and encoding looks up each distinct code once. `files`: the
    `parquet_files(path)` the caller has listed already. A file that cannot be read is an InputError naming it."""
    tables = []
    for file in files if files is not None else parquet_files(path):
        try:
            names = pq.read_schema(file).names
            wanted = None if columns is None else [c for c in columns if c in names]
            codes = [f"{c}.list.element" for c in ("diagnoses", "procedures")
                     if dictionary_codes and c in names and (wanted is None or c in wanted)]
            tables.append(pq.ParquetFile(file, read_dictionary=codes or None).read(columns=wanted))
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(file, exc) from exc
    try:
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise InputError(f"{path}: its Parquet files do not stack into one table ({exc}): "
                         "read them one by one") from exc
    return table, np.arange(1, table.num_rows + 1, dtype=np.int64)


def validated_stamp(files: list[Path], folder: bool = False, digests: list[str] | None = None) -> dict | None:
    """The `dipsim validate` stamp shared by all `files` when they are exactly one run's accepted partitions.

    `folder`: `files` are what a folder holds; then every `dipsim validate` output among them must be complete and
    as it was written (`check_validated_outputs`), else InputError. Only the files' footers are read."""
    footers = [parquet_metadata(f) for f in files]
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
    """主要诊断编码 + 其他诊断编码1..N -> one `diagnoses` text column 'principal,other1,other2' (same for procedures)."""
    for canonical, (principal, others) in SPLIT_CODE_COLUMNS.items():
        sources = [h for h, c in mapping.items() if c == principal] + [h for h, c in mapping.items() if c == others]
        if not sources:
            continue
        if canonical in mapping.values():
            raise InputError(f"both a {canonical} list column and separate principal/other columns: keep one")
        parts = [pc.cast(table[h], pa.string()).fill_null("") for h in sources]
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

    `columns` (canonical names) narrows what is read from the accepted partitions of `dipsim validate` (stamped
    files, whose names are canonical already), and `dictionary_codes` reads their code lists dictionary-encoded
    (`read_parquet_raw`); every other input is read whole, as text, for validation."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    rejects: list[dict] = []
    detected = ""
    validated = None
    if path.is_dir() or suffix in PARQUET_SUFFIXES:
        files = parquet_files(path)
        validated = validated_stamp(files, folder=path.is_dir())
        table, rows = (read_parquet_raw(path, columns, dictionary_codes, files) if validated
                       else read_parquet_raw(path, files=files))
    elif suffix in CSV_SUFFIXES:
        table, rows, rejects, detected = read_csv_raw(path, encoding)
    elif suffix in EXCEL_SUFFIXES:
        table, rows = read_excel_raw(path, sheet)
    else:
        raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv, .xlsx or .parquet)")
    return _canonical(table, rows, path, header_mapping, detected, rejects, validated)


def _canonical(table: pa.Table, rows: np.ndarray, path: Path, header_mapping: dict[str, str] | None,
               detected: str = "", rejects: list[dict] | None = None, validated: dict | None = None) -> RawCases:
    """Headers mapped onto canonical names, split code columns joined."""
    mapping = map_headers(table.column_names, header_mapping, source=str(path))
    table, mapping = _join_split_code_columns(table, mapping)
    table = table.rename_columns([mapping.get(n, n) for n in table.column_names])
    unmapped = [n for n in table.column_names if n not in mapping.values()]
    for r in rejects or []:
        r["file"] = str(path)
    return RawCases(table, rows, str(path), detected, mapping, unmapped, rejects or [], validated)


def iter_parquet_raw(path: str | Path, batch_rows: int, header_mapping: dict[str, str] | None = None
                     ) -> Iterator[RawCases]:
    """One Parquet file `batch_rows` rows at a time (as its row groups allow), each batch a RawCases numbered by
    its rows in the file: memory bounded by the batch, whatever the file's size. An empty file gives one empty
    batch."""
    path = Path(path)
    try:
        file = pq.ParquetFile(path)
        validated = validated_stamp([path])
        start = 1
        for batch in file.iter_batches(batch_size=batch_rows):
            rows = np.arange(start, start + batch.num_rows, dtype=np.int64)
            start += batch.num_rows
            yield _canonical(pa.Table.from_batches([batch]), rows, path, header_mapping, validated=validated)
        if start == 1:
            yield _canonical(file.schema_arrow.empty_table(), np.zeros(0, np.int64), path, header_mapping,
                             validated=validated)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from exc
