"""Writing records into an output folder safely: owner-only files, atomic JSON, and names that
cannot leave the folder.  Used by the records' ``write`` methods and by every writer in
``pipelines``."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Iterator

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
"""Transcripts, measures and scorecards hold what customers said: readable by their owner only."""


class OutsideOutputError(ValueError):
    """A file name that would land outside the output folder (a call id like ``../../x``)."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""No space left on the device, or the user's disk quota used up: the machine's fault, not the call's."""


class OutOfSpaceError(RuntimeError):
    """The disk (or quota) under the output folder, the cache or the store is full.  Raised by the
    batch so that a full disk stops the run with one line saying what was kept, instead of failing
    every call that follows one by one (and then failing to record even that)."""


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` — or what it wraps (SQLAlchemy's ``orig``, a cause or context) — says that a
    disk or quota is full: ``ENOSPC``/``EDQUOT``, SQLite's "database or disk is full", or
    PostgreSQL's ``disk_full`` (SQLSTATE 53100).  Only looks at the exceptions: no database driver
    is imported for it."""
    for item in exception_chain(exc):
        if isinstance(item, OutOfSpaceError):
            return True
        if isinstance(item, OSError) and item.errno in DISK_FULL_ERRNOS:
            return True
        if type(item).__module__.startswith("sqlite3") and "database or disk is full" in str(item):
            return True
        if getattr(item, "sqlstate", None) == "53100" or getattr(item, "pgcode", None) == "53100":
            return True
    return False


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (its type's name when it has none), for a one-line report:
    a database error's message goes on with the SQL and its parameters."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps — a database driver's error under SQLAlchemy's (``orig``),
    its cause and its context — each once, even where the chain loops."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        orig = getattr(item, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None, item.__cause__, item.__context__]


def make_private_dir(folder: Path) -> Path:
    """Create ``folder`` and any missing parents as 0700 (``mkdir(mode=)`` sets only the last one)."""
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for item in reversed(missing):
        try:
            item.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass
    return folder


def output_folder_problem(folder: Path | str) -> str | None:
    """Why nothing can be written to ``folder`` (created if missing), or ``None`` when it can — so
    a read-only or mistyped output folder is one line up front, not a traceback after an hour."""
    folder = Path(folder)
    try:
        make_private_dir(folder)
        if not folder.is_dir():
            return f"{folder} is not a folder"
        fd, probe = tempfile.mkstemp(prefix=".callqa-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write to the output folder {folder} ({exc.strerror or exc})"
    return None


@lru_cache(maxsize=64)
def _resolved_folder(folder: str) -> Path:
    """An output folder's real path, worked out once per process: every call's files go there."""
    return Path(folder).resolve()


def call_file(out_dir: Path | str, call_id: str, suffix: str) -> Path:
    """``out_dir/<call_id><suffix>``, asserted to stay directly inside ``out_dir``: a call id is
    validated where it enters (:mod:`pipelines.sources`), and this guards every writer as well."""
    out = Path(out_dir)
    name = f"{call_id}{suffix}"
    path = out / name
    # a plain name (its own last part, not "." or "..") lands in the folder itself unless the file
    # there is a link: only then, or for a name that is not plain, is the whole path resolved and
    # checked (one lstat a file, not a walk of the folder's path)
    if name not in (".", "..") and path.name == name and not os.path.islink(path):
        return path
    base = _resolved_folder(os.path.abspath(out))
    target = path.resolve()
    if path.name != name or target.parent != base:
        raise OutsideOutputError(
            f"call id {call_id!r} would write {target}, outside the output folder {base} — refused"
        )
    return path


def write_text_privately(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (0600), creating folders as 0700.

    A file already there is written over and cut to the new length, not emptied first: on ext4
    (``auto_da_alloc``) a file emptied by ``O_TRUNC`` has its new blocks written out when it is
    closed, ~0.3–0.5 ms a file — a twentieth of re-scoring a call, paid for every page."""
    # encoded before the file is opened: text that cannot be encoded leaves none
    return _write_bytes_privately(path, text.encode("utf-8"))


_OPEN_TO_WRITE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""Never through a link; never waiting on a named pipe (no reader: ``ENXIO`` at once, not a hang)."""


def _open_own_file(path: Path) -> int:
    """A descriptor on ``path`` that writes only ``path``: the regular file there when it is ours
    and has no other name, else a new file in its place.

    Whatever else stands at the name — a link planted to point at a file elsewhere, a second hard
    link to another file, a named pipe or a device, another user's file — is removed (the name
    only, never what it points at) and a new file is created with ``O_EXCL``, which no link can
    redirect.  Something planted again in between makes that ``O_EXCL`` fail: an error for this
    write, never a write elsewhere."""
    try:
        fd = os.open(path, _OPEN_TO_WRITE, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EACCES, errno.EPERM):
            raise
        fd = None
    if fd is not None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and info.st_uid == os.geteuid():
            return fd
        os.close(fd)
    os.unlink(path)  # the name only; a folder here is an error (IsADirectoryError), as it should be
    return os.open(path, _OPEN_TO_WRITE | os.O_EXCL, PRIVATE_FILE)


def _write_bytes_privately(path: Path, data: bytes) -> Path:
    make_private_dir(path.parent)
    fd = _open_own_file(path)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        view = memoryview(data)
        while view:  # the bytes with one write call (no text layer), however many the kernel takes
            view = view[os.write(fd, view):]
        os.ftruncate(fd, len(data))
    except BaseException:
        # a write that stopped part-way (a full disk) would leave the new text's start over the old
        # text's end: no file is better than a mixed one, which a reader would take for a real one
        os.close(fd)
        _remove(path)
        raise
    os.close(fd)
    return path


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_text_atomically(path: Path, text: str) -> Path:
    """Write through a temporary file and rename, so a killed worker never leaves half a file; the
    file is private (0600) from its first byte.

    The old file is removed just before the rename instead of being renamed over: renaming over a
    file makes ext4 (``auto_da_alloc``) write the new one's blocks out at once, which cost more
    than writing it.  A reader may find no file for that moment, never half of one.

    A private file that already holds exactly ``text`` is left as it is: a re-score after a
    rulebook change writes every call's conversation and measures again, unchanged, and creating,
    removing and renaming a file cost ~0.4 ms where reading it to compare costs ~0.03 ms."""
    data = text.encode("utf-8")
    if _holds_already(path, data):
        return path
    tmp = path.with_name(path.name + ".tmp")
    _write_bytes_privately(tmp, data)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.rename(tmp, path)
    return path


def _holds_already(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file of ours, owner-only, holding exactly ``data`` — never
    through a link (a link is replaced by a file of its own, as any other write does)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != PRIVATE_FILE
                or info.st_uid != os.geteuid() or info.st_size != len(data)):
            return False
        held = bytearray()
        while len(held) <= len(data):  # one read more than the size: a file grown since is not the same
            chunk = os.read(fd, len(data) + 1 - len(held))
            if not chunk:
                break
            held += chunk
        return held == data
    except OSError:
        return False
    finally:
        os.close(fd)
