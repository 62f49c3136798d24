"""What both clients share: configuration, retry policy and the description of every call."""

from __future__ import annotations

import email.utils
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ._errors import TuneforgeError

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 8.0


def resolve_api_key(api_key: str | None) -> str:
    """The key from the argument, TUNEFORGE_API_KEY, or the embedded server's key file."""
    if api_key:
        return api_key
    if os.environ.get("TUNEFORGE_API_KEY"):
        return os.environ["TUNEFORGE_API_KEY"]
    key_file = Path(os.environ.get("TUNEFORGE_DATA_DIR", "tuneforge-data")) / "api_key"
    if key_file.is_file() and key_file.read_text().strip():
        return key_file.read_text().strip()
    raise TuneforgeError(
        "no API key: pass api_key=, set TUNEFORGE_API_KEY, or run next to an embedded server's "
        f"{key_file} (set TUNEFORGE_DATA_DIR)"
    )


def resolve_base_url(base_url: str | None) -> str:
    """The server from the argument, TUNEFORGE_BASE_URL, or the embedded default."""
    return (base_url or os.environ.get("TUNEFORGE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, float(parsed.timestamp()) - time.time()) if parsed else None


def backoff(attempt: int, asked: float | None) -> float:
    """Exponential backoff with jitter, unless the server said how long to wait."""
    if asked is not None:
        return min(asked, 60.0)
    return min(MAX_BACKOFF_S, 0.5 * 2.0**attempt) * (0.5 + random.random() / 2)


@dataclass
class Call:
    """One HTTP call: what to send, whether it may be retried, and how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any] = lambda response: response.json()
    params: dict[str, Any] | None = None
    json: Any = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_unsent_only: bool = False  # a POST without an Idempotency-Key: retry only if never sent
    timeout: float | None = None  # seconds, where the call is known to outlast the client's default

    def may_retry(self, error: Exception | None) -> bool:
        """Whether this call can be sent again after ``error`` (None: a retryable status)."""
        if not self.retry_unsent_only:
            return True
        return isinstance(error, httpx.ConnectError)

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for httpx."""
        kwargs = {
            "params": self.params,
            "json": self.json,
            "files": self.files,
            "data": self.data,
            "headers": self.headers,
            "timeout": self.timeout,
        }
        return {k: v for k, v in kwargs.items() if v is not None}
