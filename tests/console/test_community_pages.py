"""The community pages over HTTP, on a small merchant of their own (five buyers at two stores, OneID refreshed, a
portrait snapshot made by hand): the empty list, a community created through the form (errors beside their fields),
its suggested members exactly those with the interest, invited; an event created in the shop's time zone; sign-ups
by phone and by customer id with the waiting list, a cancellation that promotes; the ticket scanned at the till once
(a form sent twice checks in once); the public walk-in page with its form token, a full event and its rate limit;
and who may do what."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from omnicrm.access.users import ROLES, create_user
from omnicrm.api.app import create_app
from omnicrm.community.signups import sign_ups
from omnicrm.identity.explain import lookup
from omnicrm.identity.refresh import refresh_identity
from omnicrm.settings import load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore
from tests.console.accounts import PASSWORD, csrf_of, fresh_client, log_in
from tests.portrait.test_tags import line, write

PHONES = {"a": "13900000201", "b": "13900000202", "c": "13900000203", "d": "13900000204", "e": "13900000205"}
INTERESTS = {"a": (["baking", "tea"], "上海"), "b": (["hiking"], "北京"), "c": (["baking"], "北京"),
             "d": (["fishing"], "上海"), "e": (["baking", "coffee"], "上海")}  # fmt: skip
ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class Shop:
    app: TestClient
    state: StateStore
    ids: dict[str, int]
    clients: dict[str, TestClient]

    def as_role(self, role: str) -> TestClient:
        """A client logged in as the role's user, reading the pages in English."""
        if role not in self.clients:
            client = log_in(fresh_client(self.app), role.replace("_", "-"))
            client.get("/console/lang/en?next=/console/")
            self.clients[role] = client
        return self.clients[role]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("community-shop")
    settings = load_settings(data_dir=root, loader_interval_seconds=0, campaign_interval_seconds=0,
                             public_url="https://shop.example.cn")  # fmt: skip
    state = StateStore(settings.state_database_url)
    facts, derived = FactsStore(settings.facts_dir), DerivedStore(settings.derived_dir)
    lines = [line(f"o-{k}", p, "2026-04-01", 88.0, source="pos", store_code="SH01" if k in "ae" else "BJ02")
             for k, p in PHONES.items()]  # fmt: skip
    write(facts, "order_line", lines, "pos-1")
    refresh_identity(state, Engine(facts), derived, probabilistic=False)
    ids = {k: lookup(derived.current("identity"), "phone", p)[0] for k, p in PHONES.items()}
    snapshot = derived.new_snapshot("portrait")
    pq.write_table(pa.table({
        "customer_id": pa.array([ids[k] for k in INTERESTS], pa.int64()),
        "interests": pa.array([i for i, _ in INTERESTS.values()], pa.list_(pa.string())),
        "city": pa.array([c for _, c in INTERESTS.values()], pa.string()),
    }), snapshot / "tags.parquet")  # fmt: skip
    derived.publish("portrait", snapshot)
    for role in ROLES:
        create_user(state, role.replace("_", "-"), PASSWORD, role)
    with TestClient(create_app(settings), base_url="https://testserver") as app:
        yield Shop(app, state, ids, {})
    state.dispose()


def _local(moment: dt.datetime) -> str:
    return moment.astimezone(ZONE).strftime("%Y-%m-%dT%H:%M")


def _post(client: TestClient, url: str, **data: object) -> Response:
    return client.post(url, data={"csrf_token": csrf_of(client), **data}, follow_redirects=False)


