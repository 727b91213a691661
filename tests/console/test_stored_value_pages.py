"""Stored value in the console and the API, over HTTP on the console merchant.

The till page (store clerks): look a member up by phone or member card, top up, pay, refund a spend, with CSRF-checked
forms whose idempotency key makes a resubmitted form a no-op, and each refusal shown beside what was typed. The back
office page: the liability (paid vs bonus), the money per store and day, a member's ledger page by page, reversals
for staff who may run the programme. The API: balance, ledger, report, and the till's requests with their keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import duckdb
import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.loyalty import stored_value as sv
from tests.console.accounts import as_role, console_app, console_users, csrf_of, english_client

__all__ = ["as_role", "console_app", "console_users"]  # fixtures used here

TILL = "/console/till/stored-value"
BACK_OFFICE = "/console/loyalty/stored-value"
ENGLISH: dict[str, TestClient] = {}


def identifier(client: TestClient, id_type: str, skip: int) -> tuple[int, str]:
    """A member's identifier of ``id_type`` held by them alone (the ``skip``-th such member, to keep tests apart)."""
    snap = client.app.state.derived.current("identity")  # type: ignore[attr-defined]
    row = duckdb.sql(
        f"""SELECT customer_id, value FROM '{snap / "identifiers.parquet"}'
            WHERE id_type = '{id_type}' AND holders = 1 ORDER BY customer_id LIMIT 1 OFFSET {skip}"""
    ).fetchall()[0]
    return int(row[0]), str(row[1])


def english(app: TestClient, role: str) -> TestClient:
    return english_client(app, role, ENGLISH)


def balance_on(page: str) -> int:
    found = re.search(r'id="balance-total" data-fen="(-?\d+)"', page)
    assert found, page[:3000]
    return int(found.group(1))


def form_key(page: str, form: str) -> str:
    found = re.search(rf'name="idempotency_key" value="(console-[^"]+-{form})"', page)
    assert found, page[:3000]
    return found.group(1)


def post(client: TestClient, action: str, page: str, customer: int, **fields: str) -> tuple[int, str, str]:
    """Send the till's ``action`` form as drawn on ``page``; (status, location, body)."""
    data = {"csrf_token": csrf_of(client, TILL), "customer_id": str(customer), "store_code": "S18",
            "guide_id": "li-na", "idempotency_key": form_key(page, action), **fields}  # fmt: skip
    res = client.post(f"{TILL}/{action}", data=data, follow_redirects=False)
    return res.status_code, res.headers.get("location", ""), res.text


def test_a_clerk_finds_a_member_tops_up_pays_and_refunds(console_app: TestClient) -> None:
    clerk = english(console_app, "store_clerk")
    customer, phone = identifier(clerk, "phone", 11)
    spaced = f"{phone[3:6]} {phone[6:10]} {phone[10:]}"
    found = clerk.get(TILL, params={"type": "phone", "q": spaced, "store": "S18", "guide": "li-na"},
                      follow_redirects=False)  # fmt: skip
    assert found.status_code == 303
    assert found.headers["location"] == f"{TILL}?customer={customer}&store=S18&guide=li-na"
    page = clerk.get(found.headers["location"]).text
    assert 'id="top-up-form"' in page and 'id="spend-form"' in page and phone not in page
    start = balance_on(page)

    status, location, _ = post(clerk, "top-up", page, customer, paid="200", bonus="20.50", reference="R-1")
    assert status == 303 and "done=" in location
    done = clerk.get(location).text
    assert balance_on(done) == start + 22_050
    assert "Topped up ¥220.50" in done and "Serving at store S18, store guide li-na" in done
    again = post(clerk, "top-up", page, customer, paid="200", bonus="20.50")  # the same form sent twice
    assert again[0] == 303 and balance_on(clerk.get(again[1]).text) == start + 22_050

    status, location, _ = post(clerk, "spend", done, customer, amount="99.90")
    paid = clerk.get(location).text
    assert balance_on(paid) == start + 22_050 - 9_990 and "Paid ¥99.90 from stored value" in paid
    spend_id = int(re.search(r"done=(\d+)", location).group(1))  # type: ignore[union-attr]

    status, _, body = post(clerk, "spend", paid, customer, amount=f"{(start + 22_050 - 9_990) / 100 + 0.01:.2f}")
    assert status == 400 and 'id="till-error"' in body and "not enough to spend" in body
    assert balance_on(body) == start + 22_050 - 9_990  # nothing was taken
    status, _, body = post(clerk, "spend", paid, customer, amount="12.345")
    assert status == 400 and 'id="error-spend-amount"' in body and "at most two decimals" in body
    assert 'value="12.345"' in body  # what was typed is kept

    assert f'<option value="{spend_id}"' in paid
    status, location, _ = post(clerk, "refund", paid, customer, spend_id=str(spend_id), amount="10", reason="size")
    refunded = clerk.get(location).text
    assert status == 303 and balance_on(refunded) == start + 22_050 - 8_990
    assert "¥89.90 left to refund" in refunded
    status, _, body = post(clerk, "refund", refunded, customer, spend_id=str(spend_id), amount="89.91")
    assert status == 400 and "can give back at most ¥89.90" in body


