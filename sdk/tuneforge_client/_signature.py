"""``verify()``: check a webhook delivery's Standard Webhooks signature and freshness, return its event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import standardwebhooks

from ._errors import TuneforgeError


class WebhookVerificationError(TuneforgeError):
    """A delivery whose signature does not match, whose headers are missing, or whose timestamp is
    more than five minutes from now (a replay): do not act on it."""


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The delivered event (``{type, timestamp, data}``) once its signature and timestamp check out.

    ``payload`` is the raw request body (before any JSON parsing), ``headers`` the request's headers
    (any mapping; names are matched case-insensitively), ``secret`` the endpoint's ``whsec_...``.
    Raises ``WebhookVerificationError`` otherwise.
    """
    try:
        event = standardwebhooks.Webhook(secret).verify(payload, dict(headers.items()))
    except (
        standardwebhooks.WebhookVerificationError,
        standardwebhooks.webhooks.EmptyWebhookSecretError,
        ValueError,
    ) as exc:
        # ValueError: a malformed signature header, secret or body (not base64, no "v1,", not JSON).
        raise WebhookVerificationError(f"webhook not verified: {exc}") from exc
    if not isinstance(event, dict):
        raise WebhookVerificationError("webhook not verified: the body is not a JSON object")
    return event
