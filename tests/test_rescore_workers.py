"""`callqa score` on several processes gives what one process gives: the same files, byte for
byte, the summary rows in the order of the files, and a broken call failing alone."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import callqa_main_at_exit as _callqa_main
from pipelines.shell.rescore import rescore_files, worker_count

SAVED = Path(__file__).parent / "fixtures" / "calls"


def _saved_calls(folder: Path, n: int) -> list[Path]:
    """``n`` saved conversation + measures pairs under new call ids, from the fixture calls."""
    folder.mkdir()
    sources = sorted(SAVED.glob("*.conversation.json"))
    made = []
    for k in range(n):
        source = sources[k % len(sources)]
        call_id = f"c{k:03d}_{source.name.removesuffix('.conversation.json')}"
        for kind in ("conversation", "measures"):
            record = json.loads(source.with_name(source.name.replace(".conversation.", f".{kind}.")).read_text(encoding="utf-8"))
            record["call_id"] = call_id
            (folder / f"{call_id}.{kind}.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        made.append(folder / f"{call_id}.conversation.json")
    return made


def test_two_workers_write_what_one_writes_in_the_same_order(tmp_path):
    files = _saved_calls(tmp_path / "saved", 70)
    (files[33].with_name(files[33].name.replace(".conversation.", ".measures."))).unlink()  # one broken call
    assert worker_count(len(files), 2) == 2

    alone = rescore_files(files, tmp_path / "one", workers=1)
    together = rescore_files(files, tmp_path / "two", workers=2)

    assert [row.call_id for row, _ in together] == [row.call_id for row, _ in alone]
    assert together == alone
    errors = [error for _, error in together if error]
    assert len(errors) == 1 and "no measures beside the conversation" in errors[0]
    one = sorted(p.name for p in (tmp_path / "one").iterdir() if p.is_file())  # .cache/outcomes aside
    assert one == sorted(p.name for p in (tmp_path / "two").iterdir() if p.is_file())
    assert len(one) == 2 * 69  # JSON + HTML for every call but the broken one
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name




def test_score_leaves_its_heap_to_the_exit_only_after_every_file_is_written(tmp_path):
    """`callqa score` skips Python's last cycle collection (``gc.freeze``, ~0.2 s of its run): only
    through the command line, once every scorecard and the summary are written — and a command
    that did not ask for it keeps the collection (the check can fail both ways)."""
    files = _saved_calls(tmp_path / "saved", 3)
    (files[1].with_name(files[1].name.replace(".conversation.", ".measures."))).unlink()  # a partial run too
    out = tmp_path / "out"
    code, output = _callqa_main("score", str(tmp_path / "saved"), "--out", str(out), out=out)
    assert code == 3, output  # partial: one call could not be scored
    frozen, cards = [line for line in output.splitlines() if line.startswith("AT-EXIT")][0].split()[1:]
    assert int(frozen.removeprefix("frozen=")) > 20_000, output  # the engine, records, rulebook: all frozen
    assert cards == "cards=2" and (out / "summary.csv").is_file(), output

    code, output = _callqa_main("models", "--help", out=out)
    assert code == 0, output
    assert "AT-EXIT frozen=0 " in output, output
