"""Scoring saved calls: conversation + measures + rulebook → scorecard JSON and HTML.

Imports nothing that decodes audio or loads a model, so re-scoring the whole history with an edited
rulebook costs only JSON parsing and rule evaluation."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from qa_rules.files import write_text_privately
from qa_rules.records import CallError, Conversation, Measures, Scorecard
from pipelines.reports.scorecard_html import render_scorecard_html
from pipelines.reports.summary import SummaryRow

if TYPE_CHECKING:
    from qa_rules.memo import KnownOutcomes
    from qa_rules.rulebook import Rulebook


def rulebook_path_for(language: str, rulebook_path: Path | str | None) -> Path:
    """The rulebook a call in ``language`` is scored with: the one named for the run, else the
    language's default — the one place that choice is made."""
    import qa_rules

    return Path(rulebook_path) if rulebook_path else qa_rules.default_rulebook_path(language)


def load_rulebook_for(language: str, rulebook_path: Path | None):
    """The given rulebook, or the language's default, parsed once per process for as long as the
    file is unchanged (same size and modification time): re-scoring thousands of calls must not
    read and validate the YAML for each, and an edited file is read again."""
    import qa_rules

    path = rulebook_path_for(language, rulebook_path)
    try:
        stat = path.stat()
    except OSError:
        return qa_rules.load_rulebook(path)  # its own clear error for a missing or unreadable file
    return _parsed_rulebook(str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(path))


@lru_cache(maxsize=16)
def _parsed_rulebook(real_path: str, mtime_ns: int, size: int, given: str):
    """Parsed from the path as given, so that an error names the file the way its user did."""
    import qa_rules

    return qa_rules.load_rulebook(Path(given))


class Rulebooks:
    """The rulebooks of one run, each parsed once: the named one for every call, or each language's
    default on the first call in that language.  Parsing and validating the YAML costs more than
    scoring a call, so a batch must not pay it per call."""

    def __init__(self, rulebook_path: Path | None = None, loaded: "Rulebook | None" = None):
        self._path = Path(rulebook_path) if rulebook_path else None
        self._books: dict[Path, Rulebook] = {}
        if self._path is not None and loaded is not None:
            self._books[self._path] = loaded

    def for_language(self, language: str) -> "Rulebook":
        path = rulebook_path_for(language, self._path)
        if path not in self._books:
            self._books[path] = load_rulebook_for(language, path)
        return self._books[path]

    def load_every(self) -> None:
        """Load now each rulebook the run may score with (the named one, or every language's
        default) — before scoring processes fork, so that each starts with them.  One that cannot
        be loaded is left for the calls, which report it one by one."""
        from qa_rules.rulebook import DEFAULT_RULEBOOKS

        for language in DEFAULT_RULEBOOKS:
            try:
                self.for_language(language)
            except Exception:  # noqa: BLE001 - reported call by call
                pass


class OutcomeRecords:
    """Each scored call's rule outcomes, by the call's content (:mod:`qa_rules.memo`), under the
    output folder's ``.cache/outcomes``: a rulebook edit then re-judges only the rules it changed.
    A record that is missing, unreadable or damaged is no record — the call is judged in full."""

    def __init__(self, out_dir: Path | str) -> None:
        self.root = Path(out_dir) / OUTCOMES_FOLDER

    def _path(self, content: str) -> Path:
        return self.root / content[:2] / f"{content}.json"

    def known(self, content: str) -> "KnownOutcomes":
        from qa_rules.memo import KnownOutcomes

        try:
            return KnownOutcomes.from_json(self._path(content).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, unreadable, not UTF-8, damaged
            return KnownOutcomes()

    def keep(self, content: str, known: "KnownOutcomes") -> None:
        # written in place, not through a temporary file and a rename: a record cut short (a killed
        # worker, a full disk) is not JSON, or JSON with the old record's tail after it, and is read
        # as no record — the rename would only cost time on every call scored for the first time
        if known.changed:
            write_text_privately(self._path(content), known.to_json())


OUTCOMES_FOLDER = Path(".cache") / "outcomes"


def score_and_report(
    conversation: Conversation, measures: Measures, out_dir: Path, rulebook_path: Path | None = None, rulebook=None,
    content: str | None = None,
) -> Scorecard:
    """Score with the given (or the language's default) rulebook; write ``scorecard.json`` (the
    public contract) and its HTML page.  With ``content`` (the key of the conversation and measures
    as written: :func:`qa_rules.memo.content_key`), the outcomes of an earlier scoring of the same
    content are reused rule by rule (:class:`OutcomeRecords`) — the card is the same.

    Returns the typed scorecard: the store and the summary take it as it is, so no field is looked
    up by name in a dict on its way there."""
    import qa_rules

    book = rulebook or load_rulebook_for(conversation.language, rulebook_path)
    if content is None:
        card = qa_rules.score(conversation, measures, book)
    else:
        records = OutcomeRecords(out_dir)
        known = records.known(content)
        card = qa_rules.score(conversation, measures, book, known)
        records.keep(content, known)
    card.write(out_dir)
    render_scorecard_html(card, conversation, out_dir)
    return card


def measures_path_for(conversation_path: Path) -> Path:
    name = conversation_path.name.replace(".conversation.json", ".measures.json")
    return conversation_path.with_name(name)


def rescore_file(conversation_path: Path, out_dir: Path, rulebook_path: Path | None = None, rulebook=None) -> SummaryRow:
    """Re-score a saved conversation: reads JSON only (no audio, no model)."""
    from qa_rules.memo import content_key

    conversation_path = Path(conversation_path)
    call = conversation_path.name.replace(".conversation.json", "")
    try:
        conversation_text = conversation_path.read_text(encoding="utf-8")
        conversation = Conversation.model_validate_json(conversation_text)
    except (OSError, ValueError) as exc:
        raise CallError(call, "score", f"unreadable conversation file ({exc.__class__.__name__})") from exc
    measures_file = measures_path_for(conversation_path)
    if not measures_file.is_file():
        raise CallError(call, "score", f"no measures beside the conversation ({measures_file.name}); "
                                       "run `callqa transcribe` on the audio again")
    measures_text = measures_file.read_text(encoding="utf-8")
    measures = Measures.model_validate_json(measures_text)
    card = score_and_report(conversation, measures, out_dir, rulebook_path, rulebook,
                            content=content_key(conversation_text, measures_text))
    return SummaryRow.from_scorecard(card)
