"""Model routes: the model card and the ``.keras`` file."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api import services
from api.deps import QueueDep, SessionDep, SettingsDep, TenantDep
from api.schemas import ModelOut, PredictRequest, PredictResponse
from api.services import model_path
from models.errors import NotFound
from models.store import ModelStore

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("/{model_id}", response_model=ModelOut)
def get_model(tenant_id: TenantDep, session: SessionDep, model_id: str) -> ModelOut:
    """A model's card: task, input schema, metrics, checksum."""
    return ModelOut.of(ModelStore(session).get(tenant_id, model_id))


@router.get(
    "/{model_id}/download",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The model file",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
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
