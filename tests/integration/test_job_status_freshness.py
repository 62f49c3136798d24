"""Job status snapshots: pollers may see a change up to TUNEFORGE_JOB_SNAPSHOT_S late; a request with
``Cache-Control: no-cache`` and the canceller's own next poll never do."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi.testclient import TestClient

from api.embedded import create_key
from api.main import create_app
from models.db import make_engine, make_sessionmaker
from models.settings import Settings
from models.status import JobStatus
from models.store import JobStore
from tests.support import submit, upload


def test_no_cache_reads_through_a_snapshot(settings: Settings, csvs: dict[str, Path]) -> None:
    lasting = settings.model_copy(
        update={"job_snapshot_s": 60.0, "queue": f"{settings.queue}-fresh-{secrets.token_hex(3)}"}
    )
    with TestClient(create_app(lasting), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {create_key(settings, f'tenant-{secrets.token_hex(4)}')}"
        job = submit(client, upload(client, csvs["iris"])["id"], "target")  # nobody consumes its queue
        url = f"/v1/jobs/{job['id']}"
        assert client.get(url).json()["status"] == "queued"  # now a snapshot
        engine = make_engine(settings.resolved_database_url())
        with make_sessionmaker(engine)() as session:  # another process fails it behind this API's back
            JobStore(session).transition(job["id"], JobStatus.FAILED, reason="changed elsewhere")
            session.commit()
        engine.dispose()
        assert client.get(url).json()["status"] == "queued"  # the snapshot, at most 60 s old here
        assert client.get(url, headers={"Cache-Control": "no-cache"}).json()["status"] == "failed"
        assert client.get(url).json()["status"] == "failed"  # and the snapshot was refreshed
