"""Command line polish (issue 12): options anywhere, rounded tables, one `tuneforge`, a typed Job.best."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import cli as server_cli
from tuneforge_client import Best, Client, Job, cli

SCORE = 0.7597402334213257
BEST = {
    "objective": "val_accuracy",
    "direction": "max",
    "number": 3,
    "score": SCORE,
    "metrics": {"val_accuracy": SCORE, "val_loss": 0.4812345},
    "hyperparameters": {"learning_rate": 0.0031622776601683794, "units": 64},
    "test_rows": 77,
    "test": {"test_accuracy": 0.7402597402597403, "test_auc": None},
    "baselines": {"logistic_regression": {"val_accuracy": 0.77, "test_accuracy": None}},
    "flags": [{"flag": "baseline_beats_network", "baseline": "logistic_regression", "margin": 0.0103}],
    "trial_id": "trl_1",
    "model_id": "mdl_1",
}
JOB = {
    "id": "job_1",
    "kind": "search",
    "name": None,
    "status": "succeeded",
    "dataset_id": "ds_1",
    "target": "y",
    "spec": {},
    "progress": {"trials_done": 4, "trials_total": 4, "epoch": 0, "epochs": 0},
    "attempt": 1,
    "error": None,
    "best": BEST,
    "created_at": "2024-05-01T12:00:00Z",
    "started_at": "2024-05-01T12:00:01Z",
    "finished_at": "2024-05-01T12:05:00Z",
}
TRIAL = {
    "id": "trl_1",
    "number": 3,
    "status": "completed",
    "hyperparameters": {"learning_rate": 0.0031622776601683794, "units": 64},
    "score": SCORE,
    "started_at": "2024-05-01T12:01:00Z",
    "finished_at": "2024-05-01T12:02:00Z",
    "worker": "w1",
}


def _answer(request: httpx.Request) -> httpx.Response:
    """The few server answers these commands read."""
    answers: dict[str, Any] = {
        "/v1/jobs": {"items": [JOB], "next_cursor": None},
        "/v1/jobs/job_1": JOB,
        "/v1/jobs/job_1/trials": [TRIAL],
    }
    return httpx.Response(200, json=answers[request.url.path])


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's Client talks to ``_answer`` instead of a network server."""
    transport = httpx.MockTransport(_answer)
    monkeypatch.setattr(cli, "Client", lambda **options: Client(transport=transport, **options))


class Handed(Exception):
    """Raised instead of replacing the process: what would have run."""


@pytest.fixture
def handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.execv raises Handed with its argv instead of replacing the test process."""

    def execv(path: str, argv: list[str]) -> None:
        raise Handed(argv)

    monkeypatch.setattr(os, "execv", execv)


def _help_commands(text: str) -> set[str]:
    """The command names a --help listing shows (lines indented under COMMAND)."""
    listing = text.split("COMMAND\n", 2)[-1].split("\n\n")[0]
    return {line.split()[0] for line in listing.splitlines() if line.startswith("    ")}


# 1. Global options before or after the subcommand.


@pytest.mark.parametrize(
    "argv",
    [["--json", "jobs", "list"], ["jobs", "list", "--json"], ["jobs", "--json", "list"]],
    ids=["before", "after", "between"],
)
def test_json_is_accepted_before_or_after_the_subcommand(argv: list[str]) -> None:
    """`tuneforge jobs list --json` parses as `tuneforge --json jobs list` does."""
    args = cli.build_parser().parse_args(argv)
    assert (args.group, args.action, args.json) == ("jobs", "list", True)


def test_options_given_before_the_subcommand_are_not_reset_by_it() -> None:
    """Values before the subcommand survive it; values after it are read; none means the defaults."""
    parser = cli.build_parser()
    before = parser.parse_args(["--base-url", "http://a", "--api-key", "k1", "jobs", "get", "job_1"])
    after = parser.parse_args(["jobs", "get", "job_1", "--base-url", "http://b", "--api-key", "k2"])
    neither = parser.parse_args(["jobs", "get", "job_1"])
    assert (before.base_url, before.api_key, before.json) == ("http://a", "k1", False)
    assert (after.base_url, after.api_key) == ("http://b", "k2")
    assert (neither.base_url, neither.api_key, neither.json) == (None, None, False)


def test_jobs_list_with_json_after_the_subcommand_prints_json(
    fake_server: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reported command runs and prints the server's JSON, the key given after the subcommand too."""
    assert cli.main(["jobs", "list", "--json", "--api-key", "tfg_test"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [job["id"] for job in listed] == ["job_1"]


# 2. Floats rounded in tables, full precision in JSON.


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (SCORE, "0.7597"),
        (12.3456789, "12.3457"),
        (0.0, "0.0000"),
        (1.23456e-5, "1.235e-05"),
        (3, "3"),
        (True, "True"),
        (None, ""),
        ({"learning_rate": 0.0031622776601683794, "units": 64}, "learning_rate=0.0032, units=64"),
        ([0.123456, "relu"], "[0.1235, relu]"),
    ],
)
def test_table_cells_round_floats(value: Any, shown: str) -> None:
    """Four decimals, tiny values four significant digits, nested floats rounded as well."""
    assert cli._cell(value) == shown