def test_till_lookups_and_refusals(console_app: TestClient) -> None:
    clerk = english(console_app, "store_clerk")
    customer, card = identifier(clerk, "member_card", 3)
    found = clerk.get(TILL, params={"type": "member_card", "q": card, "store": "S02"}, follow_redirects=False)
    assert found.status_code == 303 and f"customer={customer}" in found.headers["location"]
    none = clerk.get(TILL, params={"type": "phone", "q": "13712340987", "store": "S02"}).text
    assert 'id="no-member"' in none and "No member has 137****0987" in none
    bad = clerk.get(TILL, params={"type": "phone", "q": "not a phone", "store": "S02"}).text
    assert 'id="lookup-error"' in bad
    assert 'id="till-hint"' in clerk.get(TILL).text
    page = clerk.get(f"{TILL}?customer={customer}").text
    no_store = post(clerk, "spend", page, customer, amount="1", store_code="")
    assert no_store[0] == 400 and "give the store code" in no_store[2]
    token_missing = clerk.post(f"{TILL}/spend", data={"customer_id": str(customer), "amount": "1"})
    assert token_missing.status_code == 403
    assert english(console_app, "marketer").get(TILL).status_code == 403
    assert clerk.get(BACK_OFFICE).status_code == 403


def test_back_office_report_ledger_pages_and_reversal(console_app: TestClient) -> None:
    state = console_app.app.state.state_store  # type: ignore[attr-defined]
    member = 990_017
    first = sv.top_up(state, member, 50_000, bonus_fen=5_000, till=sv.Till("S77", "bo-first", "test", "wang"))
    for n in range(34):
        sv.spend(state, member, 100 + n, till=sv.Till("S77", f"bo-spend-{n}", "test", "wang"))
    marketer = english(console_app, "marketer")
    report = marketer.get(BACK_OFFICE).text
    owed = sv.balance(state, member)
    assert 'id="liability-total"' in report and 'data-store="S77"' in report
    total = int(re.search(r'id="liability-total" data-fen="(\d+)"', report).group(1))  # type: ignore[union-attr]
    assert total >= owed.balance_fen and "Outstanding stored value" in report
    ledger = marketer.get(BACK_OFFICE, params={"customer": member}).text
    assert balance_on(ledger) == owed.balance_fen == 55_000 - sum(100 + n for n in range(34))
    assert "Ledger (35 entries)" in ledger and "Page 1 of 2" in ledger and ledger.count('data-kind="spend"') == 30
    second = marketer.get(BACK_OFFICE, params={"customer": member, "p": 2}).text
    assert 'data-kind="topup"' in second and "Page 2 of 2" in second
    assert f'id="reverse-{first.entry.id}"' in second  # offered; refused below, as some of it was spent
    refused = marketer.post(
        f"{BACK_OFFICE}/reversals",
        data={"csrf_token": csrf_of(marketer, BACK_OFFICE), "customer_id": str(member),
              "entry_id": str(first.entry.id), "reason": "typo", "idempotency_key": "bo-rv-1"},
    )  # fmt: skip
    assert refused.status_code == 409 and "has been spent or refunded" in refused.text
    last = sv.history(state, member, limit=1)[0]
    done = marketer.post(
        f"{BACK_OFFICE}/reversals",
        data={"csrf_token": csrf_of(marketer, BACK_OFFICE), "customer_id": str(member), "entry_id": str(last.id),
              "reason": "rung up twice", "idempotency_key": "bo-rv-2"},
        follow_redirects=False,
    )  # fmt: skip
    assert done.status_code == 303 and sv.balance(state, member).balance_fen == owed.balance_fen - last.amount_fen
    agent = english(console_app, "service_agent")
    seen = agent.get(BACK_OFFICE, params={"customer": member}).text
    assert "Ledger (36 entries)" in seen and 'action="/console/loyalty/stored-value/reversals"' not in seen
    empty = marketer.get(BACK_OFFICE, params={"since": "2001-01-01", "until": "2001-01-02"}).text
    assert 'id="no-days"' in empty
    assert 'id="no-entries"' in marketer.get(BACK_OFFICE, params={"customer": 990_099}).text
    assert "Give the date as YYYY-MM-DD" in marketer.get(BACK_OFFICE, params={"since": "1 May"}).text


