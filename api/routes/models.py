"""Model routes: the model card and the ``.keras`` file."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api import services
from api.deps import QueueDep, SessionDep, SettingsDep, TenantDep
from api.schemas import ExportOut, ExportRequest, ModelOut, PredictRequest, PredictResponse
from api.services import model_path
from models.errors import NotFound
from models.store import ModelStore
from worker.protocol import export_suffix

router = APIRouter(prefix="/v1/models", tags=["models"])
ExportFormat = Literal["saved_model", "onnx"]


def _a_file(description: str, *media_types: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI's 200 of a route that answers a file (of one of ``media_types``)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {200: {"description": description, "content": dict.fromkeys(media_types, binary)}}


@router.get("/{model_id}", response_model=ModelOut)
def get_model(tenant_id: TenantDep, session: SessionDep, model_id: str) -> ModelOut:
    """A model's card: task, input schema, metrics, checksum."""
    return ModelOut.of(ModelStore(session).get(tenant_id, model_id))


@router.get(
    "/{model_id}/download",
    response_class=FileResponse,
    responses=_a_file("The model file", "application/octet-stream"),
)
def download_model(
    tenant_id: TenantDep, session: SessionDep, settings: SettingsDep, model_id: str
) -> FileResponse:
    """The ``.keras`` file, preprocessing inside; load with ``keras.saving.load_model``."""
    model = ModelStore(session).get(tenant_id, model_id)
    path = model_path(settings, model.storage_key)
    if not path.is_file():
        raise NotFound("model_file_missing", f"the file of model '{model_id}' is gone")
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{model_id}.keras",
        headers={"X-Checksum-SHA256": model.sha256},
    )


@router.post("/{model_id}/predict", response_model=PredictResponse)
def predict(
    tenant_id: TenantDep, session: SessionDep, queue: QueueDep, model_id: str, body: PredictRequest
) -> PredictResponse:
    """Predict raw rows (strings, blanks, numbers) with the model's own preprocessing."""
    rows = [dict(row) for row in body.rows]
    return PredictResponse(
        predictions=services.predict(session, queue, tenant_id=tenant_id, model_id=model_id, rows=rows)
    )


@router.post("/{model_id}/export", response_model=ExportOut)
def export_model(
    tenant_id: TenantDep, session: SessionDep, queue: QueueDep, model_id: str, body: ExportRequest
) -> ExportOut:
    """Make the model in another format (a worker writes it and checks it on validation rows)."""
    found = services.export_model(session, queue, tenant_id=tenant_id, model_id=model_id, fmt=body.format)
    return ExportOut(
        format=body.format,
        bytes=found["bytes"],
        sha256=found["sha256"],
        parity=found["parity"],
        download=f"/v1/models/{model_id}/exports/{body.format}",
    )


@router.get(
    "/{model_id}/exports/{format}",
    response_class=FileResponse,
    responses=_a_file(
        "The exported model: saved_model, a .tar.gz of its folder; onnx, one .onnx file",
        "application/gzip",
        "application/octet-stream",
    ),
)
def download_export(
    tenant_id: TenantDep, session: SessionDep, settings: SettingsDep, model_id: str, format: ExportFormat
) -> FileResponse:
    """A format made by POST .../export (``saved_model``: ``tf.saved_model.load`` the extracted folder;
    ``onnx``: an ``onnxruntime.InferenceSession`` of the file)."""
    model = ModelStore(session).get(tenant_id, model_id)
    made = (model.exports or {}).get(format)
    if made is None:
        raise NotFound(
            "export_not_found", f"model '{model_id}' has no {format} export: POST .../export first"
        )
    path = model_path(settings, made["storage_key"])
    if not path.is_file():
        raise NotFound("model_file_missing", f"the {format} export of model '{model_id}' is gone")
    return FileResponse(
        path,
        media_type="application/octet-stream" if format == "onnx" else "application/gzip",
        filename=f"{model_id}{export_suffix(format)}",
        headers={"X-Checksum-SHA256": made["sha256"]},
    )
