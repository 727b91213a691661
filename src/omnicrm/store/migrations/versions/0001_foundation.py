"""foundation: sources, ingest buffer, fact batches, imports, quarantine

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fact_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="event, order_line, person, message"),
        sa.Column("origin", sa.String(length=16), nullable=False, comment="loader or import"),
        sa.Column("status", sa.String(length=16), nullable=False, comment="writing, then committed"),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Text(), nullable=False, comment="JSON list of paths under facts/"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fact_batches")),
    )
    with op.batch_alter_table("fact_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fact_batches_status"), ["status"], unique=False)

    op.create_table(
        "ingest_buffer",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True, comment="the normalised message as JSON; emptied once loaded"),
        sa.Column(
            "batch_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="fact batch that claimed this row",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_buffer")),
        sa.UniqueConstraint("source", "message_id", name=op.f("uq_ingest_buffer_source_message_id")),
    )
    with op.batch_alter_table("ingest_buffer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_buffer_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ingest_buffer_received_at"), ["received_at"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False, comment="http or import"),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("ref", sa.String(length=64), nullable=True, comment="request id or import id"),
        sa.Column("file", sa.String(length=1024), nullable=True),
        sa.Column("line", sa.BigInteger(), nullable=True),
        sa.Column("message_index", sa.Integer(), nullable=True),
        sa.Column("field", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_origin_ref"), ["origin", "ref"], unique=False)

    op.create_table(
        "sources",
        sa.Column("name", sa.String(length=64), nullable=False, comment="channel id, e.g. tmall, pos-store-3, web"),
        sa.Column(
            "kind", sa.String(length=32), nullable=False, comment="marketplace, pos, web, app, wechat, sms, email, ..."
        ),
        sa.Column("write_key_hash", sa.String(length=64), nullable=False, comment="sha256 of the write key"),
        sa.Column("write_key_hint", sa.String(length=12), nullable=False, comment="first characters, for people"),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sources")),
        sa.UniqueConstraint("write_key_hash", name=op.f("uq_sources_write_key_hash")),
    )
    op.create_table(
        "import_files",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("mapping", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="running, committed or failed"),
        sa.Column("rows_total", sa.BigInteger(), nullable=False),
        sa.Column("rows_accepted", sa.BigInteger(), nullable=False),
        sa.Column("rows_quarantined", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["fact_batches.id"], name=op.f("fk_import_files_batch_id_fact_batches")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_files")),
    )
    with op.batch_alter_table("import_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_import_files_source_kind_sha256"), ["source", "kind", "sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("import_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_files_source_kind_sha256"))

    op.drop_table("import_files")
    op.drop_table("sources")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_origin_ref"))

    op.drop_table("quarantine")
    with op.batch_alter_table("ingest_buffer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_buffer_received_at"))
        batch_op.drop_index(batch_op.f("ix_ingest_buffer_batch_id"))

    op.drop_table("ingest_buffer")
    with op.batch_alter_table("fact_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fact_batches_status"))

    op.drop_table("fact_batches")
