"""Docs that cannot rot: the settings reference is generated from the code and must match it."""

from __future__ import annotations

from pathlib import Path

from omnicrm.cli.config import settings_reference
from omnicrm.cli.tags import catalogue_reference
from omnicrm.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_reference_is_current() -> None:
    written = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert written == settings_reference(), "run: .venv/bin/omnicrm settings --markdown > docs/settings.md"


def test_every_setting_is_documented() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert undocumented == []


def test_tag_catalogue_reference_is_current() -> None:
    written = (ROOT / "docs" / "tags.md").read_text(encoding="utf-8")
    assert written == catalogue_reference(), "run: .venv/bin/omnicrm tags list --markdown > docs/tags.md"
