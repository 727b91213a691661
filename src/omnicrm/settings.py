"""Settings: environment variables (``OMNICRM_*``) over an optional ``omnicrm.toml`` over defaults.

The TOML file is ``./omnicrm.toml`` or the path in ``OMNICRM_CONFIG``. Every field is documented
here and in ``omnicrm settings`` (generated from this class).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from omnicrm.errors import ConfigError

__all__ = ["DEV_SECRET", "Settings", "get_settings"]

DEV_SECRET = "omnicrm-development-secret-change-me"


def _toml_path() -> Path:
    return Path(os.environ.get("OMNICRM_CONFIG", "omnicrm.toml"))


class Settings(BaseSettings):
    """All of omnicrm's settings, one documented field each."""

    model_config = SettingsConfigDict(env_prefix="OMNICRM_", extra="forbid")

    environment: Literal["development", "production"] = Field(
        "development", description="'production' refuses the default secret key and insecure cookies."
    )
    data_dir: Path = Field(Path("omnicrm-data"), description="Folder for facts (Parquet), derived data and SQLite.")
    state_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the state database; default SQLite at <data_dir>/state.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    engine: Literal["duckdb", "spark"] = Field("duckdb", description="Analytic engine for derived data.")
    secret_key: str = Field(DEV_SECRET, description="Signs sessions and tokens; must be set in production.")
    host: str = Field("127.0.0.1", description="Address `omnicrm serve` listens on.")
    port: int = Field(8000, description="Port `omnicrm serve` listens on.")
    log_level: str = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR.")
    log_format: Literal["console", "json"] = Field("console", description="Log lines for people or for machines.")
    max_message_bytes: int = Field(32 * 1024, description="Largest single ingest message (JSON bytes); 413 beyond.")
    max_batch_bytes: int = Field(4 * 1024 * 1024, description="Largest decompressed ingest request; 413 beyond.")
    dedupe_days: int = Field(7, ge=7, description="Days a messageId is remembered per source (at least 7).")
    buffer_high_water: int = Field(
        2_000_000, description="Buffered (not yet loaded) events above which ingest answers 503 with Retry-After."
    )
    loader_interval_seconds: float = Field(
        5.0, description="How often the server's loader moves buffered events to facts; 0 turns it off."
    )
    loader_batch_size: int = Field(200_000, description="Most buffered events one loader step writes to one file.")
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="The address people reach omnicrm at; tracked links and unsubscribe links start with it.",
    )
    shop_name: str = Field("", description="The shop's name as messages show it (the shop_name template field).")
    global_control_share: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Share of all customers kept out of every marketing campaign for a quarter (a global control "
        "group, redrawn each quarter); 0 turns it off.",
    )
    frequency_cap: str = Field(
        "4/7",
        pattern=r"^$|^\d+/\d+$",
        description="Default cap on marketing messages per person across all campaigns: 'messages/days' ('' for none).",
    )
    quiet_hours: str = Field(
        "21:00-09:00",
        pattern=r"^$|^\d\d:\d\d-\d\d:\d\d$",
        description="Default hours without marketing messages, in the person's time zone ('' for none).",
    )
    campaign_interval_seconds: float = Field(
        10.0, ge=0, description="How often the server launches due campaigns and sends launched ones; 0 turns it off."
    )
    timezone: str = Field("Asia/Shanghai", description="Time zone of customers whose own time zone is unknown.")
    channels: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Marketing channels by name: [channels.<name>] tables with kind (email, sms, wechat, wecom, push, "
        "coupon), base_url, credentials, cost and rate (see omnicrm.channels).",
    )
    inbox: dict[str, Any] = Field(
        default_factory=dict,
        description="Service inbox: an [inbox] table with reply_channels, gateways, webhook_secrets, attachment and "
        "text limits, reopen_hours, warn_at and worker_interval_seconds (see omnicrm.inbox.config).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()))

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("secret_key: set OMNICRM_SECRET_KEY to a long random value in production")
        return self

    @property
    def state_database_url(self) -> str:
        return self.state_url or f"sqlite:///{(self.data_dir / 'state.db').resolve()}"

    @property
    def facts_dir(self) -> Path:
        return self.data_dir / "facts"

    @property
    def derived_dir(self) -> Path:
        return self.data_dir / "derived"


@lru_cache(maxsize=1)
def _cached() -> Settings:
    return load_settings()


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation failures into one ConfigError naming each field."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(
            "invalid settings (environment OMNICRM_* or omnicrm.toml):\n  " + "\n  ".join(lines)
        ) from None


def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own with ``load_settings``)."""
    return _cached()
