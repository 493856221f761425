"""`callqa transcribe` end to end on constructed Mandarin calls: contract, roles, Simplified text,
bad input isolated."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from pipelines.shell.cli import EXIT_PARTIAL, app

CONTRACT = {"call_id", "source", "duration_s", "language", "channels", "speakers", "utterances", "models"}
TRADITIONAL = re.compile("[歡號請讓為務謝問還來電見]")


def test_transcribe_stereo_and_mono_calls_with_a_bad_file(tmp_path, sample_calls):
    bad = tmp_path / "0042.wav"
    bad.write_text("not audio at all")
    out = tmp_path / "out"
    calls = [str(sample_calls / "zh_good_stereo.flac"), str(sample_calls / "zh_good_mono.flac"), str(bad)]
    result = CliRunner().invoke(app, ["transcribe", *calls, "--out", str(out)])
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "0042.wav" in result.output and "not an audio file" in result.output

    for call_id, mode in (("zh_good_stereo", "channels"), ("zh_good_mono", "diarization")):
        data = json.loads((out / f"{call_id}.conversation.json").read_text(encoding="utf-8"))
        assert CONTRACT <= set(data)
        assert data["language"] == "zh" and data["speaker_mode"] == mode
        assert {"asr", "diarization", "device", "versions"} <= set(data["models"])
        roles = {s["id"]: s for s in data["speakers"]}
        assert sorted(s["role"] for s in roles.values()) == ["agent", "customer"]
        agent = next(s for s in roles.values() if s["role"] == "agent")
        assert agent["role_reason"]
        if mode == "channels":
            assert agent["channel"] == 1  # the recorder put the agent on the right
        utterances = data["utterances"]
        text = "".join(u["text"] for u in utterances)
        assert not TRADITIONAL.search(text), text
        first = utterances[0]
        assert first["role"] == "agent" and re.search("[您你]好", first["text"])  # Whisper base writes either
        assert {"start", "end", "text", "prob"} <= set(first["words"][0])
        # the 12.8 s announced hold (31.4 → 44.2 s) is a gap in the transcript, and the return
        # apology comes from the agent after it
        back = next(u for u in utterances if "久等" in u["text"])
        assert back["role"] == "agent" and 43.0 < back["start"] < 45.5
        assert not any(31.6 < u["start"] < 43.5 for u in utterances)


def test_transcribe_honours_the_duration_limit_of_the_settings(tmp_path, sample_calls, monkeypatch):
    """`callqa transcribe` decodes through the flow's own chain: ``max_duration_s`` refuses a long
    recording there too (it used to decode with the 4-hour default whatever the settings said)."""
    monkeypatch.setenv("CALLQA_MAX_DURATION_S", "10")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["transcribe", str(sample_calls / "zh_good_stereo.flac"), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "zh_good_stereo.flac" in result.output and "longer than" in result.output
    assert not list(out.glob("*.conversation.json"))
