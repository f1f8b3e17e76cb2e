"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import importlib

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from store.models import Base

for optional in ("store.fund_models", "store.admin_models", "store.calendar_models",
                 "store.numbering_models", "store.identity_models",
                 "store.share_models"):
    try:
        importlib.import_module(optional)
    except ModuleNotFoundError as exc:
        if exc.name != optional:
            raise


def test_migrated_schema_matches_the_models(store_url):
    engine = create_engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
