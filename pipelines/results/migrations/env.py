"""Alembic's entry point, run by ``alembic.command.upgrade``.

The store hands over its own connection, already inside the transaction that holds the migration
lock (``config.attributes["connection"]``), so the migrations and the version stamp commit or roll
back together with it.  Without one (the ``alembic`` command line, for a developer) a connection is
made from the ``sqlalchemy.url`` option."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:
    context.configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).begin() as own:
        _run(own)