def test_pages_in_chinese(as_role: Callable[[str], TestClient]) -> None:
    assert "收银台储值" in as_role("store_clerk").get(TILL).text
    assert "储值负债" in as_role("marketer").get(BACK_OFFICE).text


@pytest.fixture(scope="module")
def keys(console_app: TestClient) -> dict[str, dict[str, str]]:
    state = console_app.app.state.state_store  # type: ignore[attr-defined]
    return {
        name: {"Authorization": f"Bearer {create_api_key(state, f'sv-{name}', scopes)}"}
        for name, scopes in (("till", ["till"]), ("read", ["loyalty:read"]), ("write", ["loyalty:write"]))
    }


def test_the_api_at_the_till_and_for_reading(console_app: TestClient, keys: dict[str, dict[str, str]]) -> None:
    member, base = 990_031, "/api/stored-value/990031"
    body = {"paid_fen": 10_000, "bonus_fen": 1_000, "store_code": "S05", "guide_id": "zhao", "idempotency_key": "api-1"}
    made = console_app.post(f"{base}/top-ups", json=body, headers=keys["till"])
    assert made.status_code == 201 and made.json()["balance"]["balance_fen"] == 11_000
    again = console_app.post(f"{base}/top-ups", json=body, headers={**keys["till"], "Idempotency-Key": "api-1"})
    assert again.status_code == 200 and again.json()["replayed"] and again.json()["entry"] == made.json()["entry"]
    other = console_app.post(f"{base}/top-ups", json=body, headers={**keys["till"], "Idempotency-Key": "api-2"})
    assert other.status_code == 400 and other.json()["problems"][0]["field"] == "idempotency_key"
    spend = {"amount_fen": 11_001, "store_code": "S05", "idempotency_key": "api-3"}
    too_much = console_app.post(f"{base}/spends", json=spend, headers=keys["till"])
    assert too_much.status_code == 400
    assert too_much.json() == {
        "code": "invalid_request",
        "message": f"customer {member} has ¥110.00 of stored value, not enough to spend ¥110.01",
        "problems": [{"reason": "asked 11001 fen, the balance is 11000 fen", "field": "amount_fen"}],
    }
    paid = console_app.post(f"{base}/spends", json={**spend, "amount_fen": 10_500}, headers=keys["till"]).json()
    assert [d["bucket"] for d in paid["entry"]["draws"]] == ["paid", "bonus"]
    refund = {"spend_id": paid["entry"]["id"], "store_code": "S05", "idempotency_key": "api-4"}
    assert (
        console_app.post(f"{base}/refunds", json=refund, headers=keys["till"]).json()["balance"]["balance_fen"]
        == 11_000
    )
    naive = console_app.post(f"{base}/spends", json={**spend, "amount_fen": 1, "idempotency_key": "api-5",
                                                     "at": "2026-03-01T10:00:00"}, headers=keys["till"])  # fmt: skip
    assert naive.status_code == 400 and naive.json()["problems"][0]["field"] == "at"
    assert console_app.post(f"{base}/spends", json={**spend, "amount_fen": 0}, headers=keys["till"]).status_code == 422
    reverse = {"entry_id": paid["entry"]["id"], "reason": "test", "idempotency_key": "api-6"}  # refunded in full
    assert console_app.post(f"{base}/reversals", json=reverse, headers=keys["till"]).status_code == 403
    assert console_app.post(f"{base}/reversals", json=reverse, headers=keys["write"]).status_code == 409
    assert console_app.get(base, headers=keys["till"]).status_code == 403
    shown = console_app.get(base, headers=keys["read"]).json()
    assert shown == {"customer_id": member, "balance_fen": 11_000, "paid_fen": 10_000, "bonus_fen": 1_000, "entries": 3}
    page = console_app.get(f"{base}/entries", params={"limit": 2}, headers=keys["read"]).json()
    assert [e["kind"] for e in page["entries"]] == ["refund", "spend"] and page["next_before"] == page["entries"][1][
        "id"
    ]
    rest = console_app.get(f"{base}/entries", params={"before": page["next_before"]}, headers=keys["read"]).json()
    assert [e["kind"] for e in rest["entries"]] == ["topup"] and rest["next_before"] is None
    report = console_app.get("/api/stored-value/report", headers=keys["read"]).json()
    assert report["liability"]["total_fen"] == report["liability"]["paid_fen"] + report["liability"]["bonus_fen"]
    assert any(d["store_code"] == "S05" and d["topups"] >= 1 for d in report["days"])
