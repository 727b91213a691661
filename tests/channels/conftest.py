"""Fixtures of the channel tests: a recording gateway and a recorder of retry delays."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.channels.gateways import Gateway


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway() as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    """Delays the retry policy asked for; the test's channels sleep by appending here."""
    return []
