"""The reviewer and trainer notebooks run top to bottom with nbclient on a small store given by
``CALLQA_STORE_URL``, in a kernel of this virtualenv (its own kernelspec, no user Jupyter set-up)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from store_fixtures import build_store

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("notebooks"), months=2)


@pytest.fixture
def kernel_env(built, tmp_path, monkeypatch):
    """Point the notebooks at the test store and keep the kernel inside the repo + venv: the venv's
    jupyter data folder comes first, and IPython's profile is a fresh temporary one."""
    monkeypatch.setenv("CALLQA_STORE_URL", f"sqlite:///{built.out_dir / 'callqa.db'}")
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return tmp_path


def _run(name: str, cwd: Path) -> tuple[str, list[dict]]:
    """Execute a notebook; return all its printed text and its outputs."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, errors
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    return text, outputs


def _one(built, sql: str):
    with sqlite3.connect(built.out_dir / "callqa.db") as db:
        return db.execute(sql).fetchone()[0]


def test_qa_reviewer_notebook(built, kernel_env):
    text, outputs = _run("qa_reviewer.ipynb", kernel_env)
    assert f"python: {sys.executable}" in text
    flagged = _one(built, "select count(distinct call_id) from flags")
    assert flagged == 2  # zh_rude_repeat and its April copy (fatal rude repeat request)
    assert f"flagged calls: {flagged}\n" in text
    assert f"finished calls: {len(built.call_ids)}\n" in text
    fails = _one(built, "select count(*) from rule_results where rule_id='greeting.standard' and verdict='fail'")
    assert f"greeting.standard failures: {fails} of {len(built.call_ids)} calls" in text
    assert "«喂,你说,»" in text  # the evidence quote of zh_no_greeting
    assert any("text/html" in out.get("data", {}) for out in outputs if out.output_type == "execute_result")


def test_trainer_notebook(built, kernel_env):
    text, outputs = _run("trainer.ipynb", kernel_env)
    # A1024's hold: the good calls pass, the unannounced-hold calls (stereo, mono, April copies) fail
    assert "samples for A1024/hold: 3 best, 3 worst" in text
    assert "clips written: 6\n" in text
    assert "worst #1 zh_unannounced_hold" in text
    clips = sorted((kernel_env / "coaching_samples" / "A1024" / "hold" / "clips").glob("*.wav"))
    assert len(clips) == 6 and sum(c.name.startswith("worst-") for c in clips) == 3
    assert "trend months: 2\n" in text
    assert any("image/png" in out.get("data", {}) for out in outputs if out.output_type == "display_data")
    assert any("audio" in out.get("data", {}).get("text/html", "") for out in outputs if out.output_type == "display_data")
