"""Webhook routes: subscribe, list, get, delete an endpoint; its delivery log; redeliver."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import webhook_services as services
from api.deps import PageLimit, SessionDep, SettingsDep, TenantDep
from api.webhook_schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookPage,
)
from models.webhook_store import WebhookStore

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", status_code=201, response_model=WebhookCreated)
def create_webhook(
    tenant_id: TenantDep, session: SessionDep, settings: SettingsDep, body: WebhookCreate, response: Response
) -> WebhookCreated:
    """Subscribe a URL to events; the answer holds the signing secret, shown this once."""
    endpoint = services.create_endpoint(session, settings, tenant_id=tenant_id, body=body)
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return WebhookCreated.with_secret(endpoint)


@router.get("", response_model=WebhookPage)
def list_webhooks(
    tenant_id: TenantDep,
    session: SessionDep,
    settings: SettingsDep,
    limit: PageLimit = 50,
    cursor: str | None = None,
) -> WebhookPage:
    """The caller's endpoints, newest first."""
    page = WebhookStore(session).page(tenant_id, limit=min(limit, settings.page_size_max), cursor=cursor)
    return WebhookPage(items=[WebhookOut.of(e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(tenant_id: TenantDep, session: SessionDep, webhook_id: str) -> WebhookOut:
    """One endpoint (without its secret)."""
    return WebhookOut.of(WebhookStore(session).get(tenant_id, webhook_id))


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(tenant_id: TenantDep, session: SessionDep, webhook_id: str) -> Response:
    """Unsubscribe; pending deliveries to it are dropped."""
    services.delete_endpoint(session, tenant_id=tenant_id, endpoint_id=webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage)
def list_deliveries(
    tenant_id: TenantDep,
    session: SessionDep,
    settings: SettingsDep,
    webhook_id: str,
    limit: PageLimit = 50,
    cursor: str | None = None,
) -> DeliveryPage:
    """The endpoint's delivery log, newest first: status, attempts, last answer, next attempt."""
    page = WebhookStore(session).deliveries(
        tenant_id, webhook_id, limit=min(limit, settings.page_size_max), cursor=cursor
    )
    return DeliveryPage(items=[DeliveryOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202, response_model=DeliveryOut)
def redeliver(tenant_id: TenantDep, session: SessionDep, webhook_id: str, delivery_id: str) -> DeliveryOut:
    """Send a delivery again now (same webhook-id and body); the answer is the delivery, due now."""
    delivery = services.redeliver(
        session, tenant_id=tenant_id, endpoint_id=webhook_id, delivery_id=delivery_id
    )
    return DeliveryOut.of(delivery)
