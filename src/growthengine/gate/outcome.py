"""What the send decision answers for one message: send, defer, suppress or fail, with the rule that decided."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from growthengine.optimize.channel_scores import RouteDecision
from growthengine.optimize.send_time import SendTimeChoice

Action = Literal["send", "defer", "suppress", "fail"]


@dataclass(frozen=True)
class Decision:
    """``reason`` is the contract's reason code (None for a plain send); ``at_us`` the instant a deferred message
    goes; ``detail`` says why in words. ``route`` is the channel switch when the message moves to another channel
    (SPEC 4.C); ``send_time`` the user's best time when one was asked for. ``fail``: the message cannot be addressed
    by its provider (``no_address``)."""

    action: Action
    reason: str | None = None
    at_us: int | None = None
    detail: str = ""
    route: RouteDecision | None = None
    send_time: SendTimeChoice | None = None


SEND = Decision("send")
