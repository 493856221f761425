"""Finding the calls to process: files, folders (recursively), globs and manifest CSVs.

A call id becomes part of every output file name (``<call_id>.scorecard.json``), so it is checked
here, where it enters the pipeline: an id that could name another folder (``../../x``, ``a/b``),
hide control characters or overflow a file name is refused with the manifest line or file it came
from, and so is a manifest that names one call id twice (the second call would overwrite the
first's results).  Refused entries do not stop the batch: they come back as :class:`Rejected`, are
reported like any other failed call, and the good calls go on.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa_rules.records import CallSource

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac", ".wma", ".amr", ".webm", ".mp4"}

MAX_CALL_ID_CHARS = 120
MAX_CALL_ID_BYTES = 200
"""Bounds on a call id: ``<id>.conversation.json.tmp`` must fit a 255-byte file name, and the
store's ``call_id`` column holds 200 characters."""


def call_id_problem(call_id: str) -> str | None:
    """Why ``call_id`` cannot name a call's output files, or ``None`` when it can."""
    if not call_id:
        return "the call id is empty"
    if "/" in call_id or "\\" in call_id:
        return "the call id contains a path separator (/ or \\)"
    if ".." in call_id:
        return "the call id contains '..'"
    if call_id.startswith("."):
        return "the call id starts with '.' (it would name a hidden file)"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in call_id):
        return "the call id contains a control character (a newline, tab or invisible formatting)"
    if len(call_id) > MAX_CALL_ID_CHARS or len(call_id.encode("utf-8")) > MAX_CALL_ID_BYTES:
        return f"the call id is longer than {MAX_CALL_ID_CHARS} characters ({MAX_CALL_ID_BYTES} bytes in UTF-8)"
    return None


@dataclass(frozen=True)
class Rejected:
    """An entry of the source that names no usable call; ``label`` says where it is."""

    label: str
    """What a supervisor finds it by: ``manifest calls.csv, line 7`` or the file's path."""
    reason: str
    call_id: str | None = None
    """The call id when it is valid itself (a duplicate), so the store can record the refusal."""


@dataclass(frozen=True)
class SourceCalls:
    """The calls to process and the entries refused at the source."""

    calls: list["CallSource"] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.calls) + len(self.rejected)


def collect_audio(inputs: list[str | Path]) -> list[Path]:
    """Audio files named by ``inputs``: a file is taken as given (even with an odd suffix, so that a
    mislabelled file gets a clear decode error), a folder is searched recursively, a pattern is
    globbed.  Order is stable and duplicates are dropped."""
    return [path for path, _root in _collect_with_roots(inputs)]


