"""The embedded broker: a consumer polling the folder never reads a message that is half-written."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Connection

from models.settings import Settings
from worker.local_broker import WholeFileBackend, WholeFileTransport

MESSAGES = 4
# Large enough that serializing it takes tens of milliseconds: kombu's own transport opens the file
# first, so a poller found it empty or partial (the predictor died of a JSONDecodeError on 10 MB).
ROWS = [{"text": "x" * 1000, "n": i} for i in range(4000)]


def _options(folder: Path) -> dict[str, Any]:
    return Settings(data_dir=folder, broker_url=None).broker_transport_options() | {"polling_interval": 0.001}


def _publish(transport: Any, options: dict[str, Any]) -> None:
    with Connection("filesystem://localhost/", transport=transport, transport_options=options) as conn:
        queue = conn.SimpleQueue("predict")
        for number in range(MESSAGES):
            queue.put({"number": number, "rows": ROWS})


def _publish_while_polling(transport: Any, folder: Path) -> tuple[list[Any], list[BaseException]]:
    options = _options(folder)
    received: list[Any] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def consume() -> None:
        with Connection("filesystem://localhost/", transport=transport, transport_options=options) as conn:
            queue = conn.SimpleQueue("predict")
            while len(received) < MESSAGES and not done.is_set():
                try:
                    message = queue.get(timeout=0.01)
                except queue.Empty:
                    continue
                except Exception as exc:  # what stopped the embedded predictor
                    errors.append(exc)
                    return
                received.append(message.payload)
                message.ack()

    consumer = threading.Thread(target=consume)
    consumer.start()
    # Another process, as the API is to the predictor: in one process the GIL hides the race.
    producer = multiprocessing.get_context("spawn").Process(target=_publish, args=(transport, options))
    producer.start()
    producer.join(timeout=120)
    consumer.join(timeout=60)
    done.set()
    consumer.join()
    return received, errors


def test_large_messages_arrive_whole_while_the_consumer_polls(tmp_path: Path) -> None:
    """Four 4 MB messages published while a consumer polls every millisecond all arrive intact.

    With kombu's own transport (``transport="filesystem"``) the consumer reads the first file before
    it is written and raises ``JSONDecodeError``, as the embedded predictor did.
    """
    received, errors = _publish_while_polling(WholeFileTransport, tmp_path)
    assert errors == []
    assert [message["number"] for message in received] == list(range(MESSAGES))
    assert all(message["rows"] == ROWS for message in received)
    assert not list((tmp_path / "broker" / "queue").iterdir()), "no partial or unread files left in the queue"


def test_results_are_replaced_whole(tmp_path: Path) -> None:
    """A result written twice reads back as the newer one, with no partial file left beside it."""
    backend = WholeFileBackend(url=f"file://{tmp_path}", app=Celery())
    backend.set(b"celery-task-meta-1", b'{"status": "PENDING"}')
    backend.set(b"celery-task-meta-1", b'{"status": "SUCCESS"}')
    assert backend.get(b"celery-task-meta-1") == b'{"status": "SUCCESS"}'
    assert [p.name for p in tmp_path.iterdir()] == ["celery-task-meta-1"]
