"""Analytics: the KPIs of SPEC.md 6 (definitions in ``definitions.py``), rollups kept exact incrementally
(``storage/kpi_store.py``), uplift against the holdout with a confidence interval, and the KPI report that
``GET /v1/kpis`` and the dashboard show."""
