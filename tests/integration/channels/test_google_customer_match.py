"""Google Customer Match against local doubles built from Google's reference: the Data Manager API
(``audienceMembers:ingest`` / ``:remove``, consent and terms included, members batched; the default) and, for
allowlisted developer tokens, the Google Ads API v26 offline user data job (an id per attempt, 409 retried)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from growthengine.channels.providers.audience import hash_email
from growthengine.channels.providers.base import CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.google_customer_match import (
    GoogleCustomerMatchConfig,
    GoogleCustomerMatchProvider,
)
from tests.integration.channels.doubles import TokenEndpoint, service_account

INGEST = "/v1/audienceMembers:ingest"
REMOVE = "/v1/audienceMembers:remove"
CREATE = "/v26/customers/1234567890/offlineUserDataJobs:create"
JOB = "customers/1234567890/offlineUserDataJobs/555"
ADD = f"/v26/{JOB}:addOperations"
RUN = f"/v26/{JOB}:run"

Make = Callable[..., GoogleCustomerMatchProvider]
DATA_MANAGER = {"customer_id": "123-456-7890", "user_list_id": "777", "login_customer_id": "999-000-1111",
                "access_token": "ya29.static", "customer_match_terms_accepted": True}


@pytest.fixture
def make_dm(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> Make:
    """The default: the Data Manager API."""
    def build(**settings: Any) -> GoogleCustomerMatchProvider:
        config = GoogleCustomerMatchConfig.from_settings({
            **DATA_MANAGER, "base_url": server.url_for(""), "backoff_s": 0.5, "requests_per_s": 1000, "burst": 10,
            **settings})
        return GoogleCustomerMatchProvider(config, client=http, sleep=sleeps.append)

    return build


@pytest.fixture
def make(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> Make:
    """The Google Ads API path, for an allowlisted developer token."""
    ids = iter(range(1001, 2000))

    def build(**settings: Any) -> GoogleCustomerMatchProvider:
        config = GoogleCustomerMatchConfig.from_settings({
            "api": "google_ads", "customer_id": "123-456-7890", "user_list_id": "777", "developer_token": "dev-tok",
            "login_customer_id": "999-000-1111", "access_token": "ya29.static", "base_url": server.url_for(""),
            "backoff_s": 0.5, "requests_per_s": 1000, "burst": 10, **settings})
        return GoogleCustomerMatchProvider(config, client=http, sleep=sleeps.append, attempt_id=lambda: next(ids))

    return build


def accepted(request: Request) -> Response:
    """The documented success answer: the request's id (the members are processed later)."""
    assert len(request.get_json()["audienceMembers"]) <= 10_000
    return Response(json.dumps({"requestId": f"req-{len(request.get_json()['audienceMembers'])}"}),
                    content_type="application/json")


def test_data_manager_ingest_as_google_documents_it(server: HTTPServer, make_dm: Make) -> None:
    server.expect_request(INGEST, method="POST").respond_with_handler(accepted)
    result = make_dm(batch_size=2).add(["A@example.com", " b@example.com", "c@example.com"])
    assert (result.ok, result.batches, result.received, result.reference) == (True, 2, 3, "req-1")
    first = server.log[0][0]
    assert first.headers["Authorization"] == "Bearer ya29.static"
    assert "developer-token" not in first.headers  # the Data Manager API needs none
    assert first.get_json() == {
        "destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                          "loginAccount": {"accountType": "GOOGLE_ADS", "accountId": "9990001111"},
                          "productDestinationId": "777"}],
        "audienceMembers": [{"userData": {"userIdentifiers": [{"emailAddress": hash_email("a@example.com")}]}},
                            {"userData": {"userIdentifiers": [{"emailAddress": hash_email("b@example.com")}]}}],
        "encoding": "HEX",
        "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"},
        "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"},
    }
    assert len(server.log[1][0].get_json()["audienceMembers"]) == 1
    assert "a@example.com" not in first.get_data(as_text=True)


