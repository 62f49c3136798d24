"""Job routes: submit, get (ETag, Retry-After), list, cancel, events, trials, metrics."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from api import services
from api.csv_export import leaderboard_csv
from api.deps import PageLimit, QueueDep, SessionDep, SettingsDep, TenantDep
from api.job_snapshots import JobSnapshots, Snapshot
from api.schemas import EpochOut, EventOut, JobCreate, JobOut, JobPage, TrialOut
from models.status import TERMINAL, JobKind, JobStatus
from models.store import JobStore, TrialStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
POLL_AFTER_S = {JobStatus.QUEUED: 1, JobStatus.RUNNING: 2, JobStatus.CANCELLING: 1}


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _poll_headers(job: JobOut, body: bytes) -> dict[str, str]:
    """ETag of the serialized job, and when to poll again while it is live."""
    headers = {"ETag": _etag(body)}
    if job.status not in TERMINAL:
        headers["Retry-After"] = str(POLL_AFTER_S[job.status])
    return headers


@router.post("", status_code=202, response_model=JobOut)
def submit_job(
    tenant_id: TenantDep,
    session: SessionDep,
    queue: QueueDep,
    settings: SettingsDep,
    body: JobCreate,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobOut:
    """Validate and queue a job; 202 with Location. Replays of an Idempotency-Key return it."""
    job, _created = services.submit_job(
        session, queue, settings, tenant_id=tenant_id, body=body, idempotency_key=idempotency_key
    )
    out = JobOut.of(job)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    response.headers.update(_poll_headers(out, out.model_dump_json().encode()))
    return out


@router.get("", response_model=JobPage)
def list_jobs(
    tenant_id: TenantDep,
    session: SessionDep,
    settings: SettingsDep,
    status: JobStatus | None = None,
    kind: JobKind | None = None,
    limit: PageLimit = 50,
    cursor: str | None = None,
) -> JobPage:
    """The caller's jobs, newest first, filtered by status and kind."""
    page = JobStore(session).page(
        tenant_id, status=status, kind=kind, cursor=cursor, limit=min(limit, settings.page_size_max)
    )
    return JobPage(items=[JobOut.of(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses={304: {"description": "Not modified"}})
async def get_job(tenant_id: TenantDep, job_id: str, request: Request) -> Response:
    """One job; honours If-None-Match and says when to poll again."""
    # The route pollers hammer: async, served from a short-lived snapshot, read in the threadpool
    # only when the snapshot is older than TUNEFORGE_JOB_SNAPSHOT_S or the request says
    # "Cache-Control: no-cache".
    snapshots: JobSnapshots = request.app.state.job_snapshots
    sessions: sessionmaker[Session] = request.app.state.read_sessions
    if "no-cache" in request.headers.get("cache-control", ""):
        snapshots.forget(tenant_id, job_id)  # the caller acts on what it reads: from the database
    snapshot = await snapshots.get(
        tenant_id, job_id, lambda: run_in_threadpool(_read_snapshot, sessions, tenant_id, job_id)
    )
    if request.headers.get("if-none-match") == snapshot.headers["ETag"]:
        return Response(status_code=304, headers=snapshot.headers)
    return Response(snapshot.body, media_type="application/json", headers=snapshot.headers)


def _read_snapshot(sessions: sessionmaker[Session], tenant_id: str, job_id: str) -> Snapshot:
    """The job's body, serialized once, with its poll headers."""
    with sessions() as session:
        out = JobOut.of(JobStore(session).get(tenant_id, job_id))
    body = out.model_dump_json().encode()
    return Snapshot(body, _poll_headers(out, body))


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut)
def cancel_job(tenant_id: TenantDep, session: SessionDep, job_id: str, request: Request) -> JobOut:
    """Cancel: queued jobs stop now, running ones within seconds."""
    out = JobOut.of(services.cancel_job(session, tenant_id=tenant_id, job_id=job_id))
    snapshots: JobSnapshots = request.app.state.job_snapshots
    snapshots.forget(tenant_id, job_id)  # the canceller's next poll sees "cancelling"
    return out


@router.get("/{job_id}/events", response_model=list[EventOut], response_model_by_alias=True)
def job_events(tenant_id: TenantDep, session: SessionDep, job_id: str) -> list[EventOut]:
    """The job's status history."""
    return [EventOut.of(e) for e in JobStore(session).events(job_id, tenant_id=tenant_id)]


@router.get(
    "/{job_id}/trials",
    response_model=list[TrialOut],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def job_trials(tenant_id: TenantDep, session: SessionDep, job_id: str, request: Request) -> Any:
    """The job's trials (the leaderboard); as CSV, spreadsheet-safe, with ``Accept: text/csv``."""
    trials = [TrialOut.of(t) for t in TrialStore(session).for_job(job_id, tenant_id=tenant_id)]
    if "text/csv" in request.headers.get("accept", ""):
        disposition = f'attachment; filename="{job_id}-trials.csv"'
        return Response(
            leaderboard_csv(trials),
            media_type="text/csv",
            headers={"Content-Disposition": disposition},
        )
    return trials


@router.get("/{job_id}/metrics", response_model=list[EpochOut])
def job_metrics(
    tenant_id: TenantDep,
    session: SessionDep,
    job_id: str,
    trial: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> list[EpochOut]:
    """Per-epoch metrics of the job's trials (or of one trial)."""
    epochs = TrialStore(session).epochs(job_id, tenant_id=tenant_id, trial_number=trial)
    return [EpochOut.of(n, row) for n, row in epochs]
