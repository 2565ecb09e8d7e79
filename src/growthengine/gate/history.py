"""The values one batched send decision is made from: the candidates, what is known about their users (the
prefetched history), and the policy. Plain values: no database, no clock (the batch's instant is in the history).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from growthengine.domain.messages import Message
from growthengine.gate.rules import GateRules
from growthengine.optimize.channel_scores import DEFAULT_RULES, ChannelRule
from growthengine.optimize.send_time import SendTimeModel
from growthengine.optimize.send_time_population import PopulationSendTime

ADDRESS_TRAIT = {"push": "push_token", "email": "email", "sms": "phone"}
"""The trait a channel sends to: no value, no marketing or transactional send on that channel (the gate)."""
PROVIDER_ADDRESS_TRAIT = {**ADDRESS_TRAIT, "ads": "email"}
"""What a real provider needs to address a message (an audience update is matched by the user's email)."""
SEND_TIME_QUIET: Mapping[str, tuple[int, int]] = {"push": (22, 8), "sms": (22, 8)}
"""The local hours the best send time never falls in, per channel (SPEC: no push or SMS at night)."""

CapKey = tuple[str, str, str]  # user, channel, kind
Sent = tuple[int, str]  # when it counted as sent, message id


@dataclass(frozen=True, slots=True)
class Candidate:
    """A message that wants to go, as planned by the flow (its channel, kind, priority, expiry).

    ``traits`` are the user's profile traits read for the batch (consent, addresses, timezone); ``release`` is a
    held message coming due (quiet hours were already served; it is neither routed nor timed again);
    ``best_within_us`` asks for the user's best send time within that span (0: as soon as the gate allows);
    ``at_us`` is the instant it is decided as of, when it is not the batch's own (``History.now_us``): timers that
    fell due milliseconds apart are decided together, each as of its own due time.
    """

    message: Message
    traits: dict[str, Any]
    holdout_pct: float = 0.0
    release: bool = False
    best_within_us: int = 0
    at_us: int | None = None

    def instant(self, batch_us: int) -> int:
        """The instant this candidate is decided as of (its own, else the batch's)."""
        return self.at_us if self.at_us is not None else batch_us


@dataclass(frozen=True)
class History:
    """Everything the decision reads about the batch's users, loaded before (``gate.history_loader``).

    ``now_us`` is the batch's instant (a candidate with its own ``at_us`` is decided as of that instead).

    ``sent``: what each user was already sent per (user, channel, kind), as (sent_us, message id), for every channel
    a candidate may end up on; ``channel_scores``: per user with evidence, the SPEC 4.C score per channel;
    ``send_time_models``: per (user, channel) with a history; ``send_time_population``: the prior per channel.
    """

    now_us: int
    sent: Mapping[CapKey, Sequence[Sent]] = field(default_factory=dict)
    channel_scores: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    send_time_models: Mapping[tuple[str, str], SendTimeModel] = field(default_factory=dict)
    send_time_population: Mapping[str, PopulationSendTime] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    """The rules a decision applies: the gate's guardrails, the channel switch, where best times may fall.

    ``route`` and ``send_time`` turn the optimizer's two answers on (off: the message keeps its channel and goes as
    soon as the gate allows); ``provider_channels`` are the channels a real provider delivers, which need an address
    (:data:`PROVIDER_ADDRESS_TRAIT`) even where the gate does not ask for one.
    """

    rules: GateRules = field(default_factory=GateRules)
    business_timezone: str = "Asia/Bangkok"
    channel_rules: tuple[ChannelRule, ...] = DEFAULT_RULES
    send_time_quiet: Mapping[str, tuple[int, int]] = field(default_factory=lambda: dict(SEND_TIME_QUIET))
    route: bool = True
    send_time: bool = True
    provider_channels: frozenset[str] = frozenset()
    _switches: dict[str, frozenset[str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    """:meth:`routable` per planned channel (asked several times per candidate)."""

    def tz(self, traits: Mapping[str, Any]) -> str:
        tz = traits.get("timezone")
        return tz if isinstance(tz, str) and tz else self.business_timezone

    def routable(self, message: Message) -> frozenset[str]:
        """The channels a candidate could be switched to (their cap history is loaded too)."""
        if not self.route or message.kind != "marketing":
            return frozenset()
        found = self._switches.get(message.channel)
        if found is None:
            found = self._switches[message.channel] = frozenset(
                r.switch_to for r in self.channel_rules if r.channel == message.channel)
        return found
