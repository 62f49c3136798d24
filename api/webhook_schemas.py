"""Request and response bodies of the webhook routes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints

from api.input_limits import NO_NUL
from models.tables import WebhookDelivery, WebhookEndpoint
from models.webhooks import DeliveryStatus, WebhookEvent

WebhookUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2048, allowed_schemes=["http", "https"])]
EventName = WebhookEvent | Literal["*"]


def _every_event() -> list[EventName]:
    return ["*"]


class WebhookCreate(BaseModel):
    """An endpoint to subscribe: an http(s) URL and the events it wants (``["*"]`` or omitted: all)."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    events: list[EventName] = Field(default_factory=_every_event, min_length=1, max_length=20)
    description: str | None = Field(default=None, max_length=500, pattern=NO_NUL)


class WebhookOut(BaseModel):
    """A subscribed endpoint (its secret is shown only when it is created)."""

    id: str
    url: str
    events: list[str]
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> WebhookOut:
        """Build from a row."""
        return cls(
            id=row.id, url=row.url, events=row.events, description=row.description, created_at=row.created_at
        )


class WebhookCreated(WebhookOut):
    """A new endpoint with its signing secret (``whsec_...``): store it now, it is not shown again."""

    secret: str

    @classmethod
    def with_secret(cls, row: WebhookEndpoint) -> WebhookCreated:
        """Build from a fresh row, secret included."""
        return cls(**WebhookOut.of(row).model_dump(), secret=row.secret)


class WebhookPage(BaseModel):
    """A page of endpoints."""

    items: list[WebhookOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    """One attempt: when, the receiver's status code, or why there was none."""

    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    """One event for one endpoint: its state, attempts so far, and when the next is due."""

    id: str
    endpoint_id: str
    event: str
    job_id: str | None
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    history: list[AttemptOut]
    payload: dict[str, Any]

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryOut:
        """Build from a row."""
        return cls(
            id=row.id,
            endpoint_id=row.endpoint_id,
            event=row.event,
            job_id=row.job_id,
            status=DeliveryStatus(row.status),
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
            history=[AttemptOut.model_validate(h) for h in row.history],
            payload=json.loads(row.body),
        )


class DeliveryPage(BaseModel):
    """A page of deliveries."""

    items: list[DeliveryOut]
    next_cursor: str | None
