"""Atomic writers: a reader never sees a half-written file (write to a temporary name, then os.replace).

Files and folders are created with the process umask, as `open` and `mkdir` make them (0644 and 0755 under umask
022, 0600 and 0700 under 077): a web server or a colleague reads the results of a cron job exactly when they could
read any other file the job's user writes. A write that fails (a full disk, a read-only folder, a file where a folder
should be) raises `OutputError` naming the file; the previous file stays as it was.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import OutputError

# OWASP "CSV Injection": Excel, WPS and LibreOffice read a cell that starts with one of these as a formula
# (=HYPERLINK(...), +cmd|..., -1+1, @SUM(...)); tab and CR are on OWASP's list as readers may skip them first.
FORMULA_LEADS = pa.array(["=", "+", "-", "@", "\t", "\r"])

_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def _new_name(parent: Path, prefix: str, suffix: str = "") -> Path:
    return parent / f"{prefix}{secrets.token_hex(6)}{suffix}"


def temp_dir(parent: str | Path, prefix: str) -> Path:
    """A new empty folder in `parent`, mode 0777 less the umask (tempfile.mkdtemp makes 0700 whatever the umask:
    a run folder renamed into place would stay unreadable to others)."""
    while True:
        path = _new_name(Path(parent), prefix)
        try:
            path.mkdir(0o777)
            return path
        except FileExistsError:
            continue


def _temp_file(parent: Path, prefix: str) -> Path:
    """A new empty file in `parent`, mode 0666 less the umask (tempfile.mkstemp makes 0600, which os.replace
    would keep)."""
    while True:
        path = _new_name(parent, prefix, ".tmp")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step, on error it is removed.
    A fault of the write itself (the folder cannot be made or written, the disk is full) is an `OutputError`
    "cannot write PATH: reason"; any other error passes unchanged."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _temp_file(path.parent, f".{path.name}.")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        # a fault of the temporary file or of the rename (a write names no file: a full disk), not of another file
        # the block happened to read
        ours = str(exc.filename) == str(tmp_path) or (exc.filename is None and exc.errno in _WRITE_ERRNOS)
        if ours:
            raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: str | Path, compression: str = "zstd", **options) -> Path:
    """`options`: more of `pyarrow.parquet.write_table`'s (use_dictionary, write_statistics...)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=compression, **options)
    return Path(path)


