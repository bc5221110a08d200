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


_REFERENCE_CHECKS = {"calls": 0, "rows": 0}


@pytest.fixture(autouse=True)
def _validation_checked_against_its_reference(monkeypatch):
    """With DIPSIM_CHECK_VALIDATION=1, every `validate_cases` call of every test (in this process) is compared with
    the row-at-a-time reference (tests/validation_reference.py, issue 17): the whole suite's inputs, not only those
    of test_validation_reference.py. Off by default: the reference is plain Python, slow on the large tables."""
    import os

    if not os.environ.get("DIPSIM_CHECK_VALIDATION"):
        return
    from validation_reference import assert_same, reference_validate

    import dipsim.io
    from dipsim.grouping import explain
    from dipsim.io import pipeline, validate

    original = validate.validate_cases

    def checked(raw, options=None, first_rows=None, dictionary_codes=False):
        result = original(raw, options, first_rows, dictionary_codes)
        assert_same(result, reference_validate(raw, options, first_rows), raw.unmapped)
        _REFERENCE_CHECKS["calls"] += 1
        _REFERENCE_CHECKS["rows"] += result.rows_read
        return result

    for module in (validate, pipeline, explain, dipsim.io):
        monkeypatch.setattr(module, "validate_cases", checked)


def pytest_terminal_summary(terminalreporter):
    if _REFERENCE_CHECKS["calls"]:
        calls, rows = _REFERENCE_CHECKS["calls"], _REFERENCE_CHECKS["rows"]
        terminalreporter.write_line(f"validate_cases compared with its reference: {calls:,} calls, {rows:,} rows")
