"""The CI check on vendor API versions: it fails 60 days before a pinned version's published sunset (or the date its
sunset must be looked up again), reading today from the clock module; and every provider speaks the pinned version."""

from __future__ import annotations

import datetime as dt

import pytest

from growthengine.channels.providers.api_versions import VERSIONS, WARN_BEFORE, ApiVersion, due, pinned
from growthengine.channels.providers.facebook_audience import FacebookAudienceConfig
from growthengine.channels.providers.fcm import API_VERSION as FCM_VERSION
from growthengine.channels.providers.google_customer_match import DATA_MANAGER_VERSION, GoogleCustomerMatchConfig
from growthengine.channels.providers.sendgrid import API_VERSION as SENDGRID_VERSION
from growthengine.channels.providers.twilio import API_VERSION as TWILIO_VERSION
from growthengine.channels.registry import FACTORIES
from growthengine.clock import RealClock


def test_no_pinned_version_is_within_60_days_of_its_sunset() -> None:
    today = RealClock().now().date()
    problems = due(today)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("api", sorted(VERSIONS))
def test_the_check_fires_60_days_before_the_deadline(api: str) -> None:
    deadline = VERSIONS[api].deadline
    assert not any(p.startswith(f"{api} ") for p in due(deadline - WARN_BEFORE))  # 60 days left: still fine
    assert any(p.startswith(f"{api} ") for p in due(deadline - WARN_BEFORE + dt.timedelta(days=1)))
    assert any(p.startswith(f"{api} ") for p in due(deadline + dt.timedelta(days=30)))  # past it, still failing


def test_a_published_sunset_counts_before_a_review_date() -> None:
    entry = ApiVersion(api="x", version="v1", providers=("p",), sunset=dt.date(2027, 3, 1), source="https://x",
                       checked=dt.date(2026, 11, 30), review_by=dt.date(2028, 1, 1))
    assert entry.deadline == dt.date(2027, 3, 1)
    # Meta's Marketing API v23.0, pinned before: it would have failed CI from 10 April 2026 (expired 9 June 2026).
    v23 = ApiVersion(api="meta", version="v23.0", providers=("facebook_audience",), sunset=dt.date(2026, 6, 9),
                     source="https://developers.facebook.com/docs/graph-api/changelog/versions/",
                     checked=dt.date(2026, 11, 30))
    assert v23.deadline - WARN_BEFORE == dt.date(2026, 4, 10)


@pytest.mark.parametrize("entry", list(VERSIONS.values()), ids=list(VERSIONS))
def test_every_entry_has_its_source_and_a_deadline(entry: ApiVersion) -> None:
    assert entry.source.startswith("https://")
    assert entry.sunset is not None or entry.review_by is not None
    assert entry.providers and set(entry.providers) <= set(FACTORIES)
    if entry.sunset is None and entry.review_by is not None:
        assert entry.review_by - entry.checked <= dt.timedelta(days=366), "look an unpublished sunset up yearly"


def test_the_providers_speak_the_pinned_versions() -> None:
    assert FacebookAudienceConfig.model_fields["api_version"].default == pinned("meta_marketing")
    assert GoogleCustomerMatchConfig.model_fields["api_version"].default == pinned("google_ads")
    assert DATA_MANAGER_VERSION == pinned("google_data_manager")
    assert FCM_VERSION == pinned("fcm_http")
    assert TWILIO_VERSION == pinned("twilio_messaging")
    assert SENDGRID_VERSION == pinned("sendgrid_v3")
