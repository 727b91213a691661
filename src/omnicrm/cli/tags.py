"""``omnicrm tags``: the tag catalogue, a customer's tags with reasons, and merchant-defined tags."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register"]

tags_app = typer.Typer(help="Customer tags: catalogue, reasons, rule and manual tags.", no_args_is_help=True)


def _short(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


@tags_app.command("list")
def list_tags(lang: Annotated[str, typer.Option(help="zh or en.")] = "zh") -> None:
    """Every tag: id, name, category, value type and where its values come from."""
    from omnicrm.portrait.refresh import catalogue

    table = Table("id", "name", "category", "type", "origin", "inputs")
    for d in catalogue(Context.load().state):
        table.add_row(d.id, d.name_zh if lang == "zh" else d.name_en, d.category, d.value_type, d.origin,
                      ", ".join(d.inputs))  # fmt: skip
    console.print(table)


@tags_app.command()
def show(
    customer_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    lang: Annotated[str, typer.Option(help="zh or en.")] = "zh",
) -> None:
    """A customer's tags, each with the inputs that produced it and when it was computed."""
    from omnicrm.portrait.explain import customer_tags

    ctx = Context.load()
    result = customer_tags(ctx.derived.current("portrait"), ctx.derived.current("identity"), customer_id, ctx.state)
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2, default=str))
        return
    title = f"customer {result.customer_id}, as of {result.as_of}"
    if result.asked_id != result.customer_id:
        title += f" (customer {result.asked_id} was merged into it)"
    table = Table("tag", "value", "because", title=title)
    for t in result.tags:
        because = t.note or ", ".join(f"{k}={_short(v, 24)}" for k, v in t.inputs.items())
        table.add_row(t.name.get(lang, t.id), _short(t.value), because)
    console.print(table)
    console.print(f"lifecycle: {result.params.get('lifecycle_basis')}")


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{what} is not JSON: {exc}") from exc


@tags_app.command("define-rule")
def define_rule(
    tag_id: str,
    rule: Annotated[str, typer.Option(help='JSON, e.g. {"when": {"tag": "monetary", "op": ">=", "value": 5000}}')],
    name_zh: Annotated[str, typer.Option()],
    name_en: Annotated[str, typer.Option()],
    value_type: Annotated[str, typer.Option(help="bool, category or number.")] = "bool",
) -> None:
    """Define a tag computed from other tags by a rule (evaluated at every refresh)."""
    from omnicrm.portrait.refresh import catalogue, known_types
    from omnicrm.portrait.tags.custom import define_rule_tag

    ctx = Context.load()
    known = known_types(catalogue(ctx.state))
    d = define_rule_tag(ctx.state, known, tag_id=tag_id, name_zh=name_zh, name_en=name_en, value_type=value_type,
                        rule=_json_arg(rule, "--rule"), by=getpass.getuser())  # fmt: skip
    console.print(f"tag {d.id} defined from {', '.join(d.inputs)}; run `omnicrm refresh --only portrait` to compute it")


@tags_app.command("define-manual")
def define_manual(
    tag_id: str,
    name_zh: Annotated[str, typer.Option()],
    name_en: Annotated[str, typer.Option()],
    value_type: Annotated[str, typer.Option(help="bool, category, number or list.")] = "bool",
) -> None:
    """Define a tag whose values staff set by hand or by import."""
    from omnicrm.portrait.refresh import catalogue, known_types
    from omnicrm.portrait.tags.custom import define_manual_tag

    ctx = Context.load()
    d = define_manual_tag(ctx.state, known_types(catalogue(ctx.state)), tag_id=tag_id, name_zh=name_zh,
                          name_en=name_en, value_type=value_type, by=getpass.getuser())  # fmt: skip
    console.print(f"manual tag {d.id} defined")


@tags_app.command("set")
def set_value(
    customer_id: int,
    tag_id: str,
    value: Annotated[str, typer.Argument(help='JSON value: true, 3, "VIP", ["a", "b"].')],
    note: Annotated[str | None, typer.Option(help="Why (kept with the value).")] = None,
) -> None:
    """Set a manual tag on a customer."""
    from omnicrm.portrait.tags.custom import set_manual

    set_manual(Context.load().state, customer_id, tag_id, _json_arg(value, "value"), by=getpass.getuser(), note=note)
    console.print(f"customer {customer_id}: {tag_id} = {value}")


@tags_app.command("clear")
def clear_value(customer_id: int, tag_id: str) -> None:
    """Remove a manual tag from a customer."""
    from omnicrm.portrait.tags.custom import clear_manual

    done = clear_manual(Context.load().state, customer_id, tag_id)
    console.print("cleared" if done else f"customer {customer_id} had no value of {tag_id}")


@tags_app.command("import")
def import_values(tag_id: str, path: Path) -> None:
    """Set a manual tag from a CSV (customer_id, value[, note]); all rows or none."""
    from omnicrm.portrait.tags.custom import import_manual

    n = import_manual(Context.load().state, path, tag_id, by=getpass.getuser())
    console.print(f"{n:,} customers tagged {tag_id}")


@tags_app.command("delete")
def delete(tag_id: str) -> None:
    """Delete a rule or manual tag (its values stay in earlier snapshots)."""
    from omnicrm.portrait.tags.custom import delete_tag

    delete_tag(Context.load().state, tag_id)
    console.print(f"tag {tag_id} deleted")


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="tags")
