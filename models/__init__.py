"""Speech models: the local model store, device choice, transcription and diarization.

This package knows speech models and nothing of QA.  It never downloads: every model comes from
the local model store (see :mod:`models.model_store`), filled from registry packages at install time.
"""

import os

# A call center's recordings never leave its servers: pyannote.audio's usage telemetry is off, and
# the Hugging Face hub client is told it is offline so that nothing can trigger a download.
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
