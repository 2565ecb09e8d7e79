"""Wire shapes, for the OpenAPI document and for answers. Ingestion bodies are validated per call in
``domain.calls`` (so that one bad call in a batch is rejected alone); these models document them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class IdentifyBody(_Open):
    userId: str | None = Field(None, description="Your id for the user; userId or anonymousId is required")
    anonymousId: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict, description=(
        "Merged into the profile. Known: email, phone (E.164), name, province, timezone (IANA), language "
        "(th|en), push_token, is_seller, consent {push,email,sms,in_app,ads: bool}"))
    timestamp: str | None = Field(None, description="ISO-8601 event time; default now")
    messageId: str | None = Field(None, description="Idempotency key")


class TrackBody(_Open):
    userId: str | None = None
    anonymousId: str | None = None
    event: str
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None
    messageId: str | None = None


class BatchBody(_Open):
    batch: list[dict[str, Any]] = Field(..., max_length=1000,
                                        description="identify, track, page, screen, alias or group calls")


class Rejected(BaseModel):
    index: int
    error: str


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


class UserView(BaseModel):
    userId: str
    traits: dict[str, Any]
    computed: dict[str, Any]
    segments: list[str]


class UserExport(_Open):
    """Everything held about one user (CONTRACT.md 10); each list oldest first."""

    exportVersion: int
    userId: str
    profile: dict[str, Any]
    events: list[dict[str, Any]]
    memberships: list[dict[str, Any]]
    segmentHistory: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    consentHistory: list[dict[str, Any]]
    flowRuns: list[dict[str, Any]]
    coupons: list[dict[str, Any]]
    favorites: list[dict[str, Any]]
    models: dict[str, Any]


class ClockView(BaseModel):
    now: str
    mode: str


class AdvanceBody(BaseModel):
    to: str | None = Field(None, description="ISO-8601 instant to move to")
    by: str | None = Field(None, description="ISO-8601 duration such as PT1H")


class AdvanceResponse(BaseModel):
    now: str
    processed: int


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "Bad request"), (401, "Missing or unknown key"), (403, "Key lacks the right"),
        (404, "Not found"), (409, "Conflict"), (413, "Too large"), (415, "Unsupported encoding"),
    )
}


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` that documents a JSON request body read by hand."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {
                "schema": model.model_json_schema(ref_template="#/components/schemas/{model}"),
            }},
        }
    }


class SegmentSummary(BaseModel):
    key: str
    name: str
    refresh: str
    size: int
    description: str = ""


class MembersPage(BaseModel):
    members: list[str]
    next: str | None


class MessageView(_Open):
    id: str
    userId: str
    flow: str
    step: str
    channel: str
    kind: str
    status: str
    scheduledAt: str
    body: str
    reason: str | None = None
    sentAt: str | None = None
    title: str | None = None
    subject: str | None = None
    variant: str | None = None
    coupon: str | None = None


class MessagesPage(BaseModel):
    messages: list[MessageView]
    next: str | None


class InboxView(BaseModel):
    messages: list[MessageView]
