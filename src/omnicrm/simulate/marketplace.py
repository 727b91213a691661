"""Order-line exports in the merchants' real shapes: Tmall, JD and the stores' POS."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from omnicrm.simulate import identities as ids
from omnicrm.simulate import reference as ref
from omnicrm.simulate.catalogue import BRANDS, CATEGORIES, COLOUR_CODES, COLOURS, SIZES, Catalogue
from omnicrm.simulate.orderkeys import OrderKeys
from omnicrm.simulate.orders import (
    ACT_618,
    ACT_BALANCE,
    ACT_D11,
    ACT_D12,
    ACT_DEPOSIT,
    ACTIVITY_LABELS,
    ST_DONE,
    ST_SHIPPED,
    Orders,
)
from omnicrm.simulate.people import JD, STORE, TMALL, Population
from omnicrm.simulate.shapes import (
    JD_ORDERS_FILE,
    JD_ORDERS_HEADER,
    POS_FILE,
    POS_HEADER,
    STORES,
    TMALL_ORDERS_FILE,
    TMALL_ORDERS_HEADER,
)
from omnicrm.simulate.timeline import Timeline
from omnicrm.simulate.truth import IdentifierTruth
from omnicrm.simulate.vec import Rng, StrArray, cat, fmt_fixed, fmt_int, fmt_money, fmt_time, pick, where

_TMALL_STATUS = ("交易成功", "交易关闭", "卖家已发货", "等待买家付款", "交易关闭")
_JD_STATUS = ("完成", "已取消", "等待出库", "已取消", "退款成功")
_PAYMENTS = ("微信支付", "支付宝", "银联卡", "现金", "储值卡")


def _times(local_s: np.ndarray, style: str) -> StrArray:
    valid = local_s >= 0
    return where(valid, fmt_time(np.where(valid, local_s, 0), style), None)


def _buyer(rng: Rng, pop: Population, person: np.ndarray, p_phone: float) -> tuple[StrArray, np.ndarray, StrArray]:
    """Per order: receiver name (typos), phone as typed (may be missing) with its quality note."""
    name, _ = ids.typo_names(rng, pop.name.take(pa.array(person)))
    phone, note = ids.noisy_phones(rng, pop.phone.take(pa.array(person)), p_format=0.10, p_placeholder=0.02)
    given = rng.random(len(person)) < p_phone
    return name, note, where(given, phone, None)


def _line_common(o: Orders, c: Catalogue, lines: np.ndarray) -> dict[str, StrArray]:
    style = o.style[lines]
    return {
        "title": c.title.take(pa.array(style)),
        "category": pick(CATEGORIES, c.category[style]),
        "brand": pick(BRANDS, c.brand[style]),
        "colour": pick(COLOURS, o.colour[lines]),
        "size": pick(SIZES, o.size[lines]),
        "qty": fmt_int(o.qty[lines]),
        "price": fmt_money(o.price[lines]),
        "discount": fmt_money(o.discount[lines]),
        "paid": fmt_money(o.paid[lines]),
        "refund": fmt_money(o.refund[lines]),
    }


def _address(pop: Population, person: np.ndarray, sep: str) -> StrArray:
    take = pa.array(person)
    prov = pick([c[0] for c in ref.CITIES], pop.city[person])
    city = pick([c[1] for c in ref.CITIES], pop.city[person])
    return cat(prov, sep, city, sep, pop.district.take(take), sep, pop.street.take(take))


def tmall_table(
    rng: Rng, pop: Population, o: Orders, keys: OrderKeys, c: Catalogue, truth: IdentifierTruth
) -> pa.Table:
    """`tmall_orders.csv`: one row per order line."""
    orders = np.flatnonzero(o.channel == TMALL)
    person = o.person[orders]
    has2 = pop.tmall_nick2.is_valid().to_numpy(zero_copy_only=False)[person] & (rng.random(len(orders)) < 0.5)
    nick = where(has2, pop.tmall_nick2.take(pa.array(person)), pop.tmall_nick.take(pa.array(person)))
    name, phone_note, phone = _buyer(rng, pop, person, 0.70)
    addr = _address(pop, person, " ")
    pos = np.full(o.n_orders, -1, dtype=np.int64)
    pos[orders] = np.arange(len(orders))
    lines = np.flatnonzero(o.channel[o.order] == TMALL)
    lo = pos[o.order[lines]]
    take = pa.array(lo)
    common = _line_common(o, c, lines)
    act = o.activity[o.order[lines]]
    act = np.where(np.isin(act, [ACT_DEPOSIT, ACT_BALANCE, ACT_D11, ACT_D12]), act, 0)
    created, paid_s = o.created_s[o.order[lines]], o.paid_s[o.order[lines]]
    sub_no = 3_900_000_000_000_000_000 + lines * 10_000_000_000 + rng.integers(0, 10**10, len(lines))
    cols = [
        keys.order_no.take(pa.array(o.order[lines])),
        fmt_int(sub_no),
        nick.take(take),
        name.take(take),
        phone.take(take),
        addr.take(take),
        c.code.take(pa.array(o.style[lines])),
        common["title"],
        common["category"],
        common["brand"],
        common["colour"],
        common["size"],
        common["qty"],
        common["price"],
        common["discount"],
        common["paid"],
        common["refund"],
        pick(_TMALL_STATUS, o.status[lines]),
        where(act > 0, pick(ACTIVITY_LABELS, act), None),
        fmt_time(created, "tmall"),
        _times(paid_s, "tmall"),
        _times(o.refund_s[lines], "tmall"),
    ]
    truth.add(TMALL_ORDERS_FILE, "tmall_nick", person, nick)
    truth.add(TMALL_ORDERS_FILE, "phone", person, phone, phone_note)
    return pa.table(cols, names=list(TMALL_ORDERS_HEADER))


def jd_table(
    rng: Rng, tl: Timeline, pop: Population, o: Orders, keys: OrderKeys, c: Catalogue, truth: IdentifierTruth
) -> pa.Table:
    """`jd_orders.csv`: one row per order line, JD's time format and statuses."""
    orders = np.flatnonzero(o.channel == JD)
    person = o.person[orders]
    name, phone_note, phone = _buyer(rng, pop, person, 0.70)
    addr = _address(pop, person, "")
    account = pop.jd_account.take(pa.array(person))
    pos = np.full(o.n_orders, -1, dtype=np.int64)
    pos[orders] = np.arange(len(orders))
    lines = np.flatnonzero(o.channel[o.order] == JD)
    take = pa.array(pos[o.order[lines]])
    common = _line_common(o, c, lines)
    act = o.activity[o.order[lines]]
    act = np.where(np.isin(act, [ACT_D11, ACT_D12, ACT_618]), act, 0)
    paid_s = o.paid_s[o.order[lines]]
    status = o.status[lines].copy()
    status[(status == ST_SHIPPED) & (paid_s < tl.end_s - 3 * 86400)] = ST_DONE
    cols = [
        keys.order_no.take(pa.array(o.order[lines])),
        c.jd_sku.take(pa.array(o.style[lines])),
        common["title"],
        common["category"],
        common["brand"],
        common["colour"],
        common["size"],
        common["qty"],
        common["price"],
        common["discount"],
        common["paid"],
        common["refund"],
        account.take(take),
        name.take(take),
        phone.take(take),
        addr.take(take),
        pick(_JD_STATUS, status),
        where(act > 0, pick(ACTIVITY_LABELS, act), None),
        fmt_time(o.created_s[o.order[lines]], "jd"),
        _times(paid_s, "jd"),
        _times(o.refund_s[lines], "jd"),
    ]
    truth.add(JD_ORDERS_FILE, "jd_account", person, account)
    truth.add(JD_ORDERS_FILE, "phone", person, phone, phone_note)
    return pa.table(cols, names=list(JD_ORDERS_HEADER))


