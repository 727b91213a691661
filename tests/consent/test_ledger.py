"""The consent ledger on SQLite and PostgreSQL: latest record wins, bad input records nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from omnicrm.consent import ledger, personalisation
from omnicrm.consent.subjects import subject_key
from omnicrm.errors import InputError
from omnicrm.store.schema import consents
from omnicrm.store.state import StateStore

PHONE = "phone::+8613912345678"


def _count(state: StateStore) -> int:
    with state.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(consents)).scalar_one())


def _grant(state: StateStore, **kw: object) -> ledger.Consent | None:
    args: dict[str, object] = dict(subject=PHONE, channel="sms", purpose="marketing", granted=True,
                                   source="signup_form", by="test", wording="signup-v1")  # fmt: skip
    args.update(kw)
    return ledger.record(state, **args)  # type: ignore[arg-type]


def test_latest_record_wins(state: StateStore) -> None:
    _grant(state)
    _grant(state, granted=False, source="staff", wording=None)
    assert [c.status for c in ledger.states(state, [PHONE])] == ["withdrawn"]
    _grant(state, wording="signup-v2")
    (now,) = ledger.states(state, [PHONE])
    assert now.granted and now.wording == "signup-v2"
    assert [c.status for c in ledger.history(state, [PHONE])] == ["granted", "withdrawn", "granted"]


def test_purposes_and_channels_are_separate(state: StateStore) -> None:
    _grant(state)
    _grant(state, purpose="service", granted=False, wording=None)
    _grant(state, subject="email::a@shop.cn", channel="email", granted=False, wording=None)
    got = {(c.subject, c.channel, c.purpose): c.status for c in ledger.states(state, [PHONE, "email::a@shop.cn"])}
    assert got == {
        (PHONE, "sms", "marketing"): "granted",
        (PHONE, "sms", "service"): "withdrawn",
        ("email::a@shop.cn", "email", "marketing"): "withdrawn",
    }


def test_an_older_import_does_not_override_a_newer_withdrawal(state: StateStore) -> None:
    _grant(state, granted=False, source="sms_reply", wording=None)
    _grant(state, source="import", at=datetime.now(UTC) - timedelta(days=300))
    (now,) = ledger.states(state, [PHONE])
    assert not now.granted
    assert len(ledger.history(state, [PHONE])) == 2


def test_times_in_other_zones_are_ordered_as_instants(state: StateStore) -> None:
    shanghai = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    _grant(state, at=shanghai - timedelta(minutes=10))
    _grant(state, granted=False, wording=None, at=datetime.now(UTC) - timedelta(minutes=5))
    (now,) = ledger.states(state, [PHONE])
    assert not now.granted and now.at.tzinfo is not None


def test_only_if_changed_skips_a_repeat(state: StateStore) -> None:
    assert _grant(state, granted=False, wording=None, only_if_changed=True) is not None
    assert _grant(state, granted=False, wording=None, only_if_changed=True) is None
    assert _count(state) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"purpose": "spam"}, "purpose"),
        ({"source": "rumour"}, "source"),
        ({"wording": None}, "wording"),
        ({"at": datetime.now(UTC) + timedelta(days=2)}, "at"),
        ({"at": datetime(2026, 1, 1)}, "at"),
    ],
)
def test_bad_input_names_the_field_and_records_nothing(state: StateStore, change: dict, field: str) -> None:
    with pytest.raises(InputError) as err:
        _grant(state, **change)
    assert field in str(err.value)
    assert _count(state) == 0


@pytest.mark.parametrize(
    ("subject", "channel", "field_text"),
    [
        ("13912345678", "sms", "type:scope:value"),
        ("email::a@shop.cn", "sms", "phone"),
        ("phone::12", "sms", "not a valid phone"),
        ("wechat_openid::o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "wechat_oa", "scope"),
        ("fax::123", None, "unknown identifier type"),
    ],
)
def test_bad_subjects(subject: str, channel: str | None, field_text: str) -> None:
    with pytest.raises(InputError) as err:
        subject_key(subject, channel)
    assert field_text in str(err.value)
    assert "subject" in str(err.value)


def test_subjects_are_normalised_as_oneid_writes_them() -> None:
    assert subject_key("phone:: 139-1234-5678", "sms") == PHONE
    assert subject_key("email::A@Shop.CN ", "email") == "email::a@shop.cn"
    key = subject_key("wechat_openid:wx0a1b2c3d:o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "wechat_oa")
    assert key == "wechat_openid:wx0a1b2c3d:o6_bmjrPTlm6_2sgVt7hMZOPfL2M"


def test_personalisation_choice_latest_wins(state: StateStore) -> None:
    personalisation.set_choice(state, subject=PHONE, non_personalised=True, source="staff", by="t")
    personalisation.set_choice(state, subject=PHONE, non_personalised=False, source="preference_centre", by="t")
    (choice,) = personalisation.choices_of(state, [PHONE])
    assert choice.non_personalised is False
