"""Every versioned vendor API the channel providers speak: the version pinned, and its published sunset date.

This is the one place a version is pinned; the providers take their defaults from here. Each entry names where the
date was read. A vendor that publishes no sunset date for the version gets ``sunset=None`` and a ``review_by`` date,
by which someone reads the vendor's page again (Meta and Google publish the date some months after a release).

CI fails 60 days before a pinned version's sunset, or its ``review_by`` date (``tests/contract/test_api_versions.py``,
against today's date from the clock module): time to move to the vendor's newer version, update the entry and its
source, and run the provider's tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

WARN_BEFORE = dt.timedelta(days=60)


@dataclass(frozen=True)
class ApiVersion:
    api: str
    version: str
    providers: tuple[str, ...]
    sunset: dt.date | None
    source: str
    checked: dt.date  # when the source was read
    review_by: dt.date | None = None  # for a version without a published sunset date
    note: str = ""

    @property
    def deadline(self) -> dt.date:
        """The date the version must be replaced by: its sunset, else the date to look the sunset up again."""
        deadline = self.sunset or self.review_by
        assert deadline is not None, f"{self.api}: a sunset date or a review_by date is required"
        return deadline


VERSIONS: dict[str, ApiVersion] = {entry.api: entry for entry in (
    ApiVersion(
        api="meta_marketing", version="v27.0", providers=("facebook_audience",), sunset=None,
        review_by=dt.date(2027, 8, 1), checked=dt.date(2026, 11, 30),
        source="https://developers.facebook.com/documentation/ads-commerce/marketing-api/marketing-api-changelog/"
               "versions",
        note="released 2026-11-04, expiration TBD; v23.0 expired 2026-06-09, v24.0 expires 2026-11-10, "
             "v25.0 2027-02-23 (about 12-13 months after release)"),
    ApiVersion(
        api="google_data_manager", version="v1", providers=("google_customer_match",), sunset=None,
        review_by=dt.date(2027, 11, 30), checked=dt.date(2026, 11, 30),
        source="https://developers.google.com/data-manager/api/reference/rest/v1/audienceMembers/ingest",
        note="no sunset published for v1"),
    ApiVersion(
        api="google_ads", version="v26", providers=("google_customer_match",), sunset=None,
        review_by=dt.date(2027, 6, 1), checked=dt.date(2026, 11, 30),
        source="https://developers.google.com/google-ads/api/docs/sunset-dates",
        note="the version Google recommends starting with (November 2026); major versions live about 12 months; "
             "v21 was sunset 2026-08-05 and v22 2026-10-07 "
             "(https://developers.google.com/ads/blog/posts/2026/09/google-ads-api-v22-sunset-reminder)"),
    ApiVersion(
        api="fcm_http", version="v1", providers=("fcm",), sunset=None,
        review_by=dt.date(2027, 11, 30), checked=dt.date(2026, 11, 30),
        source="https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send",
        note="the legacy HTTP and XMPP APIs were shut down in 2024; v1 has no sunset"),
    ApiVersion(
        api="twilio_messaging", version="2010-04-01", providers=("twilio",), sunset=None,
        review_by=dt.date(2027, 11, 30), checked=dt.date(2026, 11, 30),
        source="https://www.twilio.com/docs/messaging/api/message-resource",
        note="the 2010-04-01 REST API has no sunset"),
    ApiVersion(
        api="sendgrid_v3", version="v3", providers=("sendgrid",), sunset=None,
        review_by=dt.date(2027, 11, 30), checked=dt.date(2026, 11, 30),
        source="https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send",
        note="Mail Send v3 and the signed Event Webhook; no sunset"),
    ApiVersion(
        api="amazon_ses_v2", version="2019-09-27", providers=("ses",), sunset=None,
        review_by=dt.date(2027, 11, 30), checked=dt.date(2026, 11, 30),
        source="https://docs.aws.amazon.com/ses/latest/APIReference-V2/Welcome.html",
        note="SESv2 through boto3 (sesv2); events through SNS, signatures v1 and v2"),
)}


def pinned(api: str) -> str:
    """The version pinned for ``api`` (a key of :data:`VERSIONS`)."""
    return VERSIONS[api].version


def due(today: dt.date, *, warn_before: dt.timedelta = WARN_BEFORE) -> list[str]:
    """What needs doing as of ``today``: each version whose sunset (or review date) is less than ``warn_before``
    away, or past."""
    problems = []
    for entry in VERSIONS.values():
        left = entry.deadline - today
        if left < warn_before:
            what = f"sunsets on {entry.sunset}" if entry.sunset else f"had its sunset date to be looked up again by " \
                                                                       f"{entry.review_by}"
            problems.append(f"{entry.api} {entry.version} ({', '.join(entry.providers)}) {what}: "
                            f"{left.days} days left; move to a newer version and update api_versions.py "
                            f"(source: {entry.source})")
    return problems
