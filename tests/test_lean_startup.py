"""Lean start-up: a `callqa run` with nothing to do, or a rulebook change answered from the analysis
cache, must not import the speech-model stacks (faster-whisper/CTranslate2, torch, pyannote.audio and
lightning) — they cost seconds per run (README, "Lean start-up").  Speed itself is measured by
bench/bench_startup.py; here we assert on what each run imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from pipelines.results.store import Store, default_store_url

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pyannote.audio", "lightning", "pytorch_lightning", "faster_whisper", "ctranslate2", "torch", "torchaudio")
PREFECT_RUN = ("prefect.flow_engine", "prefect.server.api.server")
"""Imported by a Prefect flow run and by Prefect's local (ephemeral) API: a cache-only run, with no
Prefect server configured, starts neither."""
PREFECT = ("prefect",)
"""Not even imported by a cache-only run where nothing could configure a Prefect server."""
RULE_DATA = ("numpy", "pypinyin")
"""Loaded by the rule engine only when it judges a rule (fuzzy phrase search, pinyin readings): a
rulebook change whose rules' outcomes are all remembered (``qa_rules.memo``) loads neither."""

# Runs the real CLI in this interpreter, then reports which heavy modules it imported.
DRIVER = textwrap.dedent(
    """
    import json, sys
    from pipelines.shell.cli import app
    try:
        app(sys.argv[1:], standalone_mode=False)
    finally:
        heavy = {heavy!r}
        print("IMPORTED=" + json.dumps([m for m in heavy if m in sys.modules]))
    """
).format(heavy=HEAVY + PREFECT_RUN + PREFECT + RULE_DATA)


def _env(prefect_home: Path | None = None) -> dict[str, str]:
    """As on a fresh machine: no Prefect server configured, one-shot runs on Prefect's local API.
    With ``prefect_home``, Prefect's home (its profiles) is that empty folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "WARNING", "CALLQA_THREADS": "2"}
    for name in [n for n in env if n.startswith("PREFECT_") and ("API" in n or "PROFILE" in n)]:
        del env[name]
    if prefect_home is not None:
        prefect_home.mkdir(exist_ok=True)
        env["PREFECT_HOME"] = str(prefect_home)
    return env


def _run_and_report(*args: str, prefect_home: Path | None = None) -> tuple[list[str], dict]:
    """`callqa run ARGS` in a fresh interpreter: the heavy modules it imported, and its JSON result."""
    out = Path(args[args.index("--out") + 1])
    result_file = out / "result.json"
    result_file.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", DRIVER, "run", *args, "--json-result", str(result_file)],
                          env=_env(prefect_home), cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("IMPORTED=")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1].removeprefix("IMPORTED=")), json.loads(result_file.read_text(encoding="utf-8"))


def test_finished_batch_and_cached_rescore_import_no_speech_models(real_data, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    # stereo: the first run needs Whisper but never diarization
    shutil.copy(real_data / "en_stereo_2ch_fasterwhisper" / "stereo_diarization.wav", calls / "call1.wav")
    out = tmp_path / "out"
    out.mkdir()
    imported, first = _run_and_report(str(calls), "--out", str(out))
    assert first["transcribed"] == ["call1"] and first["prefect"] is True
    assert "faster_whisper" in imported  # the check below can fail: a run that transcribes imports it
    assert "prefect.flow_engine" in imported  # ... and so can the Prefect one: model work is a flow run
    assert "pyannote.audio" not in imported and "lightning" not in imported  # a stereo call needs no diarizer
    assert "numpy" in imported  # the reporting of RULE_DATA works: the checks below can fail

    # nothing to do: every call finished with the same inputs
    # (Prefect's home an empty folder: nothing on this machine can name a Prefect server)
    imported, second = _run_and_report(str(calls), "--out", str(out), prefect_home=tmp_path / "prefect-home")
    assert second["skipped"] == ["call1"] and second["transcribed"] == [] and second["prefect"] is False
    assert imported == [], f"a run with nothing to do imported {imported}"

    # a rulebook change: re-scored from the analysis cache
    import qa_rules

    rulebook = tmp_path / "en.yaml"
    text = qa_rules.default_rulebook_path("en").read_text(encoding="utf-8")
    rulebook.write_text(text.replace("pass_mark: 80", "pass_mark: 97"), encoding="utf-8")
    imported, third = _run_and_report(str(calls), "--out", str(out), "--rulebook", str(rulebook),
                                      prefect_home=tmp_path / "prefect-home")
    assert third["cached"] == ["call1"] and third["transcribed"] == [] and third["prefect"] is False
    assert json.loads((out / "call1.scorecard.json").read_text(encoding="utf-8"))["pass_mark"] == 97
    assert imported == [], f"a re-score from the cache imported {imported}"

    # a rulebook change and a new call the cache cannot answer: the whole batch is a flow run, the
    # cached call re-scored from the cache, the new one transcribed; each taken up once
    import soundfile

    audio, rate = soundfile.read(calls / "call1.wav")
    soundfile.write(calls / "call2.wav", audio[: 4 * rate], rate)
    rulebook.write_text(text.replace("pass_mark: 80", "pass_mark: 96"), encoding="utf-8")
    imported, fourth = _run_and_report(str(calls), "--out", str(out), "--rulebook", str(rulebook))
    assert fourth["done"] == ["call1", "call2"] and fourth["skipped"] == [] and fourth["failed"] == {}
    assert fourth["cached"] == ["call1"] and fourth["transcribed"] == ["call2"] and fourth["prefect"] is True
    assert "faster_whisper" in imported and "prefect.flow_engine" in imported
    for call_id in ("call1", "call2"):
        assert json.loads((out / f"{call_id}.scorecard.json").read_text(encoding="utf-8"))["pass_mark"] == 96
    store = Store(default_store_url(out))
    claims = {row.call_id: (row.status, row.claims) for row in store.calls()}
    assert claims == {"call1": ("done", 3), "call2": ("done", 1)}, claims


def test_missing_diarization_weights_stop_the_batch_up_front_without_importing_pyannote(tmp_path):
    """The up-front model check covers the diarization weights by file: one error with its fix."""
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from models.errors import ModelUnavailableError
        from pipelines.shell.batch import require_model_files
        from pipelines.settings import Settings

        settings = Settings.load()
        require_model_files(settings)  # the real store is complete
        store = Path(sys.argv[1])
        store.mkdir()
        for entry in Path(settings.model_store).iterdir():  # every model but the segmentation one
            if entry.name != "{seg}":
                (store / entry.name).symlink_to(entry)
        try:
            require_model_files(Settings.load(model_store=store))
        except ModelUnavailableError as exc:
            print("ERROR=" + str(exc))
        print("IMPORTED=" + ",".join(m for m in {heavy!r} if m in sys.modules))
        """
    )
    from models.model_store import SEGMENTATION_DIR

    proc = subprocess.run([sys.executable, "-c", code.format(seg=SEGMENTATION_DIR, heavy=HEAVY), str(tmp_path / "store")],
                          env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR=pyannote segmentation checkpoint not found" in proc.stdout, proc.stdout
    assert "callqa models prepare" in proc.stdout
    assert proc.stdout.split("IMPORTED=")[1].strip() == "", proc.stdout
