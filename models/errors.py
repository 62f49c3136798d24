"""Domain errors: every expected failure carries a stable machine code and an HTTP-free kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field, located like pydantic locates it."""

    loc: tuple[str | int, ...]
    msg: str


@dataclass
class DomainError(Exception):
    """Base of every expected failure; ``code`` is stable, ``detail`` is for people."""

    code: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    title: ClassVar[str] = "Error"

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class InvalidInput(DomainError):
    """The request is well formed but its content cannot be accepted (HTTP 422)."""

    title = "Unprocessable input"


class NotFound(DomainError):
    """The object does not exist or belongs to another tenant (HTTP 404)."""

    title = "Not found"


class Conflict(DomainError):
    """The object's current state forbids the operation (HTTP 409)."""

    title = "Conflict"


class Unauthenticated(DomainError):
    """No valid API key (HTTP 401)."""

    title = "Unauthenticated"


class PayloadTooLarge(DomainError):
    """An upload exceeds the configured size limit (HTTP 413)."""

    title = "Payload too large"


@dataclass
class RateLimited(DomainError):
    """Too many requests in the current window (HTTP 429); ``retry_after_s`` says when to come back."""

    retry_after_s: float = 1.0
    title: ClassVar[str] = "Too many requests"


class ServiceUnavailable(DomainError):
    """A dependency (a worker, the broker) did not answer in time (HTTP 503)."""

    title = "Service unavailable"
