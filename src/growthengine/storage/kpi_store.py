"""KPI rollups, kept exact incrementally.

Every change to a message (the send ledger has two writers, :meth:`MessageStore.add` and
:meth:`MessageStore.update`, and both tell this store) and every ``purchase`` or ``unsubscribed`` event is applied
as a delta: what the message counts as now (see :mod:`growthengine.analytics.definitions`) minus what it counted
as before (remembered in ``kpi_messages``). The deltas are written in the same transaction as the change, so the
rollups commit or roll back with it (savepoints included), and ``kpi_daily`` always equals a from-scratch
recomputation over the same messages and events.

The settings the rollups depend on (attribution window, business timezone) are stored with them; when the engine
starts with different ones it rebuilds the rollups (:meth:`KpiStore.rebuild`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.analytics.definitions import (
    CONTROL,
    CONVERSION_EVENT,
    TREATED,
    UNSUBSCRIBE_EVENT,
    KpiConfig,
    MessageFacts,
    daily_counts,
    facts_of,
    in_window,
    open_key,
    reason_key,
    unsubscribe_covers,
    zone,
)
from growthengine.domain.events import Event
from growthengine.storage.analytics_schema import (
    CHANNEL_COUNTERS,
    KPI_COUNTERS,
    KPI_DIMENSIONS,
    REASON_DIMENSIONS,
    kpi_daily,
    kpi_flow_days,
    kpi_messages,
    kpi_monthly,
    kpi_open_hours,
    kpi_reasons,
    kpi_reasons_monthly,
)
from growthengine.storage.dialects import insert_for
from growthengine.storage.flow_schema import messages
from growthengine.storage.kpi_reads import KpiReads
from growthengine.storage.message_store import MessageStore
from growthengine.storage.schema import engine_state, events

CONFIG_KEY = "kpi_config"
ATTRIBUTED = (CONVERSION_EVENT, UNSUBSCRIBE_EVENT)
_CHUNK = 500

Change = tuple[MessageFacts | None, MessageFacts]
Delta = dict[str, int]


class KpiStore(KpiReads):
    """The rollups and their upkeep, inside one transaction."""

    def __init__(self, conn: sa.Connection, dialect: str, ledger: MessageStore | None = None) -> None:
        super().__init__(conn, dialect)
        self._config: KpiConfig | None = None
        if ledger is not None:
            ledger.observer = self.messages_written  # the ledger's two writers tell us of every change

    # Settings -------------------------------------------------------------------------------------------

    def stored_config(self) -> KpiConfig | None:
        value = self._conn.execute(sa.select(engine_state.c.value).where(engine_state.c.key == CONFIG_KEY)).scalar()
        return KpiConfig.from_dict(orjson.loads(value)) if value is not None else None

    def config(self) -> KpiConfig:
        if self._config is None:
            self._config = self.stored_config() or KpiConfig()
        return self._config

    def save_config(self, config: KpiConfig) -> None:
        stmt = insert_for(self._dialect, engine_state)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value})
        self._conn.execute(stmt, {"key": CONFIG_KEY, "value": orjson.dumps(config.as_dict()).decode()})
        self._config = config

    # Upkeep: messages -----------------------------------------------------------------------------------

    def messages_written(self, ids: Sequence[str]) -> None:
        """Messages were added or changed: count them again."""
        for start in range(0, len(ids), _CHUNK):
            chunk = list(dict.fromkeys(ids[start:start + _CHUNK]))
            rows = self._conn.execute(sa.select(messages).where(messages.c.id.in_(chunk))).mappings().all()
            self._recount(rows, self._load_facts(chunk))

    def rebuild(self) -> int:
        """Forget the rollups and count every message in the ledger again (after a change of settings)."""
        for table in (kpi_messages, kpi_daily, kpi_monthly, kpi_flow_days, kpi_reasons, kpi_reasons_monthly,
                      kpi_open_hours):
            self._conn.execute(sa.delete(table))
        done, after = 0, -1
        while True:
            rows = self._conn.execute(
                sa.select(messages).where(messages.c.seq > after).order_by(messages.c.seq).limit(5000)
            ).mappings().all()
            if not rows:
                return done
            self._recount(rows, {})
            done += len(rows)
            after = int(rows[-1]["seq"])

    def _recount(self, rows: Sequence[Any], old: dict[str, MessageFacts]) -> None:
        tz = zone(self.config())
        changes: list[Change] = []
        need_lookback: list[MessageFacts] = []
        for row in rows:
            new = facts_of(row, tz)
            before = old.get(new.message_id)
            if new.anchor_us is None:
                pass
            elif before is not None and before.group == new.group and before.anchor_us == new.anchor_us:
                new = new.with_attribution(before.converted, before.unsubscribed)
            else:
                need_lookback.append(new)
            changes.append((before, new))
        if need_lookback:
            attributed = self._look_back(need_lookback)
            changes = [(b, attributed.get(n.message_id, n)) for b, n in changes]
        self._apply(changes)

    def _look_back(self, facts: list[MessageFacts]) -> dict[str, MessageFacts]:
        """Attribution of newly anchored messages from the events already in the log."""
        window = self.config().window_us
        by_user: dict[str, list[MessageFacts]] = defaultdict(list)
        for f in facts:
            by_user[f.user_id].append(f)
        lo = min(f.anchor_us or 0 for f in facts)
        hi = max(f.anchor_us or 0 for f in facts) + window
        found: dict[str, MessageFacts] = {}
        users = list(by_user)
        for start in range(0, len(users), _CHUNK):
            query = sa.select(events.c.user_id, events.c.name, events.c.ts_us, events.c.payload).where(
                events.c.user_id.in_(users[start:start + _CHUNK]), events.c.ts_us >= lo, events.c.ts_us < hi,
                events.c.name.in_(ATTRIBUTED), events.c.type == "track",
            )
            evs = [Event(user_id=u, name=n, ts_us=int(t), properties=orjson.loads(p) or {})
                   for u, n, t, p in self._conn.execute(query)]
            for event in evs:
                for f in by_user[event.user_id]:
                    current = found.get(f.message_id, f)
                    updated = _attribute(current, event, window)
                    if updated is not current:
                        found[f.message_id] = updated
        return found

    # Upkeep: events -------------------------------------------------------------------------------------

    def events_arrived(self, arrived: Iterable[Event]) -> None:
        """``purchase`` and ``unsubscribed`` events: credit the messages whose window they fall in."""
        wanted = [e for e in arrived if e.name in ATTRIBUTED and e.type == "track"]
        if not wanted:
            return
        window = self.config().window_us
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in wanted:
            by_user[event.user_id].append(event)
        lo = min(e.ts_us for e in wanted) - window
        hi = max(e.ts_us for e in wanted)
        users = list(by_user)
        changes: list[Change] = []
        for start in range(0, len(users), _CHUNK):
            query = sa.select(kpi_messages).where(
                kpi_messages.c.user_id.in_(users[start:start + _CHUNK]), kpi_messages.c.anchor_us.is_not(None),
                kpi_messages.c.anchor_us > lo, kpi_messages.c.anchor_us <= hi,
            )
            for row in self._conn.execute(query).mappings():
                before = _facts_from_row(row)
                after = before
                for event in by_user[before.user_id]:
                    after = _attribute(after, event, window)
                if after is not before:
                    changes.append((before, after))
        self._apply(changes)

    def user_merged(self, user_id: str) -> None:
        """An anonymous history was folded into the user: their purchases may now credit their messages."""
        query = sa.select(kpi_messages).where(kpi_messages.c.user_id == user_id, kpi_messages.c.anchor_us.is_not(None))
        before = [_facts_from_row(r) for r in self._conn.execute(query).mappings()]
        if not before:
            return
        found = self._look_back(before)
        self._apply([(b, found[b.message_id]) for b in before if b.message_id in found])

    # Writing deltas -------------------------------------------------------------------------------------

    def _apply(self, changes: Sequence[Change]) -> None:
        daily: dict[tuple[str, ...], Delta] = defaultdict(lambda: defaultdict(int))
        reasons: dict[tuple[str, ...], int] = defaultdict(int)
        opens: dict[tuple[Any, ...], int] = defaultdict(int)
        for before, after in changes:
            for facts, sign in ((before, -1), (after, 1)):
                if facts is None:
                    continue
                bucket = daily[facts.daily_key]
                for name, n in daily_counts(facts).items():
                    bucket[name] += sign * n
                rkey = reason_key(facts)
                if rkey is not None:
                    reasons[rkey] += sign
                okey = open_key(facts)
                if okey is not None:
                    opens[okey] += sign
        self._save_facts([after for before, after in changes if before != after])
        daily = {key: delta for key, delta in daily.items() if any(delta.values())}
        monthly: dict[tuple[str, ...], Delta] = defaultdict(lambda: defaultdict(int))
        flow_days: dict[tuple[str, ...], Delta] = defaultdict(lambda: defaultdict(int))
        for key, delta in daily.items():
            month, per_flow = monthly[(key[0][:7], *key[1:])], flow_days[(key[0], key[1])]
            for name, n in delta.items():
                month[name] += n
                per_flow[name] += n
            if key[3] in ("push", "email"):
                per_flow[f"{key[3]}_sent"] += delta.get("sent", 0)
                per_flow[f"{key[3]}_opened"] += delta.get("opened", 0)
        for table, dims, counters, deltas in (
            (kpi_daily, KPI_DIMENSIONS, KPI_COUNTERS, daily),
            (kpi_monthly, ("month", *KPI_DIMENSIONS[1:]), KPI_COUNTERS, monthly),
            (kpi_flow_days, ("day", "flow_key"), (*KPI_COUNTERS, *CHANNEL_COUNTERS), flow_days),
        ):
            rows = [{**dict(zip(dims, key, strict=True)), **{c: delta.get(c, 0) for c in counters}}
                    for key, delta in sorted(deltas.items())]
            self._add(table, dims, counters, rows)
        reasons = {key: n for key, n in reasons.items() if n}
        reason_months: dict[tuple[str, ...], int] = defaultdict(int)
        for key, n in reasons.items():
            reason_months[(key[0][:7], *key[1:])] += n
        for table, dims, counts in ((kpi_reasons, REASON_DIMENSIONS, reasons),
                                    (kpi_reasons_monthly, ("month", *REASON_DIMENSIONS[1:]), reason_months)):
            rows = [{**dict(zip(dims, key, strict=True)), "n": n} for key, n in sorted(counts.items()) if n]
            self._add(table, dims, ("n",), rows)
        open_rows = [{"flow_key": k[0], "channel": k[1], "how": k[2], "n": n} for k, n in sorted(opens.items()) if n]
        self._add(kpi_open_hours, ("flow_key", "channel", "how"), ("n",), open_rows)

    def _add(self, table: sa.Table, keys: Sequence[str], counters: Sequence[str], rows: list[dict[str, Any]]) -> None:
        """Add deltas to counters (an upsert that increments)."""
        if not rows:
            return
        stmt = insert_for(self._dialect, table)
        stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={c: table.c[c] + stmt.excluded[c] for c in counters})
        self._conn.execute(stmt, rows)

    def _save_facts(self, facts: Sequence[MessageFacts]) -> None:
        if not facts:
            return
        rows = [_facts_row(f) for f in facts]
        stmt = insert_for(self._dialect, kpi_messages)
        columns = [c for c in rows[0] if c != "message_id"]
        stmt = stmt.on_conflict_do_update(index_elements=["message_id"],
                                          set_={c: stmt.excluded[c] for c in columns})
        self._conn.execute(stmt, rows)

    def _load_facts(self, ids: list[str]) -> dict[str, MessageFacts]:
        query = sa.select(kpi_messages).where(kpi_messages.c.message_id.in_(ids))
        return {r["message_id"]: _facts_from_row(r) for r in self._conn.execute(query).mappings()}


def _attribute(facts: MessageFacts, event: Event, window_us: int) -> MessageFacts:
    """The message's facts with this event credited to it, if it falls in its window (else the same object)."""
    anchor = facts.anchor_us
    if anchor is None or event.user_id != facts.user_id or not in_window(anchor, event.ts_us, window_us):
        return facts
    if event.name == CONVERSION_EVENT and facts.group in (TREATED, CONTROL) and not facts.converted:
        return facts.with_attribution(True, facts.unsubscribed)
    if (event.name == UNSUBSCRIBE_EVENT and facts.group == TREATED and not facts.unsubscribed
            and unsubscribe_covers(event.properties, facts.channel)):
        return facts.with_attribution(facts.converted, True)
    return facts


def _facts_row(f: MessageFacts) -> dict[str, Any]:
    return {"message_id": f.message_id, "user_id": f.user_id, "day": f.day, "flow_key": f.flow, "step": f.step,
            "channel": f.channel, "variant": f.variant, "kind": f.kind, "status": f.status, "reason": f.reason,
            "grp": f.group, "anchor_us": f.anchor_us, "converted": f.converted, "unsubscribed": f.unsubscribed,
            "open_how": f.open_how}


def _facts_from_row(row: Any) -> MessageFacts:
    return MessageFacts(
        message_id=row["message_id"], user_id=row["user_id"], day=row["day"], flow=row["flow_key"],
        step=row["step"], channel=row["channel"], variant=row["variant"], kind=row["kind"], status=row["status"],
        reason=row["reason"], group=row["grp"], anchor_us=row["anchor_us"], converted=bool(row["converted"]),
        unsubscribed=bool(row["unsubscribed"]), open_how=row["open_how"],
    )
