"""Atomic writers: a reader never sees a half-written file (write to a temporary name, then os.replace)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: str | Path, compression: str = "zstd") -> Path:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=compression)
    return Path(path)


def write_csv(table: pa.Table, path: str | Path, bom: bool = True) -> Path:
    """CSV in UTF-8; with a BOM by default so that Excel on a Chinese Windows shows 中文 headers correctly."""
    plain = table.select(
        [i for i, f in enumerate(table.schema) if not pa.types.is_list(f.type)]
    )
    lists = [f.name for f in table.schema if pa.types.is_list(f.type)]
    for name in lists:  # code lists as one comma-joined cell, the way claims exports carry them
        joined = pc.binary_join(table[name], ",")
        plain = plain.add_column(table.schema.get_field_index(name), name, joined)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            if bom:
                fh.write("\ufeff".encode())
            pacsv.write_csv(plain, fh)
    return Path(path)


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
