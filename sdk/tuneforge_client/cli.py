"""The `tuneforge` command for people: datasets, jobs and models; tables by default, --json for scripts."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import Client
from ._errors import APIStatusError, JobFailed, TuneforgeError

CLIENT_COMMANDS = {"datasets", "jobs", "models"}


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[str(row.get(c, "")) if row.get(c) is not None else "" for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _show(args: argparse.Namespace, value: Any, columns: list[str]) -> None:
    items = value if isinstance(value, list) else [value]
    dumped = [v.model_dump(mode="json", by_alias=True) if hasattr(v, "model_dump") else v for v in items]
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


def build_parser() -> argparse.ArgumentParser:
    """The client half of the `tuneforge` command."""
    parser = argparse.ArgumentParser(prog="tuneforge", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--base-url", default=None, help="default: TUNEFORGE_BASE_URL or http://127.0.0.1:8000"
    )
    parser.add_argument(
        "--api-key", default=None, help="default: TUNEFORGE_API_KEY or tuneforge-data/api_key"
    )
    groups = parser.add_subparsers(dest="group", required=True)
    datasets = groups.add_parser("datasets").add_subparsers(dest="action", required=True)
    upload = datasets.add_parser("upload")
    upload.add_argument("file")
    upload.add_argument("--name")
    datasets.add_parser("list")
    jobs = groups.add_parser("jobs").add_subparsers(dest="action", required=True)
    submit = jobs.add_parser("submit")
    submit.add_argument("--kind", choices=["train", "search"], default="train")
    submit.add_argument("--dataset", required=True)
    submit.add_argument("--target", required=True)
    submit.add_argument("--spec", help="a JSON file: the spec, or a body with a 'spec' field")
    for action in ("wait", "get", "trials", "cancel"):
        jobs.add_parser(action).add_argument("job_id")
    listing = jobs.add_parser("list")
    listing.add_argument("--status")
    models = groups.add_parser("models").add_subparsers(dest="action", required=True)
    download = models.add_parser("download")
    download.add_argument("model_id")
    download.add_argument("--output", "-o")
    predict = models.add_parser("predict")
    predict.add_argument("model_id")
    predict.add_argument("--rows", required=True, help="a JSON file of rows (or - for stdin)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; server commands (serve, worker, migrate, keys) go to the server package."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is not None and first not in CLIENT_COMMANDS:
        # Server commands belong to the server package; hand over without importing it.
        if importlib.util.find_spec("api") is None:
            print(f"tuneforge: '{first}' needs the server package (pip install tuneforge)", file=sys.stderr)
            return 1
        os.execv(sys.executable, [sys.executable, "-m", "api.cli", *argv])
    args = build_parser().parse_args(argv)
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
