"""The consent routes end to end over a real app: API, SMS replies, unsubscribe links, WeChat events, merges."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.api.app import create_app
from omnicrm.consent import audience, ledger, replies, unsubscribe, wechat
from omnicrm.settings import load_settings
from tests.consent.conftest import publish_identity

PHONE = "phone::+8613912345678"
EMAIL = "email::li.na@shop.cn"
APPID = "wx0a1b2c3d4e5f"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
OPENID_KEY = f"wechat_openid:{APPID}:{OPENID}"
SECRET = "a-long-test-secret-for-unsubscribe-links"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    publish_identity(tmp_path / "derived", [(1, PHONE), (1, OPENID_KEY), (2, EMAIL)])
    settings = load_settings(data_dir=tmp_path, loader_interval_seconds=0, secret_key=SECRET)
    with TestClient(create_app(settings)) as client:
        state = client.app.state.state_store  # type: ignore[attr-defined]
        key = create_api_key(state, "crm", ["consents:read", "consents:write"])
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def _state(client: TestClient):  # type: ignore[no-untyped-def]
    return client.app.state.state_store  # type: ignore[attr-defined]


def _snap(client: TestClient) -> Path:
    return client.app.state.derived.current("identity")  # type: ignore[attr-defined, no-any-return]


def _grant(client: TestClient, subject: str, channel: str, **kw: str) -> dict:
    body = {"subject": subject, "channel": channel, "purpose": "marketing", "status": "granted",
            "source": "signup_form", "wording": "signup-2026-01", **kw}  # fmt: skip
    res = client.post("/api/consents", json=body)
    assert res.status_code == 200, res.text
    return res.json()  # type: ignore[no-any-return]


def _status(client: TestClient, subject: str, channel: str) -> str | None:
    res = client.get("/api/consents", params={"subject": subject})
    assert res.status_code == 200, res.text
    found = [c["status"] for c in res.json()["consents"] if c["channel"] == channel and c["purpose"] == "marketing"]
    return found[0] if found else None


def test_record_and_read(app: TestClient) -> None:
    made = _grant(app, "phone::13912345678", "sms")
    assert made["subject"] == PHONE and made["customer_id"] == 1 and made["status"] == "granted"
    assert _status(app, PHONE, "sms") == "granted"
    res = app.post("/api/consents", json={"subject": PHONE, "channel": "sms", "purpose": "marketing",
                                          "status": "withdrawn", "source": "staff"})  # fmt: skip
    assert res.status_code == 200
    assert _status(app, PHONE, "sms") == "withdrawn"
    assert len(app.get("/api/consents", params={"subject": PHONE}).json()["history"]) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [({"channel": "fax"}, "channel"), ({"purpose": "x"}, "purpose"), ({"source": "x"}, "source"),
     ({"subject": "email::li.na@shop.cn"}, "subject"), ({"wording": ""}, "wording")],
)  # fmt: skip
def test_bad_records_name_the_field(app: TestClient, change: dict, field: str) -> None:
    body = {"subject": PHONE, "channel": "sms", "purpose": "marketing", "status": "granted",
            "source": "signup_form", "wording": "v1", **change}  # fmt: skip
    res = app.post("/api/consents", json=body)
    assert res.status_code == 400, res.text
    assert field in res.text
    assert app.get("/api/consents", params={"subject": PHONE}).json()["history"] == []


def test_scopes_are_required(app: TestClient) -> None:
    reader = create_api_key(_state(app), "reader", ["consents:read"])
    res = app.post("/api/consents/sms-replies", json={"phone": "13912345678", "text": "T"},
                   headers={"Authorization": f"Bearer {reader}"})  # fmt: skip
    assert res.status_code == 403


def test_sms_reply_route(app: TestClient) -> None:
    _grant(app, PHONE, "sms")
    assert audience.consented(_state(app), _snap(app), "sms", "marketing").num_rows == 1
    res = app.post("/api/consents/sms-replies", json={"phone": "+86 139 1234 5678", "text": " 退订 "})
    assert res.json() == {"phone": PHONE, "opt_out": True, "matched": "退订", "recorded": True}
    assert audience.consented(_state(app), _snap(app), "sms", "marketing").num_rows == 0
    bad = app.post("/api/consents/sms-replies", json={"phone": "12", "text": "T"})
    assert bad.status_code == 400 and "phone" in bad.text


def test_aliyun_sms_up_push(app: TestClient) -> None:
    """Alibaba Cloud pushes replies to a secret address as a JSON array; an opt-out withdraws at once, a bad
    item is named by index and field (the provider pushes again; the good ones are not applied twice)."""
    _grant(app, PHONE, "sms", at="2026-11-01T10:00:00+08:00")
    url = f"/sms/aliyun/{replies.sms_up_token(SECRET)}/up"
    anonymous = {"Authorization": ""}
    push = [{"phone_number": "13912345678", "content": "TD", "send_time": "2026-11-25 21:03:00",
             "sign_name": "小鹿茶", "dest_code": "1234", "sequence_id": 1234567890},
            {"phone_number": "13912345678", "content": "谢谢", "send_time": "2026-11-25 21:04:00",
             "dest_code": "1234", "sequence_id": 1234567891}]  # fmt: skip
    res = app.post(url, json=push, headers=anonymous)
    assert res.status_code == 200 and res.json()["code"] == 0 and res.json()["opt_outs"] == 1
    assert _status(app, PHONE, "sms") == "withdrawn"
    history = ledger.history(_state(app), [PHONE])
    assert history[-1].source == "sms_reply" and history[-1].at.isoformat().startswith("2026-11-25T13:03:00")
    bad = app.post(url, json=[push[0], {"content": "T"}, {**push[0], "send_time": "yesterday"}], headers=anonymous)
    assert bad.status_code == 400 and "message 1, field 'phone_number'" in bad.json()["msg"]
    assert "message 2, field 'send_time'" in bad.json()["msg"] and len(ledger.history(_state(app), [PHONE])) == 2
    assert app.post("/sms/aliyun/forged/up", json=push, headers=anonymous).status_code == 404
    assert app.post(url, content=b"{not json", headers=anonymous).status_code == 400


def test_unsubscribe_link_page_and_one_click(app: TestClient) -> None:
    _grant(app, EMAIL, "email")
    token = unsubscribe.make_token(SECRET, EMAIL, "email", "marketing")
    page = app.get(f"/u/{token}")
    assert page.status_code == 200 and '<form method="post"' in page.text and "l***@shop.cn" in page.text
    assert _status(app, EMAIL, "email") == "granted"  # looking at the page changes nothing
    done = app.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "已退订" in done.text
    assert _status(app, EMAIL, "email") == "withdrawn"
    assert app.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(app.get("/api/consents", params={"subject": EMAIL}).json()["history"]) == 2


def test_forged_unsubscribe_token_is_refused(app: TestClient) -> None:
    _grant(app, EMAIL, "email")
    forged = unsubscribe.make_token("someone-elses-secret", EMAIL, "email", "marketing")
    for method in ("GET", "POST"):
        res = app.request(method, f"/u/{forged}")
        assert res.status_code == 400 and "token" in res.text
    assert _status(app, EMAIL, "email") == "granted"


def _wechat_xml(event: str, openid: str = OPENID) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    ).encode()


def test_wechat_unsubscribe_event(app: TestClient) -> None:
    wechat.set_server_token(_state(app), APPID, "tok3n")
    _grant(app, OPENID_KEY, "wechat_oa")
    params = {"timestamp": "1700000000", "nonce": "9981", "signature": wechat.sign("tok3n", "1700000000", "9981")}
    check = app.get(f"/wechat/{APPID}/events", params={**params, "echostr": "hello123"})
    assert check.status_code == 200 and check.text == "hello123"
    sub = app.post(f"/wechat/{APPID}/events", params=params, content=_wechat_xml("subscribe"))
    assert sub.text == "success" and _status(app, OPENID_KEY, "wechat_oa") == "granted"
    bad = {**params, "signature": "0" * 40}
    refused = app.post(f"/wechat/{APPID}/events", params=bad, content=_wechat_xml("unsubscribe"))
    assert refused.status_code == 403 and "signature" in refused.text
    assert _status(app, OPENID_KEY, "wechat_oa") == "granted"
    malformed = app.post(f"/wechat/{APPID}/events", params=params, content=b"<xml><MsgType>event")
    assert malformed.status_code == 400 and "body" in malformed.text
    done = app.post(f"/wechat/{APPID}/events", params=params, content=_wechat_xml("unsubscribe"))
    assert done.status_code == 200 and done.text == "success"
    assert _status(app, OPENID_KEY, "wechat_oa") == "withdrawn"
    missing = app.post(f"/wechat/{APPID}/events", params={"timestamp": "1", "nonce": "2"}, content=b"<xml/>")
    assert missing.status_code == 422 and "signature" in missing.text


def test_consent_stays_with_the_address_through_merge_and_split(app: TestClient, tmp_path: Path) -> None:
    _grant(app, EMAIL, "email")
    _grant(app, PHONE, "sms")
    app.post("/api/consents/sms-replies", json={"phone": "13912345678", "text": "T"})
    one = app.get("/api/customers/2/consents").json()
    assert [c["subject"] for c in one["consents"]] == [EMAIL]
    # customers 1 and 2 merge: 2 redirects to 1, which now holds both addresses
    publish_identity(tmp_path / "derived", [(1, PHONE), (1, OPENID_KEY), (1, EMAIL)], redirects=[(2, 1)])
    merged = app.get("/api/customers/2/consents").json()
    assert merged["customer_id"] == 1 and merged["redirected_from"] == 2
    got = {(c["subject"], c["channel"]): c["status"] for c in merged["consents"]}
    assert got == {(EMAIL, "email"): "granted", (PHONE, "sms"): "withdrawn"}
    assert audience.consented(_state(app), _snap(app), "email", "marketing").to_pylist() == [
        {"customer_id": 1, "channel": "email", "key": EMAIL}
    ]
    assert audience.consented(_state(app), _snap(app), "sms", "marketing").num_rows == 0
    # split again: the e-mail goes to a new customer 3 and its consent with it
    publish_identity(tmp_path / "derived", [(1, PHONE), (1, OPENID_KEY), (3, EMAIL)])
    assert audience.consented(_state(app), _snap(app), "email", "marketing").column("customer_id").to_pylist() == [3]
    assert app.get("/api/customers/1/consents").json()["consents"][0]["status"] == "withdrawn"


def test_personalisation_choice(app: TestClient) -> None:
    res = app.put("/api/consents/personalisation",
                  json={"subject": EMAIL, "non_personalised": True, "source": "preference_centre"})  # fmt: skip
    assert res.status_code == 200, res.text
    assert app.get("/api/customers/2/consents").json()["non_personalised"] is True
    assert audience.non_personalised(_state(app), _snap(app)).column("customer_id").to_pylist() == [2]


def test_unknown_customer(app: TestClient) -> None:
    res = app.get("/api/customers/999/consents")
    assert res.status_code == 404 and re.search("999", res.text)
