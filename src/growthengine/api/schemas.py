"""Wire shapes of the answers, for the OpenAPI document. Request bodies read by hand are in ``wire_schemas``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Rejected(BaseModel):
    index: int
    error: str


class DroppedTraitWarning(BaseModel):
    index: int
    path: str = Field(description="The trait left out, such as traits.phone or traits.consent.fax")
    message: str


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected]
    warnings: list[DroppedTraitWarning] | None = Field(
        None, description="Present when known traits were dropped from calls that were kept")


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


class UserErased(BaseModel):
    """The answer to an erasure: the profile, identities and events are gone; the pipeline clears the rest."""

    userId: str
    erasureToken: str = Field(description="The one-way token that replaces the user id where messages stay counted, "
                                          "and under which the consent audit records the erasure")
    eventsDeleted: int
    audienceRemovals: int = Field(description="Ads audiences the user is being removed from")


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


class AdvanceResponse(BaseModel):
    now: str
    processed: int


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "Bad request"), (401, "Missing or unknown key"), (403, "Key lacks the right"),
        (404, "Not found"), (409, "Conflict"), (413, "Too large"), (415, "Unsupported encoding"),
        (422, "Well formed, but the engine cannot do it (a rule between values, such as from after to)"),
        (429, "Too many requests"),
    )
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


class ConfigChange(BaseModel):
    """One stored version of a segment, flow or template (CONTRACT.md 11)."""

    id: int
    kind: str = Field(description="segment, flow or template")
    key: str
    version: int
    action: str = Field(description="create, update or delete")
    changedBy: str = Field(description="the name of the key that made it (config file: imported from the file)")
    changedAt: str = Field(description="business time")
    before: Any = Field(description="the item before, in its YAML shape (null when new)")
    after: Any = Field(description="the item after (null when deleted)")


class ConfigHistory(BaseModel):
    changes: list[ConfigChange]
    next: int | None = Field(description="pass as before= for the next (older) page")


class FlowStepView(BaseModel):
    name: str
    does: str
    waiting: int = Field(description="runs waiting at this step")
    messages: dict[str, int] = Field(description="this step's messages by status (sent, suppressed, scheduled, ...)")


class FlowView(BaseModel):
    key: str
    name: str
    description: str
    version: str
    trigger: str
    steps: list[FlowStepView]
    runs: dict[str, int] = Field(description="runs by status (active, completed, exited)")


class FlowList(BaseModel):
    flows: list[FlowView]


class TemplatePreview(BaseModel):
    template: str
    channel: str
    language: str = Field(description="th or en: the copy the user gets")
    body: str
    title: str | None = None
    subject: str | None = None
    html: str | None = None
    imageUrl: str | None = None
    variant: str | None = None


class TestMessageResult(BaseModel):
    sent: bool
    reason: str | None = Field(description="why it was not sent (consent, frequency_cap, no_address, ...)")
    message: MessageView


class PreviewMember(BaseModel):
    userId: str
    reason: str


class SegmentPreviewView(BaseModel):
    size: int = Field(description="members now (scaled from the sample when not exact)")
    sample: list[PreviewMember]
    exact: bool = Field(description="every user was evaluated")
    sampled: int = Field(description="users evaluated")
    users: int = Field(description="users stored")


class BroadcastCounts(BaseModel):
    messages: int
    sent: int = Field(description="sent, delivered, opened or clicked")
    byStatus: dict[str, int]


class BroadcastView(BaseModel):
    id: str
    name: str
    segment: str
    template: str
    channel: str
    at: str = Field(description="as asked: an instant or best_time")
    sendAt: str | None
    members: int = Field(description="the segment's members when it was made")
    createdBy: str
    createdAt: str
    counts: BroadcastCounts


class FlowPathView(BaseModel):
    """A flow's path for one user: what would happen if they entered now (``POST /v1/config/flows/{key}/preview``)."""

    flow: str
    userId: str
    at: str = Field(description="the engine's business time the path starts from")
    local: dict[str, str] = Field(description="that instant in the business time zone, Thai (th) and English (en)")
    enters: bool = Field(description="whether the user would enter the flow now")
    reason: str = Field(description="why (the segment's reason, the event found, or what stops it)")
    trigger: dict[str, Any]
    entity: str | None = Field(description="what the run would be about (a listing), if anything")
    startsAt: str = Field(description="when the first step would run")
    exits: list[dict[str, Any]] = Field(description="each exit rule, and whether an event already ends the run")
    steps: list[dict[str, Any]] = Field(description="each step in order: waits with their end, branches with the arm "
                                                    "taken, sends with the send decision, its checks and the message")
