"""Whether a Prefect server is configured for this run, without importing Prefect when nothing
could configure one.

``callqa run`` runs a batch with no model work without Prefect unless a server is configured
(README, "Lean start-up").  Prefect's own settings answer that, but ``import prefect`` costs
≈ 1.3 s — a third of such a run.  Prefect reads its settings from the environment, from ``.env``,
``prefect.toml`` and ``pyproject.toml`` (``[tool.prefect]``) in the working folder, and from the
active profile in ``profiles.toml`` (under ``PREFECT_HOME``, ``~/.prefect`` by default).  When none
of those places says anything about Prefect's API or profiles, no server is configured and Prefect
is not asked; otherwise it is asked, and its answer is the one that counts.  A wrong "maybe" only
costs the import; there is no wrong "no" short of Prefect adding a settings source."""

from __future__ import annotations

import os
from pathlib import Path

_TELLING_NAMES = ("API", "PROFILE")
"""Environment variables ``PREFECT_*`` with these in their name can point Prefect at a server."""

_MAX_SETTINGS_FILE = 1 << 20


def configured_api_url() -> str | None:
    """The Prefect API URL this process would use, or ``None`` (Prefect's local, ephemeral API)."""
    if not prefect_settings_may_name_a_server():
        return None
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def prefect_settings_may_name_a_server(environ: dict[str, str] | None = None, cwd: Path | None = None) -> bool:
    """False only when no place Prefect reads its settings from mentions its API or a profile."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    if any(name.startswith("PREFECT_") and any(word in name for word in _TELLING_NAMES) for name in environ):
        return True
    if (cwd / ".env").exists() or (cwd / "prefect.toml").exists():
        return True
    if _mentions(cwd / "pyproject.toml", "tool.prefect"):
        return True
    home = Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    return _mentions(home / "profiles.toml", "api")


def _mentions(path: Path, word: str) -> bool:
    """Whether the file holds ``word`` (any case); a file that cannot be read might, so it does."""
    try:
        if not path.is_file():
            return False
        if path.stat().st_size > _MAX_SETTINGS_FILE:
            return True
        return word in path.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return True
