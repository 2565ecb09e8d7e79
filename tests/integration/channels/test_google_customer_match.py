"""Google Ads Customer Match against a local double of the REST API: the offline user data job, batches, retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from growthengine.channels.providers.audience import hash_email, key_number
from growthengine.channels.providers.base import CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.google_customer_match import (
    GoogleCustomerMatchConfig,
    GoogleCustomerMatchProvider,
)
from tests.integration.channels.doubles import TokenEndpoint, service_account

CREATE = "/v21/customers/1234567890/offlineUserDataJobs:create"
JOB = "customers/1234567890/offlineUserDataJobs/555"
ADD = f"/v21/{JOB}:addOperations"
RUN = f"/v21/{JOB}:run"

Make = Callable[..., GoogleCustomerMatchProvider]


@pytest.fixture
def make(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> Make:
    def build(**settings: Any) -> GoogleCustomerMatchProvider:
        config = GoogleCustomerMatchConfig.from_settings({
            "customer_id": "123-456-7890", "user_list_id": "777", "developer_token": "dev-tok",
            "login_customer_id": "999-000-1111", "access_token": "ya29.static", "base_url": server.url_for(""),
            "backoff_s": 0.5, "requests_per_s": 1000, "burst": 10, **settings})
        return GoogleCustomerMatchProvider(config, client=http, sleep=sleeps.append)

    return build


def job_double(server: HTTPServer, **add: Any) -> None:
    server.expect_request(CREATE, method="POST").respond_with_json({"resourceName": JOB})
    server.expect_request(ADD, method="POST").respond_with_json(add or {})
    server.expect_request(RUN, method="POST").respond_with_json({"name": "customers/1234567890/operations/1"})


def test_a_sync_creates_fills_and_runs_a_job(server: HTTPServer, make: Make) -> None:
    job_double(server)
    result = make(batch_size=2).add(["A@example.com", "b@example.com ", "c@example.com"], key="winback")
    assert (result.ok, result.batches, result.received, result.reference) == (True, 2, 3, JOB)
    paths = [r.path for r, _ in server.log]
    assert paths == [CREATE, ADD, ADD, RUN]
    create = server.log[0][0]
    assert create.headers["developer-token"] == "dev-tok"
    assert create.headers["login-customer-id"] == "9990001111"
    assert create.headers["Authorization"] == "Bearer ya29.static"
    assert create.get_json() == {"job": {
        "type": "CUSTOMER_MATCH_USER_LIST", "externalId": str(key_number("winback")),
        "customerMatchUserListMetadata": {"userList": "customers/1234567890/userLists/777"}}}
    first = server.log[1][0].get_json()
    assert first["enablePartialFailure"] is True
    assert first["operations"] == [{"create": {"userIdentifiers": [{"hashedEmail": hash_email("a@example.com")}]}},
                                   {"create": {"userIdentifiers": [{"hashedEmail": hash_email("b@example.com")}]}}]


def test_remove_operations(server: HTTPServer, make: Make) -> None:
    job_double(server)
    assert make().remove(["a@example.com"]).ok
    assert server.log[1][0].get_json()["operations"] == [
        {"remove": {"userIdentifiers": [{"hashedEmail": hash_email("a@example.com")}]}}]


def test_partial_failures_are_counted(server: HTTPServer, make: Make) -> None:
    job_double(server, partialFailureError={"code": 3, "message": "1 error", "details": [
        {"@type": "type.googleapis.com/google.ads.googleads.v21.errors.GoogleAdsFailure", "errors": [{"x": 1}]}]})
    result = make().add(["a@example.com", "not-an-email"])
    assert (result.ok, result.invalid) == (True, 1)


def test_resource_exhausted_is_retried_after_the_wait_asked(server: HTTPServer, make: Make, sleeps: list[float],
                                                           ) -> None:
    server.expect_oneshot_request(CREATE).respond_with_response(Response(
        json.dumps({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}),
        status=429, headers={"Retry-After": "7"}, content_type="application/json"))
    job_double(server)
    assert make().add(["a@example.com"]).ok
    assert sleeps == [7.0]


def test_a_refused_request_is_permanent(server: HTTPServer, make: Make) -> None:
    server.expect_request(CREATE).respond_with_json(
        {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}},
        status=403)
    msg = OutboundMessage(id="msg_g_1", user_id="u-1", channel="ads", kind="marketing", to="a@example.com")
    delivery = make().send(msg)
    assert (delivery.status, delivery.permanent, delivery.reason) == (
        "failed", True, "HTTP 403: The caller does not have permission")


def test_a_service_account_token(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> None:
    tokens = TokenEndpoint()
    info = service_account(tokens.install(server))
    job_double(server)
    config = GoogleCustomerMatchConfig.from_settings({
        "customer_id": "1234567890", "user_list_id": "777", "developer_token": "dev-tok",
        "service_account": info, "base_url": server.url_for("")})
    provider = GoogleCustomerMatchProvider(config, client=http, sleep=sleeps.append)
    msg = OutboundMessage(id="msg_g_2", user_id="u-1", channel="ads", kind="marketing", to="a@example.com")
    assert provider.send(msg).provider_id == JOB
    assert tokens.issued[0]["scope"] == "https://www.googleapis.com/auth/adwords"
    assert server.log[-1][0].headers["Authorization"] == "Bearer ya29.test-1"
    assert "login-customer-id" not in server.log[-1][0].headers


def test_check_credentials(server: HTTPServer, make: Make) -> None:
    search = "/v21/customers/1234567890/googleAds:search"
    server.expect_oneshot_request(search).respond_with_json({"results": [{"userList": {"id": "777"}}]})
    make().check_credentials()
    assert "user_list.id = 777" in server.log[-1][0].get_json()["query"]
    server.expect_oneshot_request(search).respond_with_json({})
    with pytest.raises(CredentialsError, match="not found"):
        make().check_credentials()
    with pytest.raises(WebhookRejected):
        make().parse_webhook({}, b"")


def test_config() -> None:
    with pytest.raises(CredentialsError, match="service_account"):
        GoogleCustomerMatchConfig.from_settings({"customer_id": "1", "user_list_id": "2", "developer_token": "d"})
    with pytest.raises(CredentialsError, match="user_list_id"):
        GoogleCustomerMatchConfig.from_settings({"customer_id": "1", "user_list_id": "2 OR 1=1",
                                                 "developer_token": "d", "access_token": "t"})
