"""The mutation score per module after ``make mutate`` (mutmut's results under ``mutants/``), and the survivors.

Run from the folder ``mutmut run`` ran in: ``python -m tests.mutation_report``. A mutant is *killed* when a test
failed or timed out with it in place; the score is killed / (killed + survived). Mutants that no selected test
reaches (``no tests``) are listed apart: they count against the score, since nothing would notice them.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}
SURVIVED = {0: "survived", 5: "no tests", 33: "no tests"}


def results(root: Path) -> dict[str, dict[str, int | None]]:
    """Exit code by mutant name, per mutated source file (``src/...py``)."""
    out: dict[str, dict[str, int | None]] = {}
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        source = str(meta.relative_to(root / "mutants"))[: -len(".meta")]
        out[source] = dict(data.get("exit_code_by_key") or {})
    return out


def main(root: Path = Path()) -> int:
    by_file = results(root)
    if not by_file:
        print("no mutmut results under ./mutants: run `make mutate` first", file=sys.stderr)
        return 1
    print(f"{'module':<46} {'mutants':>7} {'killed':>7} {'survived':>8} {'no tests':>8} {'unrun':>6} {'score':>7}")
    survivors: list[str] = []
    for source, codes in by_file.items():
        tally: Counter[str] = Counter()
        for name, code in codes.items():
            if code is None:
                tally["unrun"] += 1
            elif code in KILLED:
                tally["killed"] += 1
            elif code in SURVIVED:
                tally[SURVIVED[code]] += 1
                survivors.append(f"{SURVIVED[code]:>8}  {name}")
            else:
                tally["other"] += 1
                survivors.append(f"exit {code:>3}  {name}")
        tried = tally["killed"] + tally["survived"] + tally["no tests"]
        score = f"{100 * tally['killed'] / tried:6.1f}%" if tried else "    -"
        print(f"{source:<46} {len(codes):>7} {tally['killed']:>7} {tally['survived']:>8} {tally['no tests']:>8} "
              f"{tally['unrun']:>6} {score:>7}")
    if survivors:
        print("\nnot killed (see one with `mutmut show NAME`):")
        print("\n".join(survivors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
