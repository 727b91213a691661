"""Shared fixtures: a state store on SQLite and on a real PostgreSQL, a facts folder, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from omnicrm.settings import Settings, load_settings
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore
from tests.mail import smtp  # noqa: F401 - the real SMTP server fixture, for every test

PG_URL = os.environ.get("OMNICRM_TEST_PG_URL")


def _fresh_pg_database() -> tuple[str, str]:
    """Create an empty database on the test cluster; return its URL and name."""
    assert PG_URL
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False), name


def _drop_pg_database(name: str) -> None:
    assert PG_URL
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty state database URL: SQLite in tmp, and PostgreSQL on the test cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("OMNICRM_TEST_PG_URL is not set in CI; `make test` starts PostgreSQL with scripts/postgres.sh")
        pytest.skip("no PostgreSQL: run through `make test`, or set OMNICRM_TEST_PG_URL")
    url, name = _fresh_pg_database()
    yield url
    _drop_pg_database(name)


@pytest.fixture
def state(state_url: str) -> Iterator[StateStore]:
    store = StateStore(state_url)
    yield store
    store.dispose()


@pytest.fixture
def sqlite_state(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.dispose()


@pytest.fixture
def facts(tmp_path: Path) -> FactsStore:
    return FactsStore(tmp_path / "facts")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at tmp_path, also exported as OMNICRM_* for code that reads the environment."""
    monkeypatch.setenv("OMNICRM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMNICRM_LOADER_INTERVAL_SECONDS", "0")
    monkeypatch.chdir(tmp_path)
    from omnicrm import settings as settings_module

    settings_module._cached.cache_clear()
    yield_settings = load_settings()
    return yield_settings


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """PySpark in local mode with Splink's similarity UDF jar, UI off, few shuffle partitions."""
    pyspark_sql = pytest.importorskip("pyspark.sql")
    from omnicrm.identity.probabilistic import spark_jar_path

    session = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("omnicrm-identity-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.driver.memory", "2g")
        .config("spark.jars", spark_jar_path())
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
