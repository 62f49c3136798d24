"""Dataset routes: upload, list, get, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from api import services
from api.deps import PageLimit, SessionDep, SettingsDep, TenantDep
from api.input_limits import NO_NUL
from api.schemas import DatasetOut, DatasetPage
from models.errors import InvalidInput, PayloadTooLarge
from models.store import DatasetStore
from models.tabular import HeaderMode

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
CHUNK = 1 << 20


async def _read_capped(upload: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("file_too_large", f"the file exceeds the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("", status_code=201, response_model=DatasetOut)
async def upload_dataset(
    tenant_id: TenantDep,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    file: Annotated[UploadFile, File(description="A CSV file, UTF-8")],
    name: Annotated[str | None, Form(max_length=255, pattern=NO_NUL)] = None,
    header: Annotated[HeaderMode, Form()] = "auto",
) -> DatasetOut:
    """Upload a CSV; it is validated and profiled before anything is stored."""
    name = name or file.filename or "dataset.csv"
    if len(name) > 255 or "\x00" in name:
        raise InvalidInput(
            "invalid_name",
            "the dataset's name (the file name unless 'name' is sent) must be at most 255 characters"
            " and hold no NUL character",
        )
    raw = await _read_capped(file, settings.max_upload_bytes)
    # Parsing and profiling a CSV is CPU work: in the threadpool, so /healthz and every other request
    # keep being served meanwhile.
    dataset = await run_in_threadpool(
        services.upload_dataset,
        session,
        settings,
        tenant_id=tenant_id,
        raw=raw,
        name=name,
        header=header,
    )
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return DatasetOut.of(dataset)


@router.get("", response_model=DatasetPage)
def list_datasets(
    tenant_id: TenantDep,
    session: SessionDep,
    settings: SettingsDep,
    limit: PageLimit = 50,
    cursor: str | None = None,
) -> DatasetPage:
    """The caller's datasets, newest first."""
    page = DatasetStore(session).page(tenant_id, limit=min(limit, settings.page_size_max), cursor=cursor)
    return DatasetPage(items=[DatasetOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(tenant_id: TenantDep, session: SessionDep, dataset_id: str) -> DatasetOut:
    """One dataset."""
    return DatasetOut.of(DatasetStore(session).get(tenant_id, dataset_id))


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(
    tenant_id: TenantDep, session: SessionDep, settings: SettingsDep, dataset_id: str
) -> Response:
    """Delete a dataset (409 while an active job uses it)."""
    services.delete_dataset(session, settings, tenant_id=tenant_id, dataset_id=dataset_id)
    return Response(status_code=204)
