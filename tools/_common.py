"""Helpers shared by the table builders in tools/ (run as scripts: `python tools/build_*.py`)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def source_dir_label(src: Path) -> str:
    """The source folder as the manifest records it: relative to the repository's parent when it is there."""
    try:
        return Path("..", src.resolve().relative_to(REPO.parent.resolve())).as_posix()
    except ValueError:
        return src.resolve().as_posix()
