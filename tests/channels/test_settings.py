"""Channels come from the product's settings (omnicrm.toml tables or OMNICRM_CHANNELS), bad ones named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnicrm.channels.registry import for_settings
from omnicrm.errors import ConfigError
from omnicrm.settings import load_settings


def test_channels_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {
        "sms": {"kind": "sms", "base_url": "http://127.0.0.1:9", "options": {"sign_name": "言木"}},
        "mail": {"kind": "email", "base_url": "smtp://127.0.0.1:25"},
    }
    monkeypatch.setenv("OMNICRM_CHANNELS", json.dumps(config))
    channels = for_settings(load_settings(data_dir=tmp_path))
    assert sorted(channels) == ["mail", "sms"]
    monkeypatch.delenv("OMNICRM_CHANNELS")
    assert dict(for_settings(load_settings(data_dir=tmp_path))) == {}


def test_template_messages_are_refused_for_marketing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="template messages are for service notices only"):
        for_settings(load_settings(data_dir=tmp_path, channels={"wx": {"kind": "wechat_template"}}))
    with pytest.raises(ConfigError, match=r"channels\.sms\."):
        for_settings(load_settings(data_dir=tmp_path, channels={"sms": {"kind": "sms", "rate_per_second": -1}}))
