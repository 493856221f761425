"""The per-call chain as plain functions: audio → conversation (who said what, when, in which
role) → measures → scorecard.  Nothing here knows Prefect, the results store or the console."""
