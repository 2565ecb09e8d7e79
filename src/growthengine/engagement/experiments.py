"""Experiments on send steps: variants assigned per user, outcomes counted, the winner rolled out when the
always-valid test (``optimize.experiments``) decides. State lives in the engine's state table, one document per
experiment (``experiment:<flow>.<step>``); a final verdict is kept there with the time it was reached and the evidence
it was reached on (``GET /v1/experiments``)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from growthengine.clock import from_us
from growthengine.domain.messages import Message
from growthengine.flows.model import Flow, Send, iter_steps
from growthengine.optimize.experiments import (
    Assignment,
    Experiment,
    ExperimentConfig,
    assign,
    decide,
    summary,
)
from growthengine.storage.unit_of_work import Tx
from growthengine.timefmt import format_instant

log = logging.getLogger(__name__)

PREFIX = "experiment:"
Options = Mapping[str, float] | Iterable[tuple[str, float]] | None


def experiment_key(flow: str, step: str) -> str:
    return f"{flow}.{step}"


def experiment_config(mode: str, options: Options = None) -> ExperimentConfig:
    """The configuration of a new experiment: its mode and the flow's options (``explore_share``, ``min_sends``)."""
    given = dict(options or {})
    kwargs: dict[str, Any] = {}
    if "explore_share" in given:
        kwargs["explore_share"] = float(given["explore_share"])
    if "min_sends" in given:
        kwargs["min_sends"] = int(given["min_sends"])
    return ExperimentConfig(mode="thompson" if mode == "thompson" else "explore", **kwargs)


class ExperimentBook:
    def load(self, tx: Tx, key: str, variants: tuple[str, ...], mode: str, options: Options = None) -> Experiment:
        doc = tx.state.get(PREFIX + key)
        if isinstance(doc, dict):
            state = Experiment.from_json(doc)
            if list(state.variants) == list(variants):
                return state
        return Experiment(key, list(variants), config=experiment_config(mode, options))

    def assign(self, tx: Tx, key: str, variants: tuple[str, ...], mode: str, user_id: str,
               options: Options = None) -> Assignment:
        return assign(user_id, key, self.load(tx, key, variants, mode, options))

    def record(self, tx: Tx, messages: list[Message], *, sends: int = 0, conversions: int = 0,
               unsubscribes: int = 0, at_us: int | None = None) -> None:
        """Count outcomes of messages that carry an experiment; decide again after each batch."""
        by_key: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            if isinstance(message.data.get("experiment"), dict):
                by_key[message.data["experiment"]["key"]].append(message)
        for key, items in by_key.items():
            info: dict[str, Any] = items[0].data["experiment"]
            state = self.load(tx, key, tuple(info["variants"]), info.get("mode", "explore"), info.get("options"))
            for message in items:
                variant = message.data["experiment"]["variant"]
                if variant in state.variants:
                    state.record(variant, sends=sends, conversions=conversions, unsubscribes=unsubscribes)
            if state.verdict is None:
                verdict = decide(state)
                if state.conclude(verdict, format_instant(from_us(at_us)) if at_us is not None else None):
                    log.info("experiment %s decided: %s (%s)", key, verdict.status, verdict.reason)
            tx.state.put(PREFIX + key, state.to_json())

    def all(self, tx: Tx) -> list[dict[str, Any]]:
        """Every experiment's state and verdict (for the dashboard and the API)."""
        return [doc for doc in tx.state.prefixed(PREFIX).values() if isinstance(doc, dict)]

    def overview(self, tx: Tx, configured: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """``GET /v1/experiments``: every experiment that has state, and every configured one that has not started
        yet (``configured``: key -> flow, step, template, variants, mode, options), with where it runs."""
        stored: dict[str, Experiment] = {}
        for doc in self.all(tx):
            try:
                state = Experiment.from_json(doc)
            except (KeyError, TypeError, ValueError):
                log.warning("experiment document %r could not be read", doc.get("key"))
                continue
            stored[state.key] = state
        out = []
        for key in sorted(set(stored) | set(configured)):
            where = configured.get(key)
            found = stored.get(key)
            if found is None:
                assert where is not None
                found = Experiment(key, list(where["variants"]), config=experiment_config(
                    where.get("mode", "explore"), where.get("options")))
            item = summary(found)
            if key not in stored:
                item["state"] = "not_started"
            flow, _, step = key.partition(".")
            item.update({"flow": (where or {}).get("flow", flow), "step": (where or {}).get("step", step),
                         "template": (where or {}).get("template"), "configured": where is not None})
            out.append(item)
        return out


def configured_experiments(flows: Mapping[str, Flow]) -> dict[str, dict[str, Any]]:
    """The experiments the flows configure: every send step with variants, by experiment key."""
    found: dict[str, dict[str, Any]] = {}
    for flow in flows.values():
        for step in iter_steps(flow.steps):
            body = step.body
            if isinstance(body, Send) and body.variants:
                found[experiment_key(flow.key, step.name)] = {
                    "flow": flow.key, "step": step.name, "template": body.template, "variants": list(body.variants),
                    "mode": body.experiment_mode, "options": dict(body.experiment_options),
                    "enabled": flow.enabled}
    return found
