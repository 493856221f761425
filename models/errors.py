"""The one error a missing or broken model raises: it names the model and the fix."""


class ModelUnavailableError(RuntimeError):
    """A model is not in the local model store, or is there but fails to load."""

    def __init__(self, what: str, fix: str):
        self.what = what
        self.fix = fix
        super().__init__(f"{what} — fix: {fix}")


class DeviceOutOfMemoryError(RuntimeError):
    """The device (GPU) ran out of memory during a model call: the same call may succeed on retry
    once memory is freed.  CTranslate2 reports this as a plain ``RuntimeError``; it is turned into
    this type where Whisper is called, so that retries are decided by type, not by message."""
