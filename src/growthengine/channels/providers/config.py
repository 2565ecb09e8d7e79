"""What every provider's typed settings share: how hard to retry, and reading them from a plain dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from growthengine.channels.providers.base import CredentialsError
from growthengine.content.http_retry import RetryPolicy


class ProviderConfig(BaseModel):
    """Settings of one provider. Unknown keys are an error (a typo must not silently drop a setting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=3, ge=1, le=10)
    timeout_s: float = Field(default=10.0, gt=0)
    backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=8.0, ge=0)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from a dict of settings; a missing or wrong setting raises :class:`CredentialsError`."""
        try:
            return cls.model_validate(dict(settings))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}" for err in exc.errors()
            )
            raise CredentialsError(f"{cls.__name__}: {problems}") from None

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.attempts, timeout_s=self.timeout_s, backoff_s=self.backoff_s,
                           max_backoff_s=self.max_backoff_s)
