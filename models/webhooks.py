"""Webhook domain rules: event names, secrets, payloads, the retry schedule, which addresses may be called."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from models.base import json_safe
from models.errors import FieldError, InvalidInput

ALL_EVENTS = "*"
SECRET_PREFIX = "whsec_"  # noqa: S105 (the form of a secret, not one)
# Names a host may have that always mean this machine, whatever DNS says.
LOCAL_NAMES = ("localhost", "localhost.localdomain")


class WebhookEvent(StrEnum):
    """What an endpoint can subscribe to: a job's status changes and a trial's completion."""

    JOB_QUEUED = "job.queued"
    JOB_RUNNING = "job.running"
    JOB_CANCELLING = "job.cancelling"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    TRIAL_COMPLETED = "trial.completed"


class DeliveryStatus(StrEnum):
    """A delivery waits for its next attempt, was answered with a 2xx, or ran out of attempts."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Attempt:
    """What one attempt got: the receiver's status code, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        """A 2xx answer: delivered."""
        return self.status_code is not None and 200 <= self.status_code < 300


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def subscribed(events: list[str], event: str) -> bool:
    """Whether an endpoint's subscription list includes ``event``."""
    return ALL_EVENTS in events or event in events


def body(event: str, at: datetime, data: dict[str, Any]) -> str:
    """A delivery's JSON body as Standard Webhooks suggests: ``{type, timestamp, data}``."""
    return json.dumps({"type": event, "timestamp": at.isoformat(), "data": json_safe(data)})


def next_attempt(now: datetime, attempts: int, schedule: list[float]) -> datetime | None:
    """When to try again after ``attempts`` failed attempts; None when the schedule is spent."""
    if attempts - 1 >= len(schedule):
        return None
    return now + timedelta(seconds=schedule[attempts - 1])


def refusal(address: str) -> str | None:
    """Why an IP address may not be called (loopback, private, link-local, ...), or None if it is public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            article = "an" if kind[0] in "aeiou" else "a"
            return f"{ip} is {article} {kind.replace('_', '-')} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def private_host(host: str) -> str | None:
    """Why a URL's host is private when that is known without DNS (a literal IP, localhost), or None."""
    name = host.strip("[]").lower().rstrip(".")
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return f"{name} is this machine"
    try:
        return refusal(name)
    except ValueError:
        return None  # a name: checked on its resolved addresses at each delivery


def check_target(host: str, *, allow_private: bool) -> None:
    """Refuse (422) an endpoint whose host is known to be private, unless private addresses are allowed."""
    why = None if allow_private else private_host(host)
    if why:
        message = f"{why}; webhooks go to public addresses unless TUNEFORGE_WEBHOOK_ALLOW_PRIVATE=true"
        raise InvalidInput("private_address", message, [FieldError(("body", "url"), message)])
