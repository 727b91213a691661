"""The console's content pages over HTTP: the library list with filters, pages and empty states; the item form with
its field errors; an item's page with its links, QR code, status actions and views; edits that name their version;
recommendations for a chosen segment; who may see and do what.

The pages run over a private copy of the console merchant, so the items made here reach no other test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from omnicrm.api.app import create_app
from omnicrm.console.i18n import catalogue
from omnicrm.content.library import create_item, get_item, list_items
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore
from tests.console.accounts import console_users, csrf_of, english_client
from tests.console.test_campaign_pages import copy_merchant, make_segment

__all__ = ["console_users"]

PUBLIC = "https://crm.shop.example"
HOME = "/console/loyalty/content"


@dataclass
class Shop:
    app: TestClient
    root: Path
    clients: dict[str, TestClient]

    def as_role(self, role: str) -> TestClient:
        return english_client(self.app, role, self.clients)

    @property
    def state(self) -> StateStore:
        return self.app.app.state.state_store  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def shop(console_data: Path, console_users: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = copy_merchant(console_data, tmp_path_factory.mktemp("content-pages") / "merchant")
    settings = load_settings(data_dir=root, loader_interval_seconds=0, campaign_interval_seconds=0, public_url=PUBLIC)
    with TestClient(create_app(settings)) as app:
        yield Shop(app, root, {})


def form(client: TestClient, **changes: str | list[str]) -> dict[str, str | list[str]]:
    values: dict[str, str | list[str]] = {
        "csrf_token": csrf_of(client), "kind": "article", "title_zh": "周末烘焙：戚风蛋糕入门", "title_en": "",
        "summary_zh": "", "summary_en": "", "url": "https://shop.example.com/chiffon", "status": "draft",
        "publish_at": "", "end_at": "", "store_code": "", "community": "",
    }  # fmt: skip
    values.update(changes)
    return values


def test_the_library_is_for_the_loyalty_roles(shop: Shop) -> None:
    marketer = shop.as_role("marketer")
    listing = marketer.get(HOME)
    assert listing.status_code == 200 and 'id="no-items"' in listing.text and 'id="new-item"' in listing.text
    agent = shop.as_role("service_agent")  # may look, may not change
    seen = agent.get(HOME)
    assert seen.status_code == 200 and 'id="new-item"' not in seen.text
    assert agent.get(f"{HOME}/new").status_code == 403
    assert agent.post(HOME, data=form(agent), follow_redirects=False).status_code == 403
    clerk = shop.as_role("store_clerk")
    assert clerk.get(HOME).status_code == 403 and clerk.get(f"{HOME}/recommendations").status_code == 403
    assert list_items(shop.state)[1] == 0


def test_a_bad_form_shows_each_error_by_its_field_and_keeps_what_was_typed(shop: Shop) -> None:
    client = shop.as_role("marketer")
    res = client.post(HOME, data=form(client, title_zh="", url="javascript:alert(1)", topics=["yoga", "cats"],
                                      publish_at="not a time", summary_zh="给猫咪的礼物"))  # fmt: skip
    assert res.status_code == 400, res.text[-500:]
    page = res.text
    assert 'id="form-error"' in page and "The item was not saved" in page
    for field in ("title_zh", "url", "publish_at"):
        assert f'id="error-{field}"' in page, field
    assert "only http:// and https:// addresses can be shared, not &#39;javascript:&#39;" in page
    assert 'value="javascript:alert(1)"' in page and ">给猫咪的礼物</textarea>" in page
    assert (
        'id="topic-yoga" checked' in page and 'id="topic-cats" checked' in page and 'id="topic-tea" checked' not in page
    )
    assert list_items(shop.state)[1] == 0, "nothing was stored"


def test_create_publish_view_and_read_the_figures(shop: Shop) -> None:
    client = shop.as_role("marketer")
    res = client.post(HOME, data=form(client, summary_en="Chiffon for beginners"), follow_redirects=False)
    assert res.status_code == 303, res.text[-800:]
    found = re.fullmatch(rf"{HOME}/(\d+)", res.headers["location"])
    assert found
    item_id = int(found.group(1))
    page = client.get(f"{HOME}/{item_id}").text
    assert 'data-status="draft"' in page and 'data-topic="baking"' in page and "<svg" in page
    assert 'id="no-views"' in page and 'id="to-published"' in page
    link = re.search(r'id="share-link">([^<]+)<', page)
    assert link and link.group(1).startswith(f"{PUBLIC}/c/")
    token = link.group(1).rsplit("/", 1)[1]
    assert client.get(f"/c/{token}", follow_redirects=False).status_code == 404, "a draft's link does not work yet"

    published = client.post(f"{HOME}/{item_id}/status", data={"csrf_token": csrf_of(client), "status": "published",
                                                               "version": "1"}, follow_redirects=False)  # fmt: skip
    assert published.status_code == 303
    viewer = TestClient(shop.app.app, base_url=PUBLIC)
    opened = viewer.get(f"/c/{token}", follow_redirects=False)
    assert opened.status_code == 302 and opened.headers["location"] == "https://shop.example.com/chiffon"
    page = client.get(f"{HOME}/{item_id}", params={"days": 7}).text
    assert 'data-status="published"' in page and 'id="to-archived"' in page
    assert re.search(r'id="total-views">1<', page) and re.search(r'id="total-viewers">1<', page)
    assert '<tr data-channel="link">' in page and f'data-chart="{HOME}/{item_id}/chart?days=7"' in page
    option = client.get(f"{HOME}/{item_id}/chart", params={"days": 7}).json()
    assert option["series"][0]["name"] == "Views" and sum(option["series"][0]["data"]) == 1
    assert len(option["xAxis"]["data"]) == 7
    assert client.get(f"{HOME}/987654").status_code == 404
    assert client.get(f"{HOME}/987654/chart").status_code == 404


def test_an_edit_made_meanwhile_is_reported_not_overwritten(shop: Shop) -> None:
    client = shop.as_role("admin")
    item = create_item(shop.state, {"title_zh": "手冲咖啡入门", "url": "https://shop.example.com/coffee"}, by="t")
    edit = client.get(f"{HOME}/{item.id}/edit").text
    assert 'name="version" value="1"' in edit and 'value="手冲咖啡入门"' in edit
    assert "Found in the text now: Coffee." in edit
    first = client.post(f"{HOME}/{item.id}", data=form(client, title_zh="手冲咖啡进阶", url=item.url, version="1"),
                        follow_redirects=False)  # fmt: skip
    assert first.status_code == 303 and get_item(shop.state, item.id).version == 2
    stale = client.post(f"{HOME}/{item.id}", data=form(client, title_zh="旧的改动", url=item.url, version="1"))
    assert stale.status_code == 409 and 'id="form-error"' in stale.text and "changed meanwhile" in stale.text
    assert get_item(shop.state, item.id).title_zh == "手冲咖啡进阶"
    bad_status = client.post(f"{HOME}/{item.id}/status", data={"csrf_token": csrf_of(client), "status": "gone"})
    assert bad_status.status_code == 400


def test_filters_and_pages(shop: Shop) -> None:
    for i in range(27):
        create_item(shop.state, {"title_zh": f"瑜伽第{i}课", "url": f"https://shop.example.com/yoga/{i}",
                                 "kind": "video" if i % 3 == 0 else "lecture"}, by="t")  # fmt: skip
    client = shop.as_role("marketer")
    first = client.get(HOME, params={"topic": "yoga"}).text
    assert "Items (27)" in first and "瑜伽第26课" in first and "瑜伽第1课<" not in first and 'rel="next"' in first
    second = client.get(HOME, params={"topic": "yoga", "p": 2}).text
    assert "瑜伽第1课<" in second and 'rel="prev"' in second and "topic=yoga" in second
    videos = client.get(HOME, params={"topic": "yoga", "kind": "video"}).text
    assert "Items (9)" in videos
    none = client.get(HOME, params={"q": "没有这样的标题"}).text
    assert 'id="no-match"' in none
    assert client.get(HOME, params={"status": "gone"}).status_code == 422


def test_recommendations_for_a_chosen_segment(shop: Shop) -> None:
    client = shop.as_role("marketer")
    empty = client.get(f"{HOME}/recommendations").text
    assert 'id="no-segments"' in empty or 'id="recommend-form"' in empty
    segment = make_segment(shop.root, shop.state, "content readers")
    for topic in ("baking", "running", "skincare"):
        create_item(shop.state, {"title_zh": f"{topic} 专题", "url": f"https://shop.example.com/{topic}",
                                 "topics": [topic], "status": "published"}, by="t")  # fmt: skip
    page = client.get(f"{HOME}/recommendations", params={"segment_id": segment})
    assert page.status_code == 200 and f'<option value="{segment}" selected' in page.text
    assert 'id="ranked"' in page.text and "content readers" in page.text
    rows = re.findall(r'<tr data-item="\d+">.*?<td class="num">([\d,]+)</td>', page.text, re.S)
    assert rows and [int(r.replace(",", "")) for r in rows] == sorted((int(r.replace(",", "")) for r in rows),
                                                                      reverse=True)  # fmt: skip
    missing = client.get(f"{HOME}/recommendations", params={"segment_id": 987654})
    assert missing.status_code == 404 and 'id="recommend-error"' in missing.text


def test_both_languages_have_every_content_message() -> None:
    english = {k for k in catalogue("en") if k.startswith("content.")}
    assert len(english) > 60 and english == {k for k in catalogue("zh-CN") if k.startswith("content.")}
    assert all(catalogue("zh-CN")[k] for k in english)
