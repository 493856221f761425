"""Rulebook loading: the defaults are valid and cite seeds; broken rulebooks give one clear line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import qa_rules
from qa_rules import CATEGORIES, RulebookError, default_rulebook_path, load_rulebook

REQUIRED = {
    "greeting.standard": "greeting", "hold.announce_10s": "hold", "hold.return_apology": "hold",
    "hold.reason_consent_timelimit": "hold", "closing.anything_else": "closing", "closing.thanks_for_calling": "closing",
    "closing.welcome_again": "closing", "voice.loudness": "volume", "voice.speech_rate": "speech_rate",
    "voice.pitch_intonation": "tone", "forbidden.rude_repeat_request": "forbidden_language",
    "forbidden.profanity": "forbidden_language", "polite.courtesy_terms": "courtesy", "listen.no_interrupt": "interruption",
}


@pytest.mark.parametrize("language", ["zh", "en"])
def test_default_rulebooks_have_the_required_rules_with_sources(language):
    book = load_rulebook(default_rulebook_path(language))
    rules = {r.id: r for _, r in book.rules}
    for rid, category in REQUIRED.items():
        assert rules[rid].category == category, rid
    for rule in rules.values():
        assert "›" in rule.source, f"{rule.id} cites no seed clause"
        assert rule.title.zh and rule.title.en
    assert book.language == language


def test_default_rulebook_path_by_language():
    assert default_rulebook_path("zh").name == "zh_default.yaml"
    assert default_rulebook_path("yue").name == "zh_default.yaml"
    assert default_rulebook_path("en").name == "en_default.yaml"
    assert default_rulebook_path("fr").name == "en_default.yaml"
    assert default_rulebook_path("zh").is_file()


def test_public_api():
    for name in ("load_rulebook", "default_rulebook_path", "score", "Scorecard", "CATEGORIES", "RulebookError"):
        assert hasattr(qa_rules, name)
    assert "forbidden_language" in CATEGORIES and "speech_rate" in CATEGORIES and len(CATEGORIES) == 19
    for situational in ("silent_caller", "cant_hear", "transfer", "unresolved", "dictation", "wrong_number"):
        assert situational in CATEGORIES


GOOD = """\
id: t
version: "1"
language: zh
sections:
  - id: s
    weight: 2
    rules:
      - id: greeting.standard
        title: {zh: 问候, en: Greeting}
        category: greeting
        operator: phrase
        params:
          phrases: [您好]
        points: 5
        source: "003 › x › 1"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "book.yaml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def error(tmp_path: Path, text: str) -> RulebookError:
    with pytest.raises(RulebookError) as info:
        load_rulebook(write(tmp_path, text))
    msg = str(info.value)
    assert "book.yaml" in msg and "Traceback" not in msg
    return info.value


def test_good_rulebook_loads(tmp_path):
    book = load_rulebook(write(tmp_path, GOOD))
    assert book.sections[0].weight == 2 and book.rules[0][1].operator == "phrase"


def test_bad_operator_names_the_line(tmp_path):
    err = error(tmp_path, GOOD.replace("operator: phrase", "operator: phrse"))
    assert err.line == 11
    assert "unknown operator 'phrse'" in str(err) and "greeting.standard" in str(err) and "line 11" in str(err)


def test_bad_category_names_the_line(tmp_path):
    err = error(tmp_path, GOOD.replace("category: greeting", "category: greetings"))
    assert err.line == 10 and "unknown category 'greetings'" in str(err)


def test_yaml_syntax_error_names_the_line(tmp_path):
    err = error(tmp_path, GOOD.replace("title: {zh: 问候, en: Greeting}", "title: {zh: 问候, en: Greeting"))
    assert "YAML syntax error" in str(err) and err.line in (9, 10)


def test_missing_field_names_the_rule_line(tmp_path):
    err = error(tmp_path, GOOD.replace('        source: "003 › x › 1"\n', ""))
    assert "missing field 'source'" in str(err) and err.line == 8