def neutralise_formulas(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text cells that a spreadsheet would run as a formula, prefixed with a single quote (OWASP: `=1+2` is written
    `'=1+2`, `-5` as text `'-5`); other cells and nulls unchanged. Numbers are never passed here: a negative amount
    stays a number."""
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([neutralise_formulas(chunk) for chunk in values.chunks], values.type)
    if pa.types.is_dictionary(values.type):  # group codes: only the (small) dictionary needs looking at
        return pa.DictionaryArray.from_arrays(values.indices, neutralise_formulas(values.dictionary))
    formula = pc.is_in(pc.utf8_slice_codeunits(values, 0, 1), value_set=FORMULA_LEADS.cast(values.type))
    if not pc.any(formula).as_py():
        return values
    return pc.if_else(formula, pc.binary_join_element_wise(pa.scalar("'", values.type), values,
                                                               pa.scalar("", values.type)), values)


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _plain(table: pa.Table) -> pa.Table:
    """The table as `write_csv` writes it: code lists comma-joined, formula-like text cells neutralised."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            column = pc.binary_join(column, ",")
        if _is_text(column.type):
            column = neutralise_formulas(column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write_csv(table: pa.Table, path: str | Path, bom: bool = True) -> Path:
    """CSV in UTF-8; with a BOM by default so that Excel on a Chinese Windows shows 中文 headers correctly. Code
    lists are one comma-joined cell, the way claims exports carry them. Text cells starting with = + - @ tab or CR
    get a leading `'` (see `neutralise_formulas`): every CSV dipsim writes goes through here."""
    plain = _plain(table)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        if bom:
            fh.write("\ufeff".encode())
        pacsv.write_csv(plain, fh)
    return Path(path)


@contextlib.contextmanager
def csv_parts(path: str | Path, schema: pa.Schema, bom: bool = True) -> Iterator:
    """`write_csv` of a table given in parts: yields `write(part)`, each part a table of `schema`'s columns (cast
    to its types), written in order; the file is the same as `write_csv` of the parts stacked, and as atomic."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        if bom:
            fh.write("\ufeff".encode())
        writer = None

        def write(part: pa.Table) -> None:
            nonlocal writer
            plain = _plain(part.select(schema.names).cast(schema))
            plain = plain.cast(pa.schema([pa.field(f.name, pa.string() if _is_text(f.type) else f.type)
                                          for f in plain.schema]))
            if writer is None:
                writer = pacsv.CSVWriter(fh, plain.schema)
            writer.write_table(plain)

        yield write
        if writer is None:
            write(schema.empty_table())
        writer.close()


@contextlib.contextmanager
def parquet_parts(path: str | Path, compression: str = "zstd") -> Iterator:
    """`write_parquet` of a table given in parts: yields `write(part)`, the parts (tables of one schema) written in
    order as they come, each its own row groups (memory: one part; Parquet's encoder lets go of the GIL, so a
    thread reading the next part goes on meanwhile); as atomic. At least one part must be written."""
    with atomic_path(path) as tmp:
        writer = None

        def write(part: pa.Table) -> None:
            nonlocal writer
            if writer is None:
                writer = pq.ParquetWriter(tmp, part.schema, compression=compression)
            writer.write_table(part)

        try:
            yield write
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"{path}: no part was written")


@contextlib.contextmanager
def table_parts(path: str | Path) -> Iterator:
    """`write_table` of a table given in parts (`parquet_parts`, `csv_parts`), by extension; the parts' schema is
    the first part's. At least one part must be written."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: unsupported output type {suffix!r} (use .parquet or .csv)")
    with contextlib.ExitStack() as stack:
        writers: list = []

        def write(part: pa.Table) -> None:
            if not writers:
                writers.append(stack.enter_context(parquet_parts(path) if suffix == ".parquet"
                                                   else csv_parts(path, part.schema)))
            writers[0](part)

        yield write
        if not writers:
            raise ValueError(f"{path}: no part was written")


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write by extension: .parquet or .csv."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return write_parquet(table, path)
    if suffix == ".csv":
        return write_csv(table, path)
    raise ValueError(f"{path}: unsupported output type {suffix!r} (use .parquet or .csv)")


def write_json(obj: object, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    return Path(path)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_digests(*paths) -> list[dict]:
    """Manifest entries (file, sha256) of every file given, or under a folder given, in sorted order."""
    files = [f for p in map(Path, paths)
             for f in ([p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()))]
    return [{"file": str(f), "sha256": sha256_file(f)} for f in files]


class OutputFolder:
    """A command's output folder. Every file is written through it (`csv`, `parquet`, `json`, or `add` for one a
    writer elsewhere made), and `manifest` writes manifest.json last, listing exactly those files with their
    sha256: a manifest never names a file that was not written, nor misses one that was."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.written: list[str] = []
        self._pending: dict[str, Future] = {}  # name -> its background write, giving the file's sha256

    def add(self, name: str) -> Path:
        """Record `name`, written by another writer into the folder."""
        if name not in self._pending and not (self.path / name).is_file():
            raise OutputError(f"{self.path / name}: expected output was not written")
        if name not in self.written:
            self.written.append(name)
        return self.path / name

    def csv(self, table: pa.Table, name: str) -> Path:
        write_csv(table, self.path / name)
        return self.add(name)

    @contextlib.contextmanager
    def csv_parts(self, name: str, schema: pa.Schema) -> Iterator:
        """`csv` of a table written part by part (`writers.csv_parts`); recorded when the block ends."""
        with csv_parts(self.path / name, schema) as write:
            yield write
        self.add(name)

    def parquet(self, table: pa.Table, name: str, background: bool = False, **options) -> Path:
        """`background`: write (and hash) the file in a thread while the caller writes the others (Parquet's
        encoder releases the GIL); `manifest`, or `wait`, waits for it and raises its error."""
        if not background:
            write_parquet(table, self.path / name, **options)
            return self.add(name)

        def write() -> str:
            return sha256_file(write_parquet(table, self.path / name, **options))

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dipsim-write")
        self._pending[name] = executor.submit(write)
        executor.shutdown(wait=False)  # the thread ends when the write does
        return self.add(name)

    def wait(self) -> dict[str, str]:
        """Wait for the background writes: name -> sha256 of each (their error raised here)."""
        return {name: future.result() for name, future in self._pending.items()}

    def json(self, obj: object, name: str) -> Path:
        write_json(obj, self.path / name)
        return self.add(name)

    def manifest(self, fields: dict) -> Path:
        """manifest.json: the dipsim version, `fields` (command, inputs and their sha256, policy hash, counts...),
        and the files written (`outputs`, with `output_sha256`)."""
        from dipsim import __version__

        digests = self.wait()
        return write_json({"dipsim_version": __version__, **fields, "outputs": list(self.written),
                           "output_sha256": {name: digests.get(name) or sha256_file(self.path / name)
                                             for name in self.written}},
                          self.path / "manifest.json")
