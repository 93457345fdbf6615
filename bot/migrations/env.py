"""Alembic's entry point. The bot hands over its own locked connection (bot.migrations.upgrade);
the ``alembic`` command line gets one from ``MILVUS_CHATOPS_DATABASE_URL``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from bot.schema import metadata


def _run(connection: Connection) -> None:
    # Batch mode turns ALTERs into copy-and-swap on SQLite, which cannot alter most columns in place.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    url = os.environ.get("MILVUS_CHATOPS_DATABASE_URL") or "sqlite:///.milvus-chatops/state.db"
    with create_engine(url).begin() as conn:
        _run(conn)
