"""Finding the calls to process: files, folders (recursively) and globs."""

from __future__ import annotations

import glob
from pathlib import Path

AUDIO_SUFFIXES = {".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac", ".wma", ".amr", ".webm", ".mp4"}


def collect_audio(inputs: list[str | Path]) -> list[Path]:
    """Audio files named by ``inputs``: a file is taken as given (even with an odd suffix, so that a
    mislabelled file gets a clear decode error), a folder is searched recursively, a pattern is
    globbed.  Order is stable and duplicates are dropped."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.exists():
            found.append(path)
        elif any(ch in str(item) for ch in "*?["):
            found += sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
        else:
            found.append(path)  # reported as "file not found" for that call, the rest go on
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.resolve() if path.exists() else path, None)
    return list(unique)
