"""Every problem of one config item, not only the first: loaders check an item's parts independently and refuse
the item once, with all that was wrong in it (``growth check-config`` lists them all in one run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from growthengine.config.yaml_lines import Path

T = TypeVar("T")


class ItemProblems(Exception):
    """A config item (or a part of one) is refused; ``problems`` are (path, message) pairs, in the order found."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        super().__init__(problems[0][1] if problems else "invalid")
        self.problems = problems

    @property
    def path(self) -> Path:
        return self.problems[0][0]

    @property
    def message(self) -> str:
        return self.problems[0][1]


class Problems:
    """Collects the problems of one item while its independent parts are checked."""

    def __init__(self) -> None:
        self.found: list[tuple[Path, str]] = []

    def add(self, path: Path, message: str) -> None:
        self.found.append((path, message))

    def check(self, part: Callable[[], T]) -> T | None:
        """``part()``, or ``None`` when it was refused (its problems kept)."""
        try:
            return part()
        except ItemProblems as exc:
            self.found.extend(exc.problems)
            return None

    def refuse(self, path: Path, message: str) -> ItemProblems:
        """The item cannot be read further: what was found so far and this last problem."""
        self.add(path, message)
        return ItemProblems(self.found)

    def done(self) -> None:
        """Refuse the item when anything was wrong in it."""
        if self.found:
            raise ItemProblems(self.found)


def item_issues(problems: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """An item's problems as reported: one per path (a part refused twice, by the item and by the part, once)."""
    seen: set[Path] = set()
    out = []
    for path, message in problems:
        if path not in seen:
            seen.add(path)
            out.append((path, message))
    return out
