"""Stages (audio → conversation → measures → scorecard → store) and the Prefect flows over them."""

import os

# Offline by default: Prefect's anonymous usage analytics stay off on a call center's servers.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
