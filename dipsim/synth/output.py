"""Atomic output: every file goes into a temporary folder inside the output folder and is moved into place only
when the whole region has been written, so an interrupted run never leaves a half-written region behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Self

from dipsim.io.writers import sha256_file


class StagedOutput:
    """Files staged under ``out/.synth-tmp-*``; ``files`` records sha256, bytes and rows of each, in write order."""

    def __init__(self, out: Path):
        self.out = out
        self.tmp = Path(tempfile.mkdtemp(prefix=".synth-tmp-", dir=out))
        self.staged: dict[str, Path] = {}  # relative path -> temporary path
        self.files: dict[str, dict] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def put(self, rel: str, write: Callable[[Path], None], rows: int | None = None) -> None:
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        self.staged[rel] = path
        self.files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        if rows is not None:
            self.files[rel]["rows"] = rows

    def commit(self, partitions: set[str]) -> list[Path]:
        """Move every staged file into place; ``cases/`` partitions not in ``partitions`` (an earlier run's) go."""
        cases_dir = self.out / "cases"
        if cases_dir.is_dir():
            for old in cases_dir.glob("discharge_month=*"):
                if old.name not in partitions and old.is_dir():
                    shutil.rmtree(old)
        for rel, path in self.staged.items():
            final = self.out / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
        return [self.out / rel for rel in self.staged]
