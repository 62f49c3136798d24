"""The `tuneforge` command: datasets, jobs and models (tables, or --json for scripts), and the server's
commands when the server package is installed."""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import Client
from ._errors import APIStatusError, JobFailed, TuneforgeError

CLIENT_COMMANDS = {
    "datasets": "upload and list CSV datasets",
    "jobs": "submit, wait for, inspect, list and cancel jobs",
    "models": "download models and predict with them",
}
# The server package's commands (api/cli.py; a unit test keeps these equal to its parser). They are
# listed here, not imported, because this package ships alone; they run in the server's CLI.
SERVER_COMMANDS = {
    "serve": "run the API (embedded mode also runs a worker)",
    "worker": "run a Celery worker",
    "beat": "run the reaper schedule",
    "migrate": "upgrade the database schema to head",
    "keys": "manage API keys",
}
SERVER_MODULE = "api.cli"


def _cell(value: Any) -> str:
    """A value as a table shows it: floats rounded for people, nested values flattened to key=value."""
    if value is None:
        return ""
    if isinstance(value, float):
        # Four decimals suit scores and losses; tiny values keep four significant digits, not 0.0000.
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _show(args: argparse.Namespace, value: Any, columns: list[str]) -> None:
    items = value if isinstance(value, list) else [value]
    # exclude_unset: --json shows what the server sent, not the SDK's defaults for fields it left out.
    dumped = [
        v.model_dump(mode="json", by_alias=True, exclude_unset=True) if hasattr(v, "model_dump") else v
        for v in items
    ]
    if args.json:
        print(json.dumps(dumped if isinstance(value, list) else dumped[0], indent=2))
    else:
        print(_table([_flatten(d) for d in dumped], columns))


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    flat = dict(row)
    for key in ("progress", "best"):
        for inner, value in (row.get(key) or {}).items():
            flat[f"{key}.{inner}"] = value
    if "columns" in row and isinstance(row["columns"], list):
        flat["columns"] = len(row["columns"])
    return flat


def _run(args: argparse.Namespace, client: Client) -> None:
    group, action = args.group, args.action
    if group == "datasets" and action == "upload":
        _show(args, client.datasets.upload(args.file, name=args.name), ["id", "name", "rows", "columns"])
    elif group == "datasets" and action == "list":
        _show(args, list(client.datasets.list()), ["id", "name", "rows", "columns", "created_at"])
    elif group == "jobs" and action == "submit":
        body = json.loads(Path(args.spec).read_text()) if args.spec else {}
        spec = body.get("spec", body) if isinstance(body, dict) else {}
        job = client.jobs.create(kind=args.kind, dataset_id=args.dataset, target=args.target, spec=spec)
        _show(args, job, ["id", "kind", "status"])
    elif group == "jobs" and action == "wait":
        _show(args, client.jobs.wait(args.job_id), ["id", "status", "best.score", "best.model_id"])
    elif group == "jobs" and action == "get":
        _show(
            args, client.jobs.get(args.job_id), ["id", "kind", "status", "progress.trials_done", "best.score"]
        )
    elif group == "jobs" and action == "list":
        _show(args, list(client.jobs.list(status=args.status)), ["id", "kind", "status", "created_at"])
    elif group == "jobs" and action == "trials":
        trials: list[Any] = sorted(
            client.jobs.trials(args.job_id), key=lambda t: (t.score is None, -(t.score or 0))
        )
        _show(args, trials, ["number", "status", "score", "worker", "hyperparameters"])
    elif group == "jobs" and action == "cancel":
        _show(args, client.jobs.cancel(args.job_id), ["id", "status"])
    elif group == "models" and action == "download":
        print(client.models.download(args.model_id, args.output))
    elif group == "models" and action == "predict":
        rows = json.loads(Path(args.rows).read_text() if args.rows != "-" else sys.stdin.read())
        predictions = client.models.predict(args.model_id, rows if isinstance(rows, list) else rows["rows"])
        print(json.dumps(predictions, indent=2) if args.json else _table(predictions, ["label", "value"]))


