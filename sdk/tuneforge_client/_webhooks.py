"""``client.webhooks``: subscribe endpoints to job events and read their delivery log."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from . import _calls as calls
from .types import Delivery, Webhook, WebhookCreated, WebhookEvent

if TYPE_CHECKING:
    from ._client import AsyncClient, Client


class Webhooks:
    """``/v1/webhooks``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(
        self, url: str, *, events: builtins.list[WebhookEvent] | None = None, description: str | None = None
    ) -> WebhookCreated:
        """Subscribe ``url`` to ``events`` (all when omitted); keep the returned ``secret`` to verify."""
        return self._c.call(calls.create_webhook(url, list(events or []), description))  # type: ignore[no-any-return]

    def list(self, *, limit: int = 50) -> Iterator[Webhook]:
        """All endpoints, newest first (pages fetched lazily)."""
        return (Webhook.model_validate(item) for item in self._c.pages("/v1/webhooks", {"limit": limit}))

    def get(self, webhook_id: str) -> Webhook:
        """One endpoint (without its secret)."""
        return self._c.call(calls.get_webhook(webhook_id))  # type: ignore[no-any-return]

    def delete(self, webhook_id: str) -> None:
        """Unsubscribe; pending deliveries to it are dropped."""
        self._c.call(calls.delete_webhook(webhook_id))

    def deliveries(self, webhook_id: str, *, limit: int = 50) -> Iterator[Delivery]:
        """The endpoint's delivery log, newest first: status, attempts, last answer, next attempt."""
        path = f"/v1/webhooks/{webhook_id}/deliveries"
        return (Delivery.model_validate(item) for item in self._c.pages(path, {"limit": limit}))

    def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again now, with the same webhook-id and body."""
        return self._c.call(calls.redeliver(webhook_id, delivery_id))  # type: ignore[no-any-return]


class AsyncWebhooks:
    """``/v1/webhooks``, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self, url: str, *, events: builtins.list[WebhookEvent] | None = None, description: str | None = None
    ) -> WebhookCreated:
        """Subscribe ``url`` to ``events`` (all when omitted)."""
        return await self._c.call(calls.create_webhook(url, list(events or []), description))  # type: ignore[no-any-return]

    async def list(self, *, limit: int = 50) -> AsyncIterator[Webhook]:
        """All endpoints, newest first."""
        async for item in self._c.pages("/v1/webhooks", {"limit": limit}):
            yield Webhook.model_validate(item)

    async def get(self, webhook_id: str) -> Webhook:
        """One endpoint."""
        return await self._c.call(calls.get_webhook(webhook_id))  # type: ignore[no-any-return]

    async def delete(self, webhook_id: str) -> None:
        """Unsubscribe."""
        await self._c.call(calls.delete_webhook(webhook_id))

    async def deliveries(self, webhook_id: str, *, limit: int = 50) -> AsyncIterator[Delivery]:
        """The endpoint's delivery log, newest first."""
        async for item in self._c.pages(f"/v1/webhooks/{webhook_id}/deliveries", {"limit": limit}):
            yield Delivery.model_validate(item)

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again now."""
        return await self._c.call(calls.redeliver(webhook_id, delivery_id))  # type: ignore[no-any-return]