def test_bad_operator_parameter_names_the_line(tmp_path):
    err = error(tmp_path, GOOD.replace("phrases: [您好]", "phrases: [您好]\n          mach: all"))
    assert "unknown field 'mach'" in str(err) and err.line == 14
    err = error(tmp_path, GOOD.replace("phrases: [您好]", "phrases: [{regex: '(unclosed'}]"))
    assert "bad regex" in str(err) and err.line == 13


def test_duplicate_rule_id_and_not_a_mapping(tmp_path):
    rule = GOOD.split("    rules:\n")[1]
    err = error(tmp_path, GOOD + rule)
    assert "duplicate rule id" in str(err) and err.line == 16
    assert error(tmp_path, "- just a list\n").line == 1


def test_missing_file_is_a_rulebook_error(tmp_path):
    with pytest.raises(RulebookError, match="cannot read"):
        load_rulebook(tmp_path / "book.yaml")


def test_uncertain_roles_flag_the_call():
    from qa_rules.records import Speaker
    from qa_rules import load_rulebook, default_rulebook_path
    from qa_rules.engine import score
    from tests.fixtures_qa.build import T, call

    conversation, measures = call([T("agent", 0.5, 4.0, "您好,请问有什么可以帮您?"), T("customer", 4.5, 7.0, "我想查话费。")])
    rulebook = load_rulebook(default_rulebook_path("zh"))
    assert not any(f.reason.startswith("roles uncertain") for f in score(conversation, measures, rulebook).flags)
    doubtful = conversation.model_copy(update={"speakers": [
        Speaker(id="A", role="agent", role_reason="speaks first", kind="agent", role_confidence=0.61),
        Speaker(id="C", role="customer", role_reason="not the agent", kind="customer", role_confidence=0.61),
    ]})
    flags = [f.reason for f in score(doubtful, measures, rulebook).flags]
    assert any(f.startswith("roles uncertain: A taken for the agent with confidence 0.61") for f in flags), flags


def test_a_python_object_tag_is_refused_not_constructed(tmp_path):
    """The rulebook is parsed with a SafeLoader subclass: a tag that would run code is one error."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f'name: x\nlanguage: zh\nrun: !!python/object/apply:os.system ["touch {marker}"]\n', encoding="utf-8")
    with pytest.raises(RulebookError) as err:
        load_rulebook(path)
    assert "evil.yaml" in str(err.value) and "\n" not in str(err.value).strip()
    assert not marker.exists()


def test_the_rulebook_of_a_call_is_chosen_in_one_place(tmp_path):
    """A named rulebook scores every call; without one, Chinese calls (Mandarin, Cantonese) get
    zh_default.yaml and every other language en_default.yaml — the loader, a batch's rulebooks and
    the finished-call key all follow :func:`rulebook_path_for`.  The key of a run without a named
    rulebook is the digest of both defaults, zh first (a changed key re-scores every call)."""
    import hashlib

    import qa_rules
    from pipelines.shell.batch import rulebook_content_key
    from pipelines.stages.scoring import Rulebooks, load_rulebook_for, rulebook_path_for

    zh, en = qa_rules.default_rulebook_path("zh"), qa_rules.default_rulebook_path("en")
    assert [zh.name, en.name] == ["zh_default.yaml", "en_default.yaml"]
    assert qa_rules.default_rulebook_paths() == [zh, en]
    for language, expected in (("zh", zh), ("zh-CN", zh), ("yue", zh), ("cmn", zh), ("en", en), ("", en), ("fr", en)):
        assert rulebook_path_for(language, None) == expected
        assert Rulebooks().for_language(language).id == load_rulebook_for(language, None).id == \
            qa_rules.load_rulebook(expected).id
    named = tmp_path / "house.yaml"
    named.write_text(zh.read_text(encoding="utf-8").replace("id: ", "id: house_", 1), encoding="utf-8")
    for language in ("zh", "en"):
        assert rulebook_path_for(language, named) == named
        assert Rulebooks(named).for_language(language).id == qa_rules.load_rulebook(named).id
    both = hashlib.sha256(zh.read_bytes() + en.read_bytes()).hexdigest()[:40]
    assert rulebook_content_key(None) == both
    assert rulebook_content_key(str(named)) == hashlib.sha256(named.read_bytes()).hexdigest()[:40]
