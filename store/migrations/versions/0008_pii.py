"""personal data at rest: stage opinions and operators, material file names and
uploaders, alert details, audit actor/target/detail, call-log and outbox errors,
operators' names (display names, who resubmitted, acknowledged, resolved, instructed)
and banks' result messages are sealed (``<name>_enc``); the audit's actor and target get
blind indexes (``*_hash``)

Existing rows are sealed with the hub's data key: ``hub.py migrate`` passes it
(``Database.migrate(cipher=...)``), else ``HUB_DATA_KEY`` is used. A store that holds
such rows cannot be migrated without the key (nothing is dropped unsealed).

Revision ID: 0008_pii
Revises: 0007_county
"""
import os
from typing import Any

from alembic import op
import sqlalchemy as sa


revision = "0008_pii"
down_revision = "0007_county"
branch_labels = None
depends_on = None

#: table -> (column, nullable) sealed into ``<column>_enc``.
SEALED = {
    "stage_events": (("operator", True), ("opinion", True)),
    "files": (("name", False), ("uploaded_by", True)),
    "alerts": (("detail", True), ("acknowledged_by", True)),
    "audit": (("actor", False), ("target", True), ("detail", True)),
    "call_log": (("error", True),),
    "outbox": (("last_error", True), ("resubmitted_by", True)),
    "admin_users": (("display_name", False),),
    "fund_events": (("resolved_by", True),),
    "fund_instructions": (("result_msg", True), ("created_by", True)),
}
#: table -> columns that also get a blind index ``<column>_hash``.
INDEXED = {"audit": ("actor", "target")}


def _cipher():  # type: ignore[no-untyped-def]
    cipher = op.get_context().config.attributes.get("cipher")
    if cipher is None and os.environ.get("HUB_DATA_KEY"):
        from store.crypto import DataCipher, decode_master_key

        cipher = DataCipher(decode_master_key(os.environ["HUB_DATA_KEY"]))
    if cipher is None:
        raise RuntimeError("0005_pii: the store holds personal data to seal; run "
                           "`hub.py migrate` with the data key (secrets file or HUB_DATA_KEY)")
    return cipher


def _holds_rows() -> bool:
    conn = op.get_bind()
    return any(conn.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first() for t in SEALED)


def _seal_rows(cipher: Any, table: str, columns: tuple[tuple[str, bool], ...]) -> None:
    conn = op.get_bind()
    names = [c for c, _ in columns]
    hashed = INDEXED.get(table, ())
    t = sa.table(table, sa.column("id"), *(sa.column(c) for c in names),
                 *(sa.column(f"{c}_enc", sa.LargeBinary) for c in names),
                 *(sa.column(f"{c}_hash") for c in hashed))
    last = 0
    while True:
        rows = conn.execute(sa.select(t.c.id, *(t.c[c] for c in names))
                            .where(t.c.id > last).order_by(t.c.id).limit(500)).all()
        if not rows:
            return
        for row in rows:
            values = {}
            for c in names:
                plain = getattr(row, c)
                values[f"{c}_enc"] = None if plain is None else cipher.seal(str(plain).encode())
                if c in hashed:
                    values[f"{c}_hash"] = None if not plain else cipher.blind_index(str(plain))
            conn.execute(t.update().where(t.c.id == row.id).values(**values))
        last = rows[-1].id


def upgrade() -> None:
    # Before any DDL (SQLite's is not transactional here): no key, no change at all.
    cipher = _cipher() if _holds_rows() else None
    for table, columns in SEALED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, _ in columns:
                batch_op.add_column(sa.Column(f"{column}_enc", sa.LargeBinary(), nullable=True))
            for column in INDEXED.get(table, ()):
                batch_op.add_column(sa.Column(f"{column}_hash", sa.String(length=64),
                                              nullable=True))
        if cipher is not None:
            _seal_rows(cipher, table, columns)
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == "audit":
                batch_op.drop_index("ix_audit_actor")
            for column, nullable in columns:
                batch_op.drop_column(column)
                if not nullable:
                    batch_op.alter_column(f"{column}_enc", existing_type=sa.LargeBinary(),
                                          nullable=False)
            for column in INDEXED.get(table, ()):
                batch_op.create_index(f"ix_{table}_{column}_hash", [f"{column}_hash"],
                                      unique=False)


def downgrade() -> None:
    raise NotImplementedError("0005_pii: sealed personal data is not unsealed by a downgrade")
