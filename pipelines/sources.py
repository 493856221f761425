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


def read_source(source: str | Path) -> list["CallSource"]:
    """Calls named by a folder, a glob, a single file or a manifest CSV.

    A manifest has a header with ``call_id, path`` (or ``file``) and optionally ``agent_id, team,
    started_at, direction, channel_map`` (or ``agent_channel``); relative paths are taken from the
    manifest's folder.  ``channel_map`` is ``left``/``right`` (the agent's channel) or empty/``mixed``.
    """
    import csv

    from pipelines.store import CallSource

    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".csv":
        calls = []
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                file = row.get("path") or row.get("file")
                if not file:
                    raise ValueError(f"manifest {path}, line {line}: no 'path' (or 'file') column value")
                audio = Path(file) if Path(file).is_absolute() else path.parent / file
                channel_map = (row.get("channel_map") or row.get("agent_channel") or "").strip().lower()
                calls.append(
                    CallSource(
                        call_id=(row.get("call_id") or audio.stem).strip(),
                        path=audio,
                        agent_id=row.get("agent_id") or None,
                        team=row.get("team") or None,
                        started_at=row.get("started_at") or None,
                        direction=row.get("direction") or None,
                        channel_map=channel_map if channel_map in ("left", "right") else None,
                    )
                )
        return calls
    return [CallSource(call_id=p.stem, path=p) for p in collect_audio([source])]
