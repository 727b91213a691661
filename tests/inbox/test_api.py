"""The inbox API beyond messages in (on SQLite and PostgreSQL): calendars and SLA policies, agents and teams,
assignment, status and priority, notes, quick replies in a reply, the queue and warnings at a given time, reports;
errors in the one JSON shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.api.app import create_app
from omnicrm.inbox.messages import receive
from omnicrm.inbox.senders import Inbound
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore
from tests.channels.gateways import Gateway, Reply
from tests.inbox.conftest import EXCEPTIONS, WORKDAYS, cn


@pytest.fixture
def im() -> Iterator[Gateway]:
    with Gateway() as running:
        running.default("/messages", Reply(200, {"message_id": "jd-out-1"}))
        yield running


@pytest.fixture
def api(state: StateStore, im: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        data_dir=tmp_path / "data", state_url=state.url, loader_interval_seconds=0, campaign_interval_seconds=0,
        shop_name="言木旗舰店",
        inbox={"gateways": {"jd_im": {"base_url": im.url, "secret": "jd-gateway-secret"}}, "worker_interval_seconds": 0},
    )  # fmt: skip
    key = create_api_key(state, "lead", ["inbox:read", "inbox:write"])
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_set_up_work_and_report_through_the_api(api: TestClient, state: StateStore, im: Gateway) -> None:
    office = ok(api.put("/api/inbox/sla/calendars/office", json={"hours": WORKDAYS, "exceptions": EXCEPTIONS}))
    assert office["hours"]["sat"] == [] and office["exceptions"]["2026-10-01"] == []
    policy = {"channel": "*", "priority": "*", "first_response_minutes": 30, "resolution_minutes": 480,
              "calendar": "office"}  # fmt: skip
    assert ok(api.put("/api/inbox/sla/policies", json=policy)) == policy
    assert ok(api.get("/api/inbox/sla/policies"))["policies"] == [policy]
    amy = ok(api.post("/api/inbox/agents", json={"name": "Amy", "languages": ["en"]}), 201)
    mei = ok(api.post("/api/inbox/agents", json={"name": "小美", "channels": ["jd_im"], "max_open": 5}), 201)
    team = ok(api.post("/api/inbox/teams", json={"name": "JD", "channels": ["jd_im"], "members": [mei["id"]]}), 201)
    assert ok(api.put(f"/api/inbox/teams/{team['id']}/members", json={"members": [mei["id"], amy["id"]]}))[
        "members"
    ] == [amy["id"], mei["id"]]
    changed = ok(api.patch(f"/api/inbox/agents/{mei['id']}", json={"max_open": None, "languages": ["zh"]}))
    assert (changed["max_open"], changed["languages"], changed["channels"]) == (None, ["zh"], ["jd_im"])

    # two conversations at fixed times (the API itself uses the real clock for writes)
    jd = receive(
        state, Inbound("jd_im", {"pin": "jd_4f7a9b2c1d3e"}, "围巾可以开发票吗", name="王先生"), now=cn(12, 9, 0)
    )
    assert jd.conversation.agent_id == mei["id"]  # Amy writes English only
    sms = receive(state, Inbound("sms", {"phone": "13912345678"}, "到哪了"), now=cn(12, 9, 20)).conversation
    queue = ok(api.get("/api/inbox/queue", params={"at": cn(12, 9, 25).isoformat()}))["conversations"]
    assert [(q["conversation"]["id"], q["risk"], q["level"]) for q in queue] == [
        (jd.conversation.id, round(25 / 30, 4), "warning"), (sms.id, round(5 / 30, 4), "ok"),
    ]  # fmt: skip
    warned = ok(api.get("/api/inbox/warnings", params={"at": cn(12, 9, 25).isoformat()}))["warnings"]
    assert [(w["conversation_id"], w["kind"], w["level"], w["left_s"]) for w in warned] == [
        (jd.conversation.id, "response", "warning", 300.0)
    ]
    assert ok(api.get("/api/inbox/queue", params={"unassigned": True}))["conversations"][0]["conversation"]["id"] == (
        sms.id
    )

    cid = jd.conversation.id
    quick = ok(api.put("/api/inbox/quick-replies", json={"shortcut": "invoice", "language": "zh", "title": "发票",
                                                         "text": "{customer_name}您好，{shop_name}可以开电子发票，订单号{order_id}"}))  # fmt: skip
    shown = ok(api.post(f"/api/inbox/quick-replies/{quick['id']}/render",
                        json={"conversation_id": cid, "values": {"order_id": "JD778"}}))  # fmt: skip
    assert shown["text"] == "王先生您好，言木旗舰店可以开电子发票，订单号JD778"
    missing = api.post(f"/api/inbox/conversations/{cid}/replies",
                       json={"agent_id": mei["id"], "idempotency_key": "q-0", "quick_reply_id": quick["id"]})  # fmt: skip
    assert missing.status_code == 400 and missing.json()["problems"] == [
        {"reason": "give it in values", "field": "values.order_id"}
    ]
    assert (
        ok(api.post(f"/api/inbox/conversations/{cid}/notes", json={"text": "老客户", "agent_id": mei["id"]}), 201)[
            "direction"
        ]
        == "note"
    )
    sent = ok(api.post(f"/api/inbox/conversations/{cid}/replies", json={
        "agent_id": mei["id"], "idempotency_key": "q-1", "quick_reply_id": quick["id"], "values": {"order_id": "JD778"},
    }), 201)  # fmt: skip
    assert sent["message"]["text"] == "王先生您好，言木旗舰店可以开电子发票，订单号JD778"
    [call] = im.to("/messages")
    assert (call.json()["channel"], call.json()["to"]) == ("jd_im", "jd_4f7a9b2c1d3e")

    assert ok(api.post(f"/api/inbox/conversations/{cid}/priority", json={"priority": "urgent"}))["priority"] == "urgent"
    moved = ok(api.post(f"/api/inbox/conversations/{cid}/assign", json={"agent_id": amy["id"]}))
    assert moved["agent_id"] == amy["id"]
    assert ok(api.post(f"/api/inbox/conversations/{cid}/status", json={"status": "closed"}))["status"] == "closed"
    detail = ok(api.get(f"/api/inbox/conversations/{cid}"))
    assert [a["action"] for a in detail["activity"]] == ["opened", "assigned", "priority", "assigned", "status"]
    assert detail["customer"] == {"provisional": True, "contact_id": jd.conversation.contact_id,
                                  "identifiers": ["marketplace_nick:jd:jd_4f7a9b2c1d3e"]}  # fmt: skip
    listed = ok(api.get("/api/inbox/conversations", params={"status": "closed"}))
    assert (listed["total"], listed["conversations"][0]["id"]) == (1, cid)

    report = ok(api.get("/api/inbox/reports", params={"start": cn(12, 0).isoformat(), "end": cn(13, 0).isoformat(),
                                                      "by": "channel", "at": cn(12, 10, 0).isoformat()}))  # fmt: skip
    rows = {r["group"]: (r["conversations"], r["response_breaches"]) for r in report["rows"]}
    # the JD reply went out by the real clock, long after its due time; the SMS was never answered
    assert rows == {"jd_im": (1, 1), "sms": (1, 1), "all": (2, 2)}


def test_errors_share_one_shape(api: TestClient) -> None:
    bad_calendar = api.put("/api/inbox/sla/calendars/office", json={"hours": {"mon": [["18:00", "09:00"]]}})
    assert bad_calendar.status_code == 400 and bad_calendar.json() == {
        "code": "invalid_request", "message": "open hours must end after they start",
        "problems": [{"reason": "18:00 is not before 09:00", "field": "hours.mon[0]"}],
    }  # fmt: skip
    assert api.get("/api/inbox/reports", params={"start": "2026-01-02T00:00:00", "end": "2026-01-03T00:00:00+08:00"}
                   ).json()["problems"][0]["field"] == "start"  # fmt: skip
    assert api.post("/api/inbox/conversations/5/status", json={"status": "archived"}).status_code == 422
    assert api.post("/api/inbox/teams", json={"name": "A"}).status_code == 201
    dup = api.post("/api/inbox/teams", json={"name": "A"})
    assert (dup.status_code, dup.json()["problems"][0]["field"]) == (409, "name")
    assert api.delete("/api/inbox/quick-replies/7").json()["code"] == "not_found"
    body = json.dumps({"channel": "sms"})
    assert api.post("/api/inbox/messages", content=body).status_code == 422
