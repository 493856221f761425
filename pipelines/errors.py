"""Errors a QA supervisor can act on: each names the call, the stage and what to do."""

from __future__ import annotations


class CallError(Exception):
    """One call could not be processed; the batch goes on without it.

    The message reads like ``call 0042.wav: not an audio file (ffmpeg: Invalid data found)``.
    """

    def __init__(self, call: str, stage: str, reason: str):
        self.call = call
        self.stage = stage
        self.reason = reason
        super().__init__(f"call {call}: {reason} [{stage}]")


class BadAudioError(CallError):
    """The input is not usable audio (corrupt, empty, silent, not audio, too long)."""

    def __init__(self, call: str, reason: str):
        super().__init__(call, "decode", reason)