def test_data_manager_batches_at_most_ten_thousand(server: HTTPServer, make_dm: Make) -> None:
    server.expect_request(INGEST, method="POST").respond_with_handler(accepted)
    result = make_dm().add([f"u{i}@example.com" for i in range(10_001)])
    assert (result.ok, result.batches) == (True, 2)
    assert [len(r.get_json()["audienceMembers"]) for r, _ in server.log] == [10_000, 1]


def test_data_manager_remove_and_denied_consent(server: HTTPServer, make_dm: Make) -> None:
    server.expect_request(REMOVE, method="POST").respond_with_handler(accepted)
    removal = OutboundMessage(id="msg_g_9", user_id="u-1", channel="ads", kind="marketing", to="a@example.com",
                              data={"audience_action": "remove"})
    assert make_dm().send(removal).status == "sent"
    body = server.log[-1][0].get_json()
    member = {"userData": {"userIdentifiers": [{"emailAddress": hash_email("a@example.com")}]}}
    assert body["audienceMembers"] == [member]
    assert "consent" not in body and "termsOfService" not in body
    server.expect_request(INGEST, method="POST").respond_with_handler(accepted)
    make_dm(ad_personalization_consent="CONSENT_DENIED").add(["b@example.com"])
    assert server.log[-1][0].get_json()["consent"] == {"adUserData": "CONSENT_GRANTED",
                                                      "adPersonalization": "CONSENT_DENIED"}


def test_data_manager_errors(server: HTTPServer, make_dm: Make, sleeps: list[float]) -> None:
    server.expect_oneshot_request(INGEST).respond_with_response(Response(json.dumps({"error": {
        "code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}), status=429,
        headers={"Retry-After": "2"}, content_type="application/json"))
    server.expect_request(INGEST).respond_with_handler(accepted)
    assert make_dm().add(["a@example.com"]).ok
    assert sleeps == [2.0]
    server.clear()
    server.expect_request(INGEST).respond_with_json({"error": {
        "code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_PRODUCT_DESTINATION_ID",
                     "domain": "datamanager.googleapis.com"}]}}, status=400)
    result = make_dm().add(["a@example.com"])
    assert (result.ok, result.permanent) == (False, True)
    assert result.errors == ["HTTP 400: Request contains an invalid argument."]


def test_data_manager_check_credentials_validates_only(server: HTTPServer, make_dm: Make) -> None:
    server.expect_oneshot_request(INGEST).respond_with_json({})
    make_dm().check_credentials()
    assert server.log[-1][0].get_json()["validateOnly"] is True
    server.expect_oneshot_request(INGEST).respond_with_json(
        {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}},
        status=403)
    with pytest.raises(CredentialsError, match="refused the validation"):
        make_dm().check_credentials()


def test_data_manager_service_account_scope(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> None:
    tokens = TokenEndpoint()
    info = service_account(tokens.install(server))
    server.expect_request(INGEST).respond_with_handler(accepted)
    config = GoogleCustomerMatchConfig.from_settings({
        "customer_id": "1234567890", "user_list_id": "777", "service_account": info,
        "customer_match_terms_accepted": True, "base_url": server.url_for("")})
    assert GoogleCustomerMatchProvider(config, client=http, sleep=sleeps.append).add(["a@example.com"]).ok
    assert tokens.issued[0]["scope"] == "https://www.googleapis.com/auth/datamanager"


def test_data_manager_needs_the_terms_accepted() -> None:
    with pytest.raises(CredentialsError, match="customer_match_terms_accepted"):
        GoogleCustomerMatchConfig.from_settings({"customer_id": "1", "user_list_id": "2", "access_token": "t"})
    with pytest.raises(CredentialsError, match="developer_token"):
        GoogleCustomerMatchConfig.from_settings({"api": "google_ads", "customer_id": "1", "user_list_id": "2",
                                                 "access_token": "t"})


# -- the Google Ads API path ------------------------------------------------------------------------------------

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
        "type": "CUSTOMER_MATCH_USER_LIST", "externalId": "1001",
        "customerMatchUserListMetadata": {"userList": "customers/1234567890/userLists/777",
                                          "consent": {"adUserData": "CONSENT_GRANTED",
                                                      "adPersonalization": "CONSENT_GRANTED"}}}}
    first = server.log[1][0].get_json()
    assert first["enablePartialFailure"] is True
    assert first["operations"] == [{"create": {"userIdentifiers": [{"hashedEmail": hash_email("a@example.com")}]}},
                                   {"create": {"userIdentifiers": [{"hashedEmail": hash_email("b@example.com")}]}}]


