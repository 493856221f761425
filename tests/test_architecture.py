"""The layers of the README's ARCHITECTURE section, checked on the source: data flows one way and
no package depends on one above it (imports parsed with ``ast``, including those inside
functions)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules(folder: str) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): _imports(p) for p in sorted((ROOT / folder).rglob("*.py"))}


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path} imports {name}"
        for path, names in _modules(folder).items()
        for name in sorted(names)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_models_know_nothing_of_qa_or_pipelines():
    assert _offenders("models", ("pipelines", "qa_rules")) == []


def test_qa_rules_never_import_pipelines():
    """No package-level cycle: ``pipelines`` imports ``qa_rules``, never the other way round."""
    assert _offenders("qa_rules", ("pipelines", "models")) == []


def test_domain_records_import_neither_package():
    names = _imports(ROOT / "qa_rules" / "records.py")
    ours = {n for n in names if n.split(".")[0] in ("pipelines", "qa_rules", "models")}
    assert ours <= {"qa_rules.files", "qa_rules.files.call_file", "qa_rules.files.write_text_atomically"}
    assert not {n for n in _imports(ROOT / "qa_rules" / "files.py") if n.split(".")[0] in ("pipelines", "qa_rules")}


def test_stages_do_not_reach_up_into_the_shell_store_or_apps():
    """audio → conversation → measures → scorecard: the stages know neither Prefect, the CLI, the
    results store nor the console and reports built on it."""
    forbidden = ("pipelines.shell", "pipelines.results", "pipelines.review", "pipelines.coaching", "prefect")
    assert _offenders("pipelines/stages", forbidden) == []


def test_results_store_does_not_import_the_shell_or_the_apps():
    forbidden = ("pipelines.shell", "pipelines.review", "pipelines.coaching", "prefect")
    assert _offenders("pipelines/results", forbidden) == []


def test_apps_do_not_import_the_flow_or_the_stages():
    """The review console and the coaching/reports read what the batch stored; they never run it
    (decoding a recording to cut a clip is all they take from the stages)."""
    forbidden = ("pipelines.shell.flows", "pipelines.stages", "prefect")
    allowed = ("pipelines.stages.audio",)
    for app in ("pipelines/review", "pipelines/coaching"):
        assert [o for o in _offenders(app, forbidden) if not o.split(" imports ")[1].startswith(allowed)] == []


def test_readme_architecture_names_every_folder():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    packages = {"models/", "qa_rules/"} | {
        f"pipelines/{p.parent.name}/" for p in (ROOT / "pipelines").glob("*/__init__.py")
    }
    missing = sorted(p for p in packages if f"`{p}`" not in section)
    assert missing == []
