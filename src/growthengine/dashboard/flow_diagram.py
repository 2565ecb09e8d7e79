"""Each flow as a diagram: its trigger, then its steps as boxes (a branch splits into its two arms), each box with
its live counts: runs waiting there and runs that exited there (the live and exited runs by cursor, two index
ranges: completed runs, the bulk of a flow's history, are not read), and its messages sent, held and suppressed as
they stand now (the ``kpi_current`` rollup, which the KPI stage keeps after every batch: no ledger is read)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from growthengine.engine import Engine
from growthengine.flows.describe import describe_step, describe_trigger
from growthengine.flows.model import Branch, BranchCondition, Flow, Step

SENT = ("sent", "delivered", "opened", "clicked")


@dataclass
class Box:
    path: str
    name: str
    does: str
    waiting: int = 0
    exited: int = 0
    sent: int = 0
    held: int = 0
    suppressed: int = 0
    condition: str = ""
    then: list[Box] = field(default_factory=list)
    otherwise: list[Box] = field(default_factory=list)

    @property
    def branch(self) -> bool:
        return bool(self.condition)


def _condition(condition: BranchCondition) -> str:
    if condition.converted is not None:
        return "converted" if condition.converted else "not converted"
    if condition.in_segment:
        return f"in segment {condition.in_segment}"
    if condition.event_since_entry:
        return f"{condition.event_since_entry} since entry"
    return "?"


def _boxes(steps: tuple[Step, ...], prefix: str, runs: Counter[tuple[str, str]],
           messages: dict[str, Counter[str]]) -> list[Box]:
    out = []
    for index, step in enumerate(steps):
        path = f"{prefix}{index}"
        sent = messages.get(step.name, Counter())
        box = Box(path=path, name=step.name, does=describe_step(step), waiting=runs[("active", path)],
                  exited=runs[("exited", path)], sent=sum(sent[s] for s in SENT), held=sent["scheduled"],
                  suppressed=sent["suppressed"])
        if isinstance(step.body, Branch):
            box.condition = _condition(step.body.condition)
            box.then = _boxes(step.body.then, f"{path}.then.", runs, messages)
            box.otherwise = _boxes(step.body.otherwise, f"{path}.otherwise.", runs, messages)
        out.append(box)
    return out


def diagram(engine: Engine, key: str, flow: Flow) -> dict[str, Any]:
    with engine.store.read() as tx:
        runs = Counter(tx.kpis.runs_at_steps(key))  # live and exited runs only: index ranges
        counts = tx.kpis.current(flow=key)  # the rollup of messages as they stand now (never a ledger scan)
    messages: dict[str, Counter[str]] = {}
    for row in counts:
        messages.setdefault(row["step"], Counter())[row["status"]] += row["n"]
    by_status: Counter[str] = Counter()
    for (status, _cursor), n in runs.items():
        by_status[status] += n
    return {"key": key, "name": flow.name, "enabled": flow.enabled, "trigger": describe_trigger(flow),
            "boxes": _boxes(flow.steps, "", runs, messages), "active": by_status["active"],
            "exited": by_status["exited"]}


def diagrams(engine: Engine, keys: Callable[[str], bool] = lambda _key: True) -> list[dict[str, Any]]:
    return [diagram(engine, key, flow) for key, flow in engine.config.flows.items() if keys(key)]
