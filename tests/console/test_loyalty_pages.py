"""The console's loyalty pages and the till over HTTP, on SQLite and PostgreSQL: the hub, finding a member and their
page (balance, tier, lots, paged ledger, coupons), adjustments with their required reason, tiers and their review,
the liability and its chart, coupon templates, issuing to a saved segment once per batch key, the redemption report,
and the till (find by phone or coupon code, the discount before the redemption, earn, spend); who may see what,
and errors in the user's language that leave the ledger as it was.

Each test runs the app over a copy of the console merchant's facts and OneID (so phones find customers) with its
own state database from the ``state_url`` fixture: the users, rules, coupons and points are made here.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from omnicrm.access.users import ROLES, create_user
from omnicrm.api.app import create_app
from omnicrm.console.i18n import catalogue
from omnicrm.loyalty.coupons import Template, create_template, customer_coupons, issue
from omnicrm.loyalty.ledger import adjust, balance, history
from omnicrm.loyalty.rules import LoyaltyRules, save_rules
from omnicrm.loyalty.tiers import Tier, TierProgram
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore
from tests.console.accounts import PASSWORD, csrf_of, english_client
from tests.console.test_campaign_pages import make_segment
from tests.loyalty.checks import counts, give

PROGRAMME = TierProgram(tiers=[Tier(name="member", threshold=0),
                               Tier(name="gold", threshold=500, coupons=["gold-gift"], free_shipping=True)])  # fmt: skip
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def merchant(console_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The console merchant's facts and OneID, without its state database."""
    root = tmp_path_factory.mktemp("loyalty-pages") / "merchant"
    shutil.copytree(console_data, root, ignore=shutil.ignore_patterns("state.db*"))
    return root


@dataclass
class Shop:
    app: TestClient
    root: Path
    clients: dict[str, TestClient]
    customer: int
    phone: str

    def as_role(self, role: str) -> TestClient:
        return english_client(self.app, role, self.clients)

    @property
    def state(self) -> StateStore:
        return self.app.app.state.state_store  # type: ignore[attr-defined,no-any-return]


def phone_holder(root: Path, skip: int = 0) -> tuple[int, str]:
    snap = sorted((root / "derived" / "identity" / "snapshots").iterdir())[-1]
    row = duckdb.sql(
        f"""SELECT customer_id, value FROM '{snap / "identifiers.parquet"}'
            WHERE id_type = 'phone' AND holders = 1 ORDER BY customer_id LIMIT 1 OFFSET {skip}"""
    ).fetchall()[0]
    return int(row[0]), str(row[1])


@pytest.fixture
def shop(merchant: Path, state_url: str, tmp_path: Path) -> Iterator[Shop]:
    settings = load_settings(data_dir=merchant, state_url=state_url, loader_interval_seconds=0,
                             campaign_interval_seconds=0)  # fmt: skip
    with TestClient(create_app(settings), base_url="https://testserver") as app:
        state = app.app.state.state_store  # type: ignore[attr-defined]
        for role in ROLES:
            create_user(state, role.replace("_", "-"), PASSWORD, role, display_name=f"{role} user")
        customer, phone = phone_holder(merchant)
        yield Shop(app, merchant, {}, customer, phone)


def stock(shop: Shop) -> None:
    """Rules with tiers, a gold-gift and a till coupon template, 620 points (600 of them active) and one coupon."""
    save_rules(shop.state, LoyaltyRules(tiers=PROGRAMME, point_value=Decimal("0.02")), by="test")
    for tid, kind, extra in (("gold-gift", "amount_off", {"amount_off_fen": 1000}),
                             ("spring-30", "threshold", {"amount_off_fen": 3000, "min_spend_fen": 19900})):  # fmt: skip
        create_template(shop.state, Template(tid, f"{tid} coupon", kind, total_quantity=50, valid_days=30, **extra),
                        by="test")  # fmt: skip
    give(shop.state, shop.customer, 600, "T-600", at=NOW - dt.timedelta(days=20), now=NOW)
    give(shop.state, shop.customer, 20, "T-20", at=NOW, window_days=15, now=NOW)
    issue(shop.state, "spring-30", shop.customer, idempotency_key="pages:spring")


