"""The ``tuneforge`` server command: serve, worker, beat, migrate, keys create."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
from collections.abc import Sequence

from models.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api import embedded
    from api.main import create_app

    workers = []
    if settings.embedded:
        key, created = embedded.prepare(settings)
        where = settings.api_key_file.resolve()
        print(f"tuneforge embedded mode: data in {settings.data_dir.resolve()}", flush=True)
        if created:
            print(f"API key (new, shown once, saved in {where}): {key}", flush=True)
        else:
            print(f"API key: the one saved in {where} (not printed again)", flush=True)
        print(f"worker logs: {settings.data_dir.resolve() / 'logs'}", flush=True)
    if settings.embedded or args.with_worker:
        workers = embedded.start_workers(settings, concurrency=args.concurrency)
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
    # finally block stop the worker instead of orphaning it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if settings.api_workers > 1:
            # Several processes need an import string; each builds its app from the same TUNEFORGE_* env.
            uvicorn.run(
                "api.main:create_app",
                factory=True,
                workers=settings.api_workers,
                host=args.host,
                port=args.port,
                log_level="warning",
            )
        else:
            uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    finally:
        embedded.stop_workers(workers)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from api.embedded import PREDICTOR_TASKS_PER_CHILD, worker_command

    settings.ensure_dirs()
    predicting = args.role == "predict"
    command = worker_command(
        queue=settings.predict_queue if predicting else settings.queue,
        max_tasks_per_child=PREDICTOR_TASKS_PER_CHILD if predicting else None,
        nice=0 if predicting else settings.trainer_nice,
        concurrency=args.concurrency,
        beat=args.beat,
        data_dir=settings.data_dir.resolve(),
        pool=args.pool,
        name=args.name,
    )
    os.execvp(command[0], command)  # a path search: the command may start with `nice`
    return 0  # pragma: no cover - execv does not return


def _beat(_: argparse.Namespace, settings: Settings) -> int:
    from api.embedded import beat_command

    settings.ensure_dirs()
    command = beat_command(settings.data_dir.resolve())
    os.execvp(command[0], command)
    return 0  # pragma: no cover - execv does not return


def _migrate(_: argparse.Namespace, settings: Settings) -> int:
    from models.migrate import upgrade_to_head

    settings.ensure_dirs()
    upgrade_to_head(settings.resolved_database_url())
    print("schema is at head")
    return 0


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from api.embedded import create_key

    print(create_key(settings, args.tenant, name=args.name))
    return 0


def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    from api.embedded import with_keys

    with with_keys(settings) as keys:
        for key in keys.keys(args.tenant):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            print(f"{key.id}  {key.prefix}...  {state:<22} last used {used:<16}  {key.name or ''}".rstrip())
    return 0


def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from api.embedded import with_keys

    with with_keys(settings) as keys:
        keys.revoke(args.key_id)
    print(f"revoked {args.key_id} (API processes stop accepting it within TUNEFORGE_API_KEY_CACHE_S)")
    return 0


def _keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from api.embedded import with_keys

    with with_keys(settings) as keys:
        _, plaintext = keys.rotate(args.key_id)
    print(plaintext)  # shown once; the old key is revoked
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="tuneforge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (embedded mode also runs a worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--concurrency", type=int, default=1)
    serve.add_argument("--with-worker", action="store_true", help="also run a local worker")
    serve.set_defaults(run=_serve)
    worker = commands.add_parser("worker", help="run a Celery worker")
    worker.add_argument("--concurrency", "-c", type=int, default=1)
    worker.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    worker.add_argument("--beat", action="store_true", help="also run the reaper schedule")
    worker.add_argument(
        "--role",
        choices=["train", "predict"],
        default="train",
        help="train: run jobs; predict: answer POST /v1/models/{id}/predict (keeps models loaded)",
    )
    worker.add_argument("--name", "-n", default=None)
    worker.set_defaults(run=_worker)
    beat = commands.add_parser("beat", help="run the reaper schedule")
    beat.set_defaults(run=_beat)
    migrate = commands.add_parser("migrate", help="upgrade the database schema to head")
    migrate.set_defaults(run=_migrate)
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create an API key for a tenant (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default=None)
    create.set_defaults(run=_keys_create)
    listing = keys.add_parser("list", help="a tenant's keys: id, prefix, state, last use")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(run=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=_keys_revoke)
    rotate = keys.add_parser("rotate", help="replace a key by a new one (printed once), revoking it")
    rotate.add_argument("key_id")
    rotate.set_defaults(run=_keys_rotate)
    return parser


COMMANDS = ("serve", "worker", "beat", "migrate", "keys")  # build_parser's; tuneforge-client lists them too
CLIENT_COMMANDS = {"datasets", "jobs", "models"}
CLIENT_MODULE = "tuneforge_client.cli"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tuneforge`` command: server commands here, anything else in tuneforge-client's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only -h comes before a server command, so its first word names it.
    first = next((a for a in argv if not a.startswith("-")), None)
    if first not in COMMANDS:
        if importlib.util.find_spec("tuneforge_client") is not None:
            # Installed, the client's CLI is the front door: its --help lists every command, and it
            # hands server commands back with the command first, so they never bounce.
            os.execv(sys.executable, [sys.executable, "-m", CLIENT_MODULE, *argv])
        if CLIENT_COMMANDS.intersection(argv):
            print("tuneforge: client commands need tuneforge-client (pip install ./sdk)", file=sys.stderr)
            return 1
    args = build_parser().parse_args(argv)
    os.umask(0o077)  # files a server process writes (database, datasets, models, logs): owner only
    result: int = args.run(args, Settings())
    return result


if __name__ == "__main__":
    sys.exit(main())
