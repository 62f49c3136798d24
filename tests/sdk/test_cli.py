"""The `tuneforge` CLI for people: tables, --json for scripts, exit code 1 with the problem's detail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
CSV = "a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))


def tuneforge(base_url: str, api_key: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, configured by environment variables."""
    env = os.environ | {"TUNEFORGE_BASE_URL": base_url, "TUNEFORGE_API_KEY": api_key}
    command = [sys.executable, "-m", "tuneforge_client.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_upload_submit_and_inspect_from_the_shell(base_url: str, api_key: str, tmp_path: Path) -> None:
    """datasets upload -> jobs submit --spec file -> jobs get/list, as tables and as JSON."""
    csv = tmp_path / "data.csv"
    csv.write_text(CSV)
    uploaded = tuneforge(base_url, api_key, "--json", "datasets", "upload", str(csv))
    assert uploaded.returncode == 0, uploaded.stderr
    dataset = json.loads(uploaded.stdout)
    assert dataset["rows"] == 40
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"training": {"epochs": 3}}))
    submitted = tuneforge(
        base_url,
        api_key,
        "--json",
        "jobs",
        "submit",
        "--dataset",
        dataset["id"],
        "--target",
        "y",
        "--spec",
        str(spec),
    )
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "queued" and job["spec"]["training"]["epochs"] == 3
    table = tuneforge(base_url, api_key, "jobs", "list")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "KIND", "STATUS"]
    assert job["id"] in table.stdout
    # Global options work after the subcommand too (issue 12: this was "unrecognized arguments").
    listed = tuneforge(base_url, api_key, "jobs", "list", "--json", "--status", "queued")
    assert listed.returncode == 0, listed.stderr
    assert job["id"] in [item["id"] for item in json.loads(listed.stdout)]


def test_errors_exit_1_with_the_problem_detail(base_url: str, api_key: str) -> None:
    """A missing job and a wrong key: exit code 1, the server's code and detail on stderr."""
    missing = tuneforge(base_url, api_key, "jobs", "get", "job_nope")
    assert missing.returncode == 1
    assert "job_not_found" in missing.stderr and "job_nope" in missing.stderr
    wrong = tuneforge(base_url, "tfg_wrong", "datasets", "list")
    assert wrong.returncode == 1 and "invalid_api_key" in wrong.stderr
