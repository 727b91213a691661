"""The console's journey pages over HTTP: the list and its empty state, the new-journey form with its field errors
(form steps mapped to the journey's), create, start, the journey's page with its entries and each step's send log
and results, stop; who may see them.

Like the campaign pages, they run over a private copy of the console merchant, here with an e-mail, an SMS and a
WeChat channel (providers on a closed port: the campaign worker is off, so nothing is sent) and a WeChat template
channel that is never offered. Customers enter the started journey the way they would in production: new orders
written as facts, OneID refreshed, ``advance`` run at a later time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnicrm.api.app import create_app
from omnicrm.campaigns.definition import get_campaign
from omnicrm.campaigns.journey_flow import advance
from omnicrm.campaigns.journeys import create_journey, get_journey
from omnicrm.campaigns.launch import Marketing
from omnicrm.channels.registry import for_settings
from omnicrm.consent.ledger import record
from omnicrm.console import journeys as journey_pages
from omnicrm.console.i18n import catalogue
from omnicrm.identity.refresh import refresh_identity
from omnicrm.settings import load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import journey_entries
from omnicrm.store.state import StateStore
from tests.console.accounts import console_users, csrf_of, english_client
from tests.console.test_campaign_pages import copy_merchant, email_channel
from tests.portrait.test_tags import line, write

__all__ = ["console_users"]

APP = "wx_mp_journeys"  # the mini-program the WeChat channel sends as
NEW = range(1, 7)  # six new customers


def channels() -> dict[str, Any]:
    """E-mail, SMS and WeChat (subscription messages) for marketing; 'notices' (template messages) never offered."""
    closed = "http://127.0.0.1:9"
    return {
        "mail": email_channel(9),
        "sms": {"kind": "sms", "base_url": closed, "cost_per_unit": "0.045", "rate_per_second": 0, "timeout": 5,
                "credentials": {"access_key_id": "LTAI-test", "access_key_secret": "secret"},
                "options": {"sign_name": "小鹿茶", "text_template_code": "SMS_000001"}},
        "wechat": {"kind": "wechat", "base_url": closed, "rate_per_second": 0,
                   "credentials": {"app_id": APP, "app_secret": "s"}},
        "notices": {"kind": "wechat_template", "base_url": closed},
    }  # fmt: skip


@dataclass
class Shop:
    app: TestClient
    root: Path
    clients: dict[str, TestClient]

    def as_role(self, role: str) -> TestClient:
        """A client logged in as the role's user, reading the pages in English."""
        return english_client(self.app, role, self.clients)

    @contextmanager
    def system(self) -> Iterator[Marketing]:
        """What the server's campaign worker advances journeys with: the marketing channels."""
        settings = self.app.app.state.settings  # type: ignore[attr-defined]
        marketing = {k: v for k, v in settings.channels.items() if v["kind"] != "wechat_template"}
        system = Marketing(settings, self.state, for_settings(marketing))
        try:
            yield system
        finally:
            system.channels.close()

    @property
    def state(self) -> StateStore:
        return self.app.app.state.state_store  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def shop(console_data: Path, console_users: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = copy_merchant(console_data, tmp_path_factory.mktemp("journey-pages") / "merchant")
    settings = load_settings(
        data_dir=root, loader_interval_seconds=0, campaign_interval_seconds=0, public_url="https://crm.shop.example",
        frequency_cap="", quiet_hours="", shop_name="小鹿茶", global_control_share=0, channels=channels(),
    )  # fmt: skip
    with TestClient(create_app(settings)) as app:
        yield Shop(app, root, {})


def form(client: TestClient, **changes: str) -> dict[str, str]:
    """The form of the Double 11 new-customer journey: a WeChat care message on day 3, an SMS coupon on day 14."""
    values = {
        "csrf_token": csrf_of(client), "name": "双11 新客关怀", "trigger.type": "first_order",
        "trigger.promotion": "double11", "trigger.channel": "", "trigger.source": "", "exit.on": "purchase",
        "steps[0].name": "微信关怀", "steps[0].after_days": "3", "steps[0].channel": "wechat",
        "steps[0].holdout_share": "20", "steps[0].content.zh.template_id": "TPL_CARE",
        "steps[0].content.zh.params": "thing1={{ shop_name }}感谢您的首单\nthing2=使用小贴士",
        "steps[1].name": "短信券", "steps[1].after_days": "14", "steps[1].condition": "no_order_since_entry",
        "steps[1].channel": "sms", "steps[1].holdout_share": "20",
        "steps[1].content.zh.body": "{{ shop_name }}送您20元回购券 https://shop.example/c20",
        "steps[2].channel": "mail", "steps[2].holdout_share": "10",
    }  # fmt: skip
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def created(client: TestClient, **changes: str) -> int:
    res = client.post("/console/journeys", data=form(client, **changes), follow_redirects=False)
    assert res.status_code == 303, res.text[-3000:]
    found = re.fullmatch(r"/console/journeys/(\d+)", res.headers["location"])
    assert found, res.headers["location"]
    return int(found.group(1))


def error_of(page: str, field_id: str) -> str:
    found = re.search(rf'id="error-{field_id}"[^>]*>(.*?)</div></div>', page, re.S)
    assert found, f"no error beside {field_id}"
    return found.group(1)


def phone(k: int) -> str:
    return f"1370022{k:04d}"


def openid(k: int) -> str:
    return f"oJourneyPages{k:05d}"


def add_orders(shop: Shop, rows: list[dict[str, Any]], batch: str) -> None:
    """Order facts through the facts store, then OneID refreshed, as ``omnicrm refresh`` would."""
    write(FactsStore(shop.root / "facts"), "order_line", rows, batch)
    refresh_identity(shop.state, Engine(FactsStore(shop.root / "facts")), DerivedStore(shop.root / "derived"),
                     probabilistic=False)  # fmt: skip


def order(name: str, k: int, at: dt.datetime, **kw: Any) -> dict[str, Any]:
    created = at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    return line(name, phone(k), created, 199.0, wechat_openid=openid(k), wechat_appid=APP, **kw)


def count(page: str, attribute: str, value: str) -> int:
    found = re.search(rf'<tr {attribute}="{value}"><th>[^<]*</th><td class="num">([\d,]+)</td>', page)
    assert found, f"no {attribute}={value} row"
    return int(found.group(1).replace(",", ""))


def test_journeys_are_for_marketers_and_admins(shop: Shop) -> None:
    marketer = shop.as_role("marketer")
    listing = marketer.get("/console/journeys")
    assert listing.status_code == 200 and 'id="no-journeys"' in listing.text, "the empty state"
    assert 'id="new-journey"' in listing.text and 'href="/console/campaigns"' in listing.text
    assert 'href="/console/journeys"' in marketer.get("/console/campaigns").text, "reachable from the campaigns"
    page = shop.as_role("admin").get("/console/journeys/new")
    assert page.status_code == 200 and 'value="wechat"' in page.text and 'value="notices"' not in page.text
    assert 'name="exit.on" id="exit-on" value="purchase" style="width: auto" checked' in page.text
    for role in ("service_agent", "store_clerk"):
        client = shop.as_role(role)
        assert client.get("/console/journeys").status_code == 403
        assert client.get("/console/journeys/new").status_code == 403
        token = {"csrf_token": csrf_of(client)}
        assert client.post("/console/journeys", data=form(client), follow_redirects=False).status_code == 403
        assert client.post("/console/journeys/1/start", data=token, follow_redirects=False).status_code == 403
        assert client.post("/console/journeys/1/stop", data=token, follow_redirects=False).status_code == 403
    assert 'id="no-journeys"' in marketer.get("/console/journeys").text, "nothing was created"


def test_a_bad_step_is_shown_beside_its_field_and_nothing_typed_is_lost(shop: Shop) -> None:
    client = shop.as_role("marketer")
    typed = form(client, **{"steps[1].content.zh.body": "{{ favourite_dish }} 回购券", "steps[1].holdout_share": "80",
                            "steps[0].content.zh.params": "thing1={{ shop_name }}\nno equals sign",
                            "steps[1].content.en.body": "Your coupon"})  # fmt: skip
    res = client.post("/console/journeys", data=typed)
    assert res.status_code == 400 and 'id="form-error"' in res.text
    page = res.text
    assert "favourite_dish" in error_of(page, "steps-1-content-zh-body"), "the template's problem beside the body"
    assert "0 to 50" in error_of(page, "steps-1-holdout-share"), "every problem at once"
    assert "line 2" in error_of(page, "steps-0-content-zh-params"), "a parameter line without '='"
    assert ">{{ favourite_dish }} 回购券</textarea>" in page and 'value="80"' in page and 'value="短信券"' in page
    assert ">thing1={{ shop_name }}\nno equals sign</textarea>" in page and ">Your coupon</textarea>" in page
    ticked = 'id="steps-1-condition" value="no_order_since_entry" style="width: auto" checked'
    assert ticked in page
    assert '<option value="double11" selected>' in page and '<option value="sms" selected>' in page

    # a problem only the journeys module finds, for a journey step that is the form's third block
    skipped = form(client, **{"steps[1].name": "", "steps[1].after_days": "", "steps[1].condition": "",
                              "steps[1].content.zh.body": "", "steps[2].after_days": "2", "steps[2].channel": "sms",
                              "steps[2].content.zh.body": "回来看看 https://shop.example/back"})  # fmt: skip
    res = client.post("/console/journeys", data=skipped)
    assert res.status_code == 400
    assert "comes before" in error_of(res.text, "steps-2-after-days"), "journey step 1 is the form's step 3"
    assert 'id="error-steps-1-after-days"' not in res.text
    assert ">回来看看 https://shop.example/back</textarea>" in res.text
    unknown = client.post("/console/journeys", data=form(client, **{"steps[0].channel": "notices"}))
    assert unknown.status_code == 400 and 'id="error-steps-0-channel"' in unknown.text
    assert 'id="no-journeys"' in client.get("/console/journeys").text, "nothing was stored"


def test_create_start_read_and_stop_a_journey(shop: Shop) -> None:
    client = shop.as_role("marketer")
    journey_id = created(client)
    draft = client.get(f"/console/journeys/{journey_id}").text
    words = "First order in Double 11 → day 3: 微信关怀 → day 14, if no order since entry: 短信券 → exit on purchase"
    assert f'id="definition">{words}</p>' in draft
    assert 'data-status="draft"' in draft and 'id="confirm-start"' in draft and 'id="step-1-log-empty"' in draft
    steps = get_journey(shop.state, journey_id).steps
    assert [s.after_days for s in steps] == [3, 14] and steps[1].condition == "no_order_since_entry"
    care, coupon = (get_campaign(shop.state, s.campaign_id) for s in steps)
    assert care.channel == "wechat" and care.consent_channel == "wechat_mp" and care.holdout_share == 0.2
    assert care.content["zh"]["params"] == {"thing1": "{{ shop_name }}感谢您的首单", "thing2": "使用小贴士"}
    assert f'href="/console/campaigns/{coupon.id}" id="step-1-campaign"' in draft
    step_page = client.get(f"/console/campaigns/{coupon.id}").text  # the journey runs it: no launch of its own
    assert 'id="journey-step"' in step_page and f'href="/console/journeys/{journey_id}"' in step_page
    assert 'id="confirm-launch"' not in step_page
    client.get(f"/console/lang/zh-CN?next=/console/journeys/{journey_id}")
    try:
        chinese = client.get(f"/console/journeys/{journey_id}").text
        assert "首单在双11 → 3天后 微信关怀 → 14天后（期间未复购）短信券 → 购买即退出" in chinese
    finally:
        client.get("/console/lang/en?next=/console/journeys")

    assert client.post(f"/console/journeys/{journey_id}/start", data={"csrf_token": "forged"}).status_code == 403
    started = client.post(f"/console/journeys/{journey_id}/start", data={"csrf_token": csrf_of(client)},
                          follow_redirects=False)  # fmt: skip
    assert started.status_code == 303 and started.headers["location"] == f"/console/journeys/{journey_id}"
    live = client.get(f"/console/journeys/{journey_id}").text
    assert 'data-status="live"' in live and 'id="confirm-start"' not in live and 'id="confirm-stop"' in live
    again = client.post(f"/console/journeys/{journey_id}/start", data={"csrf_token": csrf_of(client)})
    assert again.status_code == 409 and 'id="journey-error"' in again.text

    # six new customers' Double 11 first orders enter; three granted WeChat consent; day 3 queues the care message
    start = get_journey(shop.state, journey_id).started_at
    assert start is not None
    add_orders(shop, [order(f"JP-{k}", k, start + dt.timedelta(minutes=1), promotion="双11") for k in NEW], "jp-1")
    for k in (1, 2, 3):
        record(shop.state, subject=f"wechat_openid:{APP}:{openid(k)}", channel="wechat_mp", purpose="marketing",
               granted=True, source="signup_form", by="test", wording="v1")  # fmt: skip
    with shop.system() as system:
        assert advance(system, start + dt.timedelta(hours=1), journey_ids=[journey_id])[0].entered == len(NEW)
        advance(system, start + dt.timedelta(days=3, hours=1), journey_ids=[journey_id])
        add_orders(shop, [order("JP-AGAIN", 6, start + dt.timedelta(days=4))], "jp-2")
        assert advance(system, start + dt.timedelta(days=4, hours=1), journey_ids=[journey_id])[0].exited == 1

    page = client.get(f"/console/journeys/{journey_id}").text
    assert count(page, "data-entries", "total") == 6 and count(page, "data-entries", "active") == 5
    assert count(page, "data-entries", "exited") == 1 and 'data-exit-reason="purchase"' in page
    arms = dict(re.findall(r'<tr data-arm="(\w+)"><td>[^<]*</td><td class="num">([\d,]+)</td>',
                           page.split('id="step-0-arms"')[1].split("</table>")[0]))  # fmt: skip
    assert int(arms["excluded"]) == 3 and int(arms["treatment"]) + int(arms["holdout"]) == 3
    assert 'data-reason="no_consent"' in page and 'id="step-0-results"' in page and 'id="step-0-verdict"' in page
    assert 'data-chart="/console/campaigns/' in page and 'id="step-1-log-empty"' in page
    listing = client.get("/console/journeys").text
    row = listing.split(f'<tr data-journey="{journey_id}">')[1].split("</tr>")[0]
    assert re.findall(r'data-entries="(\w+)">(\d+)<', row) == [("active", "5"), ("exited", "1"), ("completed", "0")]
    assert words in row

    stopped = client.post(f"/console/journeys/{journey_id}/stop", data={"csrf_token": csrf_of(client)},
                          follow_redirects=False)  # fmt: skip
    assert stopped.status_code == 303
    page = client.get(f"/console/journeys/{journey_id}").text
    assert 'data-status="stopped"' in page and 'id="actions"' not in page
    assert count(page, "data-entries", "active") == 0 and 'data-exit-reason="stopped"' in page
    with shop.state.connect() as conn:
        statuses = {r.status for r in conn.execute(select(journey_entries.c.status)
                                                   .where(journey_entries.c.journey_id == journey_id))}  # fmt: skip
    assert statuses == {"exited"}
    assert {get_campaign(shop.state, s.campaign_id).status for s in steps} <= {"done", "cancelled"}
    refused = client.post(f"/console/journeys/{journey_id}/stop", data={"csrf_token": csrf_of(client)})
    assert refused.status_code == 409 and 'id="journey-error"' in refused.text
    assert client.get("/console/journeys/987654").status_code == 404
    token = {"csrf_token": csrf_of(client)}
    assert client.post("/console/journeys/987654/start", data=token).status_code == 404


def test_the_list_is_paged_newest_first(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = shop.app.app.state.settings  # type: ignore[attr-defined]
    system = Marketing(settings, shop.state, for_settings({"mail": settings.channels["mail"]}))
    for i in range(2):
        create_journey(system, {"name": f"bulk {i}", "trigger": {"type": "order", "channel": "store"},
                                "steps": [{"after_days": 1, "channel": "mail", "content": {"zh": {"body": "hi"}}}]},
                       by="test")  # fmt: skip
    system.channels.close()
    monkeypatch.setattr(journey_pages, "PAGE", 2)
    client = shop.as_role("marketer")
    first = client.get("/console/journeys").text
    assert "bulk 1" in first and "bulk 0" in first and "双11 新客关怀" not in first and 'rel="next"' in first
    assert "Any order (channel: store) → day 1: e-mail" in first
    second = client.get("/console/journeys?p=2").text
    assert "双11 新客关怀" in second and 'rel="prev"' in second
    assert client.get("/console/journeys?p=9").status_code == 200, "past the end: the last page"


def test_both_languages_have_every_journey_text() -> None:
    english = {k for k in catalogue("en") if k.startswith("journeys.")}
    assert english and english == {k for k in catalogue("zh-CN") if k.startswith("journeys.")}
