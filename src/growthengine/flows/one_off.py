"""Messages outside any flow run, for the marketer: a template rendered as one user would get it (a preview, saving
nothing), and a test message sent now through the real send path (the gate, consent first, then the provider)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from growthengine.content.templates import RenderedMessage, RenderError
from growthengine.domain.messages import Message
from growthengine.flows.context import message_context
from growthengine.flows.runner import Runner
from growthengine.storage.run_store import Run
from growthengine.storage.unit_of_work import Tx

TEST_FLOW = "test"
"""The ``flow`` of test messages (they belong to no flow)."""


class OneOffRefused(ValueError):
    """The message cannot be made for this user (no such user or template, a channel the template is not for,
    variables only a flow run supplies); the message says which."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Preview:
    rendered: RenderedMessage
    channel: str
    traits: dict[str, Any]


def render_for_user(tx: Tx, runner: Runner, key: str, user_id: str, now_us: int,
                    values: dict[str, Any] | None = None) -> Preview:
    """``key`` rendered as ``user_id`` would get it (Thai or English by the user's ``language``); ``values`` give
    what a flow run would (a product, a coupon)."""
    profile = tx.profiles.get(user_id)
    if profile is None or profile.anonymous:
        raise OneOffRefused(404, f"no user {user_id!r}")
    if key not in runner.templates:
        raise OneOffRefused(404, f"no template {key!r}")
    traits = dict(profile.traits)
    run = Run(id=0, flow=TEST_FLOW, version="", user_id=user_id, entity="", status="active", cursor="0",
              trigger_us=now_us, entered_us=now_us, updated_us=now_us, context={})
    context = message_context(run, traits, None, now_us, site_url=runner.site_url, timezone=runner.tz(traits))
    context["user_context"] = []
    context.update(values or {})
    missing = sorted(runner.templates.missing_variables(key, [k for k, v in context.items()
                                                              if v is not None and v != ""]))
    if missing:
        raise OneOffRefused(422, f"template {key!r} needs {', '.join(missing)}, which a flow run gives; "
                                 "pass them in \"values\"")
    try:
        rendered = runner.templates.render(key, traits.get("language"), context)
    except RenderError as exc:
        raise OneOffRefused(422, f"template {key!r} cannot render for {user_id!r}: {exc}") from None
    return Preview(rendered, str(runner.templates.get(key).channel), traits)


def send_test(tx: Tx, runner: Runner, key: str, user_id: str, channel: str, now_us: int,
              values: dict[str, Any] | None = None) -> Message:
    """One test message now, through the gate (consent applies; quiet hours do not hold a test) to the channel's
    provider; the stored message says what happened and why."""
    preview = render_for_user(tx, runner, key, user_id, now_us, values)
    if preview.channel != channel:
        raise OneOffRefused(422, f"template {key!r} is for {preview.channel}, not {channel}")
    rendered = preview.rendered
    message = Message(id=f"test:{secrets.token_hex(8)}", user_id=user_id, flow=TEST_FLOW, step=key, channel=channel,
                      kind="marketing", status="scheduled", scheduled_us=now_us, updated_us=now_us,
                      body=rendered.body, title=rendered.title, subject=rendered.subject, html=rendered.html,
                      image_url=rendered.image_url, variant=rendered.variant,
                      data={"template": key, "language": rendered.language, "test": True})
    tx.messages.add([message])
    runner.dispatcher.dispatch(tx, message, preview.traits, now_us, release=True)
    return message
