"""Running callqa's real command line in a fresh process, for the tests of what a user sees when a
command stops: through ``main()`` (the console script's entry, where machine problems become one
line), with optional code run first to set up the failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_MAIN = """
import sys
exec(sys.argv.pop(1))
from pipelines.shell.cli import main
sys.argv = ["callqa", *sys.argv[1:]]
main()
"""


def callqa_stopped(*args: str, setup: str = "") -> str:
    """Run ``callqa ARGS`` (``setup`` first, in the same process); assert it exited 1 with exactly one
    ``error:`` line and no traceback, and return that line."""
    proc = subprocess.run([sys.executable, "-c", _MAIN, setup, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output and "╭" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


# The real command line (`main`, the console script's entry), with a report at exit of how many
# objects the collector had been told to leave alone (``gc.freeze``) and whether the files are there.
_EXIT_DRIVER = """
import atexit, gc, os, sys
from pathlib import Path
out = Path(os.environ["EXIT_CHECK_OUT"])
atexit.register(lambda: print("AT-EXIT frozen=%d cards=%d" % (gc.get_freeze_count(), len(list(out.glob("*.scorecard.json")))
                                                              if out.is_dir() else 0)))
sys.argv = ["callqa", *sys.argv[1:]]
from pipelines.shell.cli import main
main()
"""


def callqa_main_at_exit(*args: str, out: Path) -> tuple[int, str]:
    """``callqa ARGS`` through ``main``; its exit code and output, with the ``AT-EXIT`` line."""
    root = ROOT
    proc = subprocess.run([sys.executable, "-c", _EXIT_DRIVER, *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root), "EXIT_CHECK_OUT": str(out)}, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr
