"""``omnicrm segments``: count a rule, save segments, take snapshots, see who entered and left, export."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register", "snapshot_due"]

segments_app = typer.Typer(help="Segments: rules over tags and behaviour; snapshots and diffs.", no_args_is_help=True)


def _engine(ctx: Context) -> Any:
    from omnicrm.segments.evaluate import SegmentEngine

    return SegmentEngine(ctx.engine, ctx.derived, state=ctx.state)


def _rule(text: str | None, rule: str | None) -> tuple[Any, str | None]:
    if rule is not None:
        try:
            return json.loads(rule), None
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--rule is not JSON: {exc}") from exc
    return None, text


@segments_app.command()
def count(
    text: Annotated[str | None, typer.Argument(help="e.g. 'monetary > 1000 AND NO order SINCE 2026-11-11'")] = None,
    rule: Annotated[str | None, typer.Option(help="The rule as JSON instead of text.")] = None,
) -> None:
    """How many customers a rule selects now."""
    tree, words = _rule(text, rule)
    audience = _engine(Context.load()).audience(tree, words)
    console.print(f"{audience.count:,} of {audience.total_customers:,} customers: {audience.text or audience.rule}")


@segments_app.command()
def save(
    name: str,
    text: Annotated[str | None, typer.Argument(help="The rule as text.")] = None,
    rule: Annotated[str | None, typer.Option(help="The rule as JSON instead of text.")] = None,
    schedule: Annotated[str, typer.Option(help="daily, weekly or manual snapshots.")] = "daily",
) -> None:
    """Save a segment."""
    from omnicrm.segments.saved import create_segment

    ctx = Context.load()
    tree, words = _rule(text, rule)
    segment = create_segment(ctx.state, _engine(ctx), name=name, rule=tree, text=words, schedule=schedule,
                             by=getpass.getuser())  # fmt: skip
    console.print(f"segment {segment.id} saved: {segment.text or segment.rule}")


@segments_app.command("list")
def list_all() -> None:
    """Saved segments with their latest snapshot."""
    from omnicrm.segments.saved import list_segments, snapshots

    ctx = Context.load()
    table = Table("id", "name", "rule", "schedule", "last snapshot", "members")
    for s in list_segments(ctx.state):
        taken = snapshots(ctx.state, s.id)
        last = taken[-1] if taken else {"taken_at": "", "members": ""}
        table.add_row(str(s.id), s.name, s.text or json.dumps(s.rule, ensure_ascii=False), s.schedule,
                      str(last["taken_at"]), str(last["members"]))  # fmt: skip
    console.print(table)


@segments_app.command()
def snapshot(segment_id: int) -> None:
    """Freeze a segment's members now."""
    from omnicrm.segments.saved import take_snapshot

    ctx = Context.load()
    taken = take_snapshot(ctx.state, _engine(ctx), ctx.settings.derived_dir / "segments", segment_id)
    console.print(f"snapshot {taken['id']}: {taken['members']:,} members")


def snapshot_due(ctx: Context) -> list[dict[str, Any]]:
    """Take the snapshots that segments' schedules ask for (run by ``omnicrm refresh``)."""
    from omnicrm.segments.saved import due_segments, take_snapshot

    engine = _engine(ctx)
    due = due_segments(ctx.state, engine.now)
    return [take_snapshot(ctx.state, engine, ctx.settings.derived_dir / "segments", sid) for sid in due]


@segments_app.command()
def diff(segment_id: int, before: int, after: int) -> None:
    """Who entered and who left between two snapshots of a segment."""
    from omnicrm.segments.saved import diff as changes

    result = changes(Context.load().state, before, after)
    for name, table in result.items():
        ids = table["customer_id"].to_pylist()
        console.print(f"{name}: {len(ids):,}  {', '.join(map(str, ids[:20]))}{' …' if len(ids) > 20 else ''}")


@segments_app.command()
def export(
    segment_id: int,
    out: Path,
    tags: Annotated[str, typer.Option(help="Comma-separated tag ids to include.")] = "",
) -> None:
    """Write a segment's current members (and chosen tags) to a CSV file."""
    from omnicrm.segments.saved import export_csv, get_segment

    ctx = Context.load()
    segment = get_segment(ctx.state, segment_id)
    out.write_text(export_csv(_engine(ctx), segment.rule, [t for t in tags.split(",") if t]), encoding="utf-8")
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(segments_app, name="segments")
