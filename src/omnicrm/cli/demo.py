"""``omnicrm demo`` and ``omnicrm simulate``: the demo merchant, generated and served."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register"]


def simulate_command(
    out: Annotated[Path, typer.Option(help="Folder to write the exports and the ground truth into.")],
    people: Annotated[int, typer.Option(min=10, help="How many people the merchant has met.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Same seed, same files, byte for byte.")] = 1,
) -> None:
    """Write a simulated fashion brand's exports (Tmall, JD, POS, WeChat, web, service) and ground truth."""
    from omnicrm.simulate import simulate

    started = time.perf_counter()
    summary = simulate(out, people=people, seed=seed, progress=True)
    console.print(f"wrote {out} in {time.perf_counter() - started:.1f}s")
    console.print(summary)


def demo(
    people: Annotated[int, typer.Option(min=10, help="Size of the demo merchant.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = 1,
    serve: Annotated[bool, typer.Option(help="Serve the API afterwards.")] = True,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.port).")] = None,
) -> None:
    """Simulate the demo merchant, import it, load it, and serve it at http://127.0.0.1:8000."""
    from omnicrm.demo import DEMO_SOURCES, DEMO_USERS, demo_users, demo_write_key, load_demo, refresh_demo

    ctx = Context.load()
    started = time.perf_counter()
    result = load_demo(
        ctx.state, ctx.facts, data_dir=ctx.settings.data_dir, people=people, seed=seed, say=console.print
    )
    table = Table("file", "source", "rows", "accepted", "quarantined", "note", title="demo merchant imports")
    for file_name, summary in result.imports:
        table.add_row(
            file_name,
            summary.source,
            f"{summary.rows_total:,}",
            f"{summary.rows_accepted:,}",
            f"{summary.rows_quarantined:,}",
            "already imported" if summary.status == "already_imported" else "",
        )
    console.print(table)
    skipped = sum(summary.status == "already_imported" for _, summary in result.imports)
    if skipped:
        console.print(f"{skipped} of {len(result.imports)} exports were already imported")
    with console.status("refreshing derived data…") as status:
        console.print(refresh_demo(ctx.state, ctx.facts, ctx.derived, say=status.update))
    console.print(f"ready in {time.perf_counter() - started:.0f}s; data in {ctx.settings.data_dir.resolve()}")
    logins = demo_users(ctx.state, ctx.settings.data_dir)
    if not serve:
        return
    host, port = ctx.settings.host, port or ctx.settings.port
    base = f"http://{host}:{port}"
    console.print(f"\n[bold]open[/bold] {base}/console/  (the console)   ·   {base}/docs  (the API)")
    for name, password in logins.items():
        console.print(f"  log in as {name} / {password}  ({DEMO_USERS[name]})")
    console.print("send events with any Segment/RudderStack SDK, for example:")
    console.print(
        f"  curl -u {demo_write_key('web')}: -H 'Content-Type: application/json' "
        f"""-d '{{"userId":"M10000001","event":"Products Searched","properties":{{"query":"碎花连衣裙"}}}}' """
        f"{base}/v1/track",
        soft_wrap=True,
    )
    console.print("demo write keys: " + ", ".join(f"{name}={demo_write_key(name)}" for name, _ in DEMO_SOURCES))
    import uvicorn

    from omnicrm.api.app import create_app

    uvicorn.run(create_app(ctx.settings), host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
    app.command()(demo)
