"""The till in real Chromium: a store clerk logs in, finds a member by phone, redeems their coupon against an order
(the discount shown first, then confirmed) and spends points; a marketer then opens the member's page and sees the
new ledger entries and the coupon used. Screenshots are kept under test-artifacts/console/.

The module has its own server over a private copy of the console merchant, with loyalty rules, a coupon template,
points and a coupon given to one member beforehand; the other fixtures (``browser``, ``page``, ``shot``) are the
conftest's, and the page is refused any host but this server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from omnicrm.loyalty.coupons import Template, create_template, issue
from omnicrm.loyalty.ledger import adjust
from omnicrm.loyalty.rules import LoyaltyRules, save_rules
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore
from tests.console.accounts import PASSWORD, console_users, log_in_page
from tests.console.conftest import ConsoleServer, serving
from tests.console.test_campaign_pages import copy_merchant
from tests.console.test_loyalty_pages import phone_holder

pytestmark = pytest.mark.browser
__all__ = ["console_users"]

Shot = Callable[[Page, str], Path]


@pytest.fixture(scope="module")
def member(console_data: Path, console_users: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Path, int, str, str]]:  # fmt: skip
    """A copy of the console merchant whose first phone holder has 800 points and a "spring-30" coupon; the copy's
    folder, that member, their phone and the coupon's code."""
    root = copy_merchant(console_data, tmp_path_factory.mktemp("till-browser") / "merchant")
    state = StateStore(load_settings(data_dir=root, loader_interval_seconds=0).state_database_url)
    customer, phone = phone_holder(root)
    save_rules(state, LoyaltyRules(), by="test")
    create_template(state, Template("spring-30", "Spring: 30 off 199", "threshold", total_quantity=100, valid_days=30,
                                    amount_off_fen=3000, min_spend_fen=19900), by="test")  # fmt: skip
    adjust(state, customer, 800, reason="welcome points", by="test")
    code = issue(state, "spring-30", customer, idempotency_key="till-browser").code
    state.dispose()
    yield root, customer, phone, code


@pytest.fixture(scope="module")
def console_server(member: tuple[Path, int, str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        ConsoleServer]:  # fmt: skip
    with serving(member[0], tmp_path_factory.mktemp("till-server")) as server:
        yield server


def test_a_clerk_redeems_and_spends_and_the_marketer_sees_it(
    page: Page, member: tuple[Path, int, str, str], console_users: dict[str, str], shot: Shot
) -> None:
    _, customer, phone, code = member
    page.goto("/console/login")
    page.fill("input[name=username]", console_users["store_clerk"])
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    expect(page.locator("h1")).to_have_text("Find a customer")
    page.click("header nav >> text=Till")
    expect(page.locator("h1")).to_have_text("Till")
    page.fill("#till-q", phone.removeprefix("+86"))
    page.click("#till-find")
    expect(page.locator("#till-member")).to_have_attribute("data-customer", str(customer))
    expect(page.locator("#till-available")).to_have_attribute("data-points", "800")
    expect(page.locator("#till-member")).not_to_contain_text(phone)  # a clerk sees the phone masked
    shot(page, "member-found")

    page.click(f"#use-{code}")
    expect(page.locator("#redeem-code")).to_have_value(code)
    page.fill("#redeem-amount", "150")
    page.fill("#redeem-receipt", "R-100")
    page.fill("#redeem input[name=store_code]", "SH01")
    page.click("#preview-redeem")
    expect(page.locator("#redeem-error")).to_contain_text("does not reach the coupon's minimum spend")
    shot(page, "threshold-not-met")
    page.fill("#redeem-amount", "259")
    page.click("#preview-redeem")
    expect(page.locator("#offer-discount")).to_have_text("¥30.00")
    expect(page.locator("#offer-to-pay")).to_have_text("¥229.00")
    shot(page, "discount-shown")
    page.click("#confirm-redeem")
    expect(page.locator("#till-result")).to_have_attribute("data-kind", "redeemed")
    expect(page.locator("#result-to-pay")).to_have_text("¥229.00")
    expect(page.locator("#till-no-coupons")).to_be_visible()
    shot(page, "coupon-redeemed")

    expect(page.locator("#points input[name=store_code]").last).to_have_value("SH01")  # remembered
    page.fill("#spend-points", "300")
    page.fill("#spend-receipt", "R-100")
    page.click("#spend-submit")
    expect(page.locator("#result-spent")).to_have_attribute("data-points", "300")
    expect(page.locator("#till-available")).to_have_attribute("data-points", "500")
    shot(page, "points-spent")
    page.click("header form button")  # log out

    log_in_page(page, console_users["marketer"])
    page.click("header nav >> text=Loyalty")
    page.click("#tab-members")
    page.fill("#member-q", phone.removeprefix("+86"))
    page.click("#member-search")
    expect(page.locator("#member-title")).to_have_text(f"Member {customer}")
    expect(page.locator("#available")).to_have_attribute("data-points", "500")
    first = page.locator("#ledger-rows tbody tr").first
    expect(first).to_have_attribute("data-kind", "spend")
    expect(first).to_contain_text("R-100")
    expect(first).to_contain_text(re.compile(r"store:SH01 guide:store-clerk"))
    expect(page.locator("#coupons")).to_contain_text("used")
    shot(page, "member-ledger")
