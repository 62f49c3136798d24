"""Webhook signatures: the Standard Webhooks reference vector, and the SDK's verify() on what we send."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from models.webhook_store import DueDelivery
from models.webhooks import new_secret
from tuneforge_client import WebhookVerificationError, verify
from worker import webhook_sender

# The specification's published test vector (standard-webhooks/standard-webhooks, spec and libraries).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _due(secret: str, body: str = VECTOR_BODY, delivery_id: str = VECTOR_ID) -> DueDelivery:
    return DueDelivery(delivery_id, "https://hooks.example.com/", secret, body, "job.succeeded", "claim")


def test_the_headers_we_send_match_the_reference_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook_sender, "utcnow", lambda: datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC))
    headers = webhook_sender.signed_headers(_due(VECTOR_SECRET))
    assert headers["webhook-id"] == VECTOR_ID
    assert headers["webhook-timestamp"] == str(VECTOR_TIMESTAMP)
    assert headers["webhook-signature"] == VECTOR_SIGNATURE


def test_verify_accepts_a_fresh_delivery_and_returns_its_event() -> None:
    secret = new_secret()
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    event = {"type": "job.succeeded", "timestamp": "2026-11-29T00:00:00+00:00", "data": {"job_id": "j"}}
    body = json.dumps(event)
    headers = webhook_sender.signed_headers(_due(secret, body, "msg_1"))
    upper = {name.title(): value for name, value in headers.items()}  # as many servers spell them
    assert verify(body.encode(), upper, secret)["data"] == {"job_id": "j"}


def test_verify_refuses_tampering_other_secrets_stale_timestamps_and_garbage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = new_secret()
    body = '{"type": "job.failed", "data": {}}'
    headers = webhook_sender.signed_headers(_due(secret, body))
    cases = [
        (body.replace("failed", "succeeded"), headers, secret, "No matching signature"),
        (body, headers, new_secret(), "No matching signature"),
        (body, headers | {"webhook-id": "msg_other"}, secret, "No matching signature"),
        (body, {k: v for k, v in headers.items() if k != "webhook-signature"}, secret, "Missing"),
        (body, headers | {"webhook-signature": "garbage"}, secret, "not verified"),
        (body, headers | {"webhook-signature": "v1,!!!"}, secret, "not verified"),
    ]
    for payload, sent, key, message in cases:
        with pytest.raises(WebhookVerificationError, match=message):
            verify(payload, sent, key)
    # A replay: a delivery signed ten minutes ago is refused even with the right signature.
    then = datetime.now(UTC) - timedelta(minutes=10)
    monkeypatch.setattr(webhook_sender, "utcnow", lambda: then)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(body, webhook_sender.signed_headers(_due(secret, body)), secret)