def _global_options(*, defaults: bool) -> argparse.ArgumentParser:
    """Options every client command takes, before or after its name (a parent parser)."""
    # Subcommands get SUPPRESS: one not given an option must not reset what came before its name.
    # Each call builds new actions, since parents share theirs and set_defaults would change both.
    json_default, value_default = (False, None) if defaults else (argparse.SUPPRESS, argparse.SUPPRESS)
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--json", action="store_true", default=json_default, help="machine-readable output")
    options.add_argument(
        "--base-url", default=value_default, help="default: TUNEFORGE_BASE_URL or http://127.0.0.1:8000"
    )
    options.add_argument(
        "--api-key", default=value_default, help="default: TUNEFORGE_API_KEY or tuneforge-data/api_key"
    )
    return options


def _server_available() -> bool:
    """Whether the server's CLI is installed, found without importing any of the server's code."""
    package = importlib.util.find_spec("api")
    locations = package.submodule_search_locations if package is not None else None
    return (
        locations is not None and importlib.machinery.PathFinder.find_spec("cli", list(locations)) is not None
    )


def _add_server_commands(groups: Any, listed: bool) -> None:
    """Placeholders that hand a server command to the server's CLI, which parses the rest itself."""
    for name, text in SERVER_COMMANDS.items():
        # Without help= a subcommand is left out of the listing: shown only when the server is installed.
        groups.add_parser(name, add_help=False, **({"help": text} if listed else {}))


def _add_datasets(groups: Any, common: argparse.ArgumentParser) -> None:
    actions = groups.add_parser(
        "datasets", parents=[common], help=CLIENT_COMMANDS["datasets"]
    ).add_subparsers(dest="action", required=True)
    upload = actions.add_parser("upload", parents=[common])
    upload.add_argument("file")
    upload.add_argument("--name")
    actions.add_parser("list", parents=[common])


def _add_jobs(groups: Any, common: argparse.ArgumentParser) -> None:
    actions = groups.add_parser("jobs", parents=[common], help=CLIENT_COMMANDS["jobs"]).add_subparsers(
        dest="action", required=True
    )
    submit = actions.add_parser("submit", parents=[common])
    submit.add_argument("--kind", choices=["train", "search"], default="train")
    submit.add_argument("--dataset", required=True)
    submit.add_argument("--target", required=True)
    submit.add_argument("--spec", help="a JSON file: the spec, or a body with a 'spec' field")
    for action in ("wait", "get", "trials", "cancel"):
        actions.add_parser(action, parents=[common]).add_argument("job_id")
    actions.add_parser("list", parents=[common]).add_argument("--status")


def _add_models(groups: Any, common: argparse.ArgumentParser) -> None:
    actions = groups.add_parser("models", parents=[common], help=CLIENT_COMMANDS["models"]).add_subparsers(
        dest="action", required=True
    )
    download = actions.add_parser("download", parents=[common])
    download.add_argument("model_id")
    download.add_argument("--output", "-o")
    predict = actions.add_parser("predict", parents=[common])
    predict.add_argument("model_id")
    predict.add_argument("--rows", required=True, help="a JSON file of rows (or - for stdin)")


def build_parser() -> argparse.ArgumentParser:
    """The `tuneforge` command: client commands, and the server's when the server package is installed."""
    parser = argparse.ArgumentParser(
        prog="tuneforge", description=__doc__, parents=[_global_options(defaults=True)]
    )
    common = _global_options(defaults=False)
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    _add_datasets(groups, common)
    _add_jobs(groups, common)
    _add_models(groups, common)
    _add_server_commands(groups, listed=_server_available())
    return parser


def _run_server_command(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    """Hand a server command to the server's CLI: a new program image, so signals and exit code are its."""
    if not _server_available():
        print(f"tuneforge: '{args.group}' needs the server package (pip install tuneforge)", file=sys.stderr)
        return 1
    if args.json or args.base_url is not None or args.api_key is not None:
        # This also keeps the command the first word the server's CLI sees, so it never hands it back.
        parser.error("--json, --base-url and --api-key are options of the client commands")
    os.execv(sys.executable, [sys.executable, "-m", SERVER_MODULE, *argv])
    return 0  # pragma: no cover - execv does not return


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; server commands (serve, worker, migrate, keys) go to the server package."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Known args only: a server command's own arguments are the server's CLI's to parse.
    args, unknown = parser.parse_known_args(argv)
    if args.group in SERVER_COMMANDS:
        return _run_server_command(parser, args, argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        with Client(api_key=args.api_key, base_url=args.base_url) as client:
            _run(args, client)
    except JobFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except APIStatusError as exc:
        print(f"error: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    except TuneforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
