"""OAuth2 access tokens for Google APIs (FCM, Google Ads): a service account signs a JWT, google-auth trades it.

google-auth does the signing, caching and expiry; its HTTP calls go through httpx here (an adapter to its
transport interface), so the token endpoint is whatever the service account's ``token_uri`` says, a local
double in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
from google.auth import exceptions as google_exceptions
from google.auth import transport
from google.oauth2 import service_account

from growthengine.channels.providers.base import CredentialsError

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
ADWORDS_SCOPE = "https://www.googleapis.com/auth/adwords"
DATAMANAGER_SCOPE = "https://www.googleapis.com/auth/datamanager"


class TokenUnavailable(Exception):
    """No access token could be had; ``permanent`` when the credentials themselves were refused."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class TokenSource(Protocol):
    def token(self, *, force_refresh: bool = False) -> str:
        """A current access token (fetching a new one when it expired or when forced)."""
        ...


class StaticToken:
    """A fixed token (an emulator, or a token minted elsewhere)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def token(self, *, force_refresh: bool = False) -> str:
        return self._value


class _HttpxResponse(transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(transport.Request):
    """google-auth's transport interface over an httpx client."""

    def __init__(self, client: httpx.Client, timeout_s: float = 10.0) -> None:
        self._client = client
        self._timeout_s = timeout_s

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> transport.Response:
        try:
            response = self._client.request(method, url, content=body, headers=dict(headers or {}),
                                            timeout=timeout or self._timeout_s)
        except httpx.HTTPError as exc:
            raise google_exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"token request failed ({type(exc).__name__})") from exc
        return _HttpxResponse(response)


class ServiceAccountToken:
    """Tokens for a service account (the JSON key file's content), for the given scopes."""

    def __init__(self, info: Mapping[str, Any], scopes: list[str], client: httpx.Client,
                 timeout_s: float = 10.0) -> None:
        try:
            self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                dict(info), scopes=scopes)
        except (ValueError, KeyError) as exc:
            raise CredentialsError(f"the service account key is not usable: {exc}") from None
        self._request = HttpxRequest(client, timeout_s)
        self._lock = threading.Lock()

    @property
    def project_id(self) -> str | None:
        value = self._credentials.project_id
        return str(value) if value else None

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh or not self._credentials.valid:
                try:
                    self._credentials.refresh(self._request)
                except google_exceptions.RefreshError as exc:
                    retryable = bool(getattr(exc, "retryable", False))
                    raise TokenUnavailable(f"token refused: {_first_line(exc)}", permanent=not retryable) from None
                except google_exceptions.TransportError as exc:
                    raise TokenUnavailable(f"token endpoint unreachable: {_first_line(exc)}",
                                           permanent=False) from None
            token = self._credentials.token
        if not token:
            raise TokenUnavailable("the token endpoint gave no access token", permanent=True)
        return str(token)


def _first_line(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.splitlines()[0][:200] if text else type(exc).__name__
