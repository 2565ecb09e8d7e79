"""Keeps every consent statement as an audit trail (who, when, from where), as Thailand's PDPA expects."""

from __future__ import annotations

from growthengine.domain.events import Event
from growthengine.domain.profiles import Profile
from growthengine.domain.traits import CHANNELS
from growthengine.storage.consent_store import ConsentChange
from growthengine.storage.unit_of_work import Tx

ERASURE_SOURCE = "erasure"
ERASED_CHANNELS = "all"
"""An erasure's audit row: every channel withdrawn, with the source ``erasure``."""


class ConsentAudit:
    """An ingestion listener: consent in identify traits, and ``unsubscribed`` events, become audit rows."""

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        changes: list[ConsentChange] = []
        for event in events:
            if event.user_id.startswith("anon:"):
                continue
            if event.type == "identify" and isinstance(event.properties.get("consent"), dict):
                for channel, granted in event.properties["consent"].items():
                    if channel in CHANNELS and isinstance(granted, bool):
                        changes.append(ConsentChange(event.user_id, channel, granted, event.ts_us, "identify"))
            elif event.name == "unsubscribed":
                channel = event.properties.get("channel")
                source = str(event.properties.get("source") or "unsubscribed event")[:64]
                detail = event.properties.get("message_id")
                targets = CHANNELS if channel in (None, "all") else (channel,) if channel in CHANNELS else ()
                changes += [ConsentChange(event.user_id, c, False, event.ts_us, source,
                                          str(detail) if detail else None) for c in targets]
        tx.consent.record(changes)

    def on_erase_commands(self, tx: Tx, commands: list[Event]) -> None:
        """An erased user's consent history goes; the fact of the erasure stays, without PII: under the erasure's
        one-way token, at the time it was asked for, with who asked (``api`` or ``cli``)."""
        for command in commands:
            anonymous = [str(a) for a in command.properties.get("anonymous") or [] if isinstance(a, str)]
            tx.erasure.delete_consent([command.user_id, *anonymous])
            source = str(command.properties.get("source") or "api")[:16]
            tx.consent.record([ConsentChange(str(command.properties["token"]), ERASED_CHANNELS, False, command.ts_us,
                                             ERASURE_SOURCE, source)])

    def on_merge(self, tx: Tx, anonymous_key: str, user_id: str) -> None:
        """Consent is given by identified users only; nothing to move."""
