"""The set-based audience functions against a plain Python reference on a generated snapshot and ledger."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnicrm.consent import audience, ledger, personalisation
from omnicrm.consent.subjects import CHANNELS
from omnicrm.errors import InputError, NotFound
from omnicrm.store.state import StateStore
from tests.consent.conftest import publish_identity


def _world(rng: random.Random) -> tuple[list[tuple[int, str]], list[str]]:
    holders: list[tuple[int, str]] = []
    phones = [f"phone::+86139{rng.randrange(10**7, 10**8)}" for _ in range(60)]
    for customer in range(1, 81):
        for _ in range(rng.randint(0, 2)):
            holders.append((customer, rng.choice(phones)))  # some phones are shared (families)
        if rng.random() < 0.5:
            holders.append((customer, f"email::c{customer}@shop.cn"))
        if rng.random() < 0.4:
            holders.append((customer, f"wechat_openid:wxA:oOPENID{customer:012d}"))
    holders = sorted(set(holders))
    keys = [*sorted({k for _, k in holders}), "phone::+8613700000001", "email::nobody@shop.cn"]  # last two: no holder
    return holders, keys


def test_consented_matches_a_reference(sqlite_state: StateStore, tmp_path: Path) -> None:
    rng = random.Random(7)
    holders, keys = _world(rng)
    snap = publish_identity(tmp_path / "derived", holders)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    log = []
    for i in range(250):
        key = rng.choice(keys)
        channel = {"phone": "sms", "email": "email", "wechat_openid": "wechat_oa"}[key.split(":")[0]]
        channel = channel if rng.random() < 0.9 else "wecom"  # a channel that cannot reach the key type
        purpose = rng.choice(["marketing", "service"])
        granted = rng.random() < 0.6
        at = start + timedelta(hours=rng.randrange(0, 5000))
        ledger.record(sqlite_state, subject=key, channel=channel, purpose=purpose, granted=granted,
                      source="import", by="t", wording="v1", at=at)  # fmt: skip
        log.append((at, i, key, channel, purpose, granted))
        if rng.random() < 0.2:
            personalisation.set_choice(sqlite_state, subject=key, non_personalised=rng.random() < 0.5,
                                       source="staff", by="t", at=at)  # fmt: skip
    latest: dict[tuple[str, str, str], tuple[datetime, int, bool]] = {}
    for at, i, key, channel, purpose, granted in log:
        if (key, channel, purpose) not in latest or (at, i) > latest[(key, channel, purpose)][:2]:
            latest[(key, channel, purpose)] = (at, i, granted)
    reached = 0
    for channel in CHANNELS:
        for purpose in ("marketing", "service"):
            expected = sorted(
                (c, channel, k)
                for c, k in holders
                if latest.get((k, channel, purpose), (None, None, False))[2] and k.split(":")[0] in CHANNELS[channel]
            )
            got = audience.consented(sqlite_state, snap, channel, purpose)
            assert got.schema == audience.AUDIENCE_SCHEMA
            assert [(r["customer_id"], r["channel"], r["key"]) for r in got.to_pylist()] == expected, channel
            reached += len(expected)
    assert reached > 30  # the comparison is not between two empty sets
    asked = {c.subject for c in personalisation.choices_of(sqlite_state, keys) if c.non_personalised}
    expected_np = sorted({c for c, k in holders if k in asked})
    assert audience.non_personalised(sqlite_state, snap).column("customer_id").to_pylist() == expected_np


def test_audience_needs_a_snapshot_and_known_terms(sqlite_state: StateStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        audience.consented(sqlite_state, None, "sms", "marketing")
    snap = publish_identity(tmp_path / "derived", [(1, "phone::+8613912345678")])
    with pytest.raises(InputError, match="channel"):
        audience.consented(sqlite_state, snap, "fax", "marketing")
    with pytest.raises(InputError, match="purpose"):
        audience.consented(sqlite_state, snap, "sms", "spam")