def test_each_attempt_has_its_own_external_id(server: HTTPServer, make: Make) -> None:
    job_double(server)
    provider = make()
    provider.add(["a@example.com"], key="same-key")
    provider.add(["a@example.com"], key="same-key")  # a retry of the same sync: a new job, a new id
    ids = [r.get_json()["job"]["externalId"] for r, _ in server.log if r.path == CREATE]
    assert ids == ["1001", "1002"]


def test_concurrent_modification_is_retried(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    server.expect_request(CREATE, method="POST").respond_with_json({"resourceName": JOB})
    server.expect_oneshot_request(ADD).respond_with_json({"error": {
        "code": 409, "message": "Multiple requests were attempting to modify the same resource at once. Retry the "
                                "request.", "status": "ABORTED", "details": [{
            "@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
            "errors": [{"errorCode": {"databaseError": "CONCURRENT_MODIFICATION"}}]}]}}, status=409)
    server.expect_request(ADD, method="POST").respond_with_json({})
    server.expect_request(RUN, method="POST").respond_with_json({"name": "customers/1234567890/operations/1"})
    assert make().add(["a@example.com"]).ok
    assert sleeps == [0.5]


def test_a_token_not_allowlisted_is_permanent(server: HTTPServer, make: Make) -> None:
    server.expect_request(CREATE).respond_with_json({"error": {
        "code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
                     "errors": [{"errorCode": {"offlineUserDataJobError": "CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE"},
                                 "message": "Customer is not allowlisted for this feature."}]}]}}, status=400)
    result = make().add(["a@example.com"])
    assert (result.ok, result.permanent) == (False, True)


def test_remove_operations(server: HTTPServer, make: Make) -> None:
    job_double(server)
    assert make().remove(["a@example.com"]).ok
    assert server.log[1][0].get_json()["operations"] == [
        {"remove": {"userIdentifiers": [{"hashedEmail": hash_email("a@example.com")}]}}]


def test_partial_failures_are_counted(server: HTTPServer, make: Make) -> None:
    job_double(server, partialFailureError={"code": 3, "message": "1 error", "details": [
        {"@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure", "errors": [{"x": 1}]}]})
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
        "api": "google_ads", "customer_id": "1234567890", "user_list_id": "777", "developer_token": "dev-tok",
        "service_account": info, "base_url": server.url_for("")})
    provider = GoogleCustomerMatchProvider(config, client=http, sleep=sleeps.append)
    msg = OutboundMessage(id="msg_g_2", user_id="u-1", channel="ads", kind="marketing", to="a@example.com")
    assert provider.send(msg).provider_id == JOB
    assert tokens.issued[0]["scope"] == "https://www.googleapis.com/auth/adwords"
    assert server.log[-1][0].headers["Authorization"] == "Bearer ya29.test-1"
    assert "login-customer-id" not in server.log[-1][0].headers


def test_check_credentials(server: HTTPServer, make: Make) -> None:
    search = "/v26/customers/1234567890/googleAds:search"
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
        GoogleCustomerMatchConfig.from_settings({"customer_id": "1", "user_list_id": "2", "developer_token": "d",
                                                 "customer_match_terms_accepted": True})
    with pytest.raises(CredentialsError, match="user_list_id"):
        GoogleCustomerMatchConfig.from_settings({"customer_id": "1", "user_list_id": "2 OR 1=1",
                                                 "developer_token": "d", "access_token": "t"})
