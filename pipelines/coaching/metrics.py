"""The numbers of the agent/team reports, computed from the store's frames with pandas.

Rates are shares in 0–1 of the calls a rule (or category) applied to: a hold rule that was ``na``
because the agent never put the customer on hold neither helps nor hurts the pass rate.
"""

from __future__ import annotations

import pandas as pd

GROUP_COLUMNS = {"agent": "agent_id", "team": "team", "month": "month"}
"""``--by`` values and the call column each groups on."""

SUMMARY_COLUMNS = [
    "group", "calls", "mean_score", "mean_percent", "pass_rate", "fatal_calls", "avg_handle_time_s",
    "avg_hold_s", "hold_share", "silence_share", "agent_talk_ratio",
]


def group_key(calls: pd.DataFrame, by: str) -> pd.Series:
    """The grouping column with missing values named, so calls without an agent id still count."""
    if by not in GROUP_COLUMNS:
        raise ValueError(f"cannot group by {by!r} — use one of: {', '.join(GROUP_COLUMNS)}")
    return calls[GROUP_COLUMNS[by]].fillna("(none)").astype(str)


def summary(calls: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group: calls, mean score/percent, QA pass rate, fatal calls, handle time, hold, silence, talk ratio."""
    if calls.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = calls.assign(group=group_key(calls, by), passed_f=calls["passed"].fillna(False).astype(float),
                         fatal_f=calls["fatal"].fillna(False).astype(int))
    grouped = frame.groupby("group", sort=True)
    out = pd.DataFrame({
        "calls": grouped.size(),
        "mean_score": grouped["score"].mean(),
        "mean_percent": grouped["percent"].mean(),
        "pass_rate": grouped["passed_f"].mean(),
        "fatal_calls": grouped["fatal_f"].sum(),
        "avg_handle_time_s": grouped["duration_s"].mean(),
        "avg_hold_s": grouped["hold_s"].mean(),
        "hold_share": grouped["hold_s"].sum() / grouped["duration_s"].sum(),
        "silence_share": grouped["silence_share"].mean(),
        "agent_talk_ratio": grouped["agent_talk_ratio"].mean(),
    }).reset_index()
    return out[SUMMARY_COLUMNS]


def rule_rates(calls: pd.DataFrame, results: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group and rule: applicable calls, passed, failed, pass rate."""
    frame = results.merge(calls.assign(group=group_key(calls, by))[["call_id", "group"]], on="call_id")
    return _rates(frame, ["group", "rule_id", "category"])


def category_rates(calls: pd.DataFrame, categories: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group and category: applicable calls, passed, failed, pass rate — from the stored
    category verdicts (:func:`pipelines.coaching.data.load_category_results`)."""
    frame = categories.merge(calls.assign(group=group_key(calls, by))[["call_id", "group"]], on="call_id")
    return _rates(frame, ["group", "category"])


def _rates(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = [*keys, "applicable", "passed", "failed", "pass_rate"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.assign(p=(frame["verdict"] == "pass").astype(int), f=(frame["verdict"] == "fail").astype(int))
    out = frame.groupby(keys, sort=True).agg(passed=("p", "sum"), failed=("f", "sum")).reset_index()
    out["applicable"] = out["passed"] + out["failed"]
    out["pass_rate"] = out["passed"] / out["applicable"].where(out["applicable"] > 0)
    return out[columns]


def trend(calls: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per month and group: the summary figures, for the 月报's trend charts."""
    columns = ["month", *SUMMARY_COLUMNS]
    dated = calls[calls["month"].notna()]
    if dated.empty:
        return pd.DataFrame(columns=columns)
    parts = [summary(group, by).assign(month=month) for month, group in dated.groupby("month", sort=True)]
    return pd.concat(parts, ignore_index=True)[columns]


def category_trend(calls: pd.DataFrame, categories: pd.DataFrame) -> pd.DataFrame:
    """Per month and category: pass rate over all calls in scope (stored category verdicts)."""
    dated = calls[calls["month"].notna()]
    frame = categories.merge(dated[["call_id", "month"]], on="call_id")
    return _rates(frame.rename(columns={"month": "group"}), ["group", "category"]).rename(columns={"group": "month"})
