"""Where the project's shared test material lives: ``../shared`` beside the checkout, or the
folder named by ``CALLQA_SHARED`` — one answer for the tests and every bench script."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("CALLQA_SHARED", Path(__file__).resolve().parents[2] / "shared")).resolve()
"""The shared folder (seeds, rulebook notes, ``data/``)."""
DATA = SHARED / "data"
