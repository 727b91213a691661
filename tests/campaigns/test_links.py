"""Tracked links: finding and rewriting URLs, signed tokens, registration, clicks, and the /l/{token} route."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from omnicrm.api.app import create_app
from omnicrm.campaigns.content import RenderError, compile_content, render
from omnicrm.campaigns.links import (
    Link,
    extract_links,
    link_maker,
    make_token,
    read_token,
    record_click,
    register_links,
    track_links,
    tracked_url,
)
from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.settings import Settings, load_settings
from omnicrm.store.schema import campaigns, link_clicks, segments
from omnicrm.store.state import StateStore

SECRET = "a-long-test-secret-for-tracked-links"
PUBLIC = "https://crm.shop.cn"
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CONTENT = {
    "zh": {
        "subject": "上新 https://shop.cn/subject-is-not-tracked",
        "body": "点击https://shop.cn/p/1?utm=sms领取，或看 https://shop.cn/sale. 退订 {{ unsubscribe_url }}",
        "html": "<a href=\"https://shop.cn/p/1?utm=sms\">买</a> <a href='https://shop.cn/a?x=1&amp;y=2'>看</a>"
        '<a href="{{ unsubscribe_url }}">退订</a> <a href="https://crm.shop.cn/u/static">old</a>',
    },
    "en": {
        "body": "See https://shop.cn/sale, or (https://shop.cn/en)!",
        "params": {"url": "https://shop.cn/p/1?utm=sms"},
    },
}
FIELDS: dict[str, object] = {"customer_id": 1001, "unsubscribe_url": f"{PUBLIC}/u/tok"}


def make_campaign(state: StateStore, name: str = "Double 11 follow-up") -> int:
    """A draft campaign row (and its segment), for the links' foreign key."""
    with state.begin() as conn:
        segment_id = conn.execute(
            sa.insert(segments).values(name="all", description="", rule="{}", schedule="manual", created_by="test",
                                       created_at=NOW, updated_at=NOW)
        ).inserted_primary_key[0]  # fmt: skip
        return int(
            conn.execute(
                sa.insert(campaigns).values(name=name, status="draft", channel="sms", consent_channel="sms",
                                            segment_id=segment_id, content="{}", holdout_share=0.1,
                                            use_global_control=False, conversion_days=14, seed="s",
                                            created_by="test", created_at=NOW, updated_at=NOW)
            ).inserted_primary_key[0]
        )  # fmt: skip


# --- finding and rewriting ------------------------------------------------------------------------


def test_extract_numbers_distinct_urls_in_order() -> None:
    links = extract_links(compile_content(CONTENT), PUBLIC)
    assert links == [
        Link(1, "https://shop.cn/p/1?utm=sms"),
        Link(2, "https://shop.cn/sale"),
        Link(3, "https://shop.cn/a?x=1&y=2"),
        Link(4, "https://shop.cn/en"),
    ]


def test_text_urls_stop_at_chinese_text_and_sentence_punctuation() -> None:
    body = "领券https://s.cn/a，再看https://s.cn/b。(https://s.cn/c_(x)) https://s.cn/d?q=1&r=2; http://s.cn"
    urls = [link.url for link in extract_links(compile_content({"zh": {"body": body}}))]
    assert urls == ["https://s.cn/a", "https://s.cn/b", "https://s.cn/c_(x)", "https://s.cn/d?q=1&r=2", "http://s.cn"]


def test_track_rewrites_urls_into_per_recipient_links() -> None:
    tracked = track_links(compile_content(CONTENT), PUBLIC)
    assert tracked.links == ("https://shop.cn/p/1?utm=sms", "https://shop.cn/sale", "https://shop.cn/a?x=1&y=2",
                             "https://shop.cn/en")  # fmt: skip
    first = render(tracked, "zh", FIELDS, link_maker(PUBLIC, SECRET, 7, "1", 1001))
    again = render(tracked, "zh", FIELDS, link_maker(PUBLIC, SECRET, 7, "1", 1001))
    other = render(tracked, "zh", {**FIELDS, "customer_id": 1002}, link_maker(PUBLIC, SECRET, 7, "1", 1002))
    assert first == again and first.body != other.body
    assert "shop.cn/p" not in first.body and "shop.cn/sale" not in first.body
    assert first.subject == "上新 https://shop.cn/subject-is-not-tracked"
    tokens = re.findall(rf"{re.escape(PUBLIC)}/l/([A-Za-z0-9_-]+)", first.body)
    assert [read_token(SECRET, t).link_no for t in tokens] == [1, 2]
    assert first.body.endswith(f". 退订 {PUBLIC}/u/tok")
    assert first.body.startswith("点击https://crm.shop.cn/l/") and "领取，或看 " in first.body
    html_tokens = re.findall(r"/l/([A-Za-z0-9_-]+)", first.html or "")
    assert [read_token(SECRET, t).link_no for t in html_tokens] == [1, 3]
    assert f'href="{PUBLIC}/u/tok"' in (first.html or "") and f"{PUBLIC}/u/static" in (first.html or "")
    en = render(tracked, "en", FIELDS, link_maker(PUBLIC, SECRET, 7, "1", 1001))
    assert en.body.startswith(f"See {PUBLIC}/l/") and en.body.endswith(")!")
    assert read_token(SECRET, en.params["url"].rsplit("/", 1)[1]).link_no == 1


