"""Experiments on send steps: variants assigned per user, outcomes counted, the winner rolled out when the
always-valid test (``optimize.experiments``) decides. State lives in the engine's state table, one document per
experiment (``experiment:<flow>.<step>``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from growthengine.domain.messages import Message
from growthengine.optimize.experiments import Assignment, Experiment, ExperimentConfig, assign, decide
from growthengine.storage.unit_of_work import Tx

PREFIX = "experiment:"


def experiment_key(flow: str, step: str) -> str:
    return f"{flow}.{step}"


class ExperimentBook:
    def load(self, tx: Tx, key: str, variants: tuple[str, ...], mode: str) -> Experiment:
        doc = tx.state.get(PREFIX + key)
        if isinstance(doc, dict):
            state = Experiment.from_json(doc)
            if list(state.variants) == list(variants):
                return state
        config = ExperimentConfig(mode="thompson" if mode == "thompson" else "explore")
        return Experiment(key, list(variants), config=config)

    def assign(self, tx: Tx, key: str, variants: tuple[str, ...], mode: str, user_id: str) -> Assignment:
        return assign(user_id, key, self.load(tx, key, variants, mode))

    def record(self, tx: Tx, messages: list[Message], *, sends: int = 0, conversions: int = 0,
               unsubscribes: int = 0) -> None:
        """Count outcomes of messages that carry an experiment; decide again after each batch."""
        by_key: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            if isinstance(message.data.get("experiment"), dict):
                by_key[message.data["experiment"]["key"]].append(message)
        for key, items in by_key.items():
            info: dict[str, Any] = items[0].data["experiment"]
            state = self.load(tx, key, tuple(info["variants"]), info.get("mode", "explore"))
            for message in items:
                variant = message.data["experiment"]["variant"]
                if variant in state.variants:
                    state.record(variant, sends=sends, conversions=conversions, unsubscribes=unsubscribes)
            if state.verdict is None:
                state.conclude(decide(state))
            tx.state.put(PREFIX + key, state.to_json())

    def all(self, tx: Tx) -> list[dict[str, Any]]:
        """Every experiment's state and verdict (for the dashboard and the API)."""
        return [doc for doc in tx.state.prefixed(PREFIX).values() if isinstance(doc, dict)]
