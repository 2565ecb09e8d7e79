"""CSV exports: a segment's members (with the reason each is in) and the messages (the message page's filters),
streamed page by page, times in the business time zone. A cell that a spreadsheet would read as a formula is
quoted as text (OWASP's CSV injection advice)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from growthengine.clock import from_us
from growthengine.engine import Engine

PAGE = 1000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
MEMBER_COLUMNS = ("user_id", "entity", "since", "reason")
MESSAGE_COLUMNS = ("id", "user_id", "flow", "step", "channel", "kind", "status", "reason", "variant",
                   "scheduled_at", "sent_at", "title", "subject", "body")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _rows(header: tuple[str, ...], rows: Iterator[list[Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")  # so that spreadsheets read the Thai text as UTF-8
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _local(at_us: int | None, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return "" if at_us is None else from_us(at_us).astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")


def segment_members(engine: Engine, key: str) -> Iterator[bytes]:
    tz = engine.settings.business_timezone

    def rows() -> Iterator[list[Any]]:
        after: tuple[str, str] | None = None
        while True:
            with engine.store.read() as tx:
                page = tx.segments.memberships_page(key, after=after, limit=PAGE)
            for m in page:
                yield [m.user_id, m.entity, _local(m.since_us, tz), m.reason]
            if len(page) < PAGE:
                return
            after = (page[-1].user_id, page[-1].entity)

    return _rows(MEMBER_COLUMNS, rows())


def messages(engine: Engine, *, user_id: str | None, flow: str | None, channel: str | None,
             status: str | None) -> Iterator[bytes]:
    tz = engine.settings.business_timezone

    def rows() -> Iterator[list[Any]]:
        before: int | None = None
        while True:
            with engine.store.read() as tx:
                page = tx.kpis.explore(user_id=user_id, flow=flow, channel=channel, status=status,
                                       before_seq=before, limit=PAGE)
            for r in page:
                yield [r["id"], r["user_id"], r["flow_key"], r["step"], r["channel"], r["kind"], r["status"],
                       r["reason"], r["variant"], _local(r["scheduled_us"], tz), _local(r["sent_us"], tz),
                       r["title"], r["subject"], r["body"]]
            if len(page) < PAGE:
                return
            before = page[-1]["seq"]

    return _rows(MESSAGE_COLUMNS, rows())
