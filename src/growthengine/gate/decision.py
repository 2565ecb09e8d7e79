"""The send gate inside a transaction: the users' history read in a few queries, then the one pure decision
(:func:`growthengine.gate.batch_decision.decide_many`) with the rule that decided each message."""

from __future__ import annotations

from typing import Any

from growthengine.domain.messages import Message
from growthengine.gate.batch_decision import decide_many, window_start
from growthengine.gate.history import ADDRESS_TRAIT, Candidate, Policy
from growthengine.gate.history_loader import Models, load_history
from growthengine.gate.outcome import SEND, Decision
from growthengine.gate.rules import FrequencyCap, GateRules
from growthengine.storage.unit_of_work import Tx

__all__ = ["ADDRESS_TRAIT", "SEND", "Decision", "SendGate"]


class SendGate:
    def __init__(self, rules: GateRules, business_timezone: str = "Asia/Bangkok") -> None:
        self.rules = rules
        self.business_timezone = business_timezone

    def tz(self, traits: dict[str, Any]) -> str:
        tz = traits.get("timezone")
        return tz if isinstance(tz, str) and tz else self.business_timezone

    def policy(self, *, optimize: bool = False, provider_channels: frozenset[str] = frozenset()) -> Policy:
        """The gate's rules as a decision policy; ``optimize`` adds the channel switch and the best send time."""
        return Policy(rules=self.rules, business_timezone=self.business_timezone, route=optimize,
                      send_time=optimize, provider_channels=provider_channels)

    def decide_candidates(self, tx: Tx, candidates: list[Candidate], now_us: int, policy: Policy, *,
                          models: Models | None = None) -> list[Decision]:
        """Decide many candidates at once: their users' history read once, then decided without the database."""
        if not candidates:
            return []
        history = load_history(tx, candidates, policy, now_us, models=models)
        return decide_many(candidates, history, policy)

    def decide_many(self, tx: Tx, items: list[tuple[Message, dict[str, Any], float]], now_us: int, *,
                    release: bool = False) -> list[Decision]:
        """Decide for many messages at once (one query per frequency cap, whatever their number).

        Messages are decided in priority order, so when two compete for the one slot a cap allows, the more
        valuable one wins; a message let through counts against the caps of the ones decided after it.
        """
        candidates = [Candidate(m, t, h, release) for m, t, h in items]
        return self.decide_candidates(tx, candidates, now_us, self.policy())

    def decide(self, tx: Tx, message: Message, traits: dict[str, Any], now_us: int, *,
               holdout_pct: float = 0.0, release: bool = False) -> Decision:
        """Send now, move to a later instant, or suppress; ``release`` is a held message coming due."""
        return self.decide_many(tx, [(message, traits, holdout_pct)], now_us, release=release)[0]

    @staticmethod
    def window_start(cap: FrequencyCap, now_us: int, tz: str) -> int:
        return window_start(cap, now_us, tz)
