"""The derived store: recomputable results as Parquet snapshots, switched atomically.

Each area (``identity``, later ``portrait`` ...) keeps numbered snapshot folders and a ``CURRENT``
file naming the one in force. A refresh writes a whole new snapshot, then replaces ``CURRENT`` with
one rename; readers (the server) resolve ``CURRENT`` per query, so they keep answering from the old
snapshot until the switch and pick up the new one without a restart. Nothing here is edited in
place: to change it, change facts or rules and refresh.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["CUSTOMER_ROW_GROUP", "DerivedStore"]

KEEP = 3
# Rows per Parquet row group of tables written sorted by customer (tags, reasons, identity records, timeline):
# small enough that one customer's look-up reads one or two row groups, large enough for fast full scans.
CUSTOMER_ROW_GROUP = 16_384


class DerivedStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def area(self, name: str) -> Path:
        return self.root / name

    def current(self, area: str) -> Path | None:
        """The snapshot in force, or None before the first refresh."""
        pointer = self.area(area) / "CURRENT"
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        path = self.area(area) / "snapshots" / name
        return path if path.is_dir() else None

    def new_snapshot(self, area: str) -> Path:
        """A fresh, empty snapshot folder (not in force until ``publish``)."""
        snapshots = self.area(area) / "snapshots"
        snapshots.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name) for p in snapshots.iterdir() if p.name.isdigit()]
        path = snapshots / f"{max(numbers, default=0) + 1:06d}"
        path.mkdir()
        return path

    def publish(self, area: str, snapshot: Path) -> None:
        """Put ``snapshot`` in force with one atomic rename; keep the last few for readers in flight."""
        for f in snapshot.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        pointer = self.area(area) / "CURRENT"
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(snapshot.name + "\n", encoding="utf-8")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, pointer)
        snapshots = sorted((p for p in (self.area(area) / "snapshots").iterdir() if p.name.isdigit()), reverse=True)
        for old in snapshots[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)

    def cache(self, area: str, name: str) -> Path:
        """A folder of per-batch intermediate files that survives snapshots (e.g. extracted occurrences)."""
        path = self.area(area) / name
        path.mkdir(parents=True, exist_ok=True)
        return path
