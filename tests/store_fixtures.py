"""A small results store built from saved conversations + measures (no audio decoding, no model):
the bundled sample calls as transcribed by the pipeline, spread over agents, teams and months.

``build_store(tmp_path)`` scores every fixture call with the default rulebooks, writes its
scorecard files and saves it in a SQLite store, as the QA batch would.  ``months`` copies of each
call are made with ``started_at`` moved back one month per copy (call ids get a ``-mN`` suffix) so
that reports and monthly coaching have a trend to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qa_rules.records import Conversation, Measures
from pipelines.stages.scoring import score_and_report
from pipelines.results.store import Store, default_store_url
from qa_rules.records import CallSource

FIXTURES = Path(__file__).parent / "fixtures" / "calls"
SAMPLE_CALLS = Path(__file__).resolve().parents[1] / "samples" / "calls"


@dataclass(frozen=True)
class BuiltStore:
    store: Store
    out_dir: Path
    call_ids: list[str]


def _shift_month(started_at: str, back: int) -> str:
    year, month = int(started_at[:4]), int(started_at[5:7])
    month -= back
    while month < 1:
        month += 12
        year -= 1
    return f"{year:04d}-{month:02d}{started_at[7:]}"


def build_store(tmp_path: Path, months: int = 1) -> BuiltStore:
    out_dir = tmp_path / "results"
    store = Store(default_store_url(out_dir))
    call_ids = []
    for conversation_file in sorted(FIXTURES.glob("*.conversation.json")):
        base = Conversation.read(conversation_file)
        measures = Measures.read(conversation_file.with_name(conversation_file.name.replace(".conversation.", ".measures.")))
        audio = SAMPLE_CALLS / Path(base.source).name
        for back in range(months):
            call_id = base.call_id if back == 0 else f"{base.call_id}-m{back}"
            metadata = dict(base.metadata)
            if "started_at" in metadata:
                metadata["started_at"] = _shift_month(metadata["started_at"], back)
            conversation = base.model_copy(update={"call_id": call_id, "source": str(audio), "metadata": metadata})
            call_measures = measures.model_copy(update={"call_id": call_id})
            source = CallSource(call_id=call_id, path=audio, **{k: v for k, v in metadata.items() if k in
                                ("agent_id", "team", "started_at", "direction", "channel_map")})
            store.register([source])
            conversation.write(out_dir)
            call_measures.write(out_dir)
            card = score_and_report(conversation, call_measures, out_dir)
            store.save(
                call_id, "fixture", "fixture", "fixture", conversation, call_measures, card,
                conversation_path=out_dir / f"{call_id}.conversation.json",
                scorecard_path=out_dir / f"{call_id}.scorecard.json",
            )
            call_ids.append(call_id)
    return BuiltStore(store=store, out_dir=out_dir, call_ids=call_ids)