def test_hub_members_and_the_member_page(shop: Shop) -> None:
    marketer = shop.as_role("marketer")
    hub = marketer.get("/console/loyalty")
    assert hub.status_code == 200 and 'id="no-points"' in hub.text and "No loyalty rules saved yet" in hub.text
    for section in ("members", "tiers", "coupons", "liability", "referrals", "draws", "communities", "content",
                    "stored-value"):  # fmt: skip
        assert f'href="/console/loyalty/{section}"' in hub.text
    assert '<a href="/console/loyalty" class="on">Loyalty</a>' in hub.text
    stock(shop)
    assert "620 points outstanding, worth ¥12.40" in marketer.get("/console/loyalty").text

    found = marketer.get("/console/loyalty/members", params={"q": shop.phone.removeprefix("+86")},
                         follow_redirects=False)  # fmt: skip
    assert found.status_code == 303 and found.headers["location"] == f"/console/loyalty/members/{shop.customer}"
    none = marketer.get("/console/loyalty/members", params={"q": "13000000001"})
    assert 'id="no-members"' in none.text
    page = marketer.get(f"/console/loyalty/members/{shop.customer}").text
    assert 'id="available" data-points="600"' in page and 'id="pending">20<' in page
    assert 'id="tier-name">member' in page and "Qualifies for gold at the next tier review" in page
    assert "spring-30" in page and 'data-status="issued"' in page
    assert page.count('data-kind="earn"') == 2 and 'id="ledger-older"' not in page

    for i in range(26):  # a ledger longer than a page
        adjust(shop.state, shop.customer, 1, reason=f"goodwill {i}", by="test")
    first = marketer.get(f"/console/loyalty/members/{shop.customer}").text
    assert first.count("<tr data-kind=") == 25 and "goodwill 25" in first and "goodwill 0" not in first
    older = re.search(r'href="(/console/loyalty/members/\d+\?before=\d+)#ledger" rel="next"', first)
    assert older
    rest = marketer.get(older.group(1)).text
    assert rest.count("<tr data-kind=") == 3 and "goodwill 0" in rest and 'id="ledger-newest"' in rest

    agent = shop.as_role("service_agent")
    seen = agent.get(f"/console/loyalty/members/{shop.customer}")
    assert seen.status_code == 200 and 'id="adjust"' not in seen.text
    assert shop.as_role("store_clerk").get("/console/loyalty").status_code == 403


