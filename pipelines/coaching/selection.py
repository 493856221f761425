"""Which calls are coaching examples: per call, did it pass or fail what the trainer is teaching
(one rule, one category, or the call as a whole), and in what order to show them.

"Best" calls pass and are shown highest score first — the model recordings.  "Worst" calls fail and
are shown lowest score first — the ones most worth a review.  Scores are compared as ``percent``
because Chinese and English rulebooks have different maximum points.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import qa_rules


class SelectionError(ValueError):
    """A ``--rule``/``--category`` the store knows nothing about; the message lists what it knows."""


@dataclass(frozen=True)
class Selection:
    """What the examples illustrate: a rule id, a category, or (both ``None``) the whole call."""

    rule: str | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        if self.rule and self.category:
            raise SelectionError("give either a rule or a category, not both")
        if self.category and self.category not in qa_rules.CATEGORIES:
            raise SelectionError(f"unknown category {self.category!r} — known categories: {', '.join(qa_rules.CATEGORIES)}")

    @property
    def label(self) -> str:
        if self.rule:
            return f"rule {self.rule}"
        if self.category:
            return f"category {self.category}"
        return "whole call"

    def relevant(self, rule_results: pd.DataFrame) -> pd.DataFrame:
        """The rule results this selection looks at."""
        if self.rule:
            return rule_results[rule_results["rule_id"] == self.rule]
        if self.category:
            return rule_results[rule_results["category"] == self.category]
        return rule_results

    def judged(self, rule_results: pd.DataFrame, categories: pd.DataFrame) -> pd.DataFrame:
        """``call_id`` and ``verdict`` of the selected rule, or of the selected category (the stored
        category verdict: one definition, in :func:`qa_rules.records.category_verdict`)."""
        if self.category:
            return categories.loc[categories["category"] == self.category, ["call_id", "verdict"]]
        return rule_results.loc[rule_results["rule_id"] == self.rule, ["call_id", "verdict"]]

    def check_known(self, rule_results: pd.DataFrame) -> None:
        """Fail early, listing the rules in the store, when the rule id is mistyped."""
        if self.rule and not (rule_results["rule_id"] == self.rule).any():
            known = sorted(rule_results["rule_id"].unique())
            raise SelectionError(f"rule {self.rule!r} has no results in the store — rules with results: {', '.join(known) or 'none'}")


def call_verdicts(calls: pd.DataFrame, rule_results: pd.DataFrame, selection: Selection,
                  categories: pd.DataFrame) -> pd.DataFrame:
    """One row per call with ``best_ok`` (may be a best example) and ``worst_ok`` (may be a worst one).

    For a rule: its verdict; for a category: the category's verdict as the store holds it (``na``
    calls are neither).  For the whole call: best candidates passed QA; worst candidates failed QA
    or failed at least one rule (something to coach)."""
    frame = calls.set_index("call_id")
    if selection.rule or selection.category:
        judged = selection.judged(rule_results, categories).drop_duplicates("call_id").set_index("call_id")["verdict"]
        verdict = frame.index.to_series().map(judged)
        frame["worst_ok"] = (verdict == "fail").to_numpy()
        frame["best_ok"] = (verdict == "pass").to_numpy()
        frame["severity"] = 0
    else:
        fails = rule_results[rule_results["verdict"] == "fail"].groupby("call_id").size()
        passed = frame["passed"].fillna(False).astype(bool)
        frame["best_ok"] = passed
        frame["worst_ok"] = ~passed | (frame.index.to_series().map(fails).fillna(0) > 0).to_numpy()
        # Failing QA outright (a fatal rule) outranks a low score among "worst" calls of the whole call.
        frame["severity"] = passed.astype(int)
    frame["verdict"] = frame["worst_ok"].map({True: "fail", False: "pass"})
    frame.loc[~frame["best_ok"] & ~frame["worst_ok"], "verdict"] = "na"
    return frame.reset_index()


def pick(verdicts: pd.DataFrame, best: int, worst: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``best`` highest-scoring passing calls and the ``worst`` lowest-scoring failing ones
    (for the whole call, calls that failed QA come before low-scoring ones that passed).

    A call is never both: when the whole call is judged, a passed call with a failed rule may be a
    candidate for either, and it goes to "best" first (the agent's best work that month)."""
    ranked_best = verdicts[verdicts["best_ok"]].sort_values(
        ["percent", "score", "call_id"], ascending=[False, False, True], na_position="last"
    ).head(max(best, 0))
    rest = verdicts[verdicts["worst_ok"] & ~verdicts["call_id"].isin(ranked_best["call_id"])]
    ranked_worst = rest.sort_values(
        ["severity", "percent", "score", "call_id"], ascending=[True, True, True, True], na_position="first"
    ).head(max(worst, 0))
    return ranked_best.reset_index(drop=True), ranked_worst.reset_index(drop=True)


def focus_evidence(rule_rows: pd.DataFrame, kind: str) -> dict | None:
    """The evidence to cut the clip around: for a worst call the earliest evidence of a failed rule
    (fatal rules first — they decided the call), for a best call the earliest evidence of a passed
    rule; ``None`` when there is none with a time (the caller then takes the call's opening)."""
    wanted = "fail" if kind == "worst" else "pass"
    rows = rule_rows[rule_rows["verdict"] == wanted]
    candidates = []
    for row in rows.itertuples(index=False):
        for item in row.evidence:
            if isinstance(item, dict) and item.get("start") is not None:
                candidates.append((0 if (kind == "worst" and row.fatal) else 1, float(item["start"]), row.rule_id, item))
    if not candidates:
        return None
    _, _, rule_id, item = min(candidates, key=lambda c: (c[0], c[1]))
    return {"rule_id": rule_id, **item}
