"""The OpenAPI document: every status each operation answers, errors as problem+json, the bearer scheme."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable and names the problem.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array", "items": {}}, "msg": {"type": "string"}},
            },
        },
    },
}
DESCRIPTIONS = {
    400: "The body could not be parsed (not JSON, or not multipart form data)",
    401: "Missing, unknown or revoked API key",
    404: "No such object for this tenant",
    409: "Conflicts with the object's state (a finished job, a dataset in use, a reused Idempotency-Key)",
    413: "Body over its cap (uploads: TUNEFORGE_MAX_UPLOAD_BYTES; other bodies: TUNEFORGE_MAX_JSON_BYTES)",
    422: "Malformed or unacceptable input; `errors` locates each problem",
    429: "Rate limit or tenant quota reached; see Retry-After",
    503: "The database, broker or a prediction worker is unavailable; see Retry-After",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
# Operations that can conflict with an object's state (method, path).
CONFLICTS = {
    ("post", "/v1/jobs"),
    ("post", "/v1/jobs/{job_id}/cancel"),
    ("delete", "/v1/datasets/{dataset_id}"),
}


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses one operation can answer."""
    statuses = {413}  # any request may carry a body
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if operation.get("requestBody"):
        statuses.add(400)
    if operation.get("security"):
        statuses |= {401, 429, 503}
    if "{" in path:
        statuses.add(404)
    if (method, path) in CONFLICTS:
        statuses.add(409)
    if path == "/readyz":
        statuses.add(503)
    return statuses


# OpenAPI links: how a client (and a stateful fuzzer) follows an answer to the next call.
_DATASET = {"dataset_id": "$response.body#/id"}
_JOB = {"job_id": "$response.body#/id"}
_WEBHOOK = {"webhook_id": "$response.body#/id"}
LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("post", "/v1/datasets", "201"): {
        "GetDataset": {"operationId": "get_dataset_v1_datasets__dataset_id__get", "parameters": _DATASET},
        "DeleteDataset": {
            "operationId": "delete_dataset_v1_datasets__dataset_id__delete",
            "parameters": _DATASET,
        },
    },
    ("post", "/v1/jobs", "202"): {
        name: {"operationId": operation_id, "parameters": _JOB}
        for name, operation_id in (
            ("GetJob", "get_job_v1_jobs__job_id__get"),
            ("CancelJob", "cancel_job_v1_jobs__job_id__cancel_post"),
            ("JobEvents", "job_events_v1_jobs__job_id__events_get"),
            ("JobTrials", "job_trials_v1_jobs__job_id__trials_get"),
            ("JobMetrics", "job_metrics_v1_jobs__job_id__metrics_get"),
        )
    },
    ("post", "/v1/webhooks", "201"): {
        name: {"operationId": operation_id, "parameters": _WEBHOOK}
        for name, operation_id in (
            ("GetWebhook", "get_webhook_v1_webhooks__webhook_id__get"),
            ("WebhookDeliveries", "list_deliveries_v1_webhooks__webhook_id__deliveries_get"),
            ("DeleteWebhook", "delete_webhook_v1_webhooks__webhook_id__delete"),
        )
    },
}


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, "Not ready"),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


def install_openapi(app: FastAPI) -> None:
    """Replace FastAPI's generated document with one that lists every answer of every operation."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = PROBLEM_SCHEMA
        # FastAPI's own 422 body is application/json; ours is problem+json.
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                for status in sorted(error_statuses(method, path, operation)):
                    operation["responses"][str(status)] = _problem_response(status)
                for status, response in operation["responses"].items():
                    if (method, path, status) in LINKS:
                        response["links"] = LINKS[method, path, status]
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
