"""``omnicrm import`` (bulk import of exports) and ``omnicrm quarantine list`` (rows that were set aside)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from omnicrm.errors import InputError
from omnicrm.ingest.importer import ImportSummary, import_file
from omnicrm.ingest.mapping import FACT_KIND
from omnicrm.store.schema import quarantine as quarantine_table

__all__ = ["register", "render_summary"]


class Kind(StrEnum):
    """What a file holds (and so which facts it becomes)."""

    orders = "orders"
    customers = "customers"
    events = "events"
    messages = "messages"


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param '{pair}' must look like NAME=VALUE (e.g. appid=wx1234567890)")
        params[key.strip()] = value
    return params


def render_summary(summary: ImportSummary, console: Console, *, show: int = 5) -> None:
    """Print what an import did: rows read, accepted, quarantined (grouped reasons), time, rows/s."""

    def say(text: str, *, plain: bool = False) -> None:
        console.print(text, soft_wrap=True, markup=not plain, highlight=not plain)

    if summary.status == "already_imported":
        when = f" on {summary.imported_at:%Y-%m-%d %H:%M}" if summary.imported_at else ""
        say(
            f"[yellow]{summary.file} was already imported{when}[/yellow] as import #{summary.import_id} "
            f"({summary.rows_accepted:,} rows accepted, {summary.rows_quarantined:,} quarantined); nothing to do."
        )
        return
    facts_kind = FACT_KIND[summary.kind].replace("_", " ")
    say(
        f"[green]imported[/green] {summary.file} from {summary.source} with mapping {summary.mapping} "
        f"(import #{summary.import_id}, {summary.ingest_id})"
    )
    say(
        f"  rows read {summary.rows_total:,} · accepted {summary.rows_accepted:,} {facts_kind} facts · "
        f"quarantined {summary.rows_quarantined:,} · {summary.seconds:.2f} s · {summary.rows_per_second:,.0f} rows/s"
    )
    if summary.problems:
        say("  problems (field: reason — rows):")
        for group in summary.problems[:show]:
            where = group.field or "row"
            say(f"    {where}: {group.example} — {group.count:,}", plain=True)
        if len(summary.problems) > show:
            say(f"    ... and {len(summary.problems) - show} more kinds of problem")
        say(f"  see them with: omnicrm quarantine list --source {summary.source} --import {summary.import_id}")
    if not summary.exact_lines:
        say("  [yellow]note:[/yellow] line numbers are approximate (the file has irregular line breaks)")


def register(app: typer.Typer) -> None:
    """Add ``import`` and the ``quarantine`` group to ``app``."""

    @app.command("import")
    def import_command(
        source: Annotated[str, typer.Argument(help="Channel the file comes from, e.g. tmall, jd, pos, wechat.")],
        file: Annotated[Path, typer.Argument(help="The export: CSV, JSON lines, Parquet or whitespace-aligned text.")],
        kind: Annotated[Kind, typer.Option("--kind", "-k", help="What the file holds.", case_sensitive=False)],
        mapping: Annotated[
            str | None,
            typer.Option(
                "--mapping",
                "-m",
                help="Shipped mapping name (tmall_orders, jd_orders, pos_sales, members, wechat_followers, cdnow, "
                "febrl, segment_events, messages) or a .toml path; defaults by source name when obvious.",
            ),
        ] = None,
        encoding: Annotated[
            str | None, typer.Option("--encoding", "-e", help="Text encoding if not UTF-8, e.g. gbk, gb18030, utf-16.")
        ] = None,
        param: Annotated[
            list[str] | None, typer.Option("--param", "-p", help="Mapping parameter NAME=VALUE, e.g. appid=wx123.")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    ) -> None:
        """Import an export file into facts; bad rows go to the quarantine (exit 0), whole-file errors exit 2."""
        from omnicrm.cli.context import Context, console, err_console

        ctx = Context.load()
        summary = import_file(
            ctx.state,
            ctx.facts,
            source=source,
            path=file,
            kind=kind.value,
            mapping=mapping,
            encoding=encoding,
            params=_params(param or []),
            progress=not quiet,
            console=err_console,
        )
        render_summary(summary, console)

    quarantine_app = typer.Typer(help="Rows set aside by imports and ingest, with the reason for each.")
    app.add_typer(quarantine_app, name="quarantine")

    @quarantine_app.command("list")
    def quarantine_list(
        source: Annotated[str | None, typer.Option("--source", "-s", help="Only this source.")] = None,
        import_id: Annotated[int | None, typer.Option("--import", help="Only rows of this import.")] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many rows.")] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    ) -> None:
        """Show quarantined rows, newest first: file and line, field, reason and the raw row."""
        from omnicrm.cli.context import Context, console

        ctx = Context.load()
        q = quarantine_table
        stmt = select(q.c.id, q.c.source, q.c.ref, q.c.file, q.c.line, q.c.field, q.c.reason, q.c.raw)
        if source is not None:
            stmt = stmt.where(q.c.source == source)
        if import_id is not None:
            stmt = stmt.where(q.c.origin == "import", q.c.ref == str(import_id))
        with ctx.state.connect() as conn:
            rows = conn.execute(stmt.order_by(q.c.id.desc()).limit(limit)).all()
        if as_json:
            for row in rows:
                typer.echo(json.dumps(dict(row._mapping), ensure_ascii=False, default=str))
            return
        if not rows:
            console.print("no quarantined rows" + (f" for source {source}" if source else ""))
            return
        table = Table()
        for name in ("id", "source", "ref", "file:line", "field"):
            table.add_column(name, no_wrap=True)
        table.add_column("reason", min_width=24)
        table.add_column("raw", max_width=32, no_wrap=True, overflow="ellipsis")
        for row in rows:
            raw = (row.raw or "")[:200]
            table.add_row(
                str(row.id), row.source or "", row.ref or "", f"{row.file or ''}:{row.line or ''}",
                row.field or "", row.reason, raw,
            )  # fmt: skip
        console.print(table)
