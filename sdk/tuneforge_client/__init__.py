"""tuneforge-client: the Python SDK and CLI of tuneforge (httpx + pydantic only)."""

from ._client import AsyncClient, Client
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    JobFailed,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    TuneforgeError,
    ValidationError,
)
from .types import Best, Dataset, Ensemble, EpochMetrics, Event, Export, Job, Model, StreamEvent, Trial

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Best",
    "Client",
    "ConflictError",
    "Dataset",
    "Ensemble",
    "EpochMetrics",
    "Event",
    "Export",
    "InternalServerError",
    "Job",
    "JobFailed",
    "Model",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "StreamEvent",
    "Trial",
    "TuneforgeError",
    "ValidationError",
]
