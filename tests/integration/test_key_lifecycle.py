"""API keys from the command line: create, list with last use, rotate, revoke (embedded default)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from models.settings import Settings


def _keys(data_dir: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")} | {
        "TUNEFORGE_DATA_DIR": str(data_dir)
    }
    subprocess.run([sys.executable, "-m", "api.cli", "migrate"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "keys", *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def test_keys_can_be_listed_rotated_and_revoked(tmp_path: Path) -> None:
    key = _keys(tmp_path, "create", "--tenant", "acme", "--name", "ci")
    [line] = _keys(tmp_path, "list", "--tenant", "acme").splitlines()
    key_id = line.split()[0]
    assert key[:12] in line and "live" in line and "last used never" in line and key not in line

    settings = Settings(data_dir=tmp_path, api_key_cache_s=0)  # every request asks the database
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:

        def status(plaintext: str) -> int:
            return client.get("/v1/jobs", headers={"Authorization": f"Bearer {plaintext}"}).status_code

        assert status(key) == 200
        assert "last used never" not in _keys(tmp_path, "list", "--tenant", "acme")

        rotated = _keys(tmp_path, "rotate", key_id)
        assert rotated.startswith("tfg_") and rotated != key
        assert (status(key), status(rotated)) == (401, 200)

        new_id = next(
            line.split()[0]
            for line in _keys(tmp_path, "list", "--tenant", "acme").splitlines()
            if "live" in line
        )
        _keys(tmp_path, "revoke", new_id)
        assert status(rotated) == 401
    listing = _keys(tmp_path, "list", "--tenant", "acme").splitlines()
    assert len(listing) == 2 and all("revoked" in line for line in listing)
