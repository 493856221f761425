# The two commands of the README.  Both install first (idempotent), so each works on a fresh clone.
.PHONY: install demo test bench

OUT ?= out/demo

install:
	bash scripts/install.sh

demo: install
	.venv/bin/callqa run samples/calls/manifest.csv --out $(OUT)
	.venv/bin/callqa run samples/scripts/manifest.csv --out $(OUT)/scripts
	.venv/bin/callqa transcribe "$$(.venv/bin/python -c 'import pyannote.audio.sample as s, pathlib; print(pathlib.Path(s.__file__).parent / "sample.wav")')" --out $(OUT)/pyannote-sample

test: install
	.venv/bin/python -m pytest

bench: install
	.venv/bin/python bench/bench_stages.py
	.venv/bin/python bench/bench_roles.py
	.venv/bin/python bench/bench_redaction.py
	PYTHONPATH=. .venv/bin/python -m bench.bench_startup
	PYTHONPATH=. .venv/bin/python -m bench.bench_rescore
	PYTHONPATH=. .venv/bin/python -m bench.bench_rerun
	PYTHONPATH=. .venv/bin/python -m bench.bench_asr_modes
	PYTHONPATH=. .venv/bin/python -m bench.bench_diarization --steps 0.1 0.2
	PYTHONPATH=. .venv/bin/python -m bench.bench_slots
	PYTHONPATH=. .venv/bin/python -m bench.bench_memory
