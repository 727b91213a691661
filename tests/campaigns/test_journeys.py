"""Journeys end to end on the demo merchant, with a controlled clock: new customers' first Double 11 orders (written
as facts, linked by a OneID refresh) enter a journey; on day 3 a WeChat care message goes out to the consented,
non-holdout ones through the WeChat stand-in; one of them orders again on day 5 and exits; on day 14 the others get
an SMS coupon through the AliyunSms stand-in. Each step's holdout is drawn per person; advancing twice adds
nothing; bad definitions are refused naming the field; the API, the CLI and the worker reach the same code."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from omnicrm.campaigns.definition import get_campaign, list_campaigns
from omnicrm.campaigns.journey_flow import advance
from omnicrm.campaigns.journeys import create_journey, journey_summary, list_journeys, start_journey, stop_journey
from omnicrm.campaigns.launch import Marketing, launch
from omnicrm.campaigns.measure import measure_campaign
from omnicrm.campaigns.sender import run_campaign
from omnicrm.campaigns.worker import CampaignWorker
from omnicrm.channels.registry import for_settings
from omnicrm.cli.main import app as cli
from omnicrm.errors import Conflict, InputError
from omnicrm.identity.explain import lookup
from omnicrm.identity.refresh import refresh_identity
from omnicrm.segments.saved import list_segments
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import campaign_recipients, journey_entries
from tests.campaigns.conftest import channel_settings, grant
from tests.campaigns.providers import AliyunSms, WeChat
from tests.channels.gateways import Gateway
from tests.portrait.test_tags import line, write

LIVE = dt.datetime(2027, 11, 10, tzinfo=dt.UTC)  # the journey goes live
DAY0 = dt.datetime(2027, 11, 11, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai: the Double 11 orders
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
NEW = range(1, 31)  # thirty new customers
CARE = {"zh": {"template_id": "TPL_CARE", "params": {"thing1": "{{ shop_name }}感谢您的首单", "thing2": "使用小贴士"}}}
COUPON = {"zh": {"body": "{{ shop_name }}送您20元回购券 https://shop.example/c20"}}


def spec(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "双11 新客关怀",
        "trigger": {"type": "first_order", "promotion": "double11"},
        "exit": {"on": "purchase"},
        "steps": [
            {"after_days": 3, "channel": "wechat", "content": CARE, "holdout_share": 0.4},
            {"after_days": 14, "condition": "no_order_since_entry", "channel": "sms", "content": COUPON,
             "holdout_share": 0.4},
        ],
    }  # fmt: skip
    return body | changes


def phone(k: int) -> str:
    return f"1390011{k:04d}"


def openid(k: int) -> str:
    return f"oJourneyTest{k:06d}"


APP = channel_settings("", 0)["wechat"]["credentials"]["app_id"]  # the mini-program the WeChat channel sends as


def order(name: str, k: int, at: dt.datetime, **kw: Any) -> dict[str, Any]:
    return line(name, phone(k), at.isoformat(timespec="seconds").removesuffix("+00:00"), 199.0,
                wechat_openid=openid(k), wechat_appid=APP, **kw)  # fmt: skip


def add_orders(root: Path, system: Marketing, rows: list[dict[str, Any]], batch: str) -> None:
    """Order facts through the facts store, then OneID refreshed, as ``omnicrm refresh`` would."""
    facts = FactsStore(root / "facts")
    write(facts, "order_line", rows, batch)
    refresh_identity(system.state, Engine(facts), DerivedStore(root / "derived"), probabilistic=False)


def customer(root: Path, k: int) -> int:
    found = lookup(DerivedStore(root / "derived").current("identity"), "phone", phone(k))
    assert len(found) == 1
    return found[0]


def log_of(system: Marketing, campaign_id: int) -> dict[int, Any]:
    with system.state.connect() as conn:
        rows = conn.execute(select(campaign_recipients).where(campaign_recipients.c.campaign_id == campaign_id)).all()
    return {int(r.customer_id): r for r in rows}


def entries(system: Marketing, journey_id: int) -> dict[int, Any]:
    with system.state.connect() as conn:
        rows = conn.execute(select(journey_entries).where(journey_entries.c.journey_id == journey_id)).all()
    return {int(r.customer_id): r for r in rows}


def held_out(seed: str, customer_id: int, share: float) -> bool:
    """The per-person holdout draw, written out independently of the SQL that makes it."""
    return int(hashlib.md5(f"{seed}{customer_id}".encode()).hexdigest()[:8], 16) < share * 2**32


def an_old_buyer(root: Path) -> str:
    """The phone of a demo customer who ordered before (their Double 11 order is not their first)."""
    got = duckdb.sql(f"SELECT min(phone) FROM '{root}/facts/order_line/*/*.parquet' WHERE phone IS NOT NULL")
    return str(got.fetchall()[0][0])


def test_double11_first_order_journey(merchant: Path, shop_of: Callable[..., Marketing], gateway: Gateway) -> None:
    system = shop_of(merchant)
    wechat, sms = WeChat().install(gateway), AliyunSms().install(gateway)
    journey = create_journey(system, spec(), by="test")
    care, coupon = (s.campaign_id for s in journey.steps)
    assert journey.status == "draft" and get_campaign(system.state, care).status == "draft"
    with pytest.raises(Conflict, match=f"step of journey {journey.id}"):
        launch(system, care)  # a step never goes to a whole segment
    start_journey(system, journey.id, now=LIVE)
    assert get_campaign(system.state, coupon).status == "sending"
    with pytest.raises(Conflict):
        start_journey(system, journey.id, now=LIVE)

    old = an_old_buyer(merchant)
    add_orders(merchant, system, [
        *(order(f"D11-{k}", k, DAY0, promotion="双11") for k in NEW),
        order("EARLY-31", 31, LIVE - DAY, promotion="双11"),  # before the journey went live: history
        order("POS-32", 32, DAY0, source="pos", store_code="S001"),  # a first order, but no Double 11 one
        {**line("OLD-D11", old, "2027-11-11T02:00:00", 99.0), "promotion": "双11"},  # not a first order
    ], "journey-test-0001")  # fmt: skip
    ids = {k: customer(merchant, k) for k in NEW}
    grant(system.state, [f"wechat_openid:{APP}:{openid(k)}" for k in range(1, 21)], "wechat_mp")
    grant(system.state, [f"phone::+86{phone(k)}" for k in range(5, 31)], "sms")

    # day 0: the thirty enter, once
    first = advance(system, DAY0 + HOUR)
    assert [(r.entered, r.exited, r.steps) for r in first] == [(30, 0, {})]
    entered = entries(system, journey.id)
    assert set(entered) == set(ids.values())
    assert {(r.status, r.step, r.entered_at.replace(tzinfo=dt.UTC)) for r in entered.values()} == {("active", 0, DAY0)}
    again = advance(system, DAY0 + HOUR)
    assert [(r.entered, r.exited, r.steps) for r in again] == [(0, 0, {})]
    assert advance(system, DAY0 + 2 * DAY)[0].steps == {}  # nothing due before day 3

    # day 3: the WeChat care message, to the consented non-holdout
    day3 = DAY0 + 3 * DAY + HOUR
    done = advance(system, day3)[0].steps
    assert done[0]["due"] == 30 and 1 not in done
    rows = log_of(system, care)
    seed = get_campaign(system.state, care).seed
    consented = {ids[k] for k in range(1, 21)}
    assert set(rows) == set(ids.values())
    assert {c for c, r in rows.items() if r.arm != "excluded"} == consented
    assert {r.reason for c, r in rows.items() if c not in consented} == {"no_consent"}
    held = {c for c in consented if held_out(seed, c, 0.4)}
    assert {c for c, r in rows.items() if r.arm == "holdout"} == held and 0 < len(held) < len(consented)
    assert all(r.assigned_at.replace(tzinfo=dt.UTC) == day3 for r in rows.values())
    report = run_campaign(system, care, clock=lambda: day3)
    assert report.counts == {"sent": len(consented - held)} and report.stopped == "caught_up"
    by_openid = {openid(k): ids[k] for k in NEW}
    assert sorted(by_openid[m["touser"]] for m in wechat.sent) == sorted(consented - held)
    assert wechat.sent[0]["template_id"] == "TPL_CARE" and "首单" in wechat.sent[0]["data"]["thing1"]["value"]
    assert get_campaign(system.state, care).status == "sending"  # the journey is live: never done
    assert advance(system, day3)[0].steps == {}  # twice: nothing new

    # day 5: one who got the care message orders again and exits
    again_k = next(k for k in range(5, 21) if ids[k] not in held)
    add_orders(merchant, system, [order("AGAIN", again_k, DAY0 + 5 * DAY)], "journey-test-0002")
    later = advance(system, DAY0 + 5 * DAY + HOUR)[0]
    assert (later.entered, later.exited) == (0, 1)
    gone = entries(system, journey.id)[ids[again_k]]
    assert (gone.status, gone.exit_reason) == ("exited", "purchase")

    # day 14: the SMS coupon to the others who consented to SMS, minus its own holdout; and a Double 11 order of
    # day 0 that only arrives now (a late marketplace export) enters, and gets its day-3 step at once
    add_orders(merchant, system, [order("LATE-33", 33, DAY0, promotion="双11")], "journey-test-0003")
    late = customer(merchant, 33)
    grant(system.state, [f"phone::+86{phone(33)}"], "sms")
    day14 = DAY0 + 14 * DAY + HOUR
    now14 = advance(system, day14)[0]
    assert now14.entered == 1 and now14.steps[1]["due"] == 29 and now14.steps[0]["due"] == 1
    assert late in log_of(system, care)
    rows = log_of(system, coupon)
    texting = {ids[k] for k in range(5, 31)} - {ids[again_k]}
    assert ids[again_k] not in rows and set(rows) == set(ids.values()) - {ids[again_k]}
    coupon_seed = get_campaign(system.state, coupon).seed
    held = {c for c in texting if held_out(coupon_seed, c, 0.4)}
    assert {c for c, r in rows.items() if r.arm == "holdout"} == held and 0 < len(held) < len(texting)
    assert {c for c, r in rows.items() if r.arm == "treatment"} == texting - held
    assert run_campaign(system, coupon, clock=lambda: day14).counts == {"sent": len(texting - held)}
    by_phone = {f"+86{phone(k)}": ids[k] for k in NEW}
    assert sorted(by_phone[p] for p in sms.per_phone()) == sorted(texting - held)
    assert set(sms.per_phone().values()) == {1} and sms.sent[0]["text"].startswith("小鹿茶送您20元回购券")
    assert advance(system, day14)[0].steps == {}
    measured = measure_campaign(system.state, Engine(FactsStore(merchant / "facts")), system.derived, coupon, day14)
    assert measured.treatment.reached == len(texting - held) and measured.holdout.reached == len(held)

    # the late entrant's coupon comes a day after its care message, not with it
    assert advance(system, day14 + 12 * HOUR)[0].steps == {}
    assert advance(system, day14 + DAY)[0].steps[1]["due"] == 1 and late in log_of(system, coupon)
    finished = entries(system, journey.id)
    assert sum(r.status == "completed" for r in finished.values()) == 30
    summary = journey_summary(system.state, journey.id)
    assert summary["entries"] == {"total": 31, "active": 0, "exited": 1, "completed": 30,
                                  "exit_reasons": {"purchase": 1}}  # fmt: skip
    assert [s["reached"] for s in summary["steps"]] == [31, 30]
    late_texted = not held_out(coupon_seed, late, 0.4)
    assert summary["steps"][1]["log"]["arms"]["treatment"] == len(texting - held) + late_texted

    stop_journey(system, journey.id, now=day14 + DAY)
    # a step with a message still queued (the late entrant's coupon, unless held out) is cancelled, else done
    ended = [get_campaign(system.state, c).status for c in (care, coupon)]
    assert ended == ["done", "cancelled" if late_texted else "done"]
    assert advance(system, day14 + 2 * DAY) == []  # stopped: nothing is evaluated


def test_bad_definitions_name_the_field(merchant: Path, shop_of: Callable[..., Marketing]) -> None:
    system = shop_of(merchant)
    segments_before = [s.id for s in list_segments(system.state)]

    def problems(body: dict[str, Any]) -> str:
        with pytest.raises(InputError) as bad:
            create_journey(system, body, by="test")
        return " | ".join(str(p) for p in bad.value.problems)

    unknown = problems(spec(trigger={"type": "birthday"}))
    assert "field 'trigger.type'" in unknown and "'birthday'" in unknown and "first_order" in unknown
    steps = spec()["steps"]
    fax = problems(spec(steps=[steps[0], {**steps[1], "channel": "fax"}]))
    assert "field 'steps[1].channel'" in fax and "'fax'" in fax
    dish = problems(spec(steps=[{**steps[0], "content": {"zh": {"body": "{{ favourite_dish }}"}}}]))
    assert "field 'steps[0].content.zh.body'" in dish and "favourite_dish" in dish
    order = problems(spec(steps=[steps[1], steps[0]]))
    assert "field 'steps[1].after_days'" in order
    assert "field 'steps[0].holdout_share'" in problems(spec(steps=[{**steps[0], "holdout_share": 0.9}]))
    assert "field 'steps[0].condition'" in problems(spec(steps=[{**steps[0], "condition": "sunny"}]))
    assert "field 'exit.on'" in problems(spec(exit={"on": "birthday"}))
    # a check only the campaign makes (step 0's campaign is made by then, and removed again)
    coupon = {**steps[1], "content": {**COUPON, "coupon_template": "CT-1", "coupon_channel": "sms"}}
    assert "field 'steps[1].content.coupon_channel'" in problems(spec(steps=[steps[0], coupon]))
    assert list_journeys(system.state)[1] == 0 and list_campaigns(system.state)[1] == 0  # nothing stored
    assert segments_before == [s.id for s in list_segments(system.state)]


def test_journeys_through_the_api_and_the_worker(api: TestClient) -> None:
    bad = api.post("/api/journeys", json=spec(steps=[{**spec()["steps"][0], "channel": "fax"}]))
    assert bad.status_code == 400 and "steps[0].channel" in bad.text
    made = api.post("/api/journeys", json=spec())
    assert made.status_code == 201, made.text
    jid = made.json()["id"]
    assert api.get("/api/journeys").json()["total"] == 1
    assert api.post(f"/api/journeys/{jid}/start").json()["status"] == "live"
    assert api.post(f"/api/journeys/{jid}/start").status_code == 409
    app_state = api.app.state  # type: ignore[attr-defined]
    system = Marketing(app_state.settings, app_state.state_store, for_settings(app_state.settings))
    worker = CampaignWorker(system, interval=1)
    worker.round()  # advances the live journey (no new orders: nobody enters) before sending
    shown = api.get(f"/api/journeys/{jid}").json()
    assert shown["evaluated_until"] > shown["started_at"] and shown["entries"]["total"] == 0
    assert [s["campaign_status"] for s in shown["steps"]] == ["sending", "sending"]
    system.channels.close()
    assert api.post(f"/api/journeys/{jid}/stop").json()["status"] == "stopped"
    assert api.get(f"/api/journeys/{jid}").json()["steps"][0]["campaign_status"] == "done"
    draft = api.post("/api/journeys", json=spec(name="草稿")).json()["id"]
    assert api.get("/api/journeys", params={"status": "draft"}).json()["total"] == 1
    assert api.post(f"/api/journeys/{draft}/stop").json()["status"] == "stopped"
    assert {s["campaign_status"] for s in api.get(f"/api/journeys/{draft}").json()["steps"]} == {"cancelled"}
    assert api.get("/api/journeys/424242").status_code == 404
    assert api.get("/api/journeys", params={"status": "gone"}).status_code == 422


def test_journeys_cli(merchant: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from omnicrm import settings as settings_module

    for name, value in {"DATA_DIR": str(merchant), "CHANNELS": json.dumps(channel_settings(gateway.url, 1)),
                        "LOADER_INTERVAL_SECONDS": "0", "CONFIG": str(tmp_path / "none.toml")}.items():  # fmt: skip
        monkeypatch.setenv(f"OMNICRM_{name}", value)
    settings_module._cached.cache_clear()
    file = tmp_path / "journey.json"
    file.write_text(json.dumps(spec(), ensure_ascii=False), encoding="utf-8")
    runner = CliRunner()
    made = runner.invoke(cli, ["journeys", "create", str(file)])
    assert made.exit_code == 0, made.output
    assert "journey 1 created (draft)" in made.output
    assert runner.invoke(cli, ["journeys", "start", "1"]).exit_code == 0
    listed = runner.invoke(cli, ["journeys", "list"], env={"COLUMNS": "200"})
    assert "live" in listed.output
    moved = runner.invoke(cli, ["journeys", "advance"])
    assert moved.exit_code == 0 and json.loads(moved.output)["journeys"][0]["entered"] == 0
    assert runner.invoke(cli, ["journeys", "stop", "1"]).exit_code == 0
    shown = runner.invoke(cli, ["journeys", "show", "1"])
    assert shown.exit_code == 0 and json.loads(shown.output)["status"] == "stopped"
    bad = runner.invoke(cli, ["journeys", "start", "1"])
    assert bad.exit_code != 0 and "stopped" in str(bad.exception)
    settings_module._cached.cache_clear()