def pos_table(rng: Rng, pop: Population, o: Orders, keys: OrderKeys, c: Catalogue, truth: IdentifierTruth) -> pa.Table:
    """`pos_sales.csv`: store receipts; member card / phone only for members."""
    orders = np.flatnonzero(o.channel == STORE)
    person = o.person[orders]
    n = len(orders)
    store, guide, is_member = keys.store[orders], keys.guide[orders], keys.member_at_sale[orders]
    codes = pick([s[0] for s in STORES], store)
    card = where(keys.card_shown[orders], pop.member_card.take(pa.array(person)), None)
    noisy, note = ids.noisy_phones(rng, pop.phone.take(pa.array(person)), p_format=0.10)
    placeholder = pick(ref.PLACEHOLDER_PHONES, rng.integers(0, len(ref.PLACEHOLDER_PHONES), n))
    walk_in_ph = ~is_member & (rng.random(n) < 0.04)
    phone = where(is_member & (rng.random(n) < 0.6), noisy, where(walk_in_ph, placeholder, None))
    note = np.where(walk_in_ph, ids.PLACEHOLDER, note)
    pay = rng.choice(len(_PAYMENTS), n, p=[0.45, 0.30, 0.12, 0.05, 0.08])
    pay = np.where((pay == 4) & ~is_member, 0, pay)

    pos = np.full(o.n_orders, -1, dtype=np.int64)
    pos[orders] = np.arange(n)
    lines = np.flatnonzero(o.channel[o.order] == STORE)
    take = pa.array(pos[o.order[lines]])
    common = _line_common(o, c, lines)
    style = o.style[lines]
    sku = cat(c.code.take(pa.array(style)), "-", pick(COLOUR_CODES, o.colour[lines]), "-", common["size"])
    cols = [
        codes.take(take),
        pick([s[1] for s in STORES], store).take(take),
        keys.order_no.take(pa.array(o.order[lines])),
        fmt_int(o.line_no[lines]),
        card.take(take),
        phone.take(take),
        fmt_fixed(guide + 1, 2, prefix="G").take(take),
        sku,
        common["title"],
        common["category"],
        common["brand"],
        common["colour"],
        common["size"],
        common["qty"],
        common["price"],
        common["discount"],
        common["paid"],
        common["refund"],
        fmt_time(o.created_s[o.order[lines]], "iso"),
        _times(o.refund_s[lines], "iso"),
        pick(_PAYMENTS, pay).take(take),
    ]
    truth.add(POS_FILE, "member_card", person, card)
    truth.add(POS_FILE, "phone", person, phone, note)
    return pa.table(cols, names=list(POS_HEADER))
