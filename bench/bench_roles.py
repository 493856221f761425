"""Roles and speakers on the labelled dev calls (``../shared/data/calls`` and ``calls2``): the share
of words given the right role by whole-call evidence beside the old opening-phrase rule, swapped
calls, transfers found, and mono DER — stereo and 8 kHz mono copies side by side.

Run: ``make bench`` (part of it) or ``.venv/bin/python bench/bench_roles.py [--from OUT]`` where
OUT holds conversations written by ``callqa transcribe``/``run`` for those calls (else they are
transcribed here, which takes a few minutes on CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.shared_data import DATA  # noqa: E402
warnings.filterwarnings("ignore")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.role_eval import content_roles, diarization_der, old_opening_roles, pooled, pooled_der, score_roles  # noqa: E402
from qa_rules.records import Conversation  # noqa: E402

CORPORA = ("calls", "calls2")


def labelled_calls() -> dict[str, tuple[Path, dict]]:
    out = {}
    for corpus in CORPORA:
        labels = json.loads((DATA / corpus / "labels.json").read_text(encoding="utf-8"))["calls"]
        for call_id, label in labels.items():
            out[call_id] = (DATA / corpus / label["file"], label)
    return out


def transcribe_all(calls: dict[str, tuple[Path, dict]], out: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.shell.cli import app

    files = [str(path) for path, _ in calls.values()]
    result = CliRunner().invoke(app, ["transcribe", *files, "--out", str(out)])
    if result.exit_code != 0:
        raise SystemExit(result.output)


def evaluate(folder: Path, console: Console) -> dict[str, float]:
    calls = labelled_calls()
    table = Table(title="Roles from content (channel map ignored) and mono DER, per call")
    for col in ("call", "layout", "words", "new: right", "old: right", "swapped new/old", "receiver", "DER"):
        table.add_column(col)
    groups: dict[str, list] = {"stereo new": [], "stereo old": [], "mono new": [], "mono old": []}
    mono_pairs, swapped_new = [], []
    for call_id, (_, label) in sorted(calls.items()):
        path = folder / f"{call_id}.conversation.json"
        if not path.is_file():
            continue
        conversation = Conversation.read(path)
        new = score_roles(conversation, label, content_roles(conversation))
        old = score_roles(conversation, label, old_opening_roles(conversation))
        layout = "mono" if conversation.speaker_mode == "diarization" else "stereo"
        groups[f"{layout} new"].append(new)
        groups[f"{layout} old"].append(old)
        der = diarization_der(conversation, label) if layout == "mono" else None
        if layout == "mono":
            mono_pairs.append((conversation, label))
        if new.swapped:
            swapped_new.append(call_id)
        table.add_row(
            call_id, layout, str(new.words), f"{new.accuracy:.1%}", f"{old.accuracy:.1%}",
            f"{'yes' if new.swapped else 'no'} / {'yes' if old.swapped else 'no'}",
            "-" if new.receiver_found is None else ("found" if new.receiver_found else "missed"),
            "-" if der is None else f"{der:.3f}",
        )
    console.print(table)
    figures = {k: pooled(v) for k, v in groups.items()}
    figures["mono DER pooled (collar 0.5 s)"] = pooled_der(mono_pairs) if mono_pairs else float("nan")
    summary = Table(title="Word-level role accuracy, pooled (new = whole-call evidence, old = opening phrases)")
    summary.add_column("set")
    summary.add_column("figure")
    for key, value in figures.items():
        summary.add_row(key, f"{value:.3f}")
    summary.add_row("calls swapped (new rule)", ", ".join(swapped_new) or "none")
    console.print(summary)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="folder with conversations of the dev calls")
    args = parser.parse_args()
    console = Console()
    if args.source:
        evaluate(args.source, console)
        return
    with tempfile.TemporaryDirectory() as tmp:
        transcribe_all(labelled_calls(), Path(tmp))
        evaluate(Path(tmp), console)


if __name__ == "__main__":
    main()
