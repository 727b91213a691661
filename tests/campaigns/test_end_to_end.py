"""Campaigns end to end: a segment's consented, uncapped, non-holdout members get exactly one message each,
through a real SMTP server and a recording SMS gateway on 127.0.0.1; an opt-out mid-campaign stops sends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from omnicrm.campaigns.definition import create_campaign
from omnicrm.campaigns.launch import Marketing, launch
from omnicrm.campaigns.log import log_summary, resolve_in_doubt
from omnicrm.campaigns.sender import in_quiet_hours, run_campaign
from omnicrm.consent.ledger import record
from omnicrm.consent.personalisation import set_choice
from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.segments.saved import delete_segment
from omnicrm.store.schema import campaign_recipients
from tests.campaigns.conftest import addresses, channel_settings, grant, new_segment
from tests.campaigns.providers import AliyunSms, CouponService, WeChat
from tests.channels.gateways import Gateway, Recorded, Reply
from tests.mail import Inbox

SMS_BODY = {"zh": {"body": "{{ shop_name }}会员专享：全场满199减30 https://shop.example/d11"}}


def recipients(system: Marketing, campaign_id: int) -> dict[int, Any]:
    with system.state.connect() as conn:
        rows = conn.execute(select(campaign_recipients).where(campaign_recipients.c.campaign_id == campaign_id)).all()
    return {int(r.customer_id): r for r in rows}


def test_sms_campaign_reaches_exactly_the_consented_uncapped_non_holdout(
    merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway
) -> None:
    system = shop_of(merchant)
    provider = AliyunSms().install(gateway)
    phones = addresses(merchant, "phone")
    consented = phones[: len(phones) * 2 // 3]
    grant(system.state, [k for _, k in consented], "sms")
    asked = phones[1]  # asked for non-personalised marketing only: a segment may not pick them
    set_choice(system.state, subject=asked[1], non_personalised=True, source="preference_centre", by="test")
    segment = new_segment(system)
    campaign = create_campaign(system.state, system.channels, system.settings,
                               {"name": "双11 回购", "segment_id": segment, "channel": "sms", "content": SMS_BODY,
                                "holdout_share": 0.2, "stratify_by": "lifecycle_stage"}, by="test")  # fmt: skip
    launched = launch(system, campaign.id)
    rows = recipients(system, campaign.id)
    assert launched["members"] == len(rows) > len(consented)
    by_arm = {arm: {c for c, r in rows.items() if r.arm == arm} for arm in ("treatment", "holdout", "excluded")}
    eligible = {c for c, _ in consented} - {asked[0]}
    assert by_arm["treatment"] | by_arm["holdout"] == eligible
    assert rows[asked[0]].reason == "non_personalised"
    assert {r.reason for c, r in rows.items() if r.arm == "excluded" and c != asked[0]} == {"no_consent"}
    # stratified: in each lifecycle stage exactly round(n × 0.2) are held out
    strata: dict[str, list[int]] = {}
    for c in eligible:
        strata.setdefault(rows[c].stratum, []).append(c)
    for stratum, people in strata.items():
        held = sum(1 for c in people if rows[c].arm == "holdout")
        assert held == round(len(people) * 0.2), stratum

    report = run_campaign(system, campaign.id, batch=7)
    assert report.stopped == "done" and report.counts == {"sent": len(by_arm["treatment"])}
    key_of = dict(consented)
    expected = {key_of[c].split(":", 2)[2] for c in by_arm["treatment"]}
    assert set(provider.per_phone()) == expected and set(provider.per_phone().values()) == {1}
    sent = provider.sent[0]["text"]
    assert sent.startswith("小鹿茶会员专享") and sent.endswith("回T退订") and "https://crm.shop.example/l/" in sent
    summary = log_summary(system.state, campaign.id)
    assert summary["statuses"] == {"sent": len(expected)} and summary["units"] >= len(expected)
    assert summary["cost"] == pytest.approx(0.045 * summary["units"])
    with pytest.raises(Conflict):
        run_campaign(system, campaign.id)  # done: nothing can send it again
    with pytest.raises(Conflict):
        launch(system, campaign.id)


def test_opt_out_mid_campaign_stops_later_sends(
    merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway
) -> None:
    system = shop_of(merchant)
    phones = addresses(merchant, "phone")[:40]
    grant(system.state, [k for _, k in phones], "sms")
    provider = AliyunSms()
    last = phones[-1]

    def replying(request: Recorded) -> Reply:
        answer = provider(request)
        if len(provider.sent) == 3:  # the third text goes out: the last person replies "TD" meanwhile
            record(system.state, subject=last[1], channel="sms", purpose="marketing", granted=False,
                   source="sms_reply", by="sms gateway", detail="TD")  # fmt: skip
        return answer

    gateway.handle("/", replying)
    campaign = create_campaign(system.state, system.channels, system.settings,
                               {"name": "opt-out", "segment_id": new_segment(system), "channel": "sms",
                                "content": SMS_BODY, "holdout_share": 0.0}, by="test")  # fmt: skip
    launch(system, campaign.id)
    report = run_campaign(system, campaign.id, batch=3, workers=1)
    rows = recipients(system, campaign.id)
    assert rows[last[0]].status == "withdrawn" and report.counts["withdrawn"] == 1
    assert last[1].split(":", 2)[2] not in provider.per_phone()
    assert report.counts["sent"] == len(phones) - 1


def test_frequency_cap_counts_every_campaign(merchant: Path, shop_of: Callable[..., Marketing],
                                             gateway: Gateway) -> None:  # fmt: skip
    system = shop_of(merchant, frequency_cap="1/7")
    AliyunSms().install(gateway)
    phones = addresses(merchant, "phone")[:30]
    grant(system.state, [k for _, k in phones], "sms")
    segment = new_segment(system)
    spec = {"name": "first", "segment_id": segment, "channel": "sms", "content": SMS_BODY, "holdout_share": 0.0}
    first = create_campaign(system.state, system.channels, system.settings, spec, by="test")
    launch(system, first.id)
    run_campaign(system, first.id)
    second = create_campaign(system.state, system.channels, system.settings, {**spec, "name": "second"}, by="test")
    launch(system, second.id)
    rows = recipients(system, second.id)
    assert {c for c, r in rows.items() if r.reason == "capped"} == {c for c, _ in phones}
    assert not [r for r in rows.values() if r.arm == "treatment"]


def test_email_campaign_through_real_smtp(merchant: Path, shop_of: Callable[..., Marketing],
                                          smtp: tuple[Inbox, int]) -> None:  # fmt: skip
    system = shop_of(merchant)
    emails = addresses(merchant, "email")[:12]
    grant(system.state, [k for _, k in emails], "email")
    content = {
        "zh": {"subject": "{{ shop_name }} 双11 回馈", "body": "您好，满199减30：https://shop.example/d11 退订 {{ unsubscribe_url }}",
               "html": "<p>满199减30 <a href=\"https://shop.example/d11\">去看看</a></p>"},
    }  # fmt: skip
    campaign = create_campaign(system.state, system.channels, system.settings,
                               {"name": "mail", "segment_id": new_segment(system), "channel": "email",
                                "content": content, "holdout_share": 0.25}, by="test")  # fmt: skip
    launch(system, campaign.id)
    report = run_campaign(system, campaign.id)
    inbox = smtp[0]
    treated = {c for c, r in recipients(system, campaign.id).items() if r.arm == "treatment"}
    assert report.counts == {"sent": len(treated)} == {"sent": len(inbox.messages)} and len(treated) == 9
    mail = inbox.messages[0]
    assert mail["List-Unsubscribe"].startswith("<https://crm.shop.example/u/")
    html = mail.get_body(("html",)).get_content()
    assert "https://crm.shop.example/l/" in html and "https://shop.example/d11" not in html


def test_quiet_hours_defer_and_bad_inputs(merchant: Path, shop_of: Callable[..., Marketing],
                                          gateway: Gateway) -> None:  # fmt: skip
    system = shop_of(merchant, quiet_hours="21:00-09:00")
    provider = AliyunSms().install(gateway)
    phones = addresses(merchant, "phone")[:5]
    grant(system.state, [k for _, k in phones], "sms")
    segment = new_segment(system)
    spec = {"name": "night", "segment_id": segment, "channel": "sms", "content": SMS_BODY, "holdout_share": 0.0}
    campaign = create_campaign(system.state, system.channels, system.settings, spec, by="test")
    launch(system, campaign.id)
    night = dt.datetime(2026, 11, 10, 15, 30, tzinfo=dt.UTC)  # 23:30 in Shanghai
    report = run_campaign(system, campaign.id, clock=lambda: night)
    assert report.stopped == "quiet_hours" and not provider.sent
    assert report.next_at == dt.datetime(2026, 11, 11, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
    assert in_quiet_hours(dt.datetime(2026, 11, 11, 1, 0, tzinfo=dt.UTC), (dt.time(21), dt.time(9)),
                          __import__("zoneinfo").ZoneInfo("Asia/Shanghai")) is None  # fmt: skip
    morning = dt.datetime(2026, 11, 11, 2, 0, tzinfo=dt.UTC)
    assert run_campaign(system, campaign.id, clock=lambda: morning).counts == {"sent": 5}

    # a template naming a missing field, an unknown channel, a deleted segment: clear errors
    with pytest.raises(InputError) as bad:
        create_campaign(system.state, system.channels, system.settings,
                        {**spec, "content": {"zh": {"body": "{{ favourite_dish }}"}}}, by="test")  # fmt: skip
    assert "content.zh.body" in str(bad.value.problems) and "favourite_dish" in str(bad.value.problems)
    with pytest.raises(Exception, match="no channel named 'fax'"):
        create_campaign(system.state, system.channels, system.settings, {**spec, "channel": "fax"}, by="test")
    doomed = create_campaign(system.state, system.channels, system.settings, spec, by="test")
    delete_segment(system.state, segment)
    with pytest.raises(NotFound, match=f"segment {segment} was deleted"):
        launch(system, doomed.id)


def test_gateway_errors_are_retried_and_never_sent_twice(
    merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway
) -> None:
    system = shop_of(merchant)
    provider = AliyunSms().install(gateway)
    provider.fail_next = 3  # the first three calls answer HTTP 500; the channel retries with backoff
    phones = addresses(merchant, "phone")[:8]
    grant(system.state, [k for _, k in phones], "sms")
    campaign = create_campaign(system.state, system.channels, system.settings,
                               {"name": "flaky", "segment_id": new_segment(system), "channel": "sms",
                                "content": SMS_BODY, "holdout_share": 0.0}, by="test")  # fmt: skip
    launch(system, campaign.id)
    report = run_campaign(system, campaign.id, workers=1)
    assert report.counts == {"sent": 8} and set(provider.per_phone().values()) == {1}
    calls = [r for r in gateway.requests if r.query.get("Action") == ["SendSms"]]
    assert len(calls) == 8 + 3
    treated = [r for r in recipients(system, campaign.id).values() if r.arm == "treatment"]
    assert len(treated) == 8 and all(r.status == "sent" and r.attempts == 1 for r in treated)


def test_timeouts_never_send_twice(merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway) -> None:
    """A provider that acts but answers too late: SMS asks QuerySendDetails and counts it sent; WeChat, which
    cannot be asked, leaves it in doubt for a person rather than sending again."""
    channels = channel_settings(gateway.url, 1)
    channels["sms"]["timeout"] = channels["wechat"]["timeout"] = 0.3
    system = shop_of(merchant, channels=channels)
    sms = AliyunSms(late_next=1).install(gateway)
    wechat = WeChat(late_next=1).install(gateway)
    phones = addresses(merchant, "phone")[:4]
    grant(system.state, [k for _, k in phones], "sms")
    spec = {"name": "late", "segment_id": new_segment(system), "channel": "sms", "content": SMS_BODY,
            "holdout_share": 0.0}  # fmt: skip
    campaign = create_campaign(system.state, system.channels, system.settings, spec, by="test")
    launch(system, campaign.id)
    assert run_campaign(system, campaign.id, workers=1).counts == {"sent": 4}
    assert set(sms.per_phone().values()) == {1} and len(sms.sent) == 4

    openids = [(c, k) for c, k in addresses(merchant, "wechat_openid") if k.split(":")[1] == "wx_mp_demo"][:3]
    assert openids, "the demo merchant has mini-program openids"
    grant(system.state, [k for _, k in openids], "wechat_mp")
    care = {"zh": {"template_id": "TPL-care", "params": {"thing1": "会员关怀"}}}
    campaign = create_campaign(system.state, system.channels, system.settings,
                               {**spec, "name": "care", "channel": "wechat", "content": care}, by="test")  # fmt: skip
    launch(system, campaign.id)
    report = run_campaign(system, campaign.id, workers=1)
    assert report.counts == {"in_doubt": 1, "sent": len(openids) - 1}
    assert len(wechat.sent) == len(openids)  # delivered once each; the late one was not sent again
    summary = log_summary(system.state, campaign.id)
    assert summary["statuses"] == {"in_doubt": 1, "sent": len(openids) - 1}
    assert resolve_in_doubt(system.state, campaign.id, "mark_sent") == 1


def test_coupon_issued_once_per_recipient_and_shown_in_the_text(
    merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway
) -> None:
    system = shop_of(merchant)
    sms = AliyunSms().install(gateway)
    coupons = CouponService().install(gateway)
    phones = addresses(merchant, "phone")[:6]
    grant(system.state, [k for _, k in phones], "sms")
    content = {"zh": {"body": "送您一张满199减30券：{{ coupon_code }}"}, "coupon_template": "T-D11-30"}
    spec = {"name": "coupon", "segment_id": new_segment(system), "channel": "sms", "holdout_share": 0.0}
    with pytest.raises(InputError, match="coupon_template and coupon_channel together"):
        create_campaign(system.state, system.channels, system.settings, {**spec, "content": content}, by="test")
    with pytest.raises(InputError, match="does not issue coupons"):
        create_campaign(system.state, system.channels, system.settings,
                        {**spec, "content": {**content, "coupon_channel": "email"}}, by="test")  # fmt: skip
    campaign = create_campaign(system.state, system.channels, system.settings,
                               {**spec, "content": {**content, "coupon_channel": "coupons"}}, by="test")  # fmt: skip
    launch(system, campaign.id)
    assert run_campaign(system, campaign.id).counts == {"sent": 6}
    codes = sorted(coupons.issued.values())
    assert len(codes) == 6 and sorted(s["text"].split("：")[1][:7] for s in sms.sent) == codes
    assert log_summary(system.state, campaign.id)["cost"] == pytest.approx(6 * 0.5 + 6 * 0.045)


def test_quiet_hours_follow_the_persons_own_time_zone(
    merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway
) -> None:
    system = shop_of(merchant, quiet_hours="21:00-09:00")
    sms = AliyunSms().install(gateway)
    phones = addresses(merchant, "phone")[:3]
    grant(system.state, [k for _, k in phones], "sms")
    spec = {"name": "tz", "segment_id": new_segment(system), "channel": "sms", "content": SMS_BODY,
            "holdout_share": 0.0}  # fmt: skip
    campaign = create_campaign(system.state, system.channels, system.settings, spec, by="test")
    launch(system, campaign.id)
    abroad = phones[0][0]  # the portrait's timezone tag fills this column at launch; set here as if declared
    with system.state.begin() as conn:
        conn.execute(update(campaign_recipients).where(campaign_recipients.c.campaign_id == campaign.id,
                                                       campaign_recipients.c.customer_id == abroad)
                     .values(timezone="America/Los_Angeles"))  # fmt: skip
    afternoon = dt.datetime(2026, 11, 12, 6, 0, tzinfo=dt.UTC)  # 14:00 in Shanghai, 22:00 in Los Angeles
    report = run_campaign(system, campaign.id, clock=lambda: afternoon)
    assert report.counts == {"sent": 2, "pending": 1} and report.stopped == "waiting_retry"
    row = recipients(system, campaign.id)[abroad]
    assert row.status == "pending" and row.not_before.replace(tzinfo=dt.UTC) == dt.datetime(
        2026, 11, 12, 17, 0, tzinfo=dt.UTC)  # 09:00 in Los Angeles  # fmt: skip
    assert len(sms.sent) == 2


def test_each_person_gets_their_language(merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway) -> None:
    system = shop_of(merchant)
    sms = AliyunSms().install(gateway)
    phones = addresses(merchant, "phone")[:2]
    grant(system.state, [k for _, k in phones], "sms")
    content = {"zh": {"body": "会员日满199减30"}, "en": {"body": "Member day: 30 off 199"}}
    campaign = create_campaign(system.state, system.channels, system.settings,
                               {"name": "bilingual", "segment_id": new_segment(system), "channel": "sms",
                                "content": content, "holdout_share": 0.0}, by="test")  # fmt: skip
    launch(system, campaign.id)
    english = phones[1][0]  # the portrait's language tag fills this column at launch; set here as if declared
    with system.state.begin() as conn:
        conn.execute(update(campaign_recipients).where(campaign_recipients.c.campaign_id == campaign.id,
                                                       campaign_recipients.c.customer_id == english)
                     .values(language="en"))  # fmt: skip
    assert run_campaign(system, campaign.id).counts == {"sent": 2}
    texts = {s["phone"]: s["text"] for s in sms.sent}
    assert texts[phones[0][1].split(":", 2)[2]].startswith("会员日")
    assert texts[phones[1][1].split(":", 2)[2]].startswith("Member day")