def test_hand_written_link_calls_refer_to_the_numbered_urls() -> None:
    tracked = track_links(compile_content({"zh": {"body": "https://s.cn/a {{ link(1) }}"}}))
    body = render(tracked, "zh", {"customer_id": 5}, link_maker(PUBLIC, SECRET, 1, "1", 5)).body
    first, second = body.split(" ")
    assert first == second and first.startswith(f"{PUBLIC}/l/")
    with pytest.raises(InputError, match=r"link\(2\)"):
        track_links(compile_content({"zh": {"body": "https://s.cn/a {{ link(2) }}"}}))


@pytest.mark.parametrize(
    "part",
    [{"body": "券 https://s.cn/c?code={{ coupon_code }}"}, {"html": '<a href="https://s.cn/{{ city }}">x</a>'},
     {"body": "x", "params": {"u": "https://s.cn/{% if city %}a{% endif %}"}}],
)  # fmt: skip
def test_urls_built_from_fields_cannot_be_tracked(part: dict[str, object]) -> None:
    with pytest.raises(InputError) as exc:
        extract_links(compile_content({"zh": part}))
    assert "template fields" in str(exc.value)
    assert (exc.value.problems[0].field or "").startswith("content.zh.")


def test_content_without_links_is_unchanged() -> None:
    compiled = compile_content({"zh": {"body": "您好 {{ city }}"}})
    tracked = track_links(compiled)
    assert tracked.links == ()
    assert render(tracked, "zh", {"customer_id": 1, "city": "苏州"}).body == "您好 苏州"


# --- tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("campaign_id", "step", "customer_id", "link_no"),
    [(1, "1", 1, 1), (123, "2", 4_567_890, 3), (2**21 - 1, "31", 2**63 - 1, 100), (9, "welcome-day-3", 77, 2)],
)
def test_token_round_trip(campaign_id: int, step: str, customer_id: int, link_no: int) -> None:
    token = make_token(SECRET, campaign_id, step, customer_id, link_no)
    link = read_token(SECRET, token)
    assert (link.campaign_id, link.step, link.customer_id, link.link_no) == (campaign_id, step, customer_id, link_no)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    if step.isdigit():
        assert len(token) <= 32  # an SMS is billed per 67 characters


def test_typical_token_is_short() -> None:
    url = tracked_url(PUBLIC, SECRET, 57, "1", 3_456_789, 2)
    token = url.rsplit("/", 1)[1]
    assert url == f"{PUBLIC}/l/{token}"
    assert 20 <= len(token) <= 27


def test_tampered_tokens_are_refused() -> None:
    token = make_token(SECRET, 12, "1", 1001, 1)
    other = make_token(SECRET, 12, "1", 1002, 1)
    forged = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token[:5] + ("x" if token[5] != "x" else "y") + token[6:],
        token[:-2],
        token + "A",
        other[:12] + token[12:],
        make_token("another-secret", 12, "1", 1001, 1),
        "",
        "not a token!",
        "A" * 500,
        token + "=",
    ]
    for bad in forged:
        with pytest.raises(InputError) as exc:
            read_token(SECRET, bad)
        assert exc.value.problems[0].field == "token"
    with pytest.raises(InputError, match="signature does not match"):
        read_token(SECRET, token[:5] + ("x" if token[5] != "x" else "y") + token[6:])


def test_every_single_character_change_is_refused() -> None:
    token = make_token(SECRET, 3, "1", 42, 1)
    alphabet = "AbZ09-_"
    for i in range(len(token)):
        for c in alphabet:
            if c != token[i]:
                with pytest.raises(InputError):
                    read_token(SECRET, token[:i] + c + token[i + 1 :])


def test_negative_ids_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        make_token(SECRET, 1, "1", -5, 1)


# --- storage --------------------------------------------------------------------------------------


