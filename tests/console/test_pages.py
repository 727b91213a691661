"""The console's pages over HTTP: log-in, sessions, CSRF, rate limit, languages, search, 360, charts, segments."""

from __future__ import annotations

import re
from collections.abc import Callable

import duckdb
import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.access.sessions import MAX_FAILURES_PER_USER
from omnicrm.access.users import create_user
from omnicrm.console.dashboard import CHARTS
from omnicrm.console.i18n import catalogue
from tests.console.accounts import (
    PASSWORD,
    as_role,
    console_app,
    console_users,
    csrf_of,
    fresh_client,
    log_in,
    login_token,
)

__all__ = ["as_role", "console_app", "console_users"]  # fixtures used here


def a_phone(client: TestClient) -> tuple[int, str]:
    snap = client.app.state.derived.current("identity")  # type: ignore[attr-defined]
    row = duckdb.sql(
        f"""SELECT i.customer_id, i.value FROM '{snap / "identifiers.parquet"}' i
            WHERE id_type = 'phone' AND holders = 1 ORDER BY customer_id LIMIT 1"""
    ).fetchall()[0]
    return int(row[0]), str(row[1])


def test_catalogues_have_the_same_messages() -> None:
    assert set(catalogue("en")) == set(catalogue("zh-CN"))
    assert all(catalogue("zh-CN").values())


