"""The facts store: immutable Parquet files under ``facts/<kind>/date=YYYY-MM-DD/``.

Four kinds share one layout. Every row carries ``source`` (the channel), ``source_key`` (its key in
that source), ``ingest_id`` (the loader batch or import that wrote it) and ``ingested_at``, so any
derived value can name its origin.

Writing is staged: a batch's files are written and fsynced under ``facts/_staging/<ingest_id>/``,
the state database records the batch as committed, and only then are the files renamed into place
(``publish``). A crash before the commit leaves only staging files, which the next run deletes and
rewrites; a crash after it leaves staging files that ``publish`` finishes moving. Readers glob
``facts/<kind>/date=*/*.parquet`` and so never see a staged file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "EVENT",
    "KINDS",
    "MESSAGE",
    "ORDER_LINE",
    "PERSON",
    "SCHEMAS",
    "TIME_COLUMN",
    "FactsStore",
]

TS = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(18, 2)
JSON = pa.string()  # JSON text; DuckDB reads it with json functions

_PROVENANCE = [
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_key", pa.string()),
    pa.field("ingest_id", pa.string(), nullable=False),
    pa.field("ingested_at", TS, nullable=False),
    pa.field("source_file", pa.string()),
    pa.field("source_line", pa.int64()),
]

EVENT = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("event", pa.string()),
        pa.field("name", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("previous_id", pa.string()),
        pa.field("group_id", pa.string()),
        pa.field("traits", JSON),
        pa.field("properties", JSON),
        pa.field("context", JSON),
        pa.field("timestamp", TS, nullable=False),
        pa.field("sent_at", TS),
        pa.field("received_at", TS, nullable=False),
        *_PROVENANCE,
    ]
)

# Buyer identifiers appear as the source gave them; identity resolution normalises them later.
_IDENTIFIERS = [
    pa.field("marketplace_nick", pa.string()),
    pa.field("phone", pa.string()),
    pa.field("email", pa.string()),
    pa.field("member_card", pa.string()),
    pa.field("wechat_openid", pa.string()),
    pa.field("wechat_appid", pa.string()),
    pa.field("wechat_unionid", pa.string()),
]

ORDER_LINE = pa.schema(
    [
        pa.field("order_id", pa.string(), nullable=False),
        pa.field("line_no", pa.int32(), nullable=False),
        *_IDENTIFIERS,
        pa.field("buyer_name", pa.string()),
        pa.field("address", pa.string()),
        pa.field("store_code", pa.string()),
        pa.field("store_guide", pa.string()),
        pa.field("sku", pa.string()),
        pa.field("product_name", pa.string()),
        pa.field("category", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("size", pa.string()),
        pa.field("colour", pa.string()),
        pa.field("quantity", pa.int32()),
        pa.field("unit_price", MONEY),
        pa.field("discount", MONEY),
        pa.field("paid_amount", MONEY),
        pa.field("refunded_amount", MONEY),
        pa.field("currency", pa.string()),
        pa.field("status", pa.string()),
        pa.field("promotion", pa.string()),
        pa.field("created_at", TS, nullable=False),
        pa.field("paid_at", TS),
        pa.field("refunded_at", TS),
        *_PROVENANCE,
    ]
)

PERSON = pa.schema(
    [
        *_IDENTIFIERS,
        pa.field("name", pa.string()),
        pa.field("nickname", pa.string()),
        pa.field("gender", pa.string()),
        pa.field("birthday", pa.date32()),
        pa.field("province", pa.string()),
        pa.field("city", pa.string()),
        pa.field("district", pa.string()),
        pa.field("address", pa.string()),
        pa.field("postcode", pa.string()),
        pa.field("traits", JSON),
        pa.field("observed_at", TS, nullable=False),
        *_PROVENANCE,
    ]
)

MESSAGE = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("conversation_key", pa.string()),
        pa.field("direction", pa.string(), nullable=False),
        *_IDENTIFIERS,
        pa.field("text", pa.string()),
        pa.field("attachments", JSON),
        pa.field("store_code", pa.string()),
        pa.field("sent_at", TS, nullable=False),
        *_PROVENANCE,
    ]
)

SCHEMAS: dict[str, pa.Schema] = {"event": EVENT, "order_line": ORDER_LINE, "person": PERSON, "message": MESSAGE}
KINDS = tuple(SCHEMAS)
# The time that decides a row's date partition.
TIME_COLUMN = {"event": "timestamp", "order_line": "created_at", "person": "observed_at", "message": "sent_at"}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FactsStore:
    """Reads and writes the Parquet fact files under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.staging_root = self.root / "_staging"

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the named lock of this facts folder (one loader, one import at a time)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def glob(self, kind: str) -> str:
        """The glob that reads every published file of a kind (hive-partitioned by date)."""
        return str(self.root / kind / "date=*" / "*.parquet")

    def files(self, kind: str) -> list[Path]:
        return sorted((self.root / kind).glob("date=*/*.parquet"))

    def staging(self, ingest_id: str) -> Path:
        return self.staging_root / ingest_id

    def clear_staging(self, ingest_id: str) -> None:
        shutil.rmtree(self.staging(ingest_id), ignore_errors=True)

    def stage_table(self, kind: str, table: pa.Table, ingest_id: str) -> list[str]:
        """Write ``table`` (in the kind's schema) into staging, one file per date; fsynced."""
        schema = SCHEMAS[kind]
        table = table.select(schema.names).cast(schema)
        times = table.column(TIME_COLUMN[kind])
        dates = pc.strftime(times, format="%Y-%m-%d")
        staged: list[str] = []
        for day in pc.unique(dates).to_pylist():
            part = table.filter(pc.equal(dates, day))
            folder = self.staging(ingest_id) / kind / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{ingest_id}-0.parquet"
            pq.write_table(part, path, compression="zstd")
            staged.append(str(path.relative_to(self.staging(ingest_id))))
        self.sync_staging(ingest_id)
        return sorted(staged)

    def staged_files(self, ingest_id: str) -> list[str]:
        base = self.staging(ingest_id)
        return sorted(str(p.relative_to(base)) for p in base.glob("*/date=*/*.parquet"))

    def sync_staging(self, ingest_id: str) -> None:
        """fsync every staged file and its folder, so the commit that follows names durable files."""
        for rel in self.staged_files(ingest_id):
            path = self.staging(ingest_id) / rel
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            _fsync_dir(path.parent)

    def publish(self, ingest_id: str) -> list[str]:
        """Move a committed batch's staged files into place (idempotent; resumes after a crash)."""
        base = self.staging(ingest_id)
        moved: list[str] = []
        for rel in self.staged_files(ingest_id):
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(base / rel, target)
            _fsync_dir(target.parent)
            moved.append(rel)
        shutil.rmtree(base, ignore_errors=True)
        return moved

    def pending_publications(self) -> list[str]:
        if not self.staging_root.exists():
            return []
        return sorted(p.name for p in self.staging_root.iterdir() if p.is_dir())

    def remove_published(self, kind: str, ingest_id: str) -> None:
        """Delete a batch's published files (recovery of a batch that never committed)."""
        for path in (self.root / kind).glob(f"date=*/{ingest_id}-*.parquet"):
            path.unlink()
