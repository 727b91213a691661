"""``omnicrm campaigns``: create from a JSON file, launch, send (resuming after a crash), cancel, inspect."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register"]

campaigns_app = typer.Typer(help="Campaigns: segment → consent, caps, holdout → channel → measured uplift.",
                            no_args_is_help=True)  # fmt: skip


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console)  # fmt: skip


@campaigns_app.command()
def create(spec: Annotated[Path, typer.Argument(help="JSON file: name, segment_id, channel, content, ...")]) -> None:
    """Create a draft campaign; its templates, channel and segment are checked now."""
    from omnicrm.campaigns.definition import create_campaign

    ctx = Context.load()
    try:
        body = json.loads(spec.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"{spec}: {exc}") from exc
    with ctx.marketing() as system:
        campaign = create_campaign(ctx.state, system.channels, ctx.settings, body, by=getpass.getuser())
    console.print(f"campaign {campaign.id} created (draft): {campaign.name}")


@campaigns_app.command("list")
def list_all(limit: int = 50, offset: int = 0) -> None:
    """Campaigns, newest first."""
    from omnicrm.campaigns.definition import list_campaigns

    page, total = list_campaigns(Context.load().state, limit=limit, offset=offset)
    table = Table("id", "name", "status", "channel", "segment", "launched", title=f"{total} campaigns")
    for c in page:
        table.add_row(str(c.id), c.name, c.status, c.channel, str(c.segment_id),
                      "" if c.launched_at is None else c.launched_at.isoformat(timespec="seconds"))  # fmt: skip
    console.print(table)


@campaigns_app.command()
def launch(campaign_id: int) -> None:
    """Freeze the audience and draw the holdout (or schedule, if its send time is ahead)."""
    from omnicrm.campaigns.launch import launch as start

    ctx = Context.load()
    with ctx.marketing() as system, _progress() as progress:
        result = start(system, campaign_id, progress=progress)
    console.print_json(data=result)


@campaigns_app.command()
def run(
    campaign_id: int,
    wait: Annotated[bool, typer.Option(help="Wait out quiet hours, quotas and retry delays until done.")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Sends in flight at once.")] = 4,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Recipients claimed per round.")] = 200,
    lease_seconds: Annotated[
        float, typer.Option(help="Seconds after which a silent runner's campaign is taken over.")
    ] = 60.0,
) -> None:
    """Send a launched campaign; after a crash, run it again: it settles the sends left in doubt and goes on."""
    from omnicrm.campaigns.sender import run_campaign

    ctx = Context.load()
    with ctx.marketing() as system, _progress() as progress:
        report = run_campaign(system, campaign_id, workers=workers, batch=batch, lease_seconds=lease_seconds,
                              wait=wait, progress=progress)  # fmt: skip
    console.print_json(data=report.as_dict())


@campaigns_app.command()
def cancel(campaign_id: int) -> None:
    """Stop a campaign; what was sent stays in the log and is measured."""
    from omnicrm.campaigns.definition import cancel_campaign

    console.print(f"campaign {cancel_campaign(Context.load().state, campaign_id).id} cancelled")


@campaigns_app.command()
def show(campaign_id: int) -> None:
    """A campaign's settings and its send log by arm and status."""
    from omnicrm.campaigns.definition import get_campaign
    from omnicrm.campaigns.log import log_summary

    ctx = Context.load()
    console.print_json(data={**get_campaign(ctx.state, campaign_id).as_dict(),
                             "log": log_summary(ctx.state, campaign_id)})  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(campaigns_app, name="campaigns")
