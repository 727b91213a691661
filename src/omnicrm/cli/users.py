"""``omnicrm users``: console users and their roles (admin, marketer, service_agent, store_clerk)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from omnicrm.cli.context import Context, console

__all__ = ["register"]

users_app = typer.Typer(help="Console users and their roles.", no_args_is_help=True)


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Log-in name: lower-case letters, digits, '.', '_' or '-'.")],
    role: Annotated[str, typer.Option(help="admin, marketer, service_agent or store_clerk.")],
    name: Annotated[str, typer.Option(help="Name shown in the console.")] = "",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 10 characters.")
    ] = "",
) -> None:
    """Add a console user (the password is stored only as a scrypt hash)."""
    from omnicrm.access.users import create_user

    user = create_user(Context.load().state, username, password, role, display_name=name)
    console.print(f"added {user.username} ({user.role})")


@users_app.command("list")
def list_() -> None:
    """Active console users and what their roles may do."""
    from omnicrm.access.users import ROLES, list_users

    table = Table("user", "name", "role", "may")
    for user in list_users(Context.load().state):
        table.add_row(user.username, user.display_name, user.role, ", ".join(sorted(ROLES[user.role])))
    console.print(table)


@users_app.command("passwd")
def passwd(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Set a user's password."""
    from omnicrm.access.users import set_password

    set_password(Context.load().state, username, password)
    console.print(f"password of {username} changed")


@users_app.command("disable")
def disable(username: str) -> None:
    """Stop a user from logging in (their open sessions end at once)."""
    from omnicrm.access.users import disable_user

    disable_user(Context.load().state, username)
    console.print(f"{username} can no longer log in")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
