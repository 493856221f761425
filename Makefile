# The two commands of the README.  Both install first (idempotent), so each works on a fresh clone.
.PHONY: install demo test bench

OUT ?= out/demo

install:
	bash scripts/install.sh

demo: install
	.venv/bin/callqa transcribe samples/calls --out $(OUT)

test: install
	.venv/bin/python -m pytest

bench: install
	.venv/bin/python bench/bench_stages.py
