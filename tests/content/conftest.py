"""The app over a fresh state store (SQLite and PostgreSQL) with a public address and a secret of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from omnicrm.api.app import create_app
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore

PUBLIC, SECRET = "https://crm.shop.example", "a-long-test-secret-for-content-links"


@pytest.fixture
def client(state: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("OMNICRM_CONFIG", str(tmp_path / "none.toml"))
    settings = load_settings(data_dir=tmp_path / "data", state_url=state.url, loader_interval_seconds=0,
                             campaign_interval_seconds=0, public_url=PUBLIC, secret_key=SECRET)  # fmt: skip
    with TestClient(create_app(settings), base_url=PUBLIC) as c:
        yield c
