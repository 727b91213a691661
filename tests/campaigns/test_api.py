"""Campaigns through the REST API: create, launch, read the send log and results; bad input gets clear errors."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from omnicrm.campaigns.launch import Marketing
from omnicrm.campaigns.sender import run_campaign
from omnicrm.channels.registry import for_settings
from tests.campaigns.conftest import addresses, grant, new_segment
from tests.campaigns.providers import AliyunSms
from tests.channels.gateways import Gateway


def test_campaign_through_the_api(api: TestClient, merchant: Path, gateway: Gateway) -> None:
    provider = AliyunSms().install(gateway)
    app_state = api.app.state  # type: ignore[attr-defined]
    system = Marketing(app_state.settings, app_state.state_store, for_settings(app_state.settings))
    phones = addresses(merchant, "phone")[:20]
    grant(system.state, [k for _, k in phones], "sms")
    segment = new_segment(system)
    body = {"name": "API", "segment_id": segment, "channel": "sms", "holdout_share": 0.25,
            "content": {"zh": {"body": "满199减30 {{ lifecycle_stage }}"}}}  # fmt: skip

    bad = api.post("/api/campaigns", json={**body, "content": {"zh": {"body": "{{ salary }}"}}})
    assert bad.status_code == 400 and "content.zh.body" in bad.text and "salary" in bad.text
    assert api.post("/api/campaigns", json={**body, "segment_id": 999}).status_code == 404
    assert api.post("/api/campaigns", json={**body, "holdout_share": 0.9}).status_code in (400, 422)

    made = api.post("/api/campaigns", json=body)
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    assert made.json()["status"] == "draft" and made.json()["consent_channel"] == "sms"
    launched = api.post(f"/api/campaigns/{cid}/launch").json()
    drawn = launched["arms"]["treatment"] + launched["arms"]["holdout"]
    assert drawn == 20 and launched["arms"]["holdout"] == 5 and sum(launched["arms"].values()) == launched["members"]
    assert api.post(f"/api/campaigns/{cid}/launch").status_code == 409

    run_campaign(system, cid)  # the server's worker does this; here, at once
    shown = api.get(f"/api/campaigns/{cid}").json()
    assert shown["status"] == "done" and shown["log"]["statuses"] == {"sent": len(provider.sent)}
    page = api.get(f"/api/campaigns/{cid}/recipients", params={"arm": "holdout", "limit": 2}).json()
    assert page["total"] == launched["arms"]["holdout"] and len(page["recipients"]) == 2
    assert api.get(f"/api/campaigns/{cid}/recipients", params={"status": "lost"}).status_code == 400
    results = api.get(f"/api/campaigns/{cid}/results")
    assert results.status_code == 200, results.text
    measured = results.json()
    assert measured["treatment"]["reached"] == launched["arms"]["treatment"]
    assert measured["treatment"]["delivered"] == len(provider.sent)
    assert api.get("/api/campaigns/results/channels").status_code == 200
    assert api.get("/api/campaigns", params={"limit": 1}).json()["total"] == 1
    assert api.get("/api/campaigns/424242").status_code == 404
    system.channels.close()
