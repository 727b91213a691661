"""Giveaways over HTTP: the console pages at /console/loyalty/draws (list, set-up form with its field errors, a
giveaway's budget bar, odds, commitment, entries, Close and the audit) and the API at /api/giveaways; who may use
them. They run over a fresh merchant of their own (no customers needed: entries name customer ids)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from omnicrm.access.api_keys import create_api_key
from omnicrm.access.users import create_user
from omnicrm.api.app import create_app
from omnicrm.loyalty import giveaway_audit as audit
from omnicrm.loyalty.coupons import Template, create_template
from omnicrm.loyalty.giveaways import GiveawaySpec, create, enter
from omnicrm.settings import load_settings
from omnicrm.store.schema import giveaway_entries, giveaways
from omnicrm.store.state import StateStore
from tests.console.accounts import PASSWORD, ROLE_USERS, csrf_of, english_client, fresh_client

ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class Shop:
    app: TestClient
    clients: dict[str, TestClient]

    def as_role(self, role: str) -> TestClient:
        """A client logged in as the role's user, reading the pages in English."""
        return english_client(self.app, role, self.clients)

    @property
    def state(self) -> StateStore:
        return self.app.app.state.state_store  # type: ignore[attr-defined,no-any-return]

    def key(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_api_key(self.state, 'test', list(scopes))}"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root: Path = tmp_path_factory.mktemp("giveaway-pages")
    settings = load_settings(data_dir=root, loader_interval_seconds=0, campaign_interval_seconds=0)
    with TestClient(create_app(settings)) as app:
        state = app.app.state.state_store  # type: ignore[attr-defined]
        for role, name in ROLE_USERS.items():
            create_user(state, name, PASSWORD, role, display_name=f"{role} user")
        # a person may win the coupon more than once: the draws are random
        create_template(state, Template("D11-20", "20 off", "amount_off", total_quantity=500, amount_off_fen=2000,
                                        valid_days=30, per_person_limit=50), by="ops")  # fmt: skip
        yield Shop(app, {})


def local(delta: dt.timedelta) -> str:
    """A datetime-local field's value, ``delta`` from now in the merchant's time zone."""
    return (dt.datetime.now(ZONE) + delta).strftime("%Y-%m-%dT%H:%M")


def form(client: TestClient, **changes: str) -> dict[str, str]:
    values = {
        "csrf_token": csrf_of(client, "/console/loyalty/draws"), "id": "d11", "name": "双11 抽奖",
        "kind": "lucky_draw", "opens_at": local(-dt.timedelta(days=1)), "closes_at": local(dt.timedelta(days=2)),
        "budget": "500", "point_value": "0.01", "miss_weight": "50", "per_person_total": "30",
        "prize0_kind": "points", "prize0_name": "100 积分", "prize0_weight": "30", "prize0_points": "100",
        "prize1_kind": "coupon", "prize1_name": "满减券", "prize1_weight": "10", "prize1_coupon_template_id": "D11-20",
        "prize1_stock": "5", "prize3_kind": "gift", "prize3_name": "马克杯", "prize3_weight": "10", "prize3_value": "30",
        "prize3_stock": "2",
    }  # fmt: skip
    values.update(changes)
    return values


def count(shop: Shop) -> int:
    return audit.list_giveaways(shop.state, limit=1)[1]


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page)
    assert found, element_id
    return found.group(1).strip()