def test_anonymous_is_sent_to_log_in_and_back(console_app: TestClient, console_users: dict[str, str]) -> None:
    client = fresh_client(console_app)
    res = client.get("/console/segments?p=1", follow_redirects=False)
    assert res.status_code == 303
    assert res.headers["location"] == "/console/login?next=%2Fconsole%2Fsegments%3Fp%3D1"
    assert (
        client.get("/console/segments", headers={"HX-Request": "true"})
        .headers["HX-Redirect"]
        .startswith("/console/login")
    )
    token = login_token(client, res.headers["location"])
    done = client.post(
        "/console/login",
        data={"username": "marketer", "password": PASSWORD, "login_token": token, "next": "/console/segments?p=1"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/console/segments?p=1"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")


def test_log_in_refuses_other_sites_and_foreign_next(console_app: TestClient, console_users: dict[str, str]) -> None:
    client = fresh_client(console_app)
    client.get("/console/login")
    no_token = client.post("/console/login", data={"username": "admin", "password": PASSWORD, "login_token": "x"})
    assert no_token.status_code == 403
    token = login_token(client)
    away = client.post(
        "/console/login",
        data={"username": "admin", "password": PASSWORD, "login_token": token, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert away.status_code == 303 and away.headers["location"] == "/console/"


def test_wrong_passwords_are_throttled(console_app: TestClient) -> None:
    state = console_app.app.state.state_store  # type: ignore[attr-defined]
    create_user(state, "throttled", PASSWORD, "store_clerk")
    client = fresh_client(console_app)
    codes = []
    for _ in range(MAX_FAILURES_PER_USER + 1):
        token = login_token(client)
        res = client.post("/console/login", data={"username": "throttled", "password": "nope", "login_token": token})
        codes.append(res.status_code)
    assert codes == [401] * MAX_FAILURES_PER_USER + [429]
    token = login_token(client)
    right = client.post("/console/login", data={"username": "throttled", "password": PASSWORD, "login_token": token})
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0, "even the right password waits"


def test_log_out_ends_the_session(console_app: TestClient, console_users: dict[str, str]) -> None:
    client = log_in(fresh_client(console_app), "admin")
    token = csrf_of(client)
    cookie = client.cookies.get("omnicrm_session")
    assert client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    replay = fresh_client(console_app)
    replay.cookies.set("omnicrm_session", cookie or "", domain="testserver.local")
    assert replay.get("/console/customers", follow_redirects=False).status_code == 303


def test_unsafe_requests_need_the_session_token(as_role: Callable[[str], TestClient]) -> None:
    client = as_role("marketer")
    body = {"text": 'rfm_segment = "champions"'}
    assert client.post("/console/segments/count", data=body).status_code == 403
    assert client.post("/console/segments/count", data={**body, "csrf_token": "forged"}).status_code == 403
    token = csrf_of(client)
    cross = client.post(
        "/console/segments/count", data={**body, "csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert client.post("/console/segments/count", data={**body, "csrf_token": token}).status_code == 200


def test_pages_carry_security_headers(as_role: Callable[[str], TestClient]) -> None:
    res = as_role("admin").get("/console/tags")
    assert "script-src 'self'" in res.headers["Content-Security-Policy"]
    assert res.headers["X-Frame-Options"] == "DENY" and res.headers["Cache-Control"] == "no-store"


def test_language_switch(as_role: Callable[[str], TestClient]) -> None:
    client = as_role("marketer")
    client.get("/console/lang/en?next=/console/tags")
    assert "Tag catalogue" in client.get("/console/tags").text
    res = client.get("/console/lang/zh-CN?next=/console/tags", follow_redirects=False)
    assert res.headers["location"] == "/console/tags"
    assert "标签目录" in client.get("/console/tags").text
    assert (
        client.get("/console/lang/xx?next=https://evil.example", follow_redirects=False).headers["location"]
        == "/console/"
    )


def test_search_by_phone_opens_the_360(as_role: Callable[[str], TestClient]) -> None:
    client = as_role("service_agent")
    customer, phone = a_phone(client)
    spaced = f"{phone[3:6]} {phone[6:10]} {phone[10:]}"  # as a clerk might type it
    res = client.get("/console/customers", params={"q": spaced}, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == f"/console/customers/{customer}"
    page = client.get(res.headers["location"]).text
    assert phone in page and 'id="timeline-rows"' in page and 'id="tags"' in page
    none = client.get("/console/customers", params={"q": "no-such-person@example.com"}).text
    assert 'id="no-results"' in none
    assert client.get("/console/customers/987654321").status_code == 404


def test_store_clerk_sees_identifiers_masked(as_role: Callable[[str], TestClient]) -> None:
    client = as_role("store_clerk")
    customer, phone = a_phone(client)
    page = client.get(f"/console/customers/{customer}").text
    assert phone not in page
    assert f"{phone[:6]}****{phone[-4:]}" in page
    assert 'id="manual"' not in page


def test_charts_are_echarts_options(as_role: Callable[[str], TestClient]) -> None:
    client = as_role("marketer")
    page = client.get("/console/").text
    for name in CHARTS:
        assert f'data-chart="/console/charts/{name}"' in page
        option = client.get(f"/console/charts/{name}").json()
        assert option["series"] and option["title"]["text"]
    assert client.get("/console/charts/nope").status_code == 404


def test_live_count_equals_the_api(as_role: Callable[[str], TestClient], console_app: TestClient) -> None:
    client = as_role("marketer")
    token = csrf_of(client)
    rule = 'lifecycle_stage IN ("active", "new") AND monetary > 200'
    html = client.post("/console/segments/count", data={"text": rule, "csrf_token": token}).text
    shown = int(re.search(r'data-count="(\d+)"', html).group(1))  # type: ignore[union-attr]
    key = create_api_key(console_app.app.state.state_store, "count", ["segments:read"])  # type: ignore[attr-defined]
    api = console_app.post("/api/segments/count", json={"text": rule}, headers={"Authorization": f"Bearer {key}"})
    assert api.json()["count"] == shown > 0
    bad = client.post("/console/segments/count", data={"text": "monetary >", "csrf_token": token}).text
    assert 'id="count-error"' in bad and "character" in bad


def test_save_a_segment_and_page_the_list(as_role: Callable[[str], TestClient]) -> None:
    client = as_role("marketer")
    token = csrf_of(client)
    for i in range(27):
        res = client.post(
            "/console/segments",
            data={"name": f"high spenders {i}", "text": f"monetary > {100 + i}", "csrf_token": token},
            follow_redirects=False,
        )
        assert res.status_code == 303, res.text
    first = client.get("/console/segments").text
    assert "high spenders 26" in first and 'rel="next"' in first, "newest first, 25 a page"
    second = client.get("/console/segments?p=2").text
    assert 'rel="prev"' in second
    refused = client.post("/console/segments", data={"name": "", "text": "monetary >", "csrf_token": token})
    assert refused.status_code == 400 and 'role="alert"' in refused.text


def test_manual_tag_from_the_360(as_role: Callable[[str], TestClient], console_app: TestClient) -> None:
    from omnicrm.portrait.refresh import catalogue as tag_catalogue
    from omnicrm.portrait.tags.custom import define_tag

    state = console_app.app.state.state_store  # type: ignore[attr-defined]
    if "vip_note" not in {d.id for d in tag_catalogue(state)}:
        known = {d.id: d.value_type for d in tag_catalogue(state)}
        define_tag(state, known, tag_id="vip_note", name_zh="VIP 备注", name_en="VIP note", value_type="category",
                   by="test")  # fmt: skip
    client = as_role("service_agent")
    customer, _ = a_phone(client)
    token = csrf_of(client)
    res = client.post(
        f"/console/customers/{customer}/tags",
        data={"tag_id": "vip_note", "value": "likes silk", "note": "said at the till", "csrf_token": token},
        follow_redirects=False,
    )
    assert res.status_code == 303
    page = client.get(f"/console/customers/{customer}").text
    assert "likes silk" in page and "said at the till" in page


@pytest.mark.parametrize("path", ["/console/tags?q=zzzz-nothing", "/console/tags?p=999"])
def test_empty_and_out_of_range_pages(as_role: Callable[[str], TestClient], path: str) -> None:
    res = as_role("admin").get(path)
    assert res.status_code == 200


def test_consents_on_the_360(as_role: Callable[[str], TestClient], console_app: TestClient) -> None:
    from omnicrm.consent.ledger import record

    state = console_app.app.state.state_store  # type: ignore[attr-defined]
    client = as_role("marketer")
    customer, phone = a_phone(client)
    record(state, subject=f"phone::{phone}", channel="sms", purpose="marketing", granted=True,
           source="signup_form", by="test", wording="v1")  # fmt: skip
    page = client.get(f"/console/customers/{customer}").text
    assert 'id="consents"' in page and "signup_form" in page and phone in page
    clerk = as_role("store_clerk").get(f"/console/customers/{customer}").text
    assert f"{phone[:6]}****{phone[-4:]}" in clerk and phone not in clerk