def test_register_links_is_idempotent_and_refuses_a_changed_destination(sqlite_state: StateStore) -> None:
    campaign_id = make_campaign(sqlite_state)
    register_links(sqlite_state, campaign_id, ["https://s.cn/a", "https://s.cn/b"])
    register_links(sqlite_state, campaign_id, ["https://s.cn/a", "https://s.cn/b"])
    register_links(sqlite_state, campaign_id, [Link(2, "https://s.cn/b"), Link(3, "https://s.cn/c")])
    with sqlite_state.connect() as conn:
        rows = conn.execute(sa.text("SELECT link_no, url FROM campaign_links ORDER BY link_no")).all()
    assert [tuple(r) for r in rows] == [(1, "https://s.cn/a"), (2, "https://s.cn/b"), (3, "https://s.cn/c")]
    with pytest.raises(Conflict, match="link 1"):
        register_links(sqlite_state, campaign_id, ["https://s.cn/elsewhere"])


def test_record_click_returns_the_stored_destination(sqlite_state: StateStore) -> None:
    campaign_id = make_campaign(sqlite_state)
    register_links(sqlite_state, campaign_id, ["https://s.cn/a", "https://s.cn/b"])
    token = make_token(SECRET, campaign_id, "1", 1001, 2)
    assert record_click(sqlite_state, SECRET, token, "Mozilla/5.0 " + "x" * 1000, NOW) == "https://s.cn/b"
    with sqlite_state.connect() as conn:
        row = conn.execute(sa.select(link_clicks)).one()
    assert (row.campaign_id, row.step, row.customer_id, row.link_no) == (campaign_id, "1", 1001, 2)
    assert len(row.user_agent) == 512
    with pytest.raises(NotFound, match="no link 9"):
        record_click(sqlite_state, SECRET, make_token(SECRET, campaign_id, "1", 1001, 9), None, NOW)
    with pytest.raises(InputError):
        record_click(sqlite_state, SECRET, token[:-1] + ("A" if token[-1] != "A" else "B"), None, NOW)


# --- the route ------------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    off = {"campaign_interval_seconds": 0} if "campaign_interval_seconds" in Settings.model_fields else {}
    settings = load_settings(data_dir=tmp_path, loader_interval_seconds=0, secret_key=SECRET, public_url=PUBLIC, **off)
    with TestClient(create_app(settings)) as c:
        yield c


def test_click_redirects_and_is_recorded(client: TestClient) -> None:
    state: StateStore = client.app.state.state_store  # type: ignore[attr-defined]
    campaign_id = make_campaign(state)
    tracked = track_links(compile_content({"zh": {"body": "看 https://shop.cn/sale?from=sms 吧"}}), PUBLIC)
    register_links(state, campaign_id, tracked.links)
    body = render(tracked, "zh", {"customer_id": 88}, link_maker(PUBLIC, SECRET, campaign_id, "1", 88)).body
    url = body.split(" ")[1]
    res = client.get(url.removeprefix(PUBLIC), headers={"User-Agent": "WeChat/8.0"}, follow_redirects=False)
    assert res.status_code == 302
    assert res.headers["location"] == "https://shop.cn/sale?from=sms"
    assert res.headers["referrer-policy"] == "no-referrer"
    with state.connect() as conn:
        clicks = conn.execute(sa.select(link_clicks)).all()
    assert [(c.campaign_id, c.customer_id, c.link_no, c.user_agent) for c in clicks] == [
        (campaign_id, 88, 1, "WeChat/8.0")
    ]


def test_forged_or_unknown_token_gets_a_404_page(client: TestClient) -> None:
    state: StateStore = client.app.state.state_store  # type: ignore[attr-defined]
    campaign_id = make_campaign(state)
    register_links(state, campaign_id, ["https://shop.cn/"])
    token = make_token(SECRET, campaign_id, "1", 88, 1)
    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        make_token("not-our-secret", campaign_id, "1", 88, 1),
        make_token(SECRET, campaign_id, "1", 88, 2),  # signed, but no such link
        "x" * 300,
    ):
        res = client.get(f"/l/{bad}", follow_redirects=False)
        assert res.status_code == 404
        assert res.headers["content-type"].startswith("text/html")
        assert "链接无效" in res.text and "not valid" in res.text
        assert "Traceback" not in res.text and "location" not in res.headers
    with state.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(link_clicks)).scalar_one() == 0


def test_tracked_content_needs_a_link_maker_to_render() -> None:
    tracked = track_links(compile_content({"zh": {"body": "https://s.cn/a"}}))
    with pytest.raises(RenderError, match="no link maker"):
        render(tracked, "zh", {"customer_id": 3})
    untracked = compile_content({"zh": {"body": "{{ link(1) }}"}})
    with pytest.raises(RenderError, match="0 tracked links"):
        render(untracked, "zh", {"customer_id": 3}, link_maker(PUBLIC, SECRET, 1, "1", 3))
