"""Structured logs for every process (API, workers, beat): one format for our lines and libraries'."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, json_logs: bool) -> None:
    """structlog and stdlib logging (Celery's, uvicorn's) through one renderer: JSON or readable.

    Context bound with ``structlog.contextvars`` (a task's job, trial and attempt ids) joins every
    line logged while it is bound, the libraries' included.
    """
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        # Plain tracebacks: rich's default prints every frame's locals, which took seconds per crash.
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    # The process's real stderr: Celery replaces sys.stderr in its children with a proxy that logs,
    # which would feed each line back into logging.
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
