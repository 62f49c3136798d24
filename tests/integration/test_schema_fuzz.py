"""schemathesis against a real API server: every operation fuzzed, stateful links followed; no 5xx, no
undocumented status, content type or response shape (issue 10's promise 8)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

from api.embedded import create_key
from models.settings import Settings
from tests.faults.services import live_api

CONFIG = Path(__file__).with_name("schemathesis.toml")
# CI runs 25 per operation; set TUNEFORGE_FUZZ_EXAMPLES for a longer run.
EXAMPLES_PER_OPERATION = int(os.environ.get("TUNEFORGE_FUZZ_EXAMPLES", "25"))


def test_the_fuzzer_finds_no_server_error_and_no_schema_violation(
    server_env: dict[str, str], settings: Settings, csvs: dict[str, Path], tmp_path: Path
) -> None:
    key = create_key(settings, f"tenant-{secrets.token_hex(4)}")
    env = server_env | {
        # A queue nobody consumes: the fuzzer's jobs stay queued instead of training in this run.
        "TUNEFORGE_QUEUE": f"fuzz-{secrets.token_hex(4)}",
        # Limits and quotas high enough that requests reach the API's logic (429s are documented).
        "TUNEFORGE_RATE_LIMIT_READS": "1000000/minute",
        "TUNEFORGE_RATE_LIMIT_WRITES": "1000000/minute",
        # The fuzzer's requests without a key must meet 401, not the lockout (test_rate_limits.py's).
        "TUNEFORGE_RATE_LIMIT_FAILED_AUTH": "1000000/minute",
        "TUNEFORGE_MAX_ACTIVE_JOBS_PER_TENANT": "100000",
        # Its jobs never end: a live stream closes after half a second instead of ten minutes.
        "TUNEFORGE_STREAM_MAX_S": "0.5",
    }
    with live_api(env, tmp_path / "api.log") as base:
        headers = {"Authorization": f"Bearer {key}"}
        # Real objects for the path parameters, so the fuzzer reaches more than 404s.
        datasets = [
            httpx.post(
                f"{base}/v1/datasets",
                files={"file": ("iris.csv", csvs["iris"].read_bytes(), "text/csv")},
                headers=headers,
            ).json()["id"]
            for _ in range(2)
        ]
        job = httpx.post(
            f"{base}/v1/jobs",
            json={"kind": "train", "dataset_id": datasets[0], "target": "target"},
            headers=headers,
        ).json()["id"]
        fuzz_env = os.environ | {
            "FUZZ_DATASET": datasets[0],
            "FUZZ_DELETABLE_DATASET": datasets[1],
            "FUZZ_JOB": job,
        }
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "--no-color",
                "--config-file",
                str(CONFIG),
                "run",
                f"{base}/openapi.json",
                "--header",
                f"Authorization: Bearer {key}",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--continue-on-failure",
                "--seed",
                "20261129",
            ],
            env=fuzz_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    report = re.sub(r"(.)\1{80,}", lambda m: m.group(1) * 5 + "...", run.stdout)  # fuzzed padding
    summary = report[report.find("SUMMARY") :]
    print(summary)
    tested = re.search(r"Tested:\s+(\d+)", summary)
    cases = re.search(r"(\d+) generated", summary)
    assert tested and int(tested.group(1)) == 25, summary
    assert cases and int(cases.group(1)) >= 25 * 10, summary
    assert run.returncode == 0, report[-20000:]
