"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.body_limit import MULTIPART_SLACK, BodyLimit
from api.dashboard import install_dashboard
from api.errors import install_error_handlers
from api.job_snapshots import JobSnapshots
from api.key_cache import KeyCache
from api.observability import install_metrics
from api.openapi import install_openapi
from api.queue import JobQueue
from api.rate_limits import RateLimits
from api.routes import datasets, health, jobs, models, streams, webhooks
from models.db import make_engine, make_sessionmaker
from models.logs import configure_logging
from models.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; the engine, sessions and producer live for the app's lifespan."""
    settings = settings or Settings()
    configure_logging(json_logs=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_dirs()
        engine = make_engine(settings.resolved_database_url(), pool_size=settings.db_pool_size)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessions = make_sessionmaker(engine)
        app.state.read_sessions = make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
        app.state.queue = JobQueue(settings)
        app.state.keys = KeyCache(settings.api_key_cache_s)
        app.state.job_snapshots = JobSnapshots(settings.job_snapshot_s)
        app.state.rate_limits = RateLimits(settings)
        # The ~150k objects of the loaded libraries are permanent: frozen, a full collection no
        # longer walks them (it took ~80 ms, every poller's p99).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            app.state.queue.close()
            engine.dispose()

    app = FastAPI(
        title="tuneforge",
        version="0.1.0",
        lifespan=lifespan,
        description="Training-as-a-service for Keras: train jobs and searches.",
    )
    # Outermost: an oversized body is refused before it is read or the caller is authenticated.
    app.add_middleware(
        BodyLimit,
        max_upload_bytes=settings.max_upload_bytes + MULTIPART_SLACK,
        max_other_bytes=settings.max_json_bytes,
    )
    app.state.registry = install_metrics(app)
    install_error_handlers(app)
    install_openapi(app)
    for router in (
        health.router,
        datasets.router,
        jobs.router,
        streams.router,
        models.router,
        webhooks.router,
    ):
        app.include_router(router)
    install_dashboard(app)
    return app