def test_adjustments_need_a_reason_in_either_language(shop: Shop) -> None:
    stock(shop)
    marketer = shop.as_role("marketer")
    url = f"/console/loyalty/members/{shop.customer}/adjust"
    before = counts(shop.state)
    blank = marketer.post(url, data={"csrf_token": csrf_of(marketer), "points": "50", "reason": " ", "key": "k1"})
    assert blank.status_code == 400 and 'id="adjust-error" data-field="reason"' in blank.text
    assert "A reason is required" in blank.text and "an adjustment needs a reason" in blank.text
    assert 'value="50"' in blank.text  # what was typed is kept
    short = marketer.post(
        url, data={"csrf_token": csrf_of(marketer), "points": "-5000", "reason": "fraud", "key": "k2"}
    )
    assert short.status_code == 400 and "Not enough points" in short.text and "only 600 are available" in short.text
    assert counts(shop.state) == before
    marketer.get("/console/lang/zh-CN?next=/console/")
    try:
        zh = marketer.post(url, data={"csrf_token": csrf_of(marketer), "points": "x", "reason": "r", "key": "k3"})
        assert zh.status_code == 400 and "积分不足或积分数无效" in zh.text
    finally:
        marketer.get("/console/lang/en?next=/console/")

    form = {"csrf_token": csrf_of(marketer), "points": "-100", "reason": "parcel lost, points returned", "key": "k4"}
    done = marketer.post(url, data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=adjusted#ledger")
    assert marketer.post(url, data=form, follow_redirects=False).status_code == 303  # sent twice: adjusted once
    assert balance(shop.state, shop.customer).available == 500
    (entry,) = [e for e in history(shop.state, shop.customer) if e.kind == "adjust"]
    assert (entry.points, entry.reason, entry.recorded_by) == (-100, "parcel lost, points returned", "console:marketer")
    page = marketer.get(done.headers["location"]).text
    assert 'id="adjusted"' in page and "parcel lost, points returned" in page
    agent = shop.as_role("service_agent")
    assert agent.post(url, data={"csrf_token": csrf_of(agent), "points": "1", "reason": "r"}).status_code == 403


def test_tiers_liability_coupons_and_the_report(shop: Shop) -> None:
    marketer = shop.as_role("marketer")
    assert 'id="no-programme"' in marketer.get("/console/loyalty/tiers").text
    assert 'id="no-liability"' in marketer.get("/console/loyalty/liability").text
    assert 'id="no-templates"' in marketer.get("/console/loyalty/coupons").text
    stock(shop)

    reviewed = marketer.post("/console/loyalty/tiers/evaluate", data={"csrf_token": csrf_of(marketer)})
    assert reviewed.status_code == 200 and "Reviewed: 1 upgraded" in reviewed.text
    assert "1 upgrade coupons issued." in reviewed.text
    assert [c.template_id for c in customer_coupons(shop.state, shop.customer)] == ["gold-gift", "spring-30"]
    tiers = marketer.get("/console/loyalty/tiers").text
    assert '<tr data-tier="gold">' in tiers and 'data-members="1"' in tiers and "upgrade" in tiers

    owed = marketer.get("/console/loyalty/liability").text
    assert (
        'id="outstanding" data-points="620"' in owed
        and "¥12.40" in owed
        and 'data-chart="/console/loyalty/liability/chart"' in owed
    )
    chart = marketer.get("/console/loyalty/liability/chart").json()
    assert [s["type"] for s in chart["series"]] == ["bar", "bar", "line"]
    assert sum(chart["series"][0]["data"]) == 600 and sum(chart["series"][1]["data"]) == 20

    listed = marketer.get("/console/loyalty/coupons").text
    assert 'data-template="spring-30"' in listed and "¥30.00 off" in listed and "on ¥199.00 or more" in listed
    bad = marketer.post("/console/loyalty/coupons/templates", data={
        "csrf_token": csrf_of(marketer), "id": "vip-10", "name": "VIP 10% off", "kind": "percent_off",
        "percent_off": "10", "total_quantity": "100", "channels": ["store"]})  # fmt: skip
    assert bad.status_code == 400 and 'data-field="valid_until"' in bad.text and 'value="VIP 10% off"' in bad.text
    made = marketer.post("/console/loyalty/coupons/templates", data={
        "csrf_token": csrf_of(marketer), "id": "vip-10", "name": "VIP 10% off", "kind": "percent_off",
        "percent_off": "10", "max_off": "50", "total_quantity": "100", "valid_days": "14", "channels": ["store"]})  # fmt: skip
    assert made.status_code == 200 and "Template vip-10 is ready." in made.text
    assert "10% off (at most ¥50.00)" in made.text

    segment = make_segment(shop.root, shop.state, "big spenders", "monetary > 1000")
    key = re.search(r'id="issue-key" value="([^"]+)"', marketer.get("/console/loyalty/coupons").text)
    assert key
    form = {"csrf_token": csrf_of(marketer), "template_id": "vip-10", "segment_id": str(segment), "key": key.group(1)}
    first = marketer.post("/console/loyalty/coupons/issue", data=form).text
    issued = int(re.search(r'data-issued="(\d+)"', first).group(1))  # type: ignore[union-attr]
    assert issued > 0 and 'data-repeated="0"' in first
    again = marketer.post("/console/loyalty/coupons/issue", data=form).text
    assert 'data-issued="0"' in again and f'data-repeated="{issued}"' in again
    assert marketer.post("/console/loyalty/coupons/issue", data={**form, "segment_id": ""}).status_code == 400
    assert shop.as_role("service_agent").post("/console/loyalty/coupons/issue", data=form).status_code == 403

    report = marketer.get("/console/loyalty/coupons/report").text
    assert 'data-key="vip-10"' in report and 'id="no-stores"' in report


def test_the_till_finds_redeems_earns_and_spends(shop: Shop) -> None:
    stock(shop)
    clerk = shop.as_role("store_clerk")
    assert '<a href="/console/till" class="on">Till</a>' in clerk.get("/console/till").text
    local = shop.phone.removeprefix("+86")
    found = clerk.get("/console/till", params={"q": local}).text
    assert f'data-customer="{shop.customer}"' in found and 'id="till-available" data-points="600"' in found
    assert shop.phone not in found and shop.phone[:6] + "****" + shop.phone[-4:] in found  # masked for a clerk
    code = customer_coupons(shop.state, shop.customer)[0].code
    by_code = clerk.get("/console/till", params={"q": f" {code[:5].lower()} {code[5:]} "}).text
    assert f'data-customer="{shop.customer}"' in by_code and f'id="redeem-code" value="{code}"' in by_code
    assert 'href="/console/till/check-in"' in found and 'href="/console/till/stored-value"' in found

    desk = {"csrf_token": csrf_of(clerk), "customer_id": str(shop.customer), "store_code": "SH01", "guide_id": "g-07"}
    low = clerk.post("/console/till/redeem/preview", data={**desk, "code": code, "amount": "150", "receipt": "R-1"})
    assert low.status_code == 400 and "does not reach the coupon&#39;s minimum spend" in low.text
    offer = clerk.post(
        "/console/till/redeem/preview", data={**desk, "code": code, "amount": "259.00", "receipt": "R-1"}
    )
    assert (
        offer.status_code == 200
        and 'id="offer-discount">¥30.00' in offer.text
        and 'id="offer-to-pay">¥229.00' in offer.text
    )
    assert customer_coupons(shop.state, shop.customer)[0].status == "issued"  # shown, not yet redeemed
    assert offer.cookies.get("omnicrm_till_store") == "SH01"
    confirm = {**desk, "code": code, "amount": "259.00", "receipt": "R-1"}
    done = clerk.post("/console/till/redeem", data=confirm)
    assert done.status_code == 200 and 'id="result-discount">¥30.00' in done.text
    assert "This receipt had already redeemed it" in clerk.post("/console/till/redeem", data=confirm).text
    used = clerk.post("/console/till/redeem", data={**confirm, "receipt": "R-2"})
    assert used.status_code == 409 and "This coupon has already been used" in used.text

    earn = {**desk, "earn_receipt": "R-1", "earn_amount": "229.00"}
    earned = clerk.post("/console/till/earn", data=earn).text
    assert 'id="result-earned" data-points="229"' in earned and "Spendable from" in earned
    assert "had already earned" in clerk.post("/console/till/earn", data=earn).text

    spend = {**desk, "points": "700", "spend_receipt": "R-1", "spend_key": "till-form-1"}
    before = counts(shop.state)
    over = clerk.post("/console/till/spend", data=spend)
    assert over.status_code == 400 and 'id="spend-error"' in over.text and counts(shop.state) == before
    spent = clerk.post("/console/till/spend", data={**spend, "points": "200"})
    assert 'id="result-spent" data-points="200"' in spent.text and 'id="till-available" data-points="400"' in spent.text
    clerk.post("/console/till/spend", data={**spend, "points": "200"})  # the same form sent again
    assert balance(shop.state, shop.customer).available == 400
    entries = history(shop.state, shop.customer)
    assert [(e.kind, e.points, e.reference) for e in entries[:2]] == [("spend", -200, "R-1"), ("earn", 229, "R-1")]
    assert entries[0].recorded_by == "console:store-clerk store:SH01 guide:g-07"

    clerk.get("/console/lang/zh-CN?next=/console/")
    try:
        zh = clerk.post("/console/till/redeem", data={**confirm, "receipt": "R-3"})
        assert zh.status_code == 409 and "此券已被使用" in zh.text
    finally:
        clerk.get("/console/lang/en?next=/console/")
    marketer = shop.as_role("marketer")
    assert marketer.get("/console/till").status_code == 403
    report = marketer.get("/console/loyalty/coupons/report").text
    assert 'data-key="SH01/g-07"' in report and 'data-key="SH01"' in report


def test_both_languages_have_every_loyalty_and_till_text() -> None:
    for prefix in ("loyalty.", "till."):
        english = {k for k in catalogue("en") if k.startswith(prefix)}
        assert english and english == {k for k in catalogue("zh-CN") if k.startswith(prefix)}
