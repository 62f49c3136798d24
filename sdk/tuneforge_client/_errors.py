"""Exceptions: one class per kind of problem, built from the server's problem+json answers."""

from __future__ import annotations

from typing import Any

import httpx


class TuneforgeError(Exception):
    """Base of every error this SDK raises."""


class APIConnectionError(TuneforgeError):
    """The server could not be reached (after retries)."""


class APITimeoutError(APIConnectionError):
    """The request timed out (after retries)."""


class APIStatusError(TuneforgeError):
    """The server answered with an error status; ``code`` and ``detail`` come from its problem+json."""

    def __init__(self, response: httpx.Response, body: dict[str, Any]) -> None:
        self.response = response
        self.status_code = response.status_code
        self.code: str = body.get("code", "unknown")
        self.detail: str = body.get("detail", response.text[:500])
        self.errors: list[dict[str, Any]] = body.get("errors") or []
        self.body = body
        super().__init__(f"{self.status_code} {self.code}: {self.detail}")


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401: missing, unknown or revoked API key."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404: the object does not exist (or belongs to another tenant)."""


class ConflictError(APIStatusError):
    """409: the object's state forbids the operation."""


class PayloadTooLargeError(APIStatusError):
    """413: the upload is over the server's limit."""


class ValidationError(APIStatusError):
    """422: the request was understood but refused; ``errors`` locates each problem."""


class RateLimitError(APIStatusError):
    """429."""


class InternalServerError(APIStatusError):
    """5xx."""


class JobFailed(TuneforgeError):
    """A waited-for job ended ``failed`` (or ``cancelled``); ``job`` holds it, with its error."""

    def __init__(self, job: Any) -> None:
        self.job = job
        error = job.error or {}
        super().__init__(
            f"job {job.id} {job.status}: {error.get('code', '')} {error.get('message', '')}".strip()
        )


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
}


def error_for(response: httpx.Response) -> APIStatusError:
    """The exception matching an error response."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    kind = STATUS_ERRORS.get(response.status_code)
    if kind is None:
        kind = InternalServerError if response.status_code >= 500 else APIStatusError
    return kind(response, body)
