"""Where the packaged reference tables live (the product never reads ``../shared`` at run time)."""

from __future__ import annotations

import os
from pathlib import Path

TABLES_ENV = "DIPSIM_TABLES"


def repo_root() -> Path:
    """The project checkout: the folder holding ``dipsim/`` and ``grouper_tables/``."""
    return Path(__file__).resolve().parents[1]


def tables_dir() -> Path:
    """The grouper tables folder: ``$DIPSIM_TABLES`` if set, else ``<repo root>/grouper_tables`` in a checkout
    (editable install), else the copy a wheel installs as ``dipsim/grouper_tables``.

    Raises FileNotFoundError naming the path when the folder does not exist.
    """
    env = os.environ.get(TABLES_ENV)
    path = Path(env).expanduser() if env else repo_root() / "grouper_tables"
    if not env and not path.is_dir():
        path = Path(__file__).resolve().parent / "grouper_tables"
    if not path.is_dir():
        hint = f" (from ${TABLES_ENV})" if env else f" (set ${TABLES_ENV} to point elsewhere)"
        raise FileNotFoundError(f"grouper tables folder not found: {path}{hint}")
    return path


def scenarios_dir() -> Path:
    """The shipped scenario and policy files: ``<repo root>/scenarios`` in a checkout, else the copy a wheel installs
    as ``dipsim/scenario_files``."""
    path = repo_root() / "scenarios"
    return path if path.is_dir() else Path(__file__).resolve().parent / "scenario_files"
