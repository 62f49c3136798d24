"""FastAPI dependencies as ``Annotated`` aliases: sessions, the caller's tenant, the queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from api.key_cache import KeyCache
from api.queue import JobQueue
from api.rate_limits import RateLimits
from models.errors import Unauthenticated
from models.settings import Settings
from models.store import KeyStore

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer tfg_...`")


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request; services commit, anything left over is rolled back."""
    # A sync generator: FastAPI closes it on its own limiter, so a full threadpool cannot
    # deadlock against requests waiting for the connections those sessions hold.
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_queue(request: Request) -> JobQueue:
    """The app's producer."""
    queue: JobQueue = request.app.state.queue
    return queue


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
# A listing's page size (also capped by settings.page_size_max).
PageLimit = Annotated[int, Query(ge=1, le=200)]


async def get_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The tenant id of the caller's API key, or 401."""
    # No session dependency: a remembered key (every poll after the first) touches no database
    # and no threadpool thread.
    limits: RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else "unknown"
    if credentials is None or credentials.scheme.lower() != "bearer":
        await limits.check_failed_auth(address)
        raise Unauthenticated("missing_api_key", "send 'Authorization: Bearer <api key>'")
    keys: KeyCache = request.app.state.keys
    tenant_id = keys.remembered(credentials.credentials)
    if tenant_id is None:
        sessions: sessionmaker[Session] = request.app.state.sessions

        def lookup(plaintext: str) -> str | None:
            with sessions() as session:
                found = KeyStore(session).tenant_for(plaintext)
                session.commit()  # the lookup notes last_used_at
                return found

        tenant_id = await run_in_threadpool(keys.tenant_for, credentials.credentials, lookup)
    if tenant_id is None:
        await limits.check_failed_auth(address)
        raise Unauthenticated("invalid_api_key", "the API key is unknown or revoked")
    await limits.check_key(credentials.credentials, request.method)
    return tenant_id


TenantDep = Annotated[str, Depends(get_tenant)]
