"""A real PostgreSQL server for the tests, started by the test itself in a temporary folder
(Debian's `postgresql` package, installed by `make install`), on a free 127.0.0.1 port, trust
authentication, stopped afterwards.  The server refuses to run as root, so a root test run starts
it as the `postgres` system user the package creates."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path


def _find(name: str) -> str | None:
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)


def _binary(name: str) -> str:
    found = _find(name)
    assert found, f"PostgreSQL's {name} is missing — install Debian's `postgresql` package (`make install` does)"
    return found


def postgres_missing() -> str | None:
    """Why no PostgreSQL server can be started here (``None`` when one can): the reason a test that
    needs one is skipped with, on a machine where `make install` could not install the package."""
    missing = [name for name in ("initdb", "pg_ctl") if _find(name) is None]
    if missing:
        return (f"PostgreSQL server programs not installed ({', '.join(missing)}): `make install` installs "
                "Debian's `postgresql` package, which needs root or sudo on this machine")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without `runuser`: PostgreSQL refuses to run as root"
    return None


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def postgres_server():
    """Yields a SQLAlchemy URL (psycopg) of a fresh, empty database.  The server's folder is a
    temporary folder of its own (pytest's are private to root, the server runs as `postgres`)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="callqa-pg-"))
    data = folder / "pgdata"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_as_server_user([_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                                    "--locale=C"]), check=True, capture_output=True, timeout=120)
    log = folder / "server.log"
    subprocess.run(_as_server_user([_binary("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True, timeout=90)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([_binary("pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
