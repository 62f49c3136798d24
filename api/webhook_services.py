"""Webhook use-cases: one transaction each."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.webhook_schemas import WebhookCreate
from models.quotas import check_webhook_endpoints, lock_tenant
from models.settings import Settings
from models.tables import WebhookDelivery, WebhookEndpoint
from models.webhook_store import WebhookStore
from models.webhooks import ALL_EVENTS, check_target, new_secret


def create_endpoint(
    session: Session, settings: Settings, *, tenant_id: str, body: WebhookCreate
) -> WebhookEndpoint:
    """Subscribe a URL (422 for a host known to be private unless allowed, 429 past the tenant's
    endpoint quota); its secret is made here."""
    check_target(body.url.host or "", allow_private=settings.webhook_allow_private)
    lock_tenant(session, tenant_id)  # two concurrent subscribes cannot both take the last slot
    check_webhook_endpoints(session, tenant_id, settings.max_webhooks_per_tenant)
    events = sorted(set(body.events))
    endpoint = WebhookStore(session).add(
        WebhookEndpoint(
            tenant_id=tenant_id,
            url=str(body.url),
            description=body.description,
            events=[ALL_EVENTS] if ALL_EVENTS in events else events,
            secret=new_secret(),
        )
    )
    session.commit()
    return endpoint


def delete_endpoint(session: Session, *, tenant_id: str, endpoint_id: str) -> None:
    """Unsubscribe: the endpoint and its pending deliveries go."""
    WebhookStore(session).delete(tenant_id, endpoint_id)
    session.commit()


def redeliver(session: Session, *, tenant_id: str, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again now, with its id and body unchanged."""
    delivery = WebhookStore(session).redeliver(tenant_id, endpoint_id, delivery_id)
    session.commit()
    return delivery
