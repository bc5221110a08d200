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