def test_trials_table_rounds_scores_and_json_keeps_full_precision(
    fake_server: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`jobs trials`: 0.7597 in the table, 0.7597402334213257 under --json."""
    assert cli.main(["--api-key", "tfg_test", "jobs", "trials", "job_1"]) == 0
    table = capsys.readouterr().out
    assert "0.7597" in table.split() and str(SCORE) not in table
    assert "learning_rate=0.0032" in table
    assert cli.main(["--api-key", "tfg_test", "jobs", "trials", "job_1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["score"] == SCORE


def test_job_table_rounds_the_best_score(fake_server: None, capsys: pytest.CaptureFixture[str]) -> None:
    """`jobs get` shows best.score rounded; --json shows the best the server sent, unchanged."""
    assert cli.main(["--api-key", "tfg_test", "jobs", "get", "job_1"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "BEST.SCORE" and row.split()[-1] == "0.7597"
    assert cli.main(["--api-key", "tfg_test", "jobs", "get", "job_1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"] == BEST


# 3. One `tuneforge` listing every command of this installation.


def test_help_lists_server_commands_when_the_server_is_installed() -> None:
    """The client's --help lists the server's commands too, since the server package is here."""
    shown = _help_commands(cli.build_parser().format_help())
    assert shown == {"datasets", "jobs", "models", "serve", "worker", "beat", "migrate", "keys"}


def test_without_the_server_its_commands_are_hidden_and_explained(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The SDK alone lists its own commands; a server command says which package it needs."""
    monkeypatch.setattr(cli, "_server_available", lambda: False)
    assert _help_commands(cli.build_parser().format_help()) == {"datasets", "jobs", "models"}
    assert cli.main(["serve"]) == 1
    assert "needs the server package" in capsys.readouterr().err


def test_server_commands_listed_by_the_client_are_the_servers() -> None:
    """The SDK's copy of the server's commands and their help matches the server's parser."""
    parser = server_cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    server = {choice.dest: choice.help for choice in subparsers._choices_actions}
    assert server == cli.SERVER_COMMANDS
    assert tuple(server) == server_cli.COMMANDS
    assert set(cli.CLIENT_COMMANDS) == server_cli.CLIENT_COMMANDS


def test_client_hands_server_commands_to_the_server_cli(handed_over: None) -> None:
    """`tuneforge keys create ...` from the client's script runs `python -m api.cli keys create ...`."""
    with pytest.raises(Handed) as handed:
        cli.main(["keys", "create", "--tenant", "acme", "--name", "ci"])
    assert handed.value.args[0] == [
        sys.executable,
        "-m",
        "api.cli",
        "keys",
        "create",
        "--tenant",
        "acme",
        "--name",
        "ci",
    ]


def test_client_options_before_a_server_command_are_refused(handed_over: None) -> None:
    """--json/--base-url/--api-key mean nothing to serve: a usage error, not a silent drop."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["--base-url", "http://x", "serve"])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [[], ["--help"], ["jobs", "list", "--json"], ["--base-url", "http://x", "jobs", "list"]],
    ids=["nothing", "help", "client-command", "option-value-first"],
)
def test_server_cli_hands_all_but_its_commands_to_the_client(handed_over: None, argv: list[str]) -> None:
    """The server's script gives the client's CLI (the front door) everything that is not a server command."""
    with pytest.raises(Handed) as handed:
        server_cli.main(argv)
    assert handed.value.args[0] == [sys.executable, "-m", "tuneforge_client.cli", *argv]


def test_server_cli_parses_its_own_commands(handed_over: None) -> None:
    """A server command stays in the server's CLI (here: a usage error from its own parser)."""
    with pytest.raises(SystemExit) as exited:
        server_cli.main(["keys"])
    assert exited.value.code == 2


def _entry_points() -> list[list[str]]:
    """Both modules, and the installed console script (whichever package wrote it last)."""
    commands = [[sys.executable, "-m", "tuneforge_client.cli"], [sys.executable, "-m", "api.cli"]]
    script = shutil.which("tuneforge", path=str(Path(sys.executable).parent))
    return commands + ([[script]] if script else [])


@pytest.mark.parametrize("command", _entry_points(), ids=lambda c: " ".join(Path(p).name for p in c))
def test_tuneforge_help_lists_every_command_from_any_entry_point(command: list[str]) -> None:
    """However `tuneforge` is reached, --help lists the client's and the server's commands."""
    shown = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, check=True)
    assert _help_commands(shown.stdout) >= {
        "jobs",
        "datasets",
        "models",
        "serve",
        "worker",
        "migrate",
        "keys",
    }


