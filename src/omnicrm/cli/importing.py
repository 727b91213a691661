"""``omnicrm import``: bulk import of exports (placeholder until the importer lands)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the import command to ``app``."""
