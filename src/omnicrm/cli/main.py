"""The ``omnicrm`` command: one Typer app; each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from omnicrm.errors import OmnicrmError

__all__ = ["app", "main"]

app = typer.Typer(
    name="omnicrm",
    help="omnicrm: one customer across every channel — ingest, OneID, portraits, marketing, loyalty.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from omnicrm.cli import (
        campaigns,
        config,
        consents,
        demo,
        identity,
        importing,
        journeys,
        loyalty,
        refresh,
        segments,
        server,
        sources,
        tags,
        users,
    )

    for module in (
        demo,
        server,
        sources,
        importing,
        refresh,
        identity,
        tags,
        segments,
        consents,
        campaigns,
        journeys,
        loyalty,
        users,
        config,
    ):
        module.register(app)


_register()


def main() -> None:
    """Entry point that renders omnicrm's own errors as one clear message and exit code 2."""
    from omnicrm.cli.context import err_console

    try:
        app()
    except OmnicrmError as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        sys.exit(2)
