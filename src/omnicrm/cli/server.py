"""``omnicrm serve``, ``omnicrm load`` and ``omnicrm status``: run the API and move events into facts."""

from __future__ import annotations

from typing import Annotated

import typer

from omnicrm.cli.context import Context, console

__all__ = ["register"]


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: settings.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.port).")] = None,
    workers: Annotated[int, typer.Option(help="Server processes; one per core suits ingest-heavy use.")] = 1,
) -> None:
    """Serve the REST API and Segment-compatible ingest (with the loader running in the background)."""
    import uvicorn

    ctx = Context.load()
    uvicorn.run(
        "omnicrm.api.app:create_app",
        factory=True,
        host=host or ctx.settings.host,
        port=port or ctx.settings.port,
        workers=workers,
        log_level="warning",
    )


def load() -> None:
    """Move buffered events into Parquet facts now (the server also does this every few seconds)."""
    from omnicrm.ingest.loader import load as run_load

    ctx = Context.load()
    with console.status("loading buffered events into facts…"):
        result = run_load(ctx.state, ctx.facts, batch_size=ctx.settings.loader_batch_size)
    console.print(
        f"loaded {result.events:,} events in {result.batches} batch(es)"
        + (f"; repaired {result.recovered} interrupted batch(es)" if result.recovered else "")
    )


def status() -> None:
    """Show where data lives and how much of it there is."""
    from omnicrm.ingest.buffer import buffered_count
    from omnicrm.store.facts import KINDS

    ctx = Context.load()
    console.print(f"data dir:       {ctx.settings.data_dir.resolve()}")
    console.print(f"state database: {ctx.state.engine.url.render_as_string(hide_password=True)}")
    console.print(f"buffered:       {buffered_count(ctx.state):,} events waiting for the loader")
    for kind in KINDS:
        console.print(f"facts/{kind:<11} {len(ctx.facts.files(kind)):,} files")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(load)
    app.command()(status)
