"""One typed settings object, read once at start (environment, then an optional YAML file, then flags)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the engine can be told at start.

    Environment variables carry the ``GROWTH_`` prefix (``GROWTH_DB_URL``, ``GROWTH_API_KEY``, ...).
    """

    model_config = SettingsConfigDict(env_prefix="GROWTH_", extra="ignore")

    db_url: str = "sqlite:///./data/growth.db"
    data_dir: Path = Path("./data")
    api_key: str | None = None
    write_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    config_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    clock: Literal["real", "manual"] = "real"
    clock_start: dt.datetime | None = None
    business_timezone: str = "Asia/Bangkok"
    future_tolerance_s: float = 300.0
    max_batch_items: int = 1000
    max_body_bytes: int = 8 * 1024 * 1024
    worker_interval_s: float = 0.5
    site_url: str = "https://jaikod.com"
    public_url: str = ""  # where users reach the engine (unsubscribe links); empty: the address served (host, port)
    coupon_engine_url: str | None = None
    recommendation_engine_url: str | None = None
    global_control_pct: float = 0.0
    genai_base_url: str | None = None  # any OpenAI-compatible chat-completions endpoint drafts copy variants
    genai_model: str = "gpt-4o-mini"
    genai_api_key: str | None = None
    channel_providers: dict[str, str] = Field(default_factory=dict)  # {"push": "fcm", "email": "ses", ...}
    provider_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)  # settings by provider name
    attribution_days: int = Field(3, ge=1, le=90)  # KPI conversion and unsubscribe window after a send
    # A segment entry found later than this after its event time (a late event, a stalled worker) is recorded but
    # starts no flow: a duration such as 1h or 30m, or seconds.
    flow_entry_max_lag: dt.timedelta = dt.timedelta(hours=1)
    # Timers due together are claimed and fired this many to a transaction (a chunk, committed with its effects).
    timer_chunk: int = Field(2000, ge=1, le=100_000)
    # Operating (CONTRACT 9): logs, metrics, readiness, key and ingest limits. Limits run on system time.
    log_format: Literal["text", "json"] = "text"  # GROWTH_LOG_FORMAT=json: one JSON object per line
    log_level: str | None = None  # GROWTH_LOG_LEVEL (DEBUG, INFO, WARNING, ...); default INFO for serve, WARNING else
    access_log: bool = False  # GROWTH_ACCESS_LOG=1: one line per request (method, route, status, time; no query)
    metrics_key: str | None = None  # GROWTH_METRICS_KEY: a bearer token that opens /metrics only
    ready_max_lag_s: float = Field(60.0, gt=0)  # /readyz fails while a pipeline stage is further behind than this
    ingest_rate_per_key: float = Field(1000.0, ge=0)  # ingest requests a second per key, on average (0: no limit)
    ingest_burst_per_key: float = Field(2000.0, ge=1)  # ingest requests a key may send at once above that rate
    failed_key_limit: int = Field(20, ge=1)  # wrong API keys from one client address before it gets 429 ...
    failed_key_window_s: float = Field(60.0, gt=0)  # ... one more allowed per window / limit seconds after that
    key_refresh_s: float = Field(2.0, gt=0)  # how soon a revoked named key stops working in a running process

    # -- trust: SDKs in browsers, app tokens, dashboard sign-in ------------------------------------------------------
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)  # "*" allows every origin
    user_token_secret: str | None = None  # X-Growth-User-Token = hex HMAC-SHA256(user id) under this secret
    login_attempts: int = Field(10, ge=1)  # failed dashboard sign-ins per client per window, then 429
    login_window_s: float = Field(300.0, gt=0)

    _public_url_derived: bool = PrivateAttr(default=False)

    @field_validator("write_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value

    @field_validator("flow_entry_max_lag", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip()[-1:].lower() in ("s", "m", "h", "d", "w") \
                and not value.strip().upper().startswith("P"):
            from growthengine.segments.durations import parse_duration_us

            return dt.timedelta(microseconds=parse_duration_us(value))
        return value

    @field_validator("flow_entry_max_lag")
    @classmethod
    def _not_negative(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(0):
            raise ValueError("flow_entry_max_lag cannot be negative")
        return value

    @field_validator("clock_start")
    @classmethod
    def _offset_required(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("clock_start needs a UTC offset, such as 2026-01-05T09:00:00+07:00")
        return value

    @model_validator(mode="after")
    def _derive_public_url(self) -> Settings:
        """Without a configured public URL, links point at the address this engine serves."""
        if not self.public_url:
            self.public_url = served_url(self.host, self.port)
            self._public_url_derived = True
        return self


def served_url(host: str, port: int) -> str:
    """Where a server listening on ``host`` and ``port`` is reached from this machine (a wildcard: the loopback)."""
    reach = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping, not binding
    return f"http://{f'[{reach}]' if ':' in reach else reach}:{port}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings: environment, then the ``settings:`` block of the config file, then explicit overrides."""
    base = Settings()
    values: dict[str, Any] = {}
    path = config_file or base.config_file
    if path is not None:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        block = data.get("settings") if isinstance(data, dict) else None
        if isinstance(block, dict):
            values.update(block)
        values["config_file"] = path
    values.update({k: v for k, v in overrides.items() if v is not None})
    if not values:
        return base
    merged = base.model_dump(exclude={"public_url"} if base._public_url_derived else None)
    merged.update(values)
    return Settings.model_validate(merged)
