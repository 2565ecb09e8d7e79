"""``DELETE /v1/users/{userId}`` and ``growth users erase``: what happens in the request's own transaction.

The profile, the identity links and every stored event of the user go at once (so ``GET /v1/users/{id}`` is 404
when the answer leaves, and no event still waiting in the log can rebuild anything); ads audiences the user is in
get a removal, addressed by the hash of the email while the email is still known; then a tombstone (a per-user
``erase`` command) is appended to the log, and each stage clears its own part when it reaches it (``stages.py``).

The user's id is replaced wherever something must stay (messages keep counting in KPIs; the consent audit keeps
the fact of the erasure) by a one-way token: HMAC-SHA256 of the id under a key derived from the engine's own
secret (the one that signs unsubscribe links), so nobody without that secret can tell whose it was.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Literal

from growthengine.clock import Clock, to_us
from growthengine.domain.profiles import anonymous_key
from growthengine.flows.audience_sync import AudienceSync
from growthengine.storage.erasure_store import ERASE_COMMAND
from growthengine.storage.unit_of_work import Tx

__all__ = ["ERASE_COMMAND", "ErasureReceipt", "UserErasure", "erasure_token"]

log = logging.getLogger(__name__)

TOKEN_PREFIX = "erased:"  # noqa: S105  (a label, not a secret)
_TOKEN_KEY_LABEL = b"growth-engine erasure token v1"

Source = Literal["api", "cli"]


def erasure_token(secret: bytes, user_id: str) -> str:
    """The one-way token that stands for an erased user: ``erased:`` and the hex HMAC-SHA256 of the id under a
    key derived from the engine secret (never the secret itself, which also signs unsubscribe links)."""
    key = hmac.new(secret, _TOKEN_KEY_LABEL, hashlib.sha256).digest()
    return TOKEN_PREFIX + hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ErasureReceipt:
    user_id: str
    token: str
    events_deleted: int
    audience_removals: int


class UserErasure:
    """Erases users on request; the stages finish the work from the tombstone."""

    def __init__(self, secret: bytes, audiences: AudienceSync, clock: Clock) -> None:
        self._secret = secret
        self.audiences = audiences
        self.clock = clock

    def token(self, user_id: str) -> str:
        return erasure_token(self._secret, user_id)

    def erase(self, tx: Tx, user_id: str, source: Source) -> ErasureReceipt | None:
        """Erase an identified user inside ``tx``; ``None`` when there is no such user (or it was erased)."""
        profile = tx.profiles.get_many([user_id], for_update=True).get(user_id)
        if profile is None or profile.anonymous:
            return None
        token = self.token(user_id)
        now_us = to_us(self.clock.now())
        anonymous = [anonymous_key(a) for a in tx.erasure.anonymous_ids(user_id)]
        email = profile.traits.get("email")
        removals = 0
        if isinstance(email, str) and email.strip():
            removals = self.audiences.remove_erased(tx, user_id, token, email, now_us)
        tx.log.append_commands([(user_id, ERASE_COMMAND, now_us,
                                 {"token": token, "source": source, "anonymous": anonymous})], now_us)
        deleted = tx.erasure.delete_identity([user_id, *anonymous], user_id)
        # The token, never the id: this line must not keep what was just erased.
        log.info("a user was erased (%s request, token %s): %d events deleted, %d audience removals queued",
                 source, token[:19], deleted, removals)
        return ErasureReceipt(user_id, token, deleted, removals)
