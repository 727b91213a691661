"""``omnicrm refresh``: bring derived data up to date with the facts — OneID first, then the portrait."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from omnicrm.cli.context import Context, console

__all__ = ["register"]

STEPS = ("identity", "portrait", "timeline")


def refresh(
    full: Annotated[bool, typer.Option(help="Re-extract every fact and refit the models instead of reusing.")] = False,
    only: Annotated[str | None, typer.Option(help="Run one step: identity, portrait or timeline.")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Portrait as of this moment (ISO date or time, UTC); default now.")
    ] = None,
    loyalty: Annotated[
        bool, typer.Option(help="Then the daily loyalty jobs: award orders, activate, expire, review tiers.")
    ] = False,
) -> None:
    """Bring derived data (OneID, then every customer's tags and timeline) up to date with the facts."""
    if only is not None and only not in STEPS:
        raise typer.BadParameter(f"--only must be one of {', '.join(STEPS)}", param_hint="--only")
    moment = _as_of(as_of)
    ctx = Context.load()
    if only in (None, "identity"):
        _identity(ctx, full)
    if only in (None, "portrait"):
        _portrait(ctx, full, moment)
        from omnicrm.cli.segments import snapshot_due

        for taken in snapshot_due(ctx):
            console.print(f"segment {taken['segment_id']}: snapshot {taken['id']}, {taken['members']:,} members")
    if only in (None, "timeline"):
        _timeline(ctx)
    if loyalty:
        from omnicrm.cli.loyalty import run_daily

        run_daily(ctx, moment)


def _as_of(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO date or time", param_hint="--as-of") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _identity(ctx: Context, full: bool) -> None:
    from omnicrm.identity.refresh import refresh_identity

    with console.status("OneID…") as status:
        result = refresh_identity(ctx.state, ctx.engine, ctx.derived, full=full, say=status.update)
    console.print(
        f"OneID: {result.customers:,} customers from {result.records:,} records "
        f"({result.new_batches} new fact batches, {result.redirects} merged ids redirect) in {result.seconds:.1f}s"
    )
    for what, n in result.ignored.items():
        console.print(f"  ignored {n:,} identifiers — {what}")
    for stage, n in result.refused_keys.items():
        if n:
            console.print(f"  {n:,} {stage} identifiers shared by different people were not used to merge")


def _portrait(ctx: Context, full: bool, as_of: dt.datetime | None) -> None:
    from omnicrm.portrait.refresh import refresh_portrait

    with console.status("portrait…") as status:
        result = refresh_portrait(ctx.state, ctx.engine, ctx.derived, as_of=as_of, full=full, say=status.update)
    value = result.stats.get("value", {})
    fitted = "reused" if value.get("reused") else ("fitted" if value.get("params") else "skipped")
    console.print(
        f"portrait: {result.tags} tags for {result.customers:,} customers in {result.seconds:.1f}s "
        f"(value models {fitted}; lifecycle {result.stats['lifecycle_basis']})"
    )
    if value.get("skipped"):
        console.print(f"  value tags are empty: {value['skipped']}")


def _timeline(ctx: Context) -> None:
    from omnicrm.customers.timeline import refresh_timeline

    with console.status("timeline…") as status:
        result = refresh_timeline(ctx.engine, ctx.derived, say=status.update)
    console.print(f"timeline: {result.rows:,} rows for {result.customers:,} customers in {result.seconds:.1f}s")


def register(app: typer.Typer) -> None:
    app.command()(refresh)
