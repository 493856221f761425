"""Alembic migrations of the results store, shipped inside the package and run by
:func:`pipelines.results.store.upgrade_schema` whenever a store is opened (no ``alembic.ini``).

``versions/`` holds one revision per schema change: ``0001`` is the schema callqa wrote before it
used Alembic (it also adopts stores written before that, which lack some columns), each later one
changes it.  A developer adds a revision with ``alembic -c pipelines/results/migrations/alembic.ini
revision -m "..."``.
"""
