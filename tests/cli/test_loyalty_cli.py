"""``omnicrm loyalty`` on SQLite and PostgreSQL: rules and tiers from files, a member's tables, audited adjustments,
coupon templates and issuing by batch key, the liability; awarding points from the facts once, and ``omnicrm refresh
--loyalty`` running the daily jobs after OneID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from omnicrm import settings as settings_module
from omnicrm.cli.main import app
from omnicrm.demo import load_demo
from omnicrm.errors import InputError
from omnicrm.loyalty.coupons import customer_coupons
from omnicrm.loyalty.ledger import balance, history
from omnicrm.settings import Settings, load_settings
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import member_tiers, point_lots
from omnicrm.store.state import StateStore

runner = CliRunner()
TEMPLATE = {"id": "birthday-20", "name": "Birthday 20 off", "kind": "amount_off", "amount_off_fen": 2000,
            "total_quantity": 3, "valid_days": 30, "channels": ["store"]}  # fmt: skip


@pytest.fixture
def cli(state_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI's settings: a data folder in tmp and the state database of ``state_url``."""
    monkeypatch.setenv("OMNICRM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMNICRM_STATE_URL", state_url)
    monkeypatch.setenv("OMNICRM_LOADER_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("OMNICRM_CONFIG", str(tmp_path / "no-omnicrm.toml"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables wide enough not to wrap
    monkeypatch.chdir(tmp_path)
    settings_module._cached.cache_clear()
    yield load_settings()
    settings_module._cached.cache_clear()


def ok(*args: str) -> str:
    result = runner.invoke(app, ["loyalty", *args])
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


def write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_rules_member_adjust_coupons_tiers_and_liability(cli: Settings, tmp_path: Path) -> None:
    rules = write(tmp_path / "rules.json", {"points_per_unit": "2", "point_value": "0.01"})
    assert "loyalty rules saved as version 1" in ok("rules", "--set", rules)
    assert json.loads(ok("rules"))["points_per_unit"] == "2"
    assert "entry 1, +300 points (welcome)" in ok("adjust", "5", "300", "--reason", "welcome")
    blank = runner.invoke(app, ["loyalty", "adjust", "5", "10", "--reason", " "])
    assert isinstance(blank.exception, InputError) and blank.exception.problems[0].field == "reason"
    assert "member 5: entry 2, -50 points (damaged goods)" in ok(
        "adjust", "--reason", "damaged goods", "--", "5", "-50"
    )
    shown = ok("member", "5")
    assert "250 points available" in shown and "welcome" in shown and "damaged goods" in shown
    state = StateStore(cli.state_database_url)
    try:
        assert [e.recorded_by.startswith("cli:") for e in history(state, 5)] == [True, True]

        assert "coupon template birthday-20 ready" in ok("coupons", "create", write(tmp_path / "t.json", TEMPLATE))
        out = ok("coupons", "issue", "birthday-20", "--key", "bday-june", "--customer", "5", "--customer", "6")
        assert "2 issued, 0 issued before" in out
        again = ok("coupons", "issue", "birthday-20", "--key", "bday-june", "--customer", "5", "--customer", "6")
        assert "0 issued, 2 issued before with this key" in again
        assert [c.template_id for c in customer_coupons(state, 6)] == ["birthday-20"]
        listed = ok("coupons", "list")
        assert "birthday-20" in listed and "Birthday 20 off" in listed
        assert "birthday-20" in ok("coupons", "report")

        programme = {"tiers": [{"name": "member", "threshold": 0}, {"name": "gold", "threshold": 100}]}
        saved = ok("tiers", "--set", write(tmp_path / "tiers.json", programme))
        assert "saved with the rules as version 2" in saved and "gold" in saved
        assert "no changes" in ok("tiers", "--evaluate")  # adjustments do not qualify for a tier
        with state.connect() as conn:
            assert conn.execute(select(func.count()).select_from(member_tiers)).scalar_one() == 0

        owed = ok("liability")
        assert "¥2.50" in owed and "issued 300 · redeemed 0" in owed
    finally:
        state.dispose()


def test_award_from_facts_once_and_refresh_runs_the_daily_jobs(cli: Settings, tmp_path: Path) -> None:
    state = StateStore(cli.state_database_url)
    try:
        load_demo(state, FactsStore(cli.facts_dir), data_dir=cli.data_dir, people=300, seed=11, progress=False,
                  say=lambda _: None)  # fmt: skip
        refreshed = runner.invoke(app, ["refresh", "--only", "identity"])
        assert refreshed.exit_code == 0, refreshed.output
        missing = runner.invoke(app, ["loyalty", "award"])
        assert missing.exit_code != 0 and "no loyalty rules are saved yet" in str(missing.exception)
        ok("rules", "--set", write(tmp_path / "rules.json", {"return_window_days": 15}))

        first = ok("award")
        new = int(first.split(" new lots")[0].rsplit("; ", 1)[1].replace(",", ""))
        with state.connect() as conn:
            lots, points = conn.execute(select(func.count(), func.sum(point_lots.c.points))).one()
        assert new == lots > 0 and f"new lots of {int(points):,} points" in first
        second = ok("award")
        assert "; 0 new lots of 0 points;" in second and f"{new:,} had earned" in second

        daily = runner.invoke(app, ["refresh", "--only", "identity", "--loyalty"])
        assert daily.exit_code == 0, daily.output
        for step in ("award: ", "activate: ", "expire: "):
            assert step in daily.output
        assert "0 new lots" in daily.output
        with state.connect() as conn:
            customer = int(conn.execute(select(point_lots.c.customer_id).limit(1)).scalar_one())
        assert balance(state, customer).balance > 0
    finally:
        state.dispose()
