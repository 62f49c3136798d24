"""Alembic environment: the URL comes from the config or from tuneforge's settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from models.db import make_engine
from models.settings import Settings
from models.tables import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url()


def run_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(
        url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=url.startswith("sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run migrations on a live connection."""
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