def test_communities_events_and_the_till(shop: Shop) -> None:
    marketer = shop.as_role("marketer")
    empty = marketer.get("/console/loyalty/communities")
    assert empty.status_code == 200 and 'id="no-communities"' in empty.text and 'id="no-events"' in empty.text

    bad = _post(marketer, "/console/loyalty/communities", name_zh="", name_en="Bakers", interests="bakng")
    assert bad.status_code == 400
    assert "unknown interest &#39;bakng&#39; — did you mean &#39;baking&#39;?" in bad.text
    assert 'id="error-name_zh"' in bad.text and 'value="Bakers"' in bad.text
    made = _post(marketer, "/console/loyalty/communities", name_zh="烘焙社", name_en="Bakers", interests="baking",
                 description="周末一起做面包")  # fmt: skip
    assert made.status_code == 303
    home = made.headers["location"]
    page = marketer.get(home)
    suggested = sorted(int(c) for c in re.findall(r'<tr data-customer="(\d+)">', page.text))
    assert suggested == sorted(shop.ids[k] for k in "ace")  # exactly the bakers
    in_shanghai = marketer.get(f"{home}?city=上海")
    assert sorted(int(c) for c in re.findall(r'<tr data-customer="(\d+)">', in_shanghai.text)) == sorted(
        shop.ids[k] for k in "ae"
    )
    assert 'id="suggest-total">2 customers match' in in_shanghai.text
    invited = _post(marketer, f"{home}/invite", customer_id=str(shop.ids["a"]))
    assert invited.headers["location"] == f"{home}?invited=1"
    everyone = _post(marketer, f"{home}/invite", all="1", city="", store="")
    assert everyone.headers["location"] == f"{home}?invited=2"
    after = marketer.get(home)
    assert "Members (3)" in after.text and 'id="no-suggestions"' in after.text

    starts = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=30)
    wrong = _post(marketer, f"{home}/events", title_zh="烘焙课", venue="", store_code="", starts_at="",
                  ends_at="", capacity="2")  # fmt: skip
    assert wrong.status_code == 400
    assert 'id="error-venue"' in wrong.text and 'id="error-starts_at"' in wrong.text
    created = _post(marketer, f"{home}/events", title_zh="烘焙课", title_en="Baking class", store_code="SH01",
                    venue="一楼活动区", starts_at=_local(starts), ends_at=_local(starts + dt.timedelta(hours=2)),
                    capacity="2")  # fmt: skip
    event_url = created.headers["location"]
    event_id = int(event_url.rsplit("/", 1)[1])
    event_page = marketer.get(event_url)
    assert "Baking class" in event_page.text and 'id="venue-qr"' in event_page.text
    assert "https://shop.example.cn/e/" in event_page.text and 'id="no-signups"' in event_page.text

    assert _post(marketer, f"{event_url}/signups", phone="139 0000 0201").status_code == 303
    assert _post(marketer, f"{event_url}/signups", customer_id=str(shop.ids["c"])).status_code == 303
    assert _post(marketer, f"{event_url}/signups", phone=PHONES["e"]).status_code == 303
    unknown = _post(marketer, f"{event_url}/signups", phone="13900000299")
    assert unknown.status_code == 404 and "no customer holds the phone" in unknown.text
    listed = marketer.get(f"{event_url}?status=waiting")
    assert re.findall(r'data-customer="(\d+)" data-status="waiting"', listed.text) == [str(shop.ids["e"])]
    assert "#1 waiting" in listed.text
    cancel = _post(marketer, f"{event_url}/signups/{shop.ids['a']}/cancel")
    assert cancel.status_code == 303
    confirmed = {s.customer_id for s in sign_ups(shop.state, event_id, status="confirmed")[0]}
    assert confirmed == {shop.ids["c"], shop.ids["e"]}  # e took the freed seat

    seat = next(s for s in sign_ups(shop.state, event_id, status="confirmed")[0] if s.customer_id == shop.ids["c"])
    ticket_page = marketer.get(f"/console/loyalty/communities/tickets/{seat.id}")
    code = re.search(r'id="ticket-code">([^<]+)<', ticket_page.text)
    assert code and 'id="ticket-qr"' in ticket_page.text

    clerk = shop.as_role("store_clerk")
    form = clerk.get("/console/till/check-in")
    key = re.search(r'name="key" value="([^"]+)"', form.text)
    assert key
    first = _post(clerk, "/console/till/check-in", ticket=code.group(1), key=key.group(1))
    assert first.status_code == 200 and 'id="checked-in"' in first.text and "Checked in." in first.text
    again = _post(clerk, "/console/till/check-in", ticket=code.group(1), key=key.group(1))
    assert "Already checked in with this form." in again.text
    other = _post(clerk, "/console/till/check-in", ticket=code.group(1), key="another-form")
    assert other.status_code == 409 and "was already used at" in other.text
    report = marketer.get(event_url)
    assert re.search(r'<tr data-method="ticket">', report.text)
    assert 'id="seats">2 of 2' in report.text

    assert clerk.get(home).status_code == 403
    agent = shop.as_role("service_agent")
    assert agent.get(event_url).status_code == 200
    assert _post(agent, f"{event_url}/cancel", reason="no").status_code == 403
    assert marketer.get("/console/till/check-in").status_code == 403


def test_the_public_walk_in_page(shop: Shop) -> None:
    api = shop.app
    admin = shop.as_role("admin")
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    made = _post(admin, "/console/loyalty/communities", name_zh="徒步社", name_en="Hikers", interests="hiking")
    home = made.headers["location"]
    created = _post(admin, f"{home}/events", title_zh="江边徒步", title_en="Riverside walk", venue="滨江公园南门",
                    starts_at=_local(starts), ends_at=_local(starts + dt.timedelta(hours=2)), capacity="1")  # fmt: skip
    event_page = admin.get(created.headers["location"])
    venue = re.search(r"https://shop\.example\.cn(/e/[A-Za-z0-9_-]+)", event_page.text)
    assert venue
    path = venue.group(1)

    phone = fresh_client(api)
    page = phone.get(f"{path}?lang=en")
    assert page.status_code == 200 and "Riverside walk" in page.text and page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert token
    forged = fresh_client(api).post(f"{path}?lang=en", data={"form_token": token.group(1), "phone": PHONES["b"]})
    assert forged.status_code == 403 and "The form has expired" in forged.text  # no cookie: not this browser's form
    done = phone.post(f"{path}?lang=en", data={"form_token": token.group(1), "phone": PHONES["b"]})
    assert done.status_code == 200 and "Welcome! You are checked in." in done.text
    report = admin.get(created.headers["location"])
    assert f'href="/console/customers/{shop.ids["b"]}"' in report.text  # OneID knew the phone
    assert "Members (1)" in admin.get(home).text  # and the hiker is now a member

    late = fresh_client(api)
    token = re.search(r'name="form_token" value="([^"]+)"', late.get(path).text)
    assert token
    full = late.post(path, data={"form_token": token.group(1), "phone": "13900000288"})
    assert full.status_code == 409 and "抱歉，活动名额已满。" in full.text
    assert fresh_client(api).get("/e/not-a-token").status_code == 404
    assert fresh_client(api).get(f"{path}?lang=../en").status_code == 200  # an unknown language is not read

    flood = fresh_client(api)
    answers = [flood.post(path, data={"form_token": "x", "phone": "1"}).status_code for _ in range(12)]
    assert 429 in answers and answers.index(429) >= 7  # the address's attempts of the minute are used up

    assert _post(admin, f"{created.headers['location']}/cancel", reason="暴雨预警").status_code == 303
    gone = fresh_client(api).get(path)
    assert "抱歉，本活动已取消。" in gone.text and 'id="walk-in-form"' not in gone.text
