"""The embedded broker and result store (files in data_dir), with whole-file writes.

kombu's filesystem transport and Celery's file result backend write a file in place, so a process
polling the folder can read one that is still being written: a large predict request was read
half-written, failed to decode, and the ``JSONDecodeError`` stopped the predictor's consumer for
good; exchange tables are likewise created empty and filled after. Here every file is written under
a name no reader looks for and renamed into place (a rename within a folder is atomic), and a
message that still cannot be decoded is logged and dropped instead of killing the consumer.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import structlog
from celery import Celery
from celery.backends.filesystem import FilesystemBackend
from kombu.transport import filesystem
from kombu.utils.encoding import ensure_bytes, str_to_bytes
from kombu.utils.json import dumps

from models.atomic import write_whole
from models.settings import Settings

log = structlog.get_logger(__name__)


class WholeFileChannel(filesystem.Channel):  # type: ignore[misc]
    """kombu's filesystem channel, publishing each message as one rename."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{filesystem.monotonic() * 1000:.0f}_{uuid.uuid4()}.{queue}.msg"
        try:
            write_whole(os.path.join(self.data_folder_out, name), str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {name!r} to directory") from exc

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        # kombu creates the exchange table empty, then locks and fills it: a publisher declaring the
        # same queue at that moment read an empty table (JSONDecodeError). Rewrite it whole instead.
        table = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with open(table.with_name(table.name + ".lock"), "a") as guard:
            filesystem.lock(guard, filesystem.LOCK_EX)
            try:
                queues = self.get_table(exchange)
                if entry not in queues:
                    write_whole(table, str_to_bytes(dumps([entry, *queues])))
            finally:
                filesystem.unlock(guard)

    def _get(self, queue: str) -> Any:
        while True:
            try:
                return super()._get(queue)
            except ValueError as exc:  # JSONDecodeError: the file is gone; the next one is read
                log.error("broker_message_unreadable", queue=queue, error=str(exc))


class WholeFileTransport(filesystem.Transport):  # type: ignore[misc]
    """The embedded broker: kombu's filesystem transport with whole-file messages."""

    Channel = WholeFileChannel


class WholeFileBackend(FilesystemBackend):  # type: ignore[misc]
    """Celery's file result backend, writing each result as one rename."""

    def set(self, key: bytes, value: Any) -> None:
        write_whole(self._filename(key), ensure_bytes(value))


def use_local_broker(app: Celery, settings: Settings) -> None:
    """Point ``app`` at the whole-file transport and result store when the broker is the local folder."""
    if not settings.resolved_broker_url().startswith("filesystem"):
        return
    app.conf.broker_transport = f"{__name__}:WholeFileTransport"
    # ``<class>+<url>``: Celery's form for a backend class reading a URL (as in ``db+sqlite://``).
    app.conf.result_backend = f"{__name__}:WholeFileBackend+{settings.resolved_result_backend()}"
