"""The console's campaign pages over HTTP: list, the new-campaign form with its field errors, launch, cancel, the
send log, recipients, results and results by channel; who may see them.

The pages run over a private copy of the console merchant with an e-mail channel configured, so the campaigns
made here never reach the shared merchant (whose server has no channel) or another test. The campaign worker is
off: a launch writes the send log and nothing is sent, so the log reads the same every time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from fastapi.testclient import TestClient

from omnicrm.api.app import create_app
from omnicrm.campaigns.audience import REASONS
from omnicrm.campaigns.definition import create_campaign
from omnicrm.campaigns.log import log_summary
from omnicrm.channels.registry import for_settings
from omnicrm.consent.ledger import record
from omnicrm.console.i18n import catalogue
from omnicrm.segments import saved
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.settings import load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore
from tests.console.accounts import console_users, csrf_of, english_client
from tests.console.conftest import copy_merchant

__all__ = ["console_users", "copy_merchant", "email_channel", "grant_email_consent", "make_segment"]

CONSENTED = 300  # e-mail addresses granted marketing consent; everyone else is excluded for want of it


def grant_email_consent(root: Path, state: StateStore, limit: int = CONSENTED) -> list[int]:
    """Marketing consent by e-mail for the first ``limit`` customers with an address of their own; their ids."""
    snap = DerivedStore(root / "derived").current("identity")
    assert snap is not None
    rows = duckdb.sql(
        f"""SELECT customer_id, min(key) FROM '{snap / "identifiers.parquet"}'
            WHERE id_type = 'email' AND holders = 1 GROUP BY customer_id ORDER BY customer_id LIMIT {limit}"""
    ).fetchall()
    for _, key in rows:
        record(state, subject=str(key), channel="email", purpose="marketing", granted=True, source="signup_form",
               by="test", wording="v1")  # fmt: skip
    return [int(c) for c, _ in rows]


def make_segment(root: Path, state: StateStore, name: str, text: str = "monetary >= 0") -> int:
    engine = SegmentEngine(Engine(FactsStore(root / "facts")), DerivedStore(root / "derived"), state=state)
    return saved.create_segment(state, engine, name=name, text=text, schedule="manual", by="test").id


def email_channel(smtp_port: int) -> dict[str, Any]:
    return {"kind": "email", "base_url": f"smtp://127.0.0.1:{smtp_port}", "rate_per_second": 0, "timeout": 5,
            "backoff_base": 0.01, "cost_per_unit": "0.001",
            "options": {"from_address": "news@shop.example.com", "from_name": "小鹿茶"}}  # fmt: skip


@dataclass
class Shop:
    app: TestClient
    root: Path
    segment_id: int
    clients: dict[str, TestClient]

    def as_role(self, role: str) -> TestClient:
        """A client logged in as the role's user, reading the pages in English."""
        return english_client(self.app, role, self.clients)

    @property
    def state(self) -> StateStore:
        return self.app.app.state.state_store  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def shop(console_data: Path, console_users: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = copy_merchant(console_data, tmp_path_factory.mktemp("campaign-pages") / "merchant")
    settings = load_settings(
        data_dir=root, loader_interval_seconds=0, campaign_interval_seconds=0, public_url="https://crm.shop.example",
        frequency_cap="3/7", quiet_hours="21:00-09:00",
        # "notices" sends WeChat template messages, which are for service notices only: never offered
        channels={"mail": email_channel(9), "notices": {"kind": "wechat_template", "base_url": "http://127.0.0.1:9"}},
    )  # fmt: skip
    with TestClient(create_app(settings)) as app:
        state = app.app.state.state_store  # type: ignore[attr-defined]
        grant_email_consent(root, state)
        yield Shop(app, root, make_segment(root, state, "all buyers"), {})


def form(shop: Shop, client: TestClient, **changes: str) -> dict[str, str]:
    values = {
        "csrf_token": csrf_of(client), "name": "双11 回购", "segment_id": str(shop.segment_id), "channel": "mail",
        "content.zh.subject": "{{ shop_name }}会员专享", "content.zh.body": "全场满199减30 https://shop.example/d11",
        "content.en.subject": "", "content.en.body": "", "holdout_share": "20", "stratify_by": "lifecycle_stage",
        "frequency_cap": "3/7", "quiet_hours": "21:00-09:00", "conversion_days": "14", "when": "now",
    }  # fmt: skip
    values.update(changes)
    return values


def created(shop: Shop, client: TestClient, **changes: str) -> int:
    res = client.post("/console/campaigns", data=form(shop, client, **changes), follow_redirects=False)
    assert res.status_code == 303, res.text[-2000:]
    found = re.fullmatch(r"/console/campaigns/(\d+)", res.headers["location"])
    assert found, res.headers["location"]
    return int(found.group(1))


def test_campaigns_are_for_marketers_and_admins(shop: Shop) -> None:
    marketer = shop.as_role("marketer")
    listing = marketer.get("/console/campaigns")
    assert listing.status_code == 200 and 'id="no-campaigns"' in listing.text, "the empty state"
    assert 'href="/console/campaigns"' in listing.text and 'id="new-campaign"' in listing.text
    assert shop.as_role("admin").get("/console/campaigns/new").status_code == 200
    for role in ("service_agent", "store_clerk"):
        client = shop.as_role(role)
        assert 'href="/console/campaigns"' not in client.get("/console/customers").text, f"no nav link for {role}"
        assert client.get("/console/campaigns").status_code == 403
        assert client.get("/console/campaigns/new").status_code == 403
        refused = client.post("/console/campaigns", data=form(shop, client), follow_redirects=False)
        assert refused.status_code == 403
    assert 'id="no-campaigns"' in marketer.get("/console/campaigns").text, "nothing was created"


def test_the_form_offers_saved_segments_and_marketing_channels_only(shop: Shop) -> None:
    client = shop.as_role("marketer")
    page = client.get("/console/campaigns/new").text
    assert f'<option value="{shop.segment_id}"' in page and '<option value="mail"' in page
    assert 'value="notices"' not in page, "WeChat template messages are never offered"
    assert 'id="frequency_cap" value="3/7"' in page and 'id="quiet_hours" value="21:00-09:00"' in page
    assert '<option value="lifecycle_stage"' in page
    res = client.post("/console/campaigns", data=form(shop, client, channel="notices"))
    assert res.status_code == 400 and 'id="error-channel"' in res.text


def test_a_bad_template_is_shown_beside_its_field_and_nothing_typed_is_lost(shop: Shop) -> None:
    client = shop.as_role("marketer")
    typed = form(
        shop, client, name="Bad template", **{"content.zh.body": "{{ password }} 满199减30",
                                              "content.en.body": "Hello {{ city }}", "holdout_share": "80"},
    )  # fmt: skip
    res = client.post("/console/campaigns", data=typed)
    assert res.status_code == 400
    page = res.text
    error = re.search(r'id="error-content.zh.body"[^>]*>(.*?)</div></div>', page, re.S)
    assert error and "password" in error.group(1), "the template's problem beside the body"
    assert 'id="error-holdout_share"' in page, "every problem at once"
    assert 'id="error-content.en.body"' not in page and 'id="form-error"' in page
    assert 'value="Bad template"' in page and ">{{ password }} 满199减30</textarea>" in page
    assert ">Hello {{ city }}</textarea>" in page and '<details id="content-en" open>' in page
    assert 'value="80"' in page and '<option value="lifecycle_stage" selected>' in page
    assert "Bad template" not in client.get("/console/campaigns").text, "nothing was stored"


def test_create_launch_and_read_the_send_log(shop: Shop) -> None:
    client = shop.as_role("marketer")
    campaign = created(shop, client)
    draft = client.get(f"/console/campaigns/{campaign}").text
    assert 'data-status="draft"' in draft and 'id="log-empty"' in draft and 'id="confirm-launch"' in draft
    forged = client.post(f"/console/campaigns/{campaign}/launch", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    res = client.post(f"/console/campaigns/{campaign}/launch", data={"csrf_token": csrf_of(client)},
                      follow_redirects=False)  # fmt: skip
    assert res.status_code == 303 and res.headers["location"] == f"/console/campaigns/{campaign}"

    page = client.get(f"/console/campaigns/{campaign}").text
    summary = log_summary(shop.state, campaign)
    assert 'data-status="sending"' in page and 'id="confirm-launch"' not in page
    for arm in ("treatment", "holdout", "excluded"):
        row = re.search(rf'<tr data-arm="{arm}"><td>[^<]*</td><td class="num">([\d,]+)</td>', page)
        assert row and int(row.group(1).replace(",", "")) == summary["arms"][arm], arm
    assert summary["excluded"]["no_consent"] > 0 and REASONS["no_consent"] in page
    assert summary["statuses"] == {"pending": summary["arms"]["treatment"]} and "waiting to be sent" in page
    assert 'id="recipient-rows"' in page and 'href="/console/customers/' in page
    assert 'id="results-arms"' in page and 'id="window-open"' in page and 'id="verdict"' in page
    assert f'data-chart="/console/campaigns/{campaign}/chart"' in page

    option = client.get(f"/console/campaigns/{campaign}/chart").json()
    assert option["title"]["text"] == "Conversion rate by arm" and len(option["series"][0]["data"]) == 2
    holdout = client.get(f"/console/campaigns/{campaign}", params={"arm": "holdout"}).text
    arms = set(re.findall(r'<tr data-arm="(\w+)" data-status=', holdout))
    assert arms == {"holdout"}
    assert client.get(f"/console/campaigns/{campaign}", params={"status": "bogus"}).status_code == 422

    again = client.post(f"/console/campaigns/{campaign}/launch", data={"csrf_token": csrf_of(client)})
    assert again.status_code == 409 and 'id="campaign-error"' in again.text
    assert client.get("/console/campaigns/987654").status_code == 404


def test_schedule_then_cancel(shop: Shop) -> None:
    client = shop.as_role("marketer")
    missing = client.post("/console/campaigns", data=form(shop, client, when="later", send_at=""))
    assert missing.status_code == 400 and 'id="error-send_at"' in missing.text
    later = (dt.datetime.now(ZoneInfo("Asia/Shanghai")) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    campaign = created(shop, client, name="Weekend", when="later", send_at=later)
    client.post(f"/console/campaigns/{campaign}/launch", data={"csrf_token": csrf_of(client)})
    page = client.get(f"/console/campaigns/{campaign}").text
    assert 'data-status="scheduled"' in page and later.replace("T", " ") in page and 'id="log-empty"' in page
    done = client.post(f"/console/campaigns/{campaign}/cancel", data={"csrf_token": csrf_of(client)},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303
    page = client.get(f"/console/campaigns/{campaign}").text
    assert 'data-status="cancelled"' in page and 'id="actions"' not in page
    refused = client.post(f"/console/campaigns/{campaign}/launch", data={"csrf_token": csrf_of(client)})
    assert refused.status_code == 409


def test_results_by_channel(shop: Shop) -> None:
    client = shop.as_role("admin")
    page = client.get("/console/campaigns/channels").text
    assert '<tr data-channel="mail">' in page and 'data-chart="/console/campaigns/channels/chart"' in page
    option = client.get("/console/campaigns/channels/chart").json()
    assert option["xAxis"]["data"] == ["mail"] and len(option["series"]) == 2


def test_the_list_is_paged_newest_first_and_in_chinese(shop: Shop) -> None:
    settings = shop.app.app.state.settings  # type: ignore[attr-defined]
    channels = for_settings({"mail": settings.channels["mail"]})
    for i in range(26):
        create_campaign(shop.state, channels, settings, {"name": f"bulk {i}", "segment_id": shop.segment_id,
                        "channel": "mail", "content": {"zh": {"body": "hi"}}}, by="test")  # fmt: skip
    client = shop.as_role("marketer")
    first = client.get("/console/campaigns").text
    assert "bulk 25" in first and "bulk 0" not in first and 'rel="next"' in first
    second = client.get("/console/campaigns?p=2").text
    assert "bulk 0" in second and 'rel="prev"' in second
    client.get("/console/lang/zh-CN?next=/console/campaigns")
    try:
        page = client.get("/console/campaigns").text
        assert "营销活动" in page and "草稿" in page
        assert "分渠道效果" in client.get("/console/campaigns/channels").text
    finally:
        client.get("/console/lang/en?next=/console/campaigns")


def test_both_languages_say_why_people_were_left_out() -> None:
    for reason, text in REASONS.items():
        assert catalogue("en")[f"campaigns.reason.{reason}"] == text
        assert catalogue("zh-CN")[f"campaigns.reason.{reason}"]
    assert {k for k in catalogue("en") if k.startswith("campaigns.")} == {
        k for k in catalogue("zh-CN") if k.startswith("campaigns.")
    }
