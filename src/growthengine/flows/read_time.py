"""Messages that stay true when they are read, not only when they were queued.

* An in-app message whose copy depends on the time (the last-chance modal's "expires in 2 hours") is rendered again
  when the app reads the inbox, as of that moment: the user who opens the app with 30 minutes left reads "30 นาที".
* A message about a coupon knows whether the user was ever shown that coupon (``coupon_seen``): when the coupon email
  was suppressed (caps, consent), the modal gives the code itself instead of speaking of "your coupon".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from growthengine.content.templates import RenderError
from growthengine.domain.messages import Message
from growthengine.flows.context import message_context
from growthengine.flows.pass_cache import run_listing_id
from growthengine.storage.unit_of_work import Tx

if TYPE_CHECKING:
    from growthengine.flows.runner import Runner

log = logging.getLogger(__name__)

SEEN = frozenset({"sent", "delivered", "opened", "clicked"})


def coupon_seen(earlier: Iterable[Message], code: str, *, exclude: str) -> bool:
    """Whether another message of the run carrying this coupon code reached the user (or is with its provider)."""
    return any(m.id != exclude and m.coupon == code and (m.status in SEEN or bool(m.data.get("queued")))
               for m in earlier)


def render_at_read(runner: Runner, tx: Tx, messages: list[Message], traits: dict[str, Any], now_us: int) -> None:
    """Render again, as of ``now_us``, the messages whose template reads the time (title and body, in place; the
    ledger keeps the copy as queued). Generated copy, and a message whose run or template is gone, are left as
    they are."""
    templates = runner.templates
    timed = [m for m in messages if isinstance(m.data.get("template"), str) and m.run_id is not None
             and m.data["template"] in templates and "now" in templates.variables(m.data["template"])
             and (m.data.get("copy") or {}).get("source") != "generated"]
    if not timed:
        return
    runs = tx.runs.get_many([m.run_id for m in timed if m.run_id is not None])
    for message in timed:
        run = runs.get(message.run_id) if message.run_id is not None else None
        if run is None:
            continue
        key = str(message.data["template"])
        listing_id = run_listing_id(run)
        listing = tx.listings.get(listing_id) if listing_id else None
        context = message_context(run, traits, listing, now_us, site_url=runner.site_url, timezone=runner.tz(traits))
        personal = message.data.get("user_context")
        context["user_context"] = personal.get("tags", []) if isinstance(personal, dict) else \
            run.context.get("user_context", [])
        if message.data.get("unsubscribe_url"):
            context["unsubscribe_url"] = message.data["unsubscribe_url"]
        coupon = context.get("coupon")
        if isinstance(coupon, dict) and "coupon_seen" in templates.variables(key):
            context["coupon_seen"] = coupon_seen(tx.messages.for_run(run.id), str(coupon["code"]),
                                                 exclude=message.id)
        experiment = message.data.get("experiment")
        variant = experiment.get("variant") if isinstance(experiment, dict) else None
        try:
            rendered = templates.render(key, message.data.get("language"), context, variant=variant)
        except RenderError as exc:
            log.warning("message %s kept as queued: %s", message.id, exc)
            continue
        message.title = rendered.title
        message.body = rendered.body
