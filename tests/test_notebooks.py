"""The notebooks in notebooks/ run from top to bottom on a small synthetic region (nbclient, a fresh kernel each)."""

from __future__ import annotations

import pytest

from dipsim.paths import repo_root

NOTEBOOKS = sorted((repo_root() / "notebooks").glob("*.ipynb"))


def test_there_are_five_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path_factory, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    work = tmp_path_factory.getbasetemp() / "notebooks"  # one small region shared by the notebooks
    monkeypatch.setenv("DIPSIM_NOTEBOOK_CASES", "3000")
    monkeypatch.setenv("DIPSIM_NOTEBOOK_DIR", str(work))
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(work.parent)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
