"""The QA review console and calibration (issue 5).

``queries`` reads the queue and call pages from the store and writes human reviews beside the
machine verdicts; ``calibration`` measures machine-vs-human agreement per rule; ``auth`` guards the
console with a token; ``web`` holds the templates; ``app`` is the FastAPI app; ``commands`` adds
``callqa serve`` and ``callqa calibrate``.
"""
