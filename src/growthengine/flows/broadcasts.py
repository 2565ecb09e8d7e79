"""One-off broadcasts (CONTRACT.md 11): a template to a segment's members on one channel, at an instant or at each
member's best time. The request records the broadcast and writes one ``broadcast_send`` command per member to the
log; each member's owner (the ``flows`` stage) renders the message and hands it to the gate, like any flow's."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import Any

from growthengine.clock import from_us, to_us
from growthengine.domain.events import Event
from growthengine.domain.messages import Message
from growthengine.flows.dispatch import Outgoing
from growthengine.flows.one_off import OneOffRefused, render_for_user
from growthengine.flows.runner import Runner
from growthengine.storage.broadcast_store import Broadcast, BroadcastStore
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

BROADCAST_COMMAND = "broadcast_send"
BROADCAST_FLOW = "broadcast"
"""The ``flow`` of broadcast messages; their ``step`` is the broadcast's id."""
BEST_TIME = "best_time"
_PAGE = 5000


def create(tx: Tx, runner: Runner, *, name: str, segment: str, template: str, channel: str, at: str,
           at_us: int | None, created_by: str, now_us: int) -> Broadcast:
    """Record the broadcast and ask every current member's owner to send it."""
    if template not in runner.templates:
        raise OneOffRefused(422, f"no template {template!r}")
    if str(runner.templates.get(template).channel) != channel:
        raise OneOffRefused(422, f"template {template!r} is for {runner.templates.get(template).channel}, "
                                 f"not {channel}")
    members: list[str] = []
    after: str | None = None
    while True:
        page = tx.segments.members_page(segment, after=after, limit=_PAGE)
        members += page
        if len(page) < _PAGE:
            break
        after = page[-1]
    broadcast = Broadcast(id=f"bc_{secrets.token_hex(8)}", name=name, segment=segment, template=template,
                          channel=channel, at=at, at_us=at_us, members=len(members), created_by=created_by,
                          created_us=now_us)
    BroadcastStore(tx.conn).add(broadcast)
    payload = {"b": broadcast.id, "t": template, "c": channel, "at": at_us}
    tx.log.append_commands([(user, BROADCAST_COMMAND, now_us, payload) for user in members], now_us)
    return broadcast


def message_id(broadcast_id: str, user_id: str) -> str:
    """One message per broadcast and member, whatever replays the command (ids are at most 40 characters)."""
    return "b:" + hashlib.sha1(f"{broadcast_id}\x00{user_id}".encode(), usedforsecurity=False).hexdigest()[:32]


class BroadcastSender:
    """The ``flows`` stage's handler of ``broadcast_send`` commands."""

    def __init__(self, runner: Runner, now_us: Any) -> None:
        self.runner = runner
        self._now_us = now_us

    def on_commands(self, tx: Tx, commands: list[Event]) -> None:
        now_us: int = self._now_us()
        out = Outgoing()
        for command in commands:
            p = command.properties
            template, channel, broadcast_id = str(p.get("t")), str(p.get("c")), str(p.get("b"))
            try:
                preview = render_for_user(tx, self.runner, template, command.user_id, now_us)
            except OneOffRefused as exc:
                log.info("broadcast %s: a member's message cannot be made: %s", broadcast_id, exc)
                continue
            at_us = p.get("at")
            scheduled_us = max(int(at_us), now_us) if isinstance(at_us, int) else now_us
            send_time: dict[str, Any] | None = None
            if at_us is None and self.runner.optimizer is not None:
                choice = self.runner.optimizer.send_time(tx, command.user_id, preview.traits, channel,
                                                         from_us(now_us), dt.timedelta(hours=24))
                scheduled_us = max(to_us(choice.send_at), now_us)
                send_time = {"source": choice.source, "reason": choice.reason}
            rendered = preview.rendered
            data: dict[str, Any] = {"broadcast": broadcast_id, "template": template, "language": rendered.language}
            if send_time is not None:
                data["send_time"] = send_time
            message = Message(id=message_id(broadcast_id, command.user_id), user_id=command.user_id,
                              flow=BROADCAST_FLOW, step=broadcast_id, channel=channel, kind="marketing",
                              status="scheduled", scheduled_us=scheduled_us, updated_us=now_us, body=rendered.body,
                              title=rendered.title, subject=rendered.subject, html=rendered.html,
                              image_url=rendered.image_url, variant=rendered.variant, data=data)
            out.add(message, preview.traits, 0.0)
        self.runner.dispatcher.flush(tx, out, now_us)
