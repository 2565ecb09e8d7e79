"""Deterministic bucketing (as PostHog's flags): the same user always lands in the same place."""

from __future__ import annotations

import hashlib


def bucket(key: str, user_id: str, salt: str = "") -> float:
    """A stable number in [0, 1) for this user and key: ``sha1("{key}.{user_id}{salt}")`` scaled."""
    digest = hashlib.sha1(f"{key}.{user_id}{salt}".encode(), usedforsecurity=False).hexdigest()[:15]
    return int(digest, 16) / float(0xFFFFFFFFFFFFFFF + 1)


def in_holdout(key: str, user_id: str, pct: float) -> bool:
    """Whether the user is in the ``pct`` % held out of ``key`` (a flow, or the global control group)."""
    return pct > 0 and bucket(key, user_id, ".holdout") * 100 < pct
