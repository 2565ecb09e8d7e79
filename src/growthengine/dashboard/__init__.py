"""The dashboard: server-rendered pages (Jinja2), plain CSS, charts by the plotly.js bundled in the installed
``plotly`` package (no CDN). Read-only but for sign-in and the segment-size snapshot button."""

from __future__ import annotations

from fastapi import FastAPI

from growthengine.engine import Engine


def mount_dashboard(app: FastAPI, engine: Engine) -> None:
    """Serve the dashboard at ``/`` and ``/dashboard/...`` on the API's app."""
    from growthengine.dashboard.pages import build_router

    app.include_router(build_router(engine))
