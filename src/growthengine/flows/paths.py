"""Where a run stands in its flow: a step path such as ``3`` or ``2.then.0`` (inside a branch)."""

from __future__ import annotations

from growthengine.flows.model import Branch, Step

DONE = ""


def resolve(steps: tuple[Step, ...], cursor: str) -> Step | None:
    """The step at ``cursor``, or None when the run has finished."""
    if cursor == DONE:
        return None
    parts = cursor.split(".")
    current: tuple[Step, ...] = steps
    step: Step | None = None
    index = 0
    while index < len(parts):
        position = int(parts[index])
        if position >= len(current):
            return None
        step = current[position]
        if index + 1 < len(parts):
            body = step.body
            if not isinstance(body, Branch):
                return None
            current = body.then if parts[index + 1] == "then" else body.otherwise
            index += 2
        else:
            index += 1
    return step


def following(steps: tuple[Step, ...], cursor: str) -> str:
    """The path after ``cursor``: the next sibling, or the step after the enclosing branch; DONE at the end."""
    parts = cursor.split(".")
    while parts:
        parts[-1] = str(int(parts[-1]) + 1)
        candidate = ".".join(parts)
        if resolve(steps, candidate) is not None:
            return candidate
        if len(parts) >= 3:
            parts = parts[:-2]  # leave the branch: continue after the branch step itself
        else:
            return DONE
    return DONE


def enter_branch(cursor: str, arm: str) -> str:
    return f"{cursor}.{arm}.0"
