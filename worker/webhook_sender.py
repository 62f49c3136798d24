"""One webhook attempt: resolve the host, refuse private addresses, sign (Standard Webhooks), POST."""

from __future__ import annotations

import socket
import time

import httpx
from standardwebhooks import Webhook

from models.base import utcnow
from models.webhook_store import DueDelivery
from models.webhooks import Attempt, refusal

USER_AGENT = "tuneforge-webhooks/0.1"
MAX_ERROR_CHARS = 300  # of a receiver's error body kept in the delivery log


class Refused(Exception):
    """The endpoint's host resolves to an address webhooks may not reach."""


def pinned_address(host: str, port: int, *, allow_private: bool) -> str:
    """An address of ``host`` to connect to, checked: every address it resolves to must be public (so a
    name that also points inside cannot be used), unless private addresses are allowed."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why:
                raise Refused(f"{host} resolves to {why}")
    return addresses[0]


def signed_headers(due: DueDelivery) -> dict[str, str]:
    """The Standard Webhooks headers for this attempt: a fresh timestamp, the delivery's fixed id."""
    now = utcnow()
    return {
        "webhook-id": due.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(due.secret).sign(due.id, now, due.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def attempt(due: DueDelivery, *, timeout_s: float, allow_private: bool) -> Attempt:
    """Send one attempt and say what came of it; never raises for the receiver's or network's faults."""
    started = time.monotonic()

    def outcome(status_code: int | None, error: str | None) -> Attempt:
        return Attempt(status_code, error, round((time.monotonic() - started) * 1000))

    url = httpx.URL(due.url)
    try:
        address = pinned_address(
            url.host, url.port or (443 if url.scheme == "https" else 80), allow_private=allow_private
        )
    except Refused as exc:
        return outcome(None, f"refused: {exc} (set TUNEFORGE_WEBHOOK_ALLOW_PRIVATE=true to allow)")
    except (OSError, UnicodeError) as exc:
        return outcome(None, f"could not resolve {url.host}: {exc}")
    # Connect to the address just checked (no second lookup a rebinding DNS could answer differently);
    # Host and TLS SNI keep the name, so virtual hosts and certificates work as usual.
    headers = signed_headers(due) | {"host": url.netloc.decode()}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    try:
        # No proxies from the environment (a proxy would reach what the check refused); no redirects
        # (a 3xx is not a delivery, and its target was never checked).
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST",
                url.copy_with(host=address),
                content=due.body,
                headers=headers,
                extensions=extensions,
            ) as response,
        ):
            if response.is_success:
                return outcome(response.status_code, None)
            text = _start_of(response)
            return outcome(response.status_code, f"HTTP {response.status_code}: {text}".strip())
    except httpx.TimeoutException:
        return outcome(None, f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return outcome(None, f"{type(exc).__name__}: {exc}")


def _start_of(response: httpx.Response) -> str:
    """The first characters of an error answer (a receiver may send megabytes)."""
    chunk = b""
    for part in response.iter_bytes():
        chunk += part
        if len(chunk) >= MAX_ERROR_CHARS:
            break
    return chunk[:MAX_ERROR_CHARS].decode(errors="replace")
