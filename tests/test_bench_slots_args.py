"""``bench/bench_slots.py`` takes ``--config SLOTS:THREADS`` and ``--repeat`` from whoever runs it:
a broken value is one argparse error line (exit status 2) before any call is run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_slots import slots_and_threads

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, says", [
    (["--config", "2:x"], "'2:x' is not SLOTS:THREADS"),
    (["--config", "2"], "'2' is not SLOTS:THREADS"),
    (["--config", "1:2:3"], "'1:2:3' is not SLOTS:THREADS"),
    (["--config", "0:1"], "slots must be 1 or more"),
    (["--config", "2:-1"], "threads 0 (every core) or more"),
    (["--config", "$(rm -rf /):1"], "is not SLOTS:THREADS"),
    (["--repeat", "0"], "--repeat must be 1 or more"),
])
def test_a_broken_argument_is_one_error_line_and_nothing_runs(tmp_path, args, says):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_slots.py"), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and says in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_good_configuration_reads_as_two_numbers():
    assert slots_and_threads("2:0") == (2, 0)
    assert slots_and_threads(" 1 : 4 ") == (1, 4)
