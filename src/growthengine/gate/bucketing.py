"""Deterministic bucketing (as PostHog's flags): the same user always lands in the same place."""

from __future__ import annotations

import hashlib


def bucket(key: str, user_id: str, salt: str = "") -> float:
    """A stable number in [0, 1) for this user and key: ``sha1("{key}.{user_id}{salt}")`` scaled."""
    return int(_sha1_hex(f"{key}.{user_id}{salt}")[:15], 16) / (1 << 60)


def _sha1_hex(text: str) -> str:
    # ``usedforsecurity=False``: a bucket, not a secret (FIPS builds refuse SHA-1 otherwise). Its mutants (the flag
    # True, None or dropped) give the same digest: mutation testing skips the line (benchmarks/README.md).
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()  # pragma: no mutate


def in_holdout(key: str, user_id: str, pct: float) -> bool:
    """Whether the user is in the ``pct`` % held out of ``key`` (a flow, or the global control group)."""
    return bool(pct) and bucket(key, user_id, ".holdout") * 100 < pct
