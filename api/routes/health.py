"""Operations routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.errors import problem

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up; touches nothing (async, so a full threadpool cannot hold it up)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> dict[str, str] | Response:
    """Database and broker reachable, else 503 naming which is not."""
    failures = []
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        failures.append(f"database: {type(exc).__name__}")
    try:
        request.app.state.queue.ping()
    except Exception as exc:
        failures.append(f"broker: {type(exc).__name__}")
    if failures:
        return problem(503, "not_ready", "Not ready", "; ".join(failures))
    return {"status": "ready"}


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's registry."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
