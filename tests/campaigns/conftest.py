"""A small demo merchant with consents, copied per test, and the channels of a campaign on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.api.app import create_app
from omnicrm.campaigns.launch import Marketing
from omnicrm.channels.registry import for_settings
from omnicrm.consent.ledger import record
from omnicrm.segments.saved import create_segment
from omnicrm.settings import load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.state import StateStore
from tests.api.conftest import demo_merchant
from tests.channels.gateways import Gateway
from tests.mail import Inbox


@pytest.fixture(scope="session")
def merchant_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_merchant(tmp_path_factory.mktemp("campaign-merchant"), people=300, seed=21)


@pytest.fixture
def merchant(merchant_template: Path, tmp_path: Path) -> Path:
    """A private copy: campaigns and consents of one test never reach another."""
    root = tmp_path / "merchant"
    shutil.copytree(merchant_template, root)
    return root


def addresses(root: Path, id_type: str) -> list[tuple[int, str]]:
    """(customer_id, key) of every unshared identifier of a type, by customer."""
    snap = DerivedStore(root / "derived").current("identity")
    assert snap is not None
    return [
        (int(c), str(k))
        for c, k in duckdb.sql(
            f"""SELECT customer_id, min(key) FROM '{snap / "identifiers.parquet"}'
                WHERE id_type = '{id_type}' AND holders = 1 GROUP BY customer_id ORDER BY customer_id"""
        ).fetchall()
    ]


def grant(state: StateStore, keys: list[str], channel: str) -> None:
    for key in keys:
        record(state, subject=key, channel=channel, purpose="marketing", granted=True, source="signup_form",
               by="test", wording="v1")  # fmt: skip


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway() as running:
        yield running


def channel_settings(gateway_url: str, smtp_port: int) -> dict[str, Any]:
    return {
        "sms": {"kind": "sms", "base_url": gateway_url, "cost_per_unit": "0.045", "rate_per_second": 0,
                "backoff_base": 0.01, "timeout": 5,
                "credentials": {"access_key_id": "LTAI-test", "access_key_secret": "secret"},
                "options": {"sign_name": "小鹿茶", "text_template_code": "SMS_000001"}},
        "email": {"kind": "email", "base_url": f"smtp://127.0.0.1:{smtp_port}", "rate_per_second": 0,
                  "backoff_base": 0.01, "timeout": 5, "cost_per_unit": "0.001",
                  "options": {"from_address": "news@shop.example.com", "from_name": "小鹿茶"}},
        "coupons": {"kind": "coupon", "base_url": gateway_url, "cost_per_unit": "0.5", "rate_per_second": 0,
                    "backoff_base": 0.01},
        "wechat": {"kind": "wechat", "base_url": gateway_url, "rate_per_second": 0, "backoff_base": 0.01,
                   "credentials": {"app_id": "wx_mp_demo", "app_secret": "s"}},
    }  # fmt: skip


@pytest.fixture
def shop_of(gateway: Gateway, smtp: tuple[Inbox, int]) -> Iterator[Callable[..., Marketing]]:
    made: list[Marketing] = []

    def make(root: Path, **overrides: Any) -> Marketing:
        values: dict[str, Any] = {
            "data_dir": root, "loader_interval_seconds": 0, "campaign_interval_seconds": 0,
            "public_url": "https://crm.shop.example", "frequency_cap": "", "quiet_hours": "",
            "channels": channel_settings(gateway.url, smtp[1]), "shop_name": "小鹿茶",
        }  # fmt: skip
        values.update(overrides)
        settings = load_settings(**values)
        system = Marketing(settings, StateStore(settings.state_database_url), for_settings(settings))
        made.append(system)
        return system

    yield make
    for system in made:
        system.channels.close()
        system.state.dispose()


def new_segment(system: Marketing, text: str = "monetary >= 0") -> int:
    engine = system.segment_engine()
    return create_segment(system.state, engine, name=f"seg {text}", text=text, schedule="manual", by="test").id


@pytest.fixture
def api(merchant: Path, gateway: Gateway) -> Iterator[TestClient]:
    """The app on the merchant copy, with an API key for campaigns and journeys; no background worker."""
    settings = load_settings(data_dir=merchant, loader_interval_seconds=0, campaign_interval_seconds=0,
                             public_url="https://crm.shop.example", frequency_cap="", quiet_hours="",
                             channels=channel_settings(gateway.url, 1))  # fmt: skip
    with TestClient(create_app(settings)) as client:
        state = client.app.state.state_store  # type: ignore[attr-defined]
        key = create_api_key(state, "marketing", ["campaigns:read", "campaigns:write"])
        client.headers["Authorization"] = f"Bearer {key}"
        yield client
