"""A Prefect server started by a test: wait until its API answers (shared by the flow tests and
the PostgreSQL scale-out test)."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Return once ``{url}/health`` answers 200; fail with the server's log if it exits or does
    not answer within ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
        assert proc.poll() is None, "Prefect server exited:\n" + log.read_text()
    raise AssertionError("Prefect server did not answer /health:\n" + log.read_text())
