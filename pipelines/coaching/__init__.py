"""Coaching library and supervisor reports (issue 5).

- ``samples``: best/worst example calls per rule, category or whole call, exported as clips cut
  around the evidence with scorecard excerpts and an index page (also per agent and month);
- ``reports``: agent/team/month figures, the 月报 with trend charts, HTML and Excel;
- ``commands``: the ``callqa samples`` and ``callqa report`` commands.

The notebooks in ``notebooks/`` call these same functions.
"""
