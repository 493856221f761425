"""The local model store: what is there, and one clear error naming the fix when it is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.device import choose_device
from models.errors import ModelUnavailableError
from models.model_store import WHISPER_BASE_BYTES, ModelStore
from pipelines.settings import Settings


def test_default_store_holds_the_three_models():
    store = ModelStore.default()
    whisper = store.whisper("base")
    assert (whisper / "model.bin").stat().st_size == WHISPER_BASE_BYTES
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (whisper / name).is_file()
    assert store.segmentation().name == "pytorch_model.bin"
    assert store.speaker_embedding().stat().st_size > 1_000_000


def test_missing_models_name_the_fix(tmp_path):
    empty = ModelStore(tmp_path / "store")
    with pytest.raises(ModelUnavailableError, match="callqa models prepare"):
        empty.whisper("base")
    with pytest.raises(ModelUnavailableError, match=r"whisper-large-v3 or pass --asr-model"):
        empty.whisper("large-v3")
    with pytest.raises(ModelUnavailableError, match="callqa models prepare"):
        empty.segmentation()
    with pytest.raises(ModelUnavailableError, match="check the path"):
        empty.speaker_embedding(tmp_path / "other.pt")


def test_a_folder_without_model_bin_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="not a CTranslate2 model"):
        ModelStore(tmp_path).whisper(str(tmp_path))


def test_a_corrupt_model_fails_to_load_with_one_line(tmp_path):
    from models.transcription import Transcriber

    broken = tmp_path / "whisper-broken"
    broken.mkdir()
    source = ModelStore.default().whisper("base")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (broken / name).write_bytes((source / name).read_bytes())
    (broken / "model.bin").write_bytes(b"\0" * 1024)
    with pytest.raises(ModelUnavailableError, match="failed to load"):
        Transcriber(ModelStore(tmp_path).whisper("broken"), choose_device("cpu"))


def test_prepare_is_idempotent_and_writes_a_manifest():
    store = ModelStore.default()
    store.prepare()
    assert (store.root / "manifest.json").is_file()
    assert (store.whisper("base") / "model.bin").stat().st_size == WHISPER_BASE_BYTES


def test_settings_precedence(tmp_path, monkeypatch):
    config = tmp_path / "callqa.yaml"
    config.write_text("asr_model: large-v3\nnum_speakers: 3\nagent_channel: right\n")
    monkeypatch.setenv("CALLQA_NUM_SPEAKERS", "4")
    settings = Settings.load(config, language="zh")
    assert settings.asr_model == "large-v3"  # from the file
    assert settings.num_speakers == 4  # environment beats the file
    assert settings.language == "zh"  # flags beat everything
    assert settings.agent_channel == "right"


def test_a_bad_config_is_one_clear_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("agent_channel: middle\nasr_modle: base\n")
    with pytest.raises(SystemExit) as info:
        Settings.load(config)
    message = str(info.value)
    assert "bad.yaml" in message and "agent_channel" in message and "asr_modle" in message


def test_cpu_device_choice():
    choice = choose_device("cpu", threads=2)
    assert choice.device == "cpu" and choice.compute_type == "int8" and choice.threads == 2


def test_a_store_from_an_earlier_version_gains_new_columns(tmp_path):
    import sqlite3

    from pipelines.results.store import Store
    from qa_rules.records import CallSource

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as connection:  # the calls table as an earlier version wrote it
        connection.execute("CREATE TABLE calls (call_id VARCHAR(200) PRIMARY KEY, source TEXT, status VARCHAR(20))")
        connection.execute("INSERT INTO calls VALUES ('old-call', '/x.wav', 'done')")
    store = Store(f"sqlite:///{db}")
    store.register([CallSource(call_id="new-call", path=Path("/y.wav"), agent_id="A1")])
    rows = {r.call_id: r for r in store.calls()}
    assert rows["old-call"].status == "done" and rows["old-call"].agent_id is None
    assert rows["new-call"].agent_id == "A1" and rows["new-call"].claims == 0


@pytest.mark.parametrize("key,value", [
    ("diarization_step", "0"), ("diarization_step", "1.5"), ("diarization_step", "nan"), ("diarization_step", "fast"),
    ("diarization_embedding_stride", "0"), ("diarization_embedding_stride", "1.5"), ("diarization_embedding_stride", "all"),
    ("asr_mode", "turbo"), ("asr_batch_size", "0"), ("asr_batch_size", "-3"), ("asr_batch_size", "many"),
])
def test_a_bad_speed_setting_is_one_clear_line(tmp_path, monkeypatch, key, value):
    """The throughput settings (file and environment) refuse a broken value with one line naming
    the setting, before any model is loaded."""
    config = tmp_path / "speed.yaml"
    config.write_text(f"{key}: {value}\n")
    with pytest.raises(SystemExit) as info:
        Settings.load(config)
    assert "speed.yaml" in str(info.value) and key in str(info.value)
    monkeypatch.setenv(f"CALLQA_{key.upper()}", value)
    with pytest.raises(SystemExit) as info:
        Settings.load()
    assert key in str(info.value)
