"""``omnicrm identity`` and ``omnicrm apikeys``: explain, look up, join and split customers; API keys."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register"]

identity_app = typer.Typer(help="OneID: explain, look up, join and split customers.", no_args_is_help=True)


@identity_app.command()
def explain(
    customer_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each identifier of a customer and the record and rule that joined it."""
    from omnicrm.identity.explain import explain_customer

    ctx = Context.load()
    result = explain_customer(ctx.derived.current("identity"), customer_id)
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2, default=str))
        return
    title = f"customer {result.customer_id}"
    if result.asked_id != result.customer_id:
        title += f" (customer {result.asked_id} was merged into it)"
    table = Table(
        "type", "value", "records", "sources", "joined by", "on", "note", title=title + f", {result.records} records"
    )
    for j in result.identifiers:
        table.add_row(j.id_type, j.value, str(j.n_records), j.sources, j.how, j.record or "", j.note or "")
    console.print(table)


@identity_app.command()
def lookup(
    id_type: Annotated[str, typer.Argument(help="phone, email, member_card, marketplace_nick, wechat_openid …")],
    value: str,
    scope: Annotated[str, typer.Option(help="Scope of scoped types: platform (taobao, jd) or app id.")] = "",
) -> None:
    """Find the customer(s) holding an identifier, given as written anywhere."""
    from omnicrm.identity.explain import lookup as find

    ids = find(Context.load().derived.current("identity"), id_type, value, scope)
    console.print(", ".join(map(str, ids)) if ids else "no customer holds it")


@identity_app.command()
def join(
    customer_a: int,
    customer_b: int,
    reason: Annotated[str, typer.Option(help="Why they are one person (kept with the correction).")],
) -> None:
    """Join two customers; the next refresh merges them and keeps them merged."""
    from omnicrm.identity.links import join_customers

    ctx = Context.load()
    a, b = join_customers(ctx.state, ctx.derived.current("identity"), customer_a, customer_b, reason=reason,
                          by=getpass.getuser())  # fmt: skip
    console.print(f"recorded: {a} and {b} are one person; run `omnicrm refresh` to apply")


@identity_app.command()
def split(
    customer_id: int,
    detach: Annotated[list[str], typer.Option(help="Identifier key to split off (repeatable), as explain shows it.")],
    reason: Annotated[str, typer.Option(help="Why they are not this person (kept with the correction).")],
) -> None:
    """Split identifiers off a customer; later refreshes keep them apart."""
    from omnicrm.identity.links import split_customer

    ctx = Context.load()
    pairs = split_customer(ctx.state, ctx.derived.current("identity"), customer_id, detach, reason=reason,
                           by=getpass.getuser())  # fmt: skip
    for keep, key in pairs:
        console.print(f"recorded: {key} is not the person of {keep}")
    console.print("run `omnicrm refresh` to apply")


apikeys_app = typer.Typer(help="API keys for the REST API.", no_args_is_help=True)


@apikeys_app.command("add")
def apikeys_add(
    name: str,
    scope: Annotated[list[str], typer.Option(help="customers:read, customers:write or admin (repeatable).")],
) -> None:
    """Create an API key and print it (shown only this once)."""
    from omnicrm.access.api_keys import create_api_key

    key = create_api_key(Context.load().state, name, scope)
    console.print(f"API key for {name}: [bold]{key}[/bold]  (send as 'Authorization: Bearer {key[:7]}…')")


@apikeys_app.command("list")
def apikeys_list() -> None:
    """List active API keys."""
    from omnicrm.access.api_keys import list_api_keys

    table = Table("id", "name", "key", "scopes")
    for k in list_api_keys(Context.load().state):
        table.add_row(str(k.id), k.name, k.hint + "…", " ".join(sorted(k.scopes)))
    console.print(table)


@apikeys_app.command("revoke")
def apikeys_revoke(key_id: int) -> None:
    """Revoke an API key at once."""
    from omnicrm.access.api_keys import revoke_api_key

    revoke_api_key(Context.load().state, key_id)
    console.print(f"API key {key_id} revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(identity_app, name="identity")
    app.add_typer(apikeys_app, name="apikeys")
