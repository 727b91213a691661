"""Writing the exports: CSV through DuckDB's COPY (header as is, quoting only where needed), JSON lines
straight from Arrow string buffers, Parquet for the ground truth, and the manifest."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from omnicrm.simulate.vec import StrArray


def write_csv(table: pa.Table, path: Path) -> int:
    """UTF-8 CSV with a header row; nulls are written as empty fields. Returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET preserve_insertion_order = true")
        con.register("export_table", table)
        target = str(path).replace("'", "''")
        con.execute(f"COPY export_table TO '{target}' (FORMAT CSV, HEADER, DELIMITER ',')")
    finally:
        con.close()
    return int(table.num_rows)


def write_lines(chunks: Iterable[StrArray], path: Path) -> int:
    """Write pre-rendered lines (each already ending with a newline). Returns the line count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with path.open("wb") as fh:
        for chunk in chunks:
            arr = chunk.combine_chunks() if isinstance(chunk, pa.ChunkedArray) else chunk
            if len(arr) == 0:
                continue
            if arr.null_count:
                raise ValueError("a rendered line is null")
            width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
            offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
            fh.write(memoryview(arr.buffers()[2])[int(offsets[0]) : int(offsets[-1])])
            rows += len(arr)
    return rows


def write_parquet(table: pa.Table, path: Path) -> int:
    """Parquet (zstd) for ground truth tables. Returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return int(table.num_rows)


def write_manifest(path: Path, content: dict[str, Any]) -> None:
    """Deterministic JSON (no timestamps) so the same seed gives the same bytes."""
    path.write_text(json.dumps(content, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
