"""Settings: environment over omnicrm.toml over defaults; bad values named; no default secret in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnicrm.errors import ConfigError
from omnicrm.settings import load_settings


def test_toml_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "omnicrm.toml").write_text('data_dir = "from-toml"\nport = 9000\n', encoding="utf-8")
    monkeypatch.delenv("OMNICRM_DATA_DIR", raising=False)
    monkeypatch.setenv("OMNICRM_PORT", "9100")
    settings = load_settings()
    assert settings.data_dir == Path("from-toml")
    assert settings.port == 9100
    assert settings.state_database_url == f"sqlite:///{tmp_path / 'from-toml' / 'state.db'}"


def test_config_file_named_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "elsewhere.toml"
    conf.write_text('state_url = "postgresql+psycopg://crm@db/crm"\n', encoding="utf-8")
    monkeypatch.setenv("OMNICRM_CONFIG", str(conf))
    assert load_settings().state_database_url == "postgresql+psycopg://crm@db/crm"


def test_bad_values_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNICRM_PORT", "eighty")
    monkeypatch.setenv("OMNICRM_DEDUPE_DAYS", "3")
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "port: Input should be a valid integer" in message
    assert "dedupe_days: Input should be greater than or equal to 7" in message


def test_unknown_toml_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "omnicrm.toml").write_text('data_dri = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="data_dri: Extra inputs are not permitted"):
        load_settings()


def test_production_refuses_the_default_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNICRM_ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="set OMNICRM_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("OMNICRM_SECRET_KEY", "a-long-random-value-for-this-shop")
    assert load_settings().environment == "production"