SDK_ALONE = """
import json, sys
imported = sys.modules.copy()
from tuneforge_client import cli
help_text = cli.build_parser().format_help()
ours = sorted({"api", "models", "worker"} & set(sys.modules))
sys.modules.update(api=None, models=None, worker=None)  # now as if the server were not installed
alone = cli.build_parser().format_help()
print(json.dumps({"imported": ours, "help": help_text, "alone": alone, "serve": cli.main(["serve"])}))
"""


def test_the_sdk_works_without_the_server_packages() -> None:
    """Building the CLI imports none of api/models/worker; without them it lists and explains its own."""
    ran = subprocess.run(
        [sys.executable, "-c", SDK_ALONE], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(ran.stdout)
    assert found["imported"] == []
    assert "serve" in _help_commands(found["help"])
    assert _help_commands(found["alone"]) == {"datasets", "jobs", "models"}
    assert found["serve"] == 1 and "needs the server package" in ran.stderr


# 4. A typed Job.best.


def test_job_best_is_typed() -> None:
    """Every field the server writes for a search's best has its type."""
    best = Job.model_validate(JOB).best
    assert isinstance(best, Best)
    assert (best.objective, best.direction, best.number, best.score) == ("val_accuracy", "max", 3, SCORE)
    assert (best.model_id, best.trial_id, best.test_rows) == ("mdl_1", "trl_1", 77)
    assert best.test == {"test_accuracy": 0.7402597402597403, "test_auc": None}
    assert best.baselines is not None and best.baselines["logistic_regression"]["val_accuracy"] == 0.77
    assert best.flags is not None and best.flags[0]["flag"] == "baseline_beats_network"
    assert best.hyperparameters == {"learning_rate": 0.0031622776601683794, "units": 64}


def test_best_defaults_missing_fields_and_keeps_unknown_ones() -> None:
    """A train job's best (no number, no baselines) parses; a key from a newer server is kept."""
    best = Best.model_validate(
        {"objective": "val_loss", "score": 0.5, "model_id": "mdl_2", "calibration": 0.1}
    )
    assert (best.number, best.baselines, best.flags, best.test, best.evaluation_error) == (None,) * 5
    assert best.model_extra == {"calibration": 0.1}


def test_best_still_reads_like_the_dict_it_was() -> None:
    """job.best["model_id"], .get() and `in` behave as they did on the dict, unknown keys included."""
    best = Best.model_validate({"score": 0.5, "model_id": "mdl_2", "calibration": 0.1})
    assert best["model_id"] == "mdl_2" and best["calibration"] == 0.1
    assert best.get("score") == 0.5 and best.get("number", "none") == "none"
    assert "model_id" in best and "number" not in best
    with pytest.raises(KeyError):
        best["number"]
