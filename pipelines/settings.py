"""Pipeline settings: defaults, then a YAML config file, then ``CALLQA_*`` environment variables,
then command-line flags (each overriding the one before).

The layering is pydantic-settings' own: :meth:`Settings.settings_customise_sources` orders the
sources, so one validation sees every value and an error names the field wherever it came from."""

from __future__ import annotations

import errno
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from models.model_store import default_store_root
from models.options import DiarizationOptions, TranscriptionOptions


_CONFIG_FILE: ContextVar[Path | None] = ContextVar("callqa_config_file", default=None)
"""The YAML file :meth:`Settings.load` was given, for the duration of that call: pydantic-settings
builds its sources in a class method, with no argument to carry a per-call file through."""


class _YamlMapping(YamlConfigSettingsSource):
    """The config file as a source; a file that is not a mapping of ``setting: value`` is refused
    with that reason (the library would fail on it with an unrelated error)."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = super()._read_file(file_path)
        if not isinstance(data, dict):
            raise yaml.YAMLError(f"expected 'setting: value' lines, found a {type(data).__name__}")
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLQA_", extra="forbid")

    model_store: Path = default_store_root()
    asr_model: str = "base"
    """A name in the model store (``base``, ``large-v3``…) or a CTranslate2 Whisper folder."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str | None = None
    threads: int | None = None
    language: str | None = None
    """Force a language (``zh``, ``en``); ``None`` detects it per call."""
    beam_size: int = 5
    asr_mode: Literal["batched", "sequential"] = "batched"
    """``batched``: the speech of a call's channels cut into ≤ 30 s chunks and decoded together
    (faster-whisper's batched pipeline); ``sequential``: faster-whisper's window-by-window decoding,
    one channel after the other."""
    asr_batch_size: int = Field(default=8, ge=1)
    """Chunks decoded at once in batched mode (speed and memory only, not the text)."""
    num_speakers: int | None = None
    """Force this many speakers in a mono call; ``None``/``0``: clustering decides between
    ``min_speakers`` and ``max_speakers``."""
    min_speakers: int = 2
    """Below two the clustering threshold merges similar agent and customer voices (measured: DER
    0.34 instead of 0.01 on a 3-min 8 kHz call); a silent caller's single voice still comes out as
    one speaker, since the segmentation model hears only one."""
    max_speakers: int = 3
    diarization_step: float = Field(default=0.1, gt=0.0, le=1.0)
    """Step of pyannote's 10 s segmentation window, as a share of it (pyannote's own default)."""
    diarization_embedding_stride: int = Field(default=2, ge=1, le=10)
    """CAM++-embed every n-th segmentation window; the speakers of the others follow the speaker
    they overlap in a neighbouring window, or are embedded when they match none (1: every window,
    as pyannote does).  2 cuts diarization's CPU by 39 % at no loss of DER (README)."""
    redact_store: bool = False
    """Store transcript lines, evidence quotes and flags with personal numbers replaced
    (``[电话]``): search, the console and exports never see them.  Rules are scored on the full
    text before; the call's own conversation.json in the output folder keeps it."""
    """Agent, customer and a transfer's receiving agent."""
    agent_channel: Literal["left", "right"] | None = None
    """Stereo channel map: which channel carries the agent; ``None`` decides from content."""
    max_duration_s: float = 4 * 3600.0
    """Longer recordings are refused as bad input (a call is not a day-long stream)."""
    segmentation: Path | None = None
    """Another pyannote segmentation checkpoint instead of the store's segmentation-3.0."""
    embedding: Path | None = None
    """Other CAM++ weights instead of the store's."""

    def transcription_options(self) -> TranscriptionOptions:
        return TranscriptionOptions(beam_size=self.beam_size, mode=self.asr_mode, batch_size=self.asr_batch_size)

    def diarization_options(self) -> DiarizationOptions:
        return DiarizationOptions(
            num_speakers=self.num_speakers or None, min_speakers=self.min_speakers, max_speakers=self.max_speakers,
            segmentation_step=self.diarization_step, embedding_stride=self.diarization_embedding_stride,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: explicit values (the command-line flags), ``CALLQA_*`` variables, the YAML
        config file given to :meth:`load`; the field defaults under all.  No ``.env`` or secrets
        directory: callqa has never read them, and a stray ``.env`` must not change a run."""
        config_file = _CONFIG_FILE.get()
        if config_file is None:
            return init_settings, env_settings
        return init_settings, env_settings, _YamlMapping(settings_cls, yaml_file=config_file, yaml_file_encoding="utf-8")

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: object) -> "Settings":
        """Settings from an optional YAML file, the environment and explicit overrides (``None``
        overrides are flags not given, and ignored).  Any problem is one line naming the file:
        ``SystemExit``, as the command line shows it."""
        given = {k: v for k, v in overrides.items() if v is not None}
        path = Path(config_file) if config_file is not None else None
        token = _CONFIG_FILE.set(path)
        try:
            if path is not None and not path.is_file():  # pydantic-settings skips a missing file silently
                code = errno.EISDIR if path.is_dir() else errno.ENOENT
                raise OSError(code, os.strerror(code), str(path))
            return cls(**given)
        except (OSError, yaml.YAMLError) as exc:
            raise SystemExit(f"config {config_file}: cannot read it ({exc})") from exc
        except ValidationError as exc:
            where = f"config {config_file}" if config_file else "settings"
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SystemExit(f"{where}: {problems}") from exc
        finally:
            _CONFIG_FILE.reset(token)
