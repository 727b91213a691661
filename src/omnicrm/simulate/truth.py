"""Ground truth for accuracy tests: which person is behind every identifier value written to a file."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnicrm.simulate.identities import NOTES
from omnicrm.simulate.vec import StrArray, pick

_SCHEMA = pa.schema(
    {"person_id": pa.int64(), "source_file": pa.string(), "id_type": pa.string(), "value": pa.string(),
     "note": pa.string(), "shared_by": pa.int64()}
)  # fmt: skip


def _const(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int64)))


class IdentifierTruth:
    """Collects (person, file, id type, value as written, quality note) rows and deduplicates them.

    `note` is clean / formatted / placeholder / typo; `shared_by` counts the people behind the same
    (id_type, value) across all files, so family phones and placeholders are easy to spot.
    """

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []

    def add(
        self,
        source_file: str,
        id_type: str,
        person: np.ndarray,
        value: StrArray,
        note: np.ndarray | None = None,
    ) -> None:
        """Record identifiers; null or empty values are skipped."""
        valid = pc.and_(pc.is_valid(value), pc.not_equal(pc.fill_null(value, ""), ""))
        notes = np.zeros(len(person), dtype=np.int8) if note is None else np.asarray(note, dtype=np.int8)
        table = pa.table(
            {
                "person_id": pa.array(np.asarray(person, dtype=np.int64)),
                "value": value,
                "note": pa.array(notes),
            }
        ).filter(valid)
        table = table.group_by(["person_id", "value"], use_threads=False).aggregate([("note", "max")])
        k = table.num_rows
        self._parts.append(
            pa.table(
                {
                    "person_id": table.column("person_id"),
                    "source_file": _const(source_file, k),
                    "id_type": _const(id_type, k),
                    "value": table.column("value"),
                    "note": table.column("note_max"),
                }
            )
        )

    def table(self) -> pa.Table:
        """All identifiers, distinct and in a deterministic order."""
        if not self._parts:
            return _SCHEMA.empty_table()
        t = pa.concat_tables(self._parts)
        keys = ["person_id", "source_file", "id_type", "value"]
        t = t.sort_by([(k, "ascending") for k in keys])
        people = t.group_by(["id_type", "value", "person_id"], use_threads=False).aggregate([])
        shared = people.group_by(["id_type", "value"], use_threads=False).aggregate([("person_id", "count")])
        t = t.join(shared, keys=["id_type", "value"], use_threads=False).sort_by([(k, "ascending") for k in keys])
        note = pick(NOTES, np.asarray(t.column("note").to_numpy(), dtype=np.int64))
        return pa.table(
            {
                "person_id": t.column("person_id"),
                "source_file": t.column("source_file"),
                "id_type": t.column("id_type"),
                "value": t.column("value"),
                "note": note,
                "shared_by": t.column("person_id_count"),
            },
            schema=_SCHEMA,
        )
