"""Analytics: the KPIs of SPEC.md 6 (every count and rate defined once in ``definitions.py``), rollups computed per
pipeline batch in set-based SQL over the insert-only ``message_events`` and the event log (``rollups.py``,
``rollup_sql.py``; last-touch attribution and revenue), the from-scratch oracle they are checked against
(``recompute.py``), uplift against the control group with its interval, and the report that ``GET /v1/kpis`` and the
dashboard show."""
