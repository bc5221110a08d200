"""Compiled schemes kept on disk, so that `dipsim group` does not rebuild the kernel's arrays from the CSV tables on
every run (reading the tables and compiling them takes about half a second; loading the arrays, 10-20 ms).

The cache holds plain numpy arrays in an ``.npz`` file read with ``allow_pickle=False``: nothing in it is executed.
Its name carries a sha256 of everything the arrays are built from: the scheme folder's files, the ICD-9 dictionary
when the xQY rule is on (its procedure kinds), the `--qy` choice, the dipsim version and the source of the modules
that build the arrays (`compiled.py`, `reference.py`, `tables.py`: a change there invalidates old files). A stale
or unreadable file is rebuilt; a cache folder that cannot be written is skipped silently (the scheme is then
compiled in memory as before).

Folder: ``$DIPSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/dipsim``, else ``~/.cache/dipsim``; files under ``grouper/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from dipsim import __version__

from . import compiled as compiled_module
from . import reference as reference_module
from . import tables as tables_module
from .compiled import CompiledScheme, compile_scheme
from .tables import load_scheme, qy_applies, scheme_folder, scheme_name

CACHE_ENV = "DIPSIM_CACHE_DIR"
# The layout of the stored arrays, in the key and the file name: bump it whenever CompiledScheme's fields or their
# meaning change, so that a file another version of the code wrote is never read (the module sources in the key
# catch most such changes; this says it outright). 2: condition bands (age min, CC levels, procedures), list
# minimum counts, principal MCC (chs-drg-3.0).
FORMAT = 2
_MEMORY: dict[str, CompiledScheme] = {}


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dipsim"


def _key(folder: Path, qy_on: bool, qy: bool | None) -> str:
    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0{folder.name}\0{qy}\0".encode())
    for module in (compiled_module, reference_module, tables_module):  # the code that builds the arrays
        digest.update(Path(module.__file__).read_bytes())
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if qy_on:  # the QY procedures are the ICD-9 dictionary's 手术 kind
        files.append(folder.parent / "codes" / "icd9cm3_yb2.0.csv")
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_compiled(scheme: str = "chs-drg-1.1", root: str | None = None, qy: bool | None = None) -> CompiledScheme:
    """The compiled form of grouper_tables/<scheme>/ (as ``compile_scheme(load_scheme(...))``), from the disk cache
    when it holds this exact version of the tables, else built and stored there."""
    folder = scheme_folder(scheme, root)
    rules = tomllib.loads((folder / "special_rules.toml").read_text(encoding="utf-8"))
    key = _key(folder, qy_applies(rules, qy), qy)
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / "grouper" / f"{scheme_name(scheme, rules, qy)}-v{FORMAT}-{key[:24]}.npz"
    result = _read(path)
    if result is None:
        result = compile_scheme(load_scheme(scheme, root, qy))
        _write(result, path)
    _MEMORY[key] = result
    return result


def _fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(CompiledScheme) if f.name != "scheme"]


def _write(compiled: CompiledScheme, path: Path) -> None:
    arrays, objects = {}, []
    for f in _fields():
        value = getattr(compiled, f.name)
        if isinstance(value, pa.Array):  # Arrow strings as their offsets and bytes
            _, offsets, data = value.cast(pa.string()).buffers()
            arrays[f.name + ".offsets"] = np.frombuffer(offsets, np.int32)[value.offset:value.offset + len(value) + 1]
            arrays[f.name + ".data"] = np.frombuffer(data, np.uint8)
            continue
        if isinstance(value, (tuple, str)):
            value = np.array(value, dtype=str)
        value = np.asarray(value)
        if value.dtype == object:  # code strings: stored as fixed-width text, read back as objects
            value = value.astype(str)
            objects.append(f.name)
        arrays[f.name] = value
    arrays["_object_fields"] = np.array(objects, dtype=str)
    try:  # a read-only home or a full disk: grouping works without the cache
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **arrays)
        os.replace(tmp, path)  # readers see the old file or the whole new one
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def _read(path: Path) -> CompiledScheme | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            values = {}
            objects = set(stored["_object_fields"].tolist())
            for f in _fields():
                if f.name in ("dx_codes", "px_codes"):
                    offsets = stored[f.name + ".offsets"]
                    values[f.name] = pa.StringArray.from_buffers(
                        len(offsets) - 1, pa.py_buffer(offsets - offsets[0]), pa.py_buffer(stored[f.name + ".data"]))
                    continue
                value = stored[f.name]
                if f.name in objects:
                    value = value.astype(object)
                if f.name == "excl_names":
                    value = tuple(value.tolist())
                elif f.name == "name":
                    value = str(value)
                elif f.name in ("n_adrg", "n_drg"):
                    value = int(value)
                values[f.name] = value
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # torn or foreign file: rebuild it
        return None
    return CompiledScheme(scheme=None, **values)
