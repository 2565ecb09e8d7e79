"""The flow editor's "what would happen for user …": the draft in the editor (or the saved flow, the same text)
checked as publishing would check it, then walked for the chosen user by the path preview the API answers with
(``POST /v1/config/flows/{key}/preview``); nothing is saved or sent."""

from __future__ import annotations

from typing import Any

import orjson

from growthengine.clock import to_us
from growthengine.dashboard.drafts import check_flow
from growthengine.dashboard.flow_diagram import diagram
from growthengine.engine import Engine
from growthengine.flows.one_off import OneOffRefused
from growthengine.flows.path_preview import preview_path


def trigger_values(raw: str) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """The form's optional trigger event properties (JSON), as ``POST .../preview`` takes ``trigger``."""
    if not raw.strip():
        return None, []
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, [{"path": "trigger", "message": f"not JSON: {exc}"}]
    if not isinstance(values, dict):
        return None, [{"path": "trigger", "message": "a JSON object"}]
    return values or None, []


def path_for_form(engine: Engine, key: str, body: dict[str, Any], user: str, raw_trigger: str) -> dict[str, Any]:
    """``{"problems"}``, or ``{"path", "diagram"}`` for the draft and the user."""
    values, problems = trigger_values(raw_trigger)
    if problems:
        return {"problems": problems}
    draft, problems = check_flow(engine, key, body)
    if problems or draft is None:
        return {"problems": problems or [{"path": key, "message": "no such flow"}]}
    try:
        path = preview_path(engine.store, engine.flows, draft, user, to_us(engine.clock.now()), values)
    except OneOffRefused as exc:
        return {"problems": [{"path": "user", "message": str(exc)}], "diagram": diagram(engine, key, draft)}
    return {"problems": [], "path": path.as_json(), "diagram": diagram(engine, key, draft)}
