"""One typed settings object, read once at start (environment, then an optional YAML file, then flags)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator
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
    public_url: str = "http://127.0.0.1:8000"
    coupon_engine_url: str | None = None
    recommendation_engine_url: str | None = None
    global_control_pct: float = 0.0
    genai_base_url: str | None = None  # any OpenAI-compatible chat-completions endpoint drafts copy variants
    genai_model: str = "gpt-4o-mini"
    genai_api_key: str | None = None
    channel_providers: dict[str, str] = Field(default_factory=dict)  # {"push": "fcm", "email": "ses", ...}
    provider_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)  # settings by provider name
    attribution_days: int = Field(3, ge=1, le=90)  # KPI conversion and unsubscribe window after a send

    @field_validator("write_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value


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
    merged = base.model_dump()
    merged.update(values)
    return Settings.model_validate(merged)