def _collect_with_roots(inputs: list[str | Path]) -> list[tuple[Path, Path]]:
    """Like :func:`collect_audio`, each file with the recording root it was found under (the folder
    given, or the folder of a file or glob match): the console serves audio only from inside it."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += [(p, path) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
        elif path.exists():
            found.append((path, path.parent))
        elif any(ch in str(item) for ch in "*?["):
            found += sorted((Path(p), Path(p).parent) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
        else:
            found.append((path, path.parent))  # reported as "file not found" for that call, the rest go on
    unique: dict[Path, Path] = {}
    for path, root in found:
        unique.setdefault(path.resolve() if path.exists() else path, root)
    return list(unique.items())


def read_source(source: str | Path) -> SourceCalls:
    """Calls named by a folder, a glob, a single file or a manifest CSV.

    A manifest has a header with ``call_id, path`` (or ``file``) and optionally ``agent_id, team,
    started_at, direction, channel_map`` (or ``agent_channel``); relative paths are taken from the
    manifest's folder.  ``channel_map`` is ``left``/``right`` (the agent's channel) or empty/``mixed``.
    A manifest without a path column, or that cannot be read, raises ``ValueError``; a bad row is
    refused on its own (see :class:`Rejected`).
    """
    from qa_rules.records import CallSource

    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _read_manifest(path)
    calls, rejected = [], []
    roots: dict[Path, Path] = {}  # a folder's calls share their root: resolved once, not per call
    for audio, root in _collect_with_roots([source]):
        problem = call_id_problem(audio.stem)
        if problem:
            rejected.append(Rejected(f"file {_printable(str(audio))}", f"{problem} — rename the file"))
        else:
            if root not in roots:
                roots[root] = _resolved(root)
            calls.append(CallSource(call_id=audio.stem, path=audio, root=roots[root]))
    return _refuse_duplicates(SourceCalls(calls, rejected), {c.call_id: [str(c.path)] for c in calls}, by_line=False)


def _read_manifest(path: Path) -> SourceCalls:
    from qa_rules.records import CallSource

    calls: list[CallSource] = []
    rejected: list[Rejected] = []
    lines: dict[str, list[str]] = {}
    try:
        text = _manifest_text(path)
        with io.StringIO(text, newline="") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                line = reader.line_num
                where = f"manifest {path.name}, line {line}"
                file = row.get("path") or row.get("file") or ""
                if not file:
                    raise ValueError(f"{where}: no 'path' (or 'file') column value")
                audio = Path(file) if Path(file).is_absolute() else path.parent / file
                call_id = (row.get("call_id") or audio.stem).strip()
                problem = call_id_problem(call_id)
                if problem:
                    rejected.append(Rejected(
                        where, f"call id {_printable(call_id)!r} refused: {problem} — fix the call_id column"))
                    continue
                channel_map = (row.get("channel_map") or row.get("agent_channel") or "").strip().lower()
                lines.setdefault(call_id, []).append(str(line))
                calls.append(
                    CallSource(
                        call_id=call_id,
                        path=audio,
                        agent_id=row.get("agent_id") or None,
                        team=row.get("team") or None,
                        started_at=row.get("started_at") or None,
                        direction=row.get("direction") or None,
                        channel_map=channel_map if channel_map in ("left", "right") else None,
                        root=_resolved(audio.parent),
                    )
                )
    except csv.Error as exc:
        raise ValueError(f"manifest {path}: cannot be read as a CSV ({exc})") from None
    return _refuse_duplicates(SourceCalls(calls, rejected), lines, by_line=True, manifest=path.name)


def _manifest_text(path: Path) -> str:
    """The manifest's text: UTF-8 (with or without Excel's BOM), or GB18030 — what Excel's plain
    "CSV" writes on a Chinese Windows, where a call center's manifest is often made.  GB18030 is
    tried only when the bytes do not look like UTF-8 with a stray byte (more undecodable bytes than
    decoded non-ASCII characters), so a UTF-8 file with one bad byte is an error to fix, not a file
    read as Chinese gibberish."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    as_utf8 = data.decode("utf-8", errors="replace")
    undecodable = as_utf8.count("\ufffd")
    if undecodable > sum(1 for ch in as_utf8 if ch > "\x7f" and ch != "\ufffd"):
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            pass
        else:
            log.warning("manifest %s is not UTF-8: read as GB18030 (Excel's \"CSV\" on a Chinese Windows); "
                        "save it as \"CSV UTF-8\" to be sure of its names", path.name)
            return text
    raise ValueError(f"manifest {path}: cannot be read as a UTF-8 (or GB18030) CSV ({utf8_error}) — "
                     "save it from Excel as \"CSV UTF-8\"")


def _refuse_duplicates(found: SourceCalls, where: dict[str, list[str]], by_line: bool, manifest: str = "") -> SourceCalls:
    """Every entry of a call id named more than once is refused: which one is right is for the
    supervisor to say, and processing any of them would overwrite the other's results."""
    doubled = {call_id: places for call_id, places in where.items() if len(places) > 1}
    if not doubled:
        return found
    rejected = list(found.rejected)
    for call_id, places in doubled.items():
        listed = f"manifest {manifest}, lines {', '.join(places)}" if by_line else " and ".join(places)
        rejected.append(Rejected(
            listed, f"call id {call_id!r} is used by more than one entry ({listed}) — all of them refused; "
                    "give each call its own id", call_id=call_id,
        ))
    return SourceCalls([c for c in found.calls if c.call_id not in doubled], rejected)


def _resolved(folder: Path) -> Path:
    try:
        return folder.resolve()
    except OSError:
        return folder.absolute()


def _printable(text: str) -> str:
    """``text`` with control characters shown as escapes, so one refusal stays one line."""
    return "".join(ch if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp") else ascii(ch)[1:-1] for ch in text)
