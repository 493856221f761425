"""The install script checks the disk before it installs the torch stack.

A fresh install needs about 9 GB in ``.venv``.  On a full disk pip used to stop half-way with
``[Errno 28] No space left on device`` (seen in CI); now the script stops first, with one line that says
how much room it needs, where, and what to do.  These run the real script in an empty folder, where no
torch stack is installed yet, and check that it stops before it creates anything.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_install(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "install.sh", tmp_path / "scripts" / "install.sh")
    return subprocess.run(
        ["bash", "scripts/install.sh"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )


def test_too_little_room_stops_before_anything_is_installed(tmp_path: Path) -> None:
    done = _run_install(tmp_path, CALLQA_INSTALL_NEED_GB="999999")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "needs about 999999 GB free for the torch stack" in done.stdout
    assert "Free some space there" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / ".venv").exists()


def test_a_hostile_figure_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    done = _run_install(tmp_path, CALLQA_INSTALL_NEED_GB=f"1; touch {marker}")
    assert done.returncode == 1
    assert "CALLQA_INSTALL_NEED_GB must be a whole number of GB" in done.stdout
    assert not marker.exists()
    assert not (tmp_path / ".venv").exists()


def test_a_missing_temporary_folder_is_named(tmp_path: Path) -> None:
    done = _run_install(tmp_path, CALLQA_INSTALL_NEED_GB="0", TMPDIR=str(tmp_path / "no-such-folder"))
    assert done.returncode == 1
    assert "cannot read the free space of" in done.stdout and "no-such-folder" in done.stdout
    assert not (tmp_path / ".venv").exists()