def test_who_may_see_and_set_up_giveaways(shop: Shop) -> None:
    anonymous = fresh_client(shop.app).get("/console/loyalty/draws", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/console/login")
    agent = shop.as_role("service_agent")
    listing = agent.get("/console/loyalty/draws")
    assert (
        listing.status_code == 200 and 'id="no-giveaways"' in listing.text and 'id="new-giveaway"' not in listing.text
    )
    assert agent.get("/console/loyalty/draws/new").status_code == 403
    assert agent.post("/console/loyalty/draws", data=form(agent)).status_code == 403
    clerk = shop.as_role("store_clerk")
    assert clerk.get("/console/loyalty/draws").status_code == 403
    assert 'id="new-giveaway"' in shop.as_role("marketer").get("/console/loyalty/draws").text
    assert count(shop) == 0


def test_the_form_shows_each_problem_by_its_field_and_keeps_what_was_typed(shop: Shop) -> None:
    client = shop.as_role("marketer")
    page = client.get("/console/loyalty/draws/new")
    assert page.status_code == 200 and 'id="prize0_kind"' in page.text and 'id="packets"' in page.text
    typed = form(client, name="Bad draw", budget="5,00.001", prize3_weight="x", eligible="12 abc")
    res = client.post("/console/loyalty/draws", data=typed)
    assert res.status_code == 400
    for field in ("budget", "prize3_weight", "eligible"):
        assert f'id="error-{field}"' in res.text, field
    assert 'value="Bad draw"' in res.text and ">12 abc</textarea>" in res.text and 'value="5,00.001"' in res.text
    # problems the domain finds land beside their fields too, the prize ones on the form's own row
    typed = form(client, closes_at=local(-dt.timedelta(days=2)), prize3_value="", prize1_coupon_template_id="NOPE")
    res = client.post("/console/loyalty/draws", data=typed)
    assert res.status_code == 400 and 'id="form-error"' in res.text
    assert 'id="error-closes_at"' in res.text and 'id="error-prize3_value"' in res.text
    res = client.post("/console/loyalty/draws", data=form(client, prize1_coupon_template_id="NOPE"))
    assert res.status_code == 400 and 'id="error-prize1_coupon_template_id"' in res.text and "NOPE" in res.text
    assert count(shop) == 0, "nothing was stored"


def test_set_up_enter_close_and_verify_in_the_console(shop: Shop) -> None:
    client = shop.as_role("marketer")
    res = client.post("/console/loyalty/draws", data=form(client), follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console/loyalty/draws/d11", res.text[-2000:]
    g = audit.get(shop.state, "d11")
    assert [(p.kind, p.value_fen, p.stock) for p in g.prizes] == [("points", 100, None), ("coupon", 2000, 5),
                                                                  ("gift", 3000, 2)]  # fmt: skip
    page = client.get("/console/loyalty/draws/d11").text
    assert 'id="status" data-status="open"' in page and 'id="seed-hidden"' in page and 'id="seed"' not in page
    assert text_of(page, "seed-hash") == g.seed_hash
    assert '<progress id="budget-bar" max="50000" value="0" style' in page and 'id="no-entries"' in page
    assert re.search(r'data-prize="1".*?<td class="num">30\.00%</td>', page, re.S), "odds 30 / (30 + 10 + 10 + 50)"
    made = [enter(shop.state, "d11", 500 + i % 3, idempotency_key=f"k{i}") for i in range(24)]
    spent = sum(e.value_fen for e in made)
    page = client.get("/console/loyalty/draws/d11").text
    assert f'<progress id="budget-bar" max="50000" value="{spent}" style' in page
    assert text_of(page, "entries-count") == "24" and text_of(page, "entrants") == "3"
    assert len(re.findall(r'<tr data-seq="\d+"', page)) == 24 and 'href="/console/customers/500"' in page
    listing = client.get("/console/loyalty/draws").text
    assert 'data-giveaway="d11" data-status="open"' in listing and "双11 抽奖" in listing

    assert client.post("/console/loyalty/draws/d11/close", data={"csrf_token": "forged"}).status_code == 403
    agent = shop.as_role("service_agent")
    assert 'id="confirm-close"' not in agent.get("/console/loyalty/draws/d11").text
    assert agent.post("/console/loyalty/draws/d11/close", data={"csrf_token": csrf_of(agent)}).status_code == 403
    res = client.post("/console/loyalty/draws/d11/close", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console/loyalty/draws/d11"
    page = client.get("/console/loyalty/draws/d11").text
    seed = audit.get(shop.state, "d11").seed
    assert 'data-status="closed"' in page and text_of(page, "seed") == seed and 'id="confirm-close"' not in page
    assert "closed by console:marketer" in page
    checked = client.get("/console/loyalty/draws/d11?verify=1").text
    assert 'id="verify-ok"' in checked and "all 24 entries" in checked
    with shop.state.begin() as conn:  # a record changed after the draw: the audit says so
        conn.execute(update(giveaway_entries).where(giveaway_entries.c.seq == 1).values(customer_id=999))
    failed = client.get("/console/loyalty/draws/d11?verify=1").text
    assert 'id="verify-failed"' in failed and "entry 1 (customer 999)" in failed
    zh = shop.as_role("admin")
    zh.get("/console/lang/zh-CN?next=/console/")
    assert "公平性" in zh.get("/console/loyalty/draws/d11").text
    zh.get("/console/lang/en?next=/console/")
    assert client.get("/console/loyalty/draws/nope").status_code == 404


def test_red_packets_through_the_form_and_the_list_pages(shop: Shop) -> None:
    client = shop.as_role("admin")
    typed = form(client, id="rp", name="红包雨", kind="red_packet", budget="10", packets="20", prizes_per_person="1")
    res = client.post("/console/loyalty/draws", data=typed, follow_redirects=False)
    assert res.status_code == 303, res.text[-2000:]
    for c in range(3):
        enter(shop.state, "rp", c, idempotency_key=f"grab-{c}")
    page = client.get("/console/loyalty/draws/rp").text
    assert 'id="packets">3 of 20 packets taken' in page and 'id="prize-rows"' not in page
    assert len(re.findall(r"packet \d+</td>", page)) == 3
    now = dt.datetime.now(dt.UTC)
    for i in range(26):
        spec = GiveawaySpec(f"many-{i:02d}", f"many {i}", "red_packet", now, now + dt.timedelta(days=1), 100, packets=5)
        create(shop.state, spec, by="test")
    first = client.get("/console/loyalty/draws").text
    assert len(re.findall(r"<tr data-giveaway=", first)) == 25 and 'rel="next"' in first
    second = client.get("/console/loyalty/draws?p=2").text
    assert len(re.findall(r"<tr data-giveaway=", second)) == count(shop) - 25 and 'rel="prev"' in second


def test_the_api_sets_up_enters_and_verifies(shop: Shop) -> None:
    write, read = shop.key("loyalty:write"), shop.key("loyalty:read")
    now = dt.datetime.now(dt.UTC)
    body: dict[str, Any] = {
        "id": "api-draw", "name": "API draw", "kind": "lucky_draw", "opens_at": (now - dt.timedelta(hours=1)).isoformat(),
        "closes_at": (now + dt.timedelta(days=1)).isoformat(), "budget_fen": 1000, "miss_weight": 0,
        "prizes": [{"kind": "gift", "name": "pen", "weight": 1, "value_fen": 400, "stock": 10}],
        "per_person_total": 5,
    }  # fmt: skip
    assert shop.app.post("/api/giveaways", json=body, headers=read).status_code == 403
    made = shop.app.post("/api/giveaways", json=body, headers=write)
    assert made.status_code == 201 and made.json()["seed"] is None and len(made.json()["seed_hash"]) == 64
    assert shop.app.post("/api/giveaways", json=body, headers=write).json()["seed_hash"] == made.json()["seed_hash"]
    bad = shop.app.post("/api/giveaways", json={**body, "id": "bad draw", "budget_fen": 0}, headers=write)
    assert bad.status_code == 400 and {p["field"] for p in bad.json()["problems"]} == {"id", "budget_fen"}

    url = "/api/giveaways/api-draw"
    first = shop.app.post(f"{url}/entries", json={"customer_id": 7}, headers={**write, "Idempotency-Key": "a1"})
    assert first.status_code == 201 and first.json()["seq"] == 1 and first.json()["value_fen"] == 400
    again = shop.app.post(f"{url}/entries", json={"customer_id": 7, "idempotency_key": "a1"}, headers=write)
    assert again.status_code == 200 and again.json()["seq"] == 1 and again.json()["replayed"] is True
    mismatch = shop.app.post(f"{url}/entries", json={"customer_id": 7, "idempotency_key": "x"},
                             headers={**write, "Idempotency-Key": "y"})  # fmt: skip
    assert mismatch.status_code == 400
    assert shop.app.post(f"{url}/entries", json={"customer_id": 8}, headers=write).status_code == 400, "no key"
    assert (
        shop.app.post(f"{url}/entries", json={"customer_id": 8, "idempotency_key": "b"}, headers=write).status_code
        == 201
    )
    spent = shop.app.post(f"{url}/entries", json={"customer_id": 9, "idempotency_key": "c"}, headers=write)
    assert spent.status_code == 409 and spent.json()["problems"][0]["field"] == "budget_fen"
    assert spent.json()["message"] == "the budget of giveaway 'api-draw' is spent (800 of 1000 fen given)"
    assert shop.app.post("/api/giveaways/nope/entries", json={"customer_id": 1, "idempotency_key": "k"},
                         headers=write).status_code == 404  # fmt: skip

    shown = shop.app.get(url, headers=read).json()
    assert shown["seed"] is None and shown["spent_fen"] == 800 and shown["report"]["entries"] == 2
    listed = shop.app.get(f"{url}/entries?order=seq", headers=read).json()
    assert listed["total"] == 2 and [e["customer_id"] for e in listed["entries"]] == [7, 8]
    early = shop.app.get(f"{url}/verify", headers=read)
    assert early.status_code == 409 and early.json()["problems"][0]["field"] == "seed"
    closed = shop.app.post(f"{url}/close", headers=write).json()
    assert closed["status"] == "closed" and len(closed["seed"]) == 64
    verdict = shop.app.get(f"{url}/verify", headers=read).json()
    assert verdict["ok"] is True and verdict["entries"] == 2 and verdict["seed"] == closed["seed"]
    assert shop.app.get(f"{url}/verify", params={"seed": "00" * 32}, headers=read).json()["ok"] is False
    with shop.state.connect() as conn:
        assert conn.execute(select(giveaways.c.seed).where(giveaways.c.id == "api-draw")).scalar_one() == closed["seed"]
