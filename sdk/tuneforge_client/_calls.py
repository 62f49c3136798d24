"""Every API call, described once; the sync and async clients only execute them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import IO, Any

from ._base import Call
from .types import Dataset, Delivery, EpochMetrics, Event, Export, Job, Model, Trial, Webhook, WebhookCreated

FileInput = str | Path | bytes | IO[bytes]


def _file(file: FileInput, name: str | None) -> tuple[str, bytes]:
    # Read once into memory, so a retried upload sends the same bytes.
    if isinstance(file, str | Path):
        return name or Path(file).name, Path(file).read_bytes()
    if isinstance(file, bytes):
        return name or "dataset.csv", file
    return name or str(getattr(file, "name", "dataset.csv")), file.read()


def upload_dataset(file: FileInput, *, name: str | None, header: str) -> Call:
    filename, content = _file(file, name)
    data = {"header": header} | ({"name": name} if name else {})
    return Call(
        "POST",
        "/v1/datasets",
        lambda r: Dataset.model_validate(r.json()),
        files={"file": (Path(filename).name, content, "text/csv")},
        data=data,
        retry_unsent_only=True,
    )


def list_page(path: str, params: dict[str, Any]) -> Call:
    return Call("GET", path, params={k: v for k, v in params.items() if v is not None})


def get_dataset(dataset_id: str) -> Call:
    return Call("GET", f"/v1/datasets/{dataset_id}", lambda r: Dataset.model_validate(r.json()))


def delete_dataset(dataset_id: str) -> Call:
    return Call("DELETE", f"/v1/datasets/{dataset_id}", lambda r: None)


def create_job(
    kind: str,
    dataset_id: str,
    target: str,
    spec: dict[str, Any] | None,
    name: str | None,
    idempotency_key: str | None,
) -> Call:
    body = {"kind": kind, "dataset_id": dataset_id, "target": target, "spec": spec or {}}
    if name is not None:
        body["name"] = name
    # Every create carries an Idempotency-Key, so a retried submit never makes two jobs.
    headers = {"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4()}"}
    return Call("POST", "/v1/jobs", lambda r: Job.model_validate(r.json()), json=body, headers=headers)


def get_job(job_id: str) -> Call:
    return Call(
        "GET", f"/v1/jobs/{job_id}", lambda r: (Job.model_validate(r.json()), r.headers.get("retry-after"))
    )


def cancel_job(job_id: str) -> Call:
    return Call("POST", f"/v1/jobs/{job_id}/cancel", lambda r: Job.model_validate(r.json()))


def job_events(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}/events", lambda r: [Event.model_validate(e) for e in r.json()])


def job_trials(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}/trials", lambda r: [Trial.model_validate(t) for t in r.json()])


def job_metrics(job_id: str, trial: int | None) -> Call:
    params = {"trial": trial} if trial is not None else None
    return Call(
        "GET",
        f"/v1/jobs/{job_id}/metrics",
        lambda r: [EpochMetrics.model_validate(m) for m in r.json()],
        params=params,
    )


def get_model(model_id: str) -> Call:
    return Call("GET", f"/v1/models/{model_id}", lambda r: Model.model_validate(r.json()))


def download_model(model_id: str) -> Call:
    return Call("GET", f"/v1/models/{model_id}/download", lambda r: r.content)


def export_model(model_id: str, fmt: str) -> Call:
    # A worker writes and checks the export: up to the server's EXPORT_TIMEOUT_S (120 s), plus slack.
    return Call(
        "POST",
        f"/v1/models/{model_id}/export",
        lambda r: Export.model_validate(r.json()),
        json={"format": fmt},
        timeout=150.0,
    )


def download_export(model_id: str, fmt: str) -> Call:
    return Call("GET", f"/v1/models/{model_id}/exports/{fmt}", lambda r: r.content)


def predict(model_id: str, rows: list[dict[str, Any]]) -> Call:
    return Call(
        "POST", f"/v1/models/{model_id}/predict", lambda r: r.json()["predictions"], json={"rows": rows}
    )


def create_webhook(url: str, events: list[str] | None, description: str | None) -> Call:
    body: dict[str, Any] = {"url": url, "events": events or ["*"]}
    if description is not None:
        body["description"] = description
    return Call(
        "POST",
        "/v1/webhooks",
        lambda r: WebhookCreated.model_validate(r.json()),
        json=body,
        retry_unsent_only=True,  # a retried create would make a second endpoint with another secret
    )


def get_webhook(webhook_id: str) -> Call:
    return Call("GET", f"/v1/webhooks/{webhook_id}", lambda r: Webhook.model_validate(r.json()))


def delete_webhook(webhook_id: str) -> Call:
    return Call("DELETE", f"/v1/webhooks/{webhook_id}", lambda r: None)


def redeliver(webhook_id: str, delivery_id: str) -> Call:
    return Call(
        "POST",
        f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
        lambda r: Delivery.model_validate(r.json()),
    )
