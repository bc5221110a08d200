"""Helpers shared by the table builders in tools/ (run as scripts: `python tools/build_*.py`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def source_dir_label(src: Path) -> str:
    """The source folder as the manifest records it: relative to the repository's parent when it is there (or
    when it is a `shared/reference` folder elsewhere, e.g. read from a git worktree)."""
    try:
        return Path("..", src.resolve().relative_to(REPO.parent.resolve())).as_posix()
    except ValueError:
        parts = src.resolve().parts
        if "shared" in parts[:-1] and parts[parts.index("shared") + 1:][:1] == ("reference",):
            # a git worktree reads its checkout's ../shared/reference from elsewhere: the same label
            return Path("..", *parts[parts.index("shared"):]).as_posix()
        return src.resolve().as_posix()


class BuildError(Exception):
    """A source line or count the build cannot accept; the message lists every problem with file:line."""


def run(name: str, build: Callable[[], list[str]]) -> int:
    """Run a build, print its log; on BuildError print why and return exit code 1."""
    try:
        log = build()
    except BuildError as e:
        print(f"{name}: FAILED\n{e}", file=sys.stderr)
        return 1
    print("\n".join(log))
    return 0
