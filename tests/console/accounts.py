"""Console users of every role over the shared console merchant, and clients logged in as them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from omnicrm.access.users import ROLES, create_user, list_users
from omnicrm.api.app import create_app
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore

PASSWORD = "correct horse battery"
ROLE_USERS = {role: role.replace("_", "-") for role in ROLES}  # admin, marketer, service-agent, store-clerk


def add_role_users(data_dir: Path) -> None:
    """One user per role in a merchant's state store (those missing)."""
    state = StateStore(load_settings(data_dir=data_dir, loader_interval_seconds=0).state_database_url)
    existing = {u.username for u in list_users(state)}
    for role, name in ROLE_USERS.items():
        if name not in existing:
            create_user(state, name, PASSWORD, role, display_name=f"{role} user")
    state.dispose()


@pytest.fixture(scope="session")
def console_users(console_data: Path) -> dict[str, str]:
    """One user per role (user name by role) in the console merchant's state store."""
    add_role_users(console_data)
    return ROLE_USERS


@pytest.fixture(scope="session")
def console_app(console_data: Path, console_users: dict[str, str]) -> Iterator[TestClient]:
    """The app over the console merchant (one per run; clients share it, each with its own cookies)."""
    with TestClient(create_app(load_settings(data_dir=console_data, loader_interval_seconds=0))) as client:
        yield client


def fresh_client(app_client: TestClient) -> TestClient:
    """A client with its own cookie jar over the same app (HTTPS, so Secure cookies travel)."""
    return TestClient(app_client.app, base_url="https://testserver")


def login_token(client: TestClient, path: str = "/console/login") -> str:
    """The double-submit token of a fresh log-in form (its cookie lands in ``client``)."""
    form = client.get(path)
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text
    return token.group(1)


def log_in(client: TestClient, username: str, password: str = PASSWORD) -> TestClient:
    res = client.post(
        "/console/login",
        data={"username": username, "password": password, "login_token": login_token(client)},
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text
    return client


def csrf_of(client: TestClient, path: str = "/console/customers") -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


@pytest.fixture(scope="session")
def as_role(console_app: TestClient, console_users: dict[str, str]) -> Callable[[str], TestClient]:
    """``as_role("marketer")``: a client logged in as that role's user (cached per role)."""
    clients: dict[str, TestClient] = {}

    def make(role: str) -> TestClient:
        if role not in clients:
            clients[role] = log_in(fresh_client(console_app), console_users[role])
        return clients[role]

    return make


def english_client(app_client: TestClient, role: str, cache: dict[str, TestClient]) -> TestClient:
    """A client logged in as the role's demo user (``service_agent`` is ``service-agent``), reading the pages in
    English; cached in ``cache`` per role."""
    if role not in cache:
        client = log_in(fresh_client(app_client), role.replace("_", "-"))
        client.get("/console/lang/en?next=/console/")
        cache[role] = client
    return cache[role]


def log_in_page(page: Page, username: str) -> None:
    """Log in through the browser and land on the dashboard."""
    page.goto("/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    expect(page.locator("h1")).to_have_text("Dashboard")
