"""The one error a missing or broken model raises: it names the model and the fix."""


class ModelUnavailableError(RuntimeError):
    """A model is not in the local model store, or is there but fails to load."""

    def __init__(self, what: str, fix: str):
        self.what = what
        self.fix = fix
        super().__init__(f"{what} — fix: {fix}")
