"""Alembic's environment, driven by state/migrate.py (no alembic.ini).

The caller passes an open connection in `config.attributes["connection"]`, already inside the
transaction that holds the migration lock, so the migration and the lock commit together.
Autogenerate and compare see only Costwarden's own tables: LangGraph's checkpoint tables and
APScheduler's job table may share the database and are never reflected, compared or touched.
"""

from __future__ import annotations

from alembic import context

from costwarden.state.migrate import include_name, include_object
from costwarden.state.models import Base

config = context.config
connection = config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError("Costwarden migrations run online only, on a connection from state/migrate.py "
                       "(use `costwarden db upgrade`)")

context.configure(connection=connection, target_metadata=Base.metadata, include_name=include_name,
                  include_object=include_object, render_as_batch=connection.dialect.name == "sqlite",
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
