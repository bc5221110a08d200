from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture
def shared_reference() -> Path:
    """../shared/reference, or a clean skip on a machine that does not have it (users never do)."""
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"{SHARED_REFERENCE} is absent: reference-data checks need the project's shared folder")
    return SHARED_REFERENCE


@pytest.fixture(autouse=True, scope="session")
def _scheme_cache_in_a_temporary_folder(tmp_path_factory):
    """Compiled schemes are cached on disk (dipsim.grouping.scheme_cache): the tests use a fresh folder, never the
    user's ~/.cache. Subprocesses (CLI tests) inherit the variable."""
    import os

    folder = tmp_path_factory.mktemp("dipsim-cache")
    old = os.environ.get("DIPSIM_CACHE_DIR")
    os.environ["DIPSIM_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("DIPSIM_CACHE_DIR", None)
    else:
        os.environ["DIPSIM_CACHE_DIR"] = old
