"""``omnicrm journeys``: create from a JSON file, list, show, start, stop, and advance (what the server's worker does
each round: enter, exit, queue the due steps)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register"]

journeys_app = typer.Typer(help="Journeys: a trigger enters customers into steps, each a measured campaign.",
                           no_args_is_help=True)  # fmt: skip


@journeys_app.command()
def create(spec: Annotated[Path, typer.Argument(help="JSON file: name, trigger, exit, steps")]) -> None:
    """Create a draft journey with one draft campaign per step; every part is checked now."""
    from omnicrm.campaigns.journeys import create_journey

    try:
        body = json.loads(spec.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"{spec}: {exc}") from exc
    with Context.load().marketing() as system:
        journey = create_journey(system, body, by=getpass.getuser())
    steps = ", ".join(f"day {s.after_days}: campaign {s.campaign_id}" for s in journey.steps)
    console.print(f"journey {journey.id} created (draft): {journey.name} — {steps}")


@journeys_app.command("list")
def list_all(limit: int = 50, offset: int = 0,
             status: Annotated[str | None, typer.Option(help="draft, live or stopped")] = None) -> None:  # fmt: skip
    """Journeys, newest first."""
    from omnicrm.campaigns.journeys import list_journeys

    page, total = list_journeys(Context.load().state, limit=limit, offset=offset, status=status)
    table = Table("id", "name", "status", "trigger", "steps", "evaluated until", title=f"{total} journeys")
    for j in page:
        until = "" if j.evaluated_until is None else j.evaluated_until.isoformat(timespec="seconds")
        table.add_row(str(j.id), j.name, j.status, json.dumps(j.trigger, ensure_ascii=False), str(len(j.steps)), until)
    console.print(table)


@journeys_app.command()
def show(journey_id: int) -> None:
    """A journey with its entries by status and each step's send log."""
    from omnicrm.campaigns.journeys import journey_summary

    console.print_json(data=journey_summary(Context.load().state, journey_id))


@journeys_app.command()
def start(journey_id: int) -> None:
    """Go live: orders from now on enter customers; the steps' campaigns start sending."""
    from omnicrm.campaigns.journeys import start_journey

    with Context.load().marketing() as system:
        journey = start_journey(system, journey_id)
    console.print(f"journey {journey.id} is live")


@journeys_app.command()
def stop(journey_id: int) -> None:
    """Stop for good: nobody enters, active entries exit, queued messages are not sent."""
    from omnicrm.campaigns.journeys import stop_journey

    with Context.load().marketing() as system:
        journey = stop_journey(system, journey_id)
    console.print(f"journey {journey.id} stopped")


@journeys_app.command()
def advance(journey: Annotated[list[int] | None, typer.Option(help="Only this journey (repeatable).")] = None) -> None:
    """Enter, exit and queue the due steps of the live journeys now (the server's worker does this each round);
    ``omnicrm campaigns run`` or the worker then sends what was queued."""
    from omnicrm.campaigns.journey_flow import advance as run

    with Context.load().marketing() as system:
        reports = run(system, journey_ids=journey)
    console.print_json(data={"journeys": [r.as_dict() for r in reports]})


def register(app: typer.Typer) -> None:
    app.add_typer(journeys_app, name="journeys")
