"""A small demo merchant with OneID and the portrait refreshed, and a client of the API over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from omnicrm.api.app import create_app
from omnicrm.customers.timeline import refresh_timeline
from omnicrm.demo import load_demo
from omnicrm.identity.refresh import refresh_identity
from omnicrm.portrait.refresh import refresh_portrait
from omnicrm.settings import load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore


def demo_merchant(root: Path, people: int, seed: int) -> Path:
    settings = load_settings(data_dir=root, loader_interval_seconds=0)
    state = StateStore(settings.state_database_url)
    facts = FactsStore(settings.facts_dir)
    load_demo(state, facts, data_dir=root, people=people, seed=seed, progress=False, say=lambda _: None)
    derived = DerivedStore(settings.derived_dir)
    refresh_identity(state, Engine(facts), derived)
    refresh_portrait(state, Engine(facts), derived)
    refresh_timeline(Engine(facts), derived)
    state.dispose()
    return root


@pytest.fixture
def client_of() -> Callable[[Path], Iterator[TestClient]]:
    def make(root: Path) -> Iterator[TestClient]:
        with TestClient(create_app(load_settings(data_dir=root, loader_interval_seconds=0))) as c:
            yield c

    return make
