"""Render behavioural events as Segment-spec JSON lines, a chunk of rows at a time (vectorised string
building; no per-event Python)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnicrm.simulate.catalogue import BRANDS, CATEGORIES, Catalogue
from omnicrm.simulate.events import ADD, ID_MEMBER, IDENTIFY, PAGE, SEARCH, VIEW, Events, all_queries
from omnicrm.simulate.orders import Orders
from omnicrm.simulate.people import MP, PRIVATE_DOMAIN, REFERRAL, Population
from omnicrm.simulate.shapes import MP_APPID
from omnicrm.simulate.timeline import D11_DAY, D11_PRESALE, D11_WAVE, D12, P618, Timeline
from omnicrm.simulate.truth import IdentifierTruth
from omnicrm.simulate.vec import (
    Rng,
    StrArray,
    cat,
    fmt_money,
    fmt_time,
    json_str,
    pick,
    scatter,
    uuid4s,
    where,
)

_WEB = "https://shop.yanmu.example"
_WEB_PAGES = (
    ("首页", "/"), ("商品列表", "/category"), ("新品", "/new"), ("活动页", "/promo"), ("会员中心", "/member"),
    ("购物车", "/cart"),
)  # fmt: skip
_MP_SCREENS = (
    ("首页", "pages/index/index"), ("分类", "pages/category/index"), ("新品", "pages/new/index"),
    ("活动页", "pages/promo/index"), ("我的", "pages/mine/index"), ("购物车", "pages/cart/index"),
)  # fmt: skip
_WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_WEB_UA = (
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) {_WEBKIT} Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_WEBKIT} Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
)
_MP_UA = (
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) {_WEBKIT} Mobile/15E148 "
    "MicroMessenger/8.0.50 NetType/WIFI Language/zh_CN miniProgram",
    "Mozilla/5.0 (Linux; Android 14; PJZ110) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0 "
    "Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20240404 MicroMessenger/8.0.49 miniProgram",
)
_REFERRERS = ("", "https://www.baidu.com/", "https://www.xiaohongshu.com/")
_EVENTS = ("", "", "Products Searched", "Product Viewed", "Product Added", "Order Completed")
_SOURCES = ("douyin", "xiaohongshu", "weibo", "wechat_moments")
_CAMPAIGN_PREFIX = {
    D11_PRESALE: "double11_", D11_WAVE: "double11_", D11_DAY: "double11_", D12: "double12_", P618: "618_"
}  # fmt: skip


def campaign_names(tl: Timeline) -> list[str]:
    """utm campaign name per day: promotion name and year, else an always-on monthly name."""
    days = np.arange(tl.n_days) + tl.day0
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    year, month = months // 12 + 1970, months % 12 + 1
    return [
        f"{_CAMPAIGN_PREFIX[p]}{y}" if p in _CAMPAIGN_PREFIX else f"always_on_{y}{m:02d}"
        for p, y, m in zip(tl.promo.tolist(), year.tolist(), month.tolist(), strict=True)
    ]


class SegmentRenderer:
    """Builds the JSON lines of one events file (web or mini-program).

    Session-level parts (device, referrer, campaign, user agent) and catalogue-level parts (product
    properties, URLs) are rendered once and gathered per event with `take`.
    """

    def __init__(
        self,
        rng: Rng,
        tl: Timeline,
        pop: Population,
        o: Orders,
        catalogue: Catalogue,
        ev: Events,
        channel: int,
        order_ids: StrArray,
    ) -> None:
        self.rng, self.tl, self.pop, self.o, self.c, self.ev = rng, tl, pop, o, catalogue, ev
        self.mp = channel == MP
        self.order_ids = order_ids
        self.revenue = np.bincount(o.order, weights=o.paid, minlength=o.n_orders).astype(np.int64)
        self.discount = np.bincount(o.order, weights=o.discount, minlength=o.n_orders).astype(np.int64)
        self.pages = _MP_SCREENS if self.mp else _WEB_PAGES
        self._sessions()
        self._catalogue()

    def _sessions(self) -> None:
        s, pop = self.ev.sessions, self.pop
        person = pa.array(s.person)
        if self.mp:
            self.anon = pop.mp_device.take(person)
        else:
            self.anon = where(s.device == 1, pop.web_device2.take(person), pop.web_device.take(person))
        acq = pop.acq_channel[s.person]
        source = np.where(acq == PRIVATE_DOMAIN, 4, np.where(acq == REFERRAL, 5, s.person % 4))
        day = np.clip(s.start_s // 86400 - self.tl.day0, 0, self.tl.n_days - 1)
        campaign = where(source == 5, "invite_friend", pa.array(campaign_names(self.tl)).take(pa.array(day)))
        utm = cat(
            ',"campaign":{"source":"', pick((*_SOURCES, "wechat_oa", "referral"), source),
            '","medium":"', pick(("cpc", "cpc", "cpc", "cpc", "article", "share"), source),
            '","name":"', campaign, '"}',
        )  # fmt: skip
        landing = ("www.douyin.com/", "www.xiaohongshu.com/", "weibo.com/", "mp.weixin.qq.com/",
                   "mp.weixin.qq.com/", "yanmu.example/invite")  # fmt: skip
        referrer = where(s.utm, cat("https://", pick(landing, source)), pick(_REFERRERS, s.referrer))
        uas = _MP_UA if self.mp else _WEB_UA
        ua = pick(uas, (s.person + s.device) % len(uas))
        self.ctx_tail = cat(
            '","referrer":"', referrer, '"}', where(s.utm, utm, ""), ',"userAgent":"', ua,
            '","locale":"zh-CN"}',
        )  # fmt: skip

    def _catalogue(self) -> None:
        c = self.c
        product = cat(
            '{"sku":"', c.code, '","category":"', pick(CATEGORIES, c.category), '","brand":"',
            pick(BRANDS, c.brand), '","name":', json_str(c.title), ',"price":', fmt_money(c.price_cents),
        )  # fmt: skip
        self.viewed = cat(product, "}")
        self.added = cat(product, ',"quantity":1}')
        base = "pages/goods/detail?sku=" if self.mp else _WEB + "/products/"
        self.product_url = cat(base, c.code)
        path = [p[1] for p in self.pages]
        if self.mp:
            self.page_props = pa.array([f'{{"path":"{p}"}}' for p in path])
            self.page_url = pa.array(path)
        else:
            self.page_props = pa.array([f'{{"title":"{t}","path":"{p}","url":"{_WEB}{p}"}}' for t, p in self.pages])
            self.page_url = pa.array([_WEB + p for p in path])
        self.search_props = cat('{"query":', json_str(pa.array(all_queries())), "}")

    def chunks(self, size: int = 500_000) -> Iterator[StrArray]:
        """Rendered lines (each ending with a newline), `size` events at a time."""
        for lo in range(0, len(self.ev), size):
            yield self.render(np.arange(lo, min(lo + size, len(self.ev))))

    def render(self, rows: np.ndarray) -> StrArray:
        """Lines for the given (time-ordered) event rows, rendered kind by kind."""
        kind = self.ev.kind[rows]
        parts = []
        for k in range(6):
            sel = np.flatnonzero(kind == k)
            if len(sel):
                parts.append((sel, self._render_kind(rows[sel], k)))
        return scatter(len(rows), parts)

    def _render_kind(self, rows: np.ndarray, k: int) -> StrArray:
        ev, pop = self.ev, self.pop
        session = pa.array(ev.session[rows])
        person = pa.array(ev.person[rows])
        style = pa.array(ev.style[rows])
        page = pa.array(ev.page[rows])
        user = where(ev.logged_in[rows], cat('"', pop.member_card.take(person), '"'), "null")
        if k == PAGE:
            name: StrArray | str = cat(',"name":"', pick([p[0] for p in self.pages], ev.page[rows]), '"')
        else:
            name = "" if k == IDENTIFY else f',"event":"{_EVENTS[k]}"'
        ev_type = "identify" if k == IDENTIFY else "track" if k != PAGE else "screen" if self.mp else "page"
        if k == IDENTIFY:
            body = cat(',"traits":', self._traits(rows, person))
            url: StrArray | str = "pages/login/index" if self.mp else _WEB + "/account/login"
        elif k == PAGE:
            body, url = cat(',"properties":', self.page_props.take(page)), self.page_url.take(page)
        elif k == SEARCH:
            query = pa.array(ev.query[rows])
            body = cat(',"properties":', self.search_props.take(query))
            url = "pages/search/index" if self.mp else _WEB + "/search"
        elif k in (VIEW, ADD):
            props = self.viewed if k == VIEW else self.added
            body, url = cat(',"properties":', props.take(style)), self.product_url.take(style)
        else:
            body = cat(',"properties":', self._completed(rows))
            url = "pages/order/success" if self.mp else _WEB + "/checkout/success"
        return cat(
            '{"messageId":"', uuid4s(self.rng, len(rows)), f'","type":"{ev_type}"', name, ',"userId":', user,
            ',"anonymousId":"', self.anon.take(session), '"', body, ',"context":{"page":{"url":"', url,
            self.ctx_tail.take(session), ',"timestamp":"', fmt_time(ev.ts_s[rows], "iso_ms", ev.ts_ms[rows]),
            '"}\n',
        )  # fmt: skip

    def _traits(self, rows: np.ndarray, person: pa.Array) -> StrArray:
        pop, variant = self.pop, self.ev.variant[rows]
        email = pop.email.take(person)
        contact = cat(
            ',"phone":"', pop.phone.take(person), '","name":', json_str(pop.name.take(person)),
            where(email.is_valid(), cat(',"email":', json_str(email)), ""),
        )  # fmt: skip
        if not self.mp:
            return cat("{", pc.utf8_slice_codeunits(contact, 1), "}")
        wechat = cat(
            '{"wechat_openid":"', pop.openid_mp.take(person),
            '","wechat_unionid":"', pop.unionid.take(person), f'","wechat_appid":"{MP_APPID}"',
        )  # fmt: skip
        with_contact = (variant == ID_MEMBER) | self.ev.logged_in[rows]
        return cat(wechat, where(with_contact, contact, ""), "}")

    def _completed(self, rows: np.ndarray) -> StrArray:
        order = np.maximum(self.ev.sessions.order[self.ev.session[rows]], 0)
        return cat(
            '{"order_id":"', self.order_ids.take(pa.array(order)),
            '","revenue":', fmt_money(self.revenue[order]),
            ',"discount":', fmt_money(self.discount[order]), ',"currency":"CNY"}',
        )  # fmt: skip


def record_identifiers(truth: IdentifierTruth, source: str, pop: Population, ev: Events, channel: int) -> None:
    """Ground truth for what an events file carries: device ids, userIds and identify traits."""
    s = ev.sessions
    device = s.device[ev.session].astype(np.int64)
    pairs = np.unique(ev.person * 2 + device)
    person, second = pairs // 2, (pairs % 2).astype(bool)
    take = pa.array(person)
    if channel == MP:
        truth.add(source, "device_id", person, pop.mp_device.take(take))
    else:
        anon = where(second, pop.web_device2.take(take), pop.web_device.take(take))
        truth.add(source, "device_id", person, anon)
    users = np.unique(ev.person[ev.logged_in])
    truth.add(source, "member_card", users, pop.member_card.take(pa.array(users)))
    ident = ev.kind == IDENTIFY
    if channel == MP:
        wx = np.unique(ev.person[ident])
        truth.add(source, "wechat_openid", wx, pop.openid_mp.take(pa.array(wx)))
        truth.add(source, "wechat_unionid", wx, pop.unionid.take(pa.array(wx)))
        ident &= (ev.variant == ID_MEMBER) | ev.logged_in
    contact = np.unique(ev.person[ident])
    truth.add(source, "phone", contact, pop.phone.take(pa.array(contact)))
    truth.add(source, "email", contact, pop.email.take(pa.array(contact)))
