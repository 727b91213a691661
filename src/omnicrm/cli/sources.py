"""``omnicrm sources``: the channels that send data, each with its write key."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from omnicrm.cli.context import Context, console
from omnicrm.ingest.sources import KINDS, USER_ID_TYPES, create_source, list_sources, rotate_key

__all__ = ["register"]

sources_app = typer.Typer(help="Sources (channels) and their write keys.", no_args_is_help=True)


@sources_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Channel id, e.g. tmall, jd, pos-store-3, wechat-oa, web.")],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(KINDS)}.")] = "other",
    write_key: Annotated[str | None, typer.Option(help="Use this write key instead of a random one.")] = None,
    user_id_type: Annotated[
        str | None, typer.Option(help=f"What this source's userId is, if not its own id: {', '.join(USER_ID_TYPES)}.")
    ] = None,
) -> None:
    """Create a source and print its write key (shown only this once)."""
    key = create_source(Context.load().state, name, kind, write_key, user_id_type=user_id_type)
    console.print(f"source [bold]{name}[/bold] ({kind}) created; write key: [bold]{key}[/bold]")
    console.print("Send it as the HTTP Basic user name, or as writeKey in the body, to /v1/*.")


@sources_app.command("list")
def list_() -> None:
    """List sources with the first characters of their write keys."""
    table = Table("name", "kind", "write key", "userId is", "disabled")
    for src in list_sources(Context.load().state):
        table.add_row(
            src.name,
            src.kind,
            src.write_key_hint + "…",
            src.user_id_type or "its own id",
            "yes" if src.disabled else "",
        )
    console.print(table)


@sources_app.command("rotate")
def rotate(name: str) -> None:
    """Replace a source's write key; the old one stops working at once."""
    key = rotate_key(Context.load().state, name)
    console.print(f"new write key for [bold]{name}[/bold]: [bold]{key}[/bold]")


def register(app: typer.Typer) -> None:
    app.add_typer(sources_app, name="sources")
