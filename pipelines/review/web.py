"""The console's pages, rendered by the shared page environment (:mod:`pipelines.reports.html`) in
its strict form: used by the web app and the static calibration report (``callqa calibrate --out
x.html``)."""

from __future__ import annotations

from pipelines.reports.html import strict_environment


def render(template: str, **context) -> str:
    """A console page; ``standalone`` (a file, not served) leaves out the console's navigation."""
    context.setdefault("standalone", False)
    return strict_environment().get_template(template).render(**context)
