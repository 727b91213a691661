"""CONSENTS TO conditions: a segment meets exactly the customers whose address on that channel may be sent to."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from omnicrm.consent.ledger import record
from omnicrm.errors import InputError
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.segments.language import parse_text, to_text
from omnicrm.settings import load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore
from tests.api.conftest import demo_merchant


@pytest.fixture(scope="module")
def merchant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_merchant(tmp_path_factory.mktemp("consent-segments"), people=200, seed=9)


def test_consent_conditions_count_the_consented(merchant: Path) -> None:
    settings = load_settings(data_dir=merchant, loader_interval_seconds=0)
    state = StateStore(settings.state_database_url)
    derived = DerivedStore(settings.derived_dir)
    snap = derived.current("identity")
    phones = duckdb.sql(
        f"""SELECT customer_id, key FROM '{snap / "identifiers.parquet"}' WHERE id_type = 'phone' AND holders = 1
            ORDER BY customer_id LIMIT 6"""
    ).fetchall()
    for i, (_, key) in enumerate(phones):
        record(state, subject=key, channel="sms", purpose="marketing", granted=True, source="signup_form",
               by="test", wording="v1")  # fmt: skip
        if i % 3 == 0:  # a later withdrawal (an SMS reply) wins
            record(state, subject=key, channel="sms", purpose="marketing", granted=False, source="sms_reply", by="test")
    expected = {int(c) for i, (c, _) in enumerate(phones) if i % 3 != 0}
    engine = SegmentEngine(Engine(FactsStore(settings.facts_dir)), derived, state=state)
    members = set(engine.audience(text="CONSENTS TO sms").members["customer_id"].to_pylist())
    assert members == expected
    assert engine.count(text="CONSENTS TO sms FOR marketing AND monetary >= 0") <= len(expected)
    everyone = engine.total
    assert engine.count(text="NOT CONSENTS TO sms") == everyone - len(expected)
    assert engine.count(text="CONSENTS TO wechat_oa") == 0
    rule = parse_text("CONSENTS TO sms FOR service OR CONSENTS TO email")
    assert parse_text(to_text(rule)) == rule
    with pytest.raises(InputError, match="fax"):
        engine.count(rule={"consent": "fax"})
    without_state = SegmentEngine(Engine(FactsStore(settings.facts_dir)), derived)
    with pytest.raises(InputError, match="consent"):
        without_state.count(text="CONSENTS TO sms")
    state.dispose()
