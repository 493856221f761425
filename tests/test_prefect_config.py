"""A one-shot run asks Prefect whether a server is configured only when one of the places Prefect
reads settings from could name one (``pipelines/shell/prefect_config.py``); every such place makes
it ask, and Prefect's answer is the one used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.shell.prefect_config import prefect_settings_may_name_a_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def places(tmp_path):
    cwd, home = tmp_path / "work", tmp_path / "prefect-home"
    cwd.mkdir()
    home.mkdir()
    return cwd, home, {"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING", "PATH": "/usr/bin"}


def test_nothing_anywhere_means_no_server(places):
    cwd, home, env = places
    (cwd / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["prefect>=3"]\n')
    (home / "profiles.toml").write_text('active = "local"\n[profiles.local]\nPREFECT_LOGGING_LEVEL = "DEBUG"\n')
    assert not prefect_settings_may_name_a_server(env, cwd)


@pytest.mark.parametrize("variable", ["PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"])
def test_an_environment_variable_about_the_api_or_profiles_makes_it_ask(places, variable):
    cwd, _, env = places
    assert prefect_settings_may_name_a_server({**env, variable: ""}, cwd)


@pytest.mark.parametrize("name, text", [
    (".env", "PREFECT_API_URL=http://127.0.0.1:4200/api\n"),
    ("prefect.toml", '[api]\nurl = "http://127.0.0.1:4200/api"\n'),
    ("pyproject.toml", '[tool.prefect.api]\nurl = "http://127.0.0.1:4200/api"\n'),
])
def test_a_project_settings_file_makes_it_ask(places, name, text):
    cwd, _, env = places
    (cwd / name).write_text(text)
    assert prefect_settings_may_name_a_server(env, cwd)


def test_a_profile_naming_an_api_makes_it_ask(places):
    cwd, home, env = places
    (home / "profiles.toml").write_text('active = "srv"\n[profiles.srv]\nPREFECT_API_URL = "http://10.0.0.5:4200/api"\n')
    assert prefect_settings_may_name_a_server(env, cwd)


def test_when_asked_prefects_own_answer_counts(places):
    """A profile that names a server: the URL comes from Prefect's settings, as a flow run would see it."""
    cwd, home, env = places
    (home / "profiles.toml").write_text('active = "srv"\n[profiles.srv]\nPREFECT_API_URL = "http://10.0.0.5:4200/api"\n')
    code = "from pipelines.shell.prefect_config import configured_api_url; print('URL=' + str(configured_api_url()))"
    run_env = {**env, "PYTHONPATH": str(ROOT), "HOME": str(cwd)}
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        run_env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=run_env, capture_output=True, text=True, timeout=120)
    assert "URL=http://10.0.0.5:4200/api" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage\x80 not toml [[[", b"x" * ((1 << 20) + 1), None])
def test_a_broken_settings_file_never_fails_the_check_and_doubt_means_asking(places, content, monkeypatch):
    """A profiles.toml that is not text, too big to read, or unreadable: the check itself never
    fails.  Garbage that mentions no API means no server; a file it cannot read or read whole might
    name one, so Prefect is asked (its own error, if any, is then Prefect's)."""
    cwd, home, env = places
    profiles = home / "profiles.toml"
    if content is None:
        profiles.write_text('active = "x"\n')
        real_read = Path.read_text

        def refuse(self, *args, **kwargs):
            if self == profiles:
                raise PermissionError(13, "Permission denied", str(self))
            return real_read(self, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", refuse)
    else:
        profiles.write_bytes(content)
    expected = content is None or len(content) > (1 << 20)
    assert prefect_settings_may_name_a_server(env, cwd) is expected
