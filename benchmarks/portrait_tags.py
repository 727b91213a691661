"""Portrait tags benchmark: a full refresh of the built-in tags against hand-written DuckDB SQL, in the same run.

Data: ``--customers`` (1M) synthetic customers and ``--orders`` (20M) order lines over two years, generated with
numpy and pyarrow (vectorised) into the facts layout (``facts/order_line/date=YYYY-MM-DD/*.parquet``, the exact
``SCHEMAS["order_line"]``), and an identity snapshot written directly (records, identifiers, redirects) instead of
running OneID. Most customers buy once, some many times; Double 11 / Double 12 / 618 spikes with declared
promotions; tmall, jd and pos (with store codes); refunds, cancelled lines, and a re-export batch that supersedes
some lines (refunded later). The data are cached in ``--workdir`` keyed by size and seed; generation time is shown
apart and is part of neither side.

Three sides, each in a fresh subprocess (peak RSS: the child's VmHWM), rounds interleaved in a rotating order,
ratio = best side / best baseline (target <= 2.0):
- ours: ``refresh_portrait(..., full=True)`` on the DuckDB engine, end to end: every built-in tag, the BG/NBD and
  Gamma-Gamma fits, the repeat-purchase propensity model (trained on past portraits of promotion cohorts), the
  snapshot written. Stage times come from its ``say`` messages and from the engine's queries.
- daily: the same with ``full=False`` after a full run, so the models are reused (what a daily refresh costs).
- baseline: one DuckDB connection running hand-written SQL over the same files that computes the RFM (recency,
  frequency, monetary, R/F/M scores, segment, average order value, spend in 365 days), lifecycle (thresholds from
  the gap quantiles, stage, tenure, interval, repeat buyer) and preference (top categories, brand, sizes, colour,
  price band, unit price) tags with the portrait's semantics (latest version of each line, refunds after the as-of
  moment not yet made, net > 0 is a purchase, calendar days in China time), written to Parquet.
The baseline's values are then compared with ours, tag by tag, for every customer (exactly; float tags also
within 1e-9), and the lifecycle thresholds with each other.

Run: ``.venv/bin/python benchmarks/portrait_tags.py [--customers 1000000] [--orders 20000000] [--rounds 3]
[--workdir /tmp/omnicrm-bench-portrait-tags]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnicrm.store.facts import MONEY, ORDER_LINE, TS

TARGET = 2.0
SIDES = ["ours", "daily", "baseline"]  # full refresh; refresh reusing the models the full one fitted; hand-written SQL
AS_OF = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
HISTORY_DAYS = 730
GENERATOR_VERSION = 1  # bump when the generated data change, so cached data are rebuilt
DEFAULT_WORKDIR = Path("/tmp/omnicrm-bench-portrait-tags")
OPTIONS: dict[str, dict[str, Any]] = {
    "--customers": {"type": int, "default": 1_000_000, "help": "synthetic customers (tags benchmark)"},
    "--orders": {"type": int, "default": 20_000_000, "help": "synthetic order lines (tags benchmark)"},
    "--rounds": {"type": int, "default": 3, "help": "interleaved rounds of the tags race (best of)"},
    "--workdir": {"type": Path, "default": DEFAULT_WORKDIR, "help": "where the generated facts are cached"},
    "--seed": {"type": int, "default": 7, "help": "seed of the synthetic data"},
}

# The tags both sides compute, by family; each compared value for value.
RFM_TAGS = (
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "avg_order_value",
    "spend_365d",
)
LIFECYCLE_TAGS = ("lifecycle_stage", "tenure_days", "purchase_interval_days", "repeat_buyer")
PREFERENCE_TAGS = (
    "preferred_category",
    "top_categories",
    "preferred_brand",
    "preferred_size",
    "preferred_shoe_size",
    "preferred_colour",
    "price_band",
    "avg_unit_price",
)
COMPARED = RFM_TAGS + LIFECYCLE_TAGS + PREFERENCE_TAGS
FLOAT_TAGS = ("avg_order_value", "purchase_interval_days", "avg_unit_price")

# ---------------------------------------------------------------------------------------------------------------
# Synthetic merchant: small vocabularies, as a fashion brand selling on tmall, jd and in its own stores
# ---------------------------------------------------------------------------------------------------------------
SOURCES = ("tmall", "jd", "pos")
SOURCE_SHARE = (0.5, 0.25, 0.25)
# category, size kind (0 clothing, 1 shoes, 2 one size / none), base price in yuan, share
CATEGORIES = (
    ("T恤", 0, 129, 0.14),
    ("衬衫", 0, 259, 0.09),
    ("针织衫", 0, 399, 0.08),
    ("外套", 0, 699, 0.08),
    ("连衣裙", 0, 459, 0.09),
    ("半身裙", 0, 259, 0.06),
    ("牛仔裤", 0, 299, 0.10),
    ("内衣", 0, 89, 0.07),
    ("运动鞋", 1, 499, 0.10),
    ("皮鞋", 1, 599, 0.05),
    ("包袋", 2, 459, 0.08),
    ("配饰", 2, 99, 0.06),
)
CATEGORY_NAMES = tuple(c[0] for c in CATEGORIES)
BRANDS = ("言木", "言木·都市", "YANMU SPORT", "YANMU DENIM", "言木童装", "LAB言木")
BRAND_CODES = ("YM", "YC", "YS", "YD", "YK", "YL")
CLOTHING_SIZES = ("S", "M", "L", "XL", "XXL", "均码")
SHOE_SIZES = ("35", "36", "37", "38", "38.5", "39", "40", "41", "42", "43", "44")
COLOURS = ("黑色", "白色", "灰色", "米色", "卡其", "藏青", "红色", "蓝色", "绿色", "粉色")
COLOUR_CODES = ("BK", "WH", "GY", "BG", "KH", "NV", "RD", "BL", "GN", "PK")
PLACES = (
    ("浙江省", "杭州市", "西湖区"),
    ("上海市", "上海市", "静安区"),
    ("北京市", "北京市", "朝阳区"),
    ("广东省", "广州市", "天河区"),
    ("广东省", "深圳市", "南山区"),
    ("江苏省", "南京市", "鼓楼区"),
    ("江苏省", "苏州市", "姑苏区"),
    ("四川省", "成都市", "武侯区"),
    ("湖北省", "武汉市", "洪山区"),
    ("陕西省", "西安市", "雁塔区"),
    ("山东省", "青岛市", "市南区"),
    ("福建省", "厦门市", "思明区"),
    ("湖南省", "长沙市", "岳麓区"),
    ("河南省", "郑州市", "金水区"),
    ("重庆市", "重庆市", "渝北区"),
    ("天津市", "天津市", "和平区"),
    ("辽宁省", "沈阳市", "和平区"),
    ("云南省", "昆明市", "五华区"),
    ("广西壮族自治区", "南宁市", "青秀区"),
    ("内蒙古自治区", "呼和浩特市", "新城区"),
)
ROADS = ("滨江大道", "青年路", "东风路", "人民路", "解放路", "中山路", "建设路", "学院路")
ESTATES = ("星河湾", "御景湾", "翠湖天地", "阳光花园", "锦绣华庭", "金色家园")
PROMOTIONS = (None, "双11", "双11尾款", "双12", "618")
STATUSES = ("completed", "refunded", "cancelled", "shipped")
STORES = 50


# ---------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------
def data_dir(workdir: Path, customers: int, lines: int, seed: int) -> Path:
    return workdir / f"c{customers}-l{lines}-s{seed}-v{GENERATOR_VERSION}"


def _money(cents: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """decimal(18, 2) from integer cents, built from the buffers (16-byte two's complement, little-endian)."""
    n = len(cents)
    buf = np.empty((n, 2), dtype=np.int64)
    buf[:, 0] = cents
    buf[:, 1] = cents >> 63
    if valid is None or valid.all():
        return pa.Array.from_buffers(MONEY, n, [None, pa.py_buffer(buf)], null_count=0)
    bits = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(MONEY, n, [bits, pa.py_buffer(buf)], null_count=int(n - valid.sum()))


def _pick(values: Sequence[str | None], index: np.ndarray) -> pa.Array:
    return pc.take(pa.array(values, pa.string()), pa.array(index))


def _text(numbers: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(numbers, pa.int64()), pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _masked(values: pa.Array, keep: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(keep), values, pa.scalar(None, values.type))


def _day_weights(start: dt.date) -> np.ndarray:
    """Relative order volume per local day: slow growth, Double 11 (Nov 1-11, peak on the 11th), Double 12, 618."""
    days = [start + dt.timedelta(days=i) for i in range(HISTORY_DAYS)]
    w = np.linspace(1.0, 1.4, HISTORY_DAYS)
    for i, d in enumerate(days):
        if d.month == 11 and d.day <= 11:
            w[i] *= 12.0 if d.day == 11 else 3.0
        elif d.month == 12 and d.day == 12:
            w[i] *= 4.0
        elif d.month == 6 and d.day <= 18:
            w[i] *= 1.8 if d.day < 18 else 5.0
    return w / w.sum()


def _lines_per_order(rng: np.random.Generator, lines: int, customers: int) -> np.ndarray:
    """1-3 lines per order (60/30/10 %), adjusted so that the total is exactly ``lines``."""
    if lines < customers:
        raise SystemExit(f"--orders ({lines:,} lines) must be at least --customers ({customers:,}): each buys once")
    n_orders = max(customers, round(lines / 1.5))
    k = rng.choice(np.array([1, 2, 3], dtype=np.int64), size=n_orders, p=[0.6, 0.3, 0.1])
    diff = int(k.sum()) - lines
    if diff > 0:
        can = np.flatnonzero(k > 1)
        k[rng.choice(can, size=diff, replace=len(can) < diff)] -= 1
        k = np.maximum(k, 1)
    if int(k.sum()) < lines:
        short = lines - int(k.sum())
        can = np.flatnonzero(k < 3)
        k[rng.choice(can, size=short, replace=False)] += 1
    while int(k.sum()) > lines:  # only after a draw with replacement above; rare
        k[np.flatnonzero(k > 1)[: int(k.sum()) - lines]] -= 1
    return k


def generate(out: Path, customers: int, lines: int, seed: int, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the facts and the identity snapshot for the given size into ``out`` (replaced if incomplete)."""
    from omnicrm.store.derived import DerivedStore
    from omnicrm.store.state import StateStore

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    start_day = (AS_OF + dt.timedelta(hours=8)).date() - dt.timedelta(days=HISTORY_DAYS)
    epoch_day0 = (start_day - dt.date(1970, 1, 1)).days
    weights = _day_weights(start_day)
    c_ids = np.arange(customers, dtype=np.int64)

    # customers: acquisition day, how long they stay, preferences, main channel, home store, address
    say("  customers…")
    acquired = rng.choice(HISTORY_DAYS, size=customers, p=weights).astype(np.int64)
    stays = np.minimum(HISTORY_DAYS - 1 - acquired, rng.exponential(300.0, customers).astype(np.int64))
    main_source = rng.choice(3, size=customers, p=SOURCE_SHARE)
    cat_share = np.array([c[3] for c in CATEGORIES])
    cat_share = cat_share / cat_share.sum()
    pref_cat = rng.choice(len(CATEGORIES), size=customers, p=cat_share)
    pref_brand = rng.choice(len(BRANDS), size=customers, p=[0.4, 0.2, 0.15, 0.12, 0.05, 0.08])
    pref_size = rng.choice(5, size=customers, p=[0.2, 0.35, 0.25, 0.15, 0.05])
    pref_shoe = rng.choice(len(SHOE_SIZES), size=customers)
    pref_colour = rng.choice(
        len(COLOURS), size=customers, p=[0.25, 0.15, 0.12, 0.1, 0.08, 0.08, 0.06, 0.06, 0.05, 0.05]
    )
    home_store = rng.integers(0, STORES, customers)
    address_pool = [
        f"{p} {c} {d} {ROADS[i % len(ROADS)]}{(i * 37) % 990 + 1}号{ESTATES[i % len(ESTATES)]}{i % 30 + 1}幢{(i * 7) % 28 + 1}01室"
        for i in range(2000)
        for p, c, d in [PLACES[i % len(PLACES)]]
    ]
    address_pool += [a.replace(" ", "") for a in address_pool[:400]]  # some exports run the parts together
    home_address = rng.integers(0, len(address_pool), customers)
    phone = 13_000_000_000 + rng.permutation(customers).astype(np.int64) * 37 % 8_999_999_999

    # orders: everyone buys once; 45 % come back, as often as a skewed (gamma) propensity says
    say("  orders…")
    k_lines = _lines_per_order(rng, lines, customers)
    n_orders = len(k_lines)
    per_customer = np.ones(customers, dtype=np.int64)
    repeaters = np.flatnonzero(rng.random(customers) < 0.45)
    extra = n_orders - customers
    if extra > 0 and len(repeaters):
        base = min(extra, len(repeaters))
        per_customer[repeaters[:base]] += 1
        if extra > base:
            w = rng.gamma(0.6, 1.0, len(repeaters))
            per_customer[repeaters] += rng.multinomial(extra - base, w / w.sum())
    o_cust = np.repeat(c_ids, per_customer)
    first = np.ones(n_orders, dtype=bool)
    first[1:] = o_cust[1:] != o_cust[:-1]
    o_day = acquired[o_cust] + np.floor(rng.random(n_orders) * (stays[o_cust] + 1)).astype(np.int64)
    o_day[first] = acquired[o_cust[first]]
    o_source = np.where(rng.random(n_orders) < 0.8, main_source[o_cust], rng.choice(3, size=n_orders, p=SOURCE_SHARE))
    online = o_source != 2
    # Double 11 pulls repeat online orders into Nov 1-11 (if the customer was already there)
    dates = np.array([start_day + dt.timedelta(days=i) for i in range(HISTORY_DAYS)])
    month = np.array([d.month for d in dates])
    dom = np.array([d.day for d in dates])
    d11 = np.flatnonzero((month == 11) & (dom <= 11))
    pull = (~first) & online & (rng.random(n_orders) < 0.12)
    target = d11[rng.integers(0, len(d11), n_orders)]
    o_day = np.where(pull & (target >= acquired[o_cust]), target, o_day)
    # a few orders after the as-of moment (invisible to both sides)
    late = rng.random(n_orders) < 0.001
    o_day = np.where(late, HISTORY_DAYS + rng.integers(0, 3, n_orders), o_day)
    local_second = np.where(
        rng.random(n_orders) < 0.3, rng.integers(20 * 3600, 86400, n_orders), rng.integers(0, 86400, n_orders)
    )
    o_created = ((epoch_day0 + o_day) * 86400 + local_second - 8 * 3600) * 1_000_000
    m = month[np.minimum(o_day, HISTORY_DAYS - 1)]
    d = dom[np.minimum(o_day, HISTORY_DAYS - 1)]
    u = rng.random(n_orders)
    promo = np.zeros(n_orders, dtype=np.int64)
    in_d11 = (m == 11) & (d <= 11)
    promo[in_d11 & online & (u < 0.6)] = 1
    promo[in_d11 & online & (u >= 0.6) & (u < 0.8)] = 2
    promo[in_d11 & ~online & (u < 0.2)] = 1
    promo[(m == 12) & (d <= 12) & online & (u < 0.5)] = 3
    promo[(m == 6) & (d <= 18) & online & (u < 0.5)] = 4
    o_address = np.where(rng.random(n_orders) < 0.9, home_address[o_cust], rng.integers(0, len(address_pool), n_orders))
    o_store = np.where(rng.random(n_orders) < 0.85, home_store[o_cust], rng.integers(0, STORES, n_orders))
    o_reexport = online & (rng.random(n_orders) < 0.03)

    # lines
    say("  lines…")
    l_order = np.repeat(np.arange(n_orders, dtype=np.int64), k_lines)
    starts = np.cumsum(k_lines) - k_lines
    line_no = (np.arange(lines, dtype=np.int64) - np.repeat(starts, k_lines) + 1).astype(np.int32)
    l_cust = o_cust[l_order]
    l_cat = np.where(rng.random(lines) < 0.5, pref_cat[l_cust], rng.choice(len(CATEGORIES), size=lines, p=cat_share))
    l_brand = np.where(rng.random(lines) < 0.6, pref_brand[l_cust], rng.integers(0, len(BRANDS), lines))
    kind = np.array([c[1] for c in CATEGORIES])[l_cat]
    # size index into SIZE_VOCAB: clothing 0-5, shoes 6-16, null 17
    size_vocab: list[str | None] = [*CLOTHING_SIZES, *SHOE_SIZES, None]
    cloth = np.where(rng.random(lines) < 0.7, pref_size[l_cust], rng.integers(0, 6, lines))
    shoe = 6 + np.where(rng.random(lines) < 0.8, pref_shoe[l_cust], rng.integers(0, len(SHOE_SIZES), lines))
    l_size = np.where(kind == 0, cloth, np.where(kind == 1, shoe, 5))
    l_size = np.where(rng.random(lines) < 0.04, 17, l_size)
    colour_vocab: list[str | None] = [*COLOURS, None, ""]
    l_colour = np.where(rng.random(lines) < 0.5, pref_colour[l_cust], rng.integers(0, len(COLOURS), lines))
    r = rng.random(lines)
    l_colour = np.where(r < 0.02, 10, np.where(r < 0.03, 11, l_colour))
    q = rng.random(lines)
    quantity = np.where(q < 0.85, 1, np.where(q < 0.97, 2, 3)).astype(np.int64)
    quantity_valid = rng.random(lines) >= 0.002
    base_price = np.array([c[2] for c in CATEGORIES], dtype=np.float64)[l_cat]
    unit = (np.maximum(np.round(base_price * rng.lognormal(0.0, 0.3, lines) / 10), 2) * 10 - 1).astype(np.int64) * 100
    gross = unit * quantity
    l_promo = promo[l_order]
    disc_rate = np.where(l_promo > 0, 0.2, np.where(rng.random(lines) < 0.1, rng.uniform(0.05, 0.15, lines), 0.0))
    discount = np.round(gross * disc_rate / 100).astype(np.int64) * 100
    paid = gross - discount
    s = rng.random(lines)
    status = np.where(s < 0.04, 1, np.where(s < 0.045, 2, 0))
    paid_valid = status != 2
    refunded = np.where(status == 1, paid, np.where(s < 0.06, np.round(paid * 0.3 / 100).astype(np.int64) * 100, 0))
    l_source = o_source[l_order]
    refunded_valid = ~((l_source == 2) & (rng.random(lines) < 0.2))  # many POS exports have no refund column
    reexport = o_reexport[l_order]
    status = np.where(reexport, 3, status)  # shipped when first exported; refunded in the re-export
    created = o_created[l_order] + line_no.astype(np.int64) * 1_000_000

    # files: one per UTC date (the facts layout); re-exported lines again in a second batch
    say("  writing facts…")
    utc_day = created // 86_400_000_000
    order = np.argsort(utc_day, kind="stable")
    bounds = np.flatnonzero(np.diff(utc_day[order])) + 1
    chunks = np.split(order, bounds)
    ingested = {
        1: int((AS_OF - dt.timedelta(hours=6)).timestamp() * 1e6),
        2: int(AS_OF.timestamp() * 1e6) - 3_600_000_000,
    }
    source_names = np.array(SOURCES)

    def table(idx: np.ndarray, batch: int) -> pa.Table:
        n = len(idx)
        o = l_order[idx]
        c = l_cust[idx]
        src = l_source[idx]
        pos = src == 2
        store = o_store[o] + 1
        store_code = _join("S", pc.utf8_lpad(_text(store), 3, "0"))
        order_id = pc.if_else(
            pa.array(pos),
            _join(store_code, "-", _text(o)),
            _join(pc.if_else(pa.array(src == 0), pa.scalar("26"), pa.scalar("25")), _text(10_000_000_000 + o)),
        )
        ln = line_no[idx]
        cr = created[idx]
        st = status[idx]
        pd_c, rf_c = paid[idx], refunded[idx]
        rf_valid = refunded_valid[idx]
        if batch == 2:  # the re-export: the whole line refunded after a return
            st = np.full(n, 1)
            rf_c = pd_c.copy()
            rf_valid = np.ones(n, dtype=bool)
        refunded_at = np.where(st == 1, cr + 7 * 86_400_000_000, 0)
        sku = _join(
            _pick(BRAND_CODES, l_brand[idx]),
            _text(100 + l_cat[idx]),
            "-",
            _pick(COLOUR_CODES, np.minimum(l_colour[idx], 9)),
            "-",
            pc.fill_null(_pick(size_vocab, l_size[idx]), "NA"),
        )
        name = _join(_pick(BRANDS, l_brand[idx]), " 2026新款 ", _pick(CATEGORY_NAMES, l_cat[idx]))
        cols: dict[str, pa.Array] = {
            "order_id": order_id,
            "line_no": pa.array(ln, pa.int32()),
            "marketplace_nick": _masked(_join(pc.if_else(pa.array(src == 0), "tb", "jd_"), _text(c + 1)), ~pos),
            "phone": _masked(_text(phone[c]), ~pos | (c % 2 == 0)),
            "email": pa.nulls(n, pa.string()),
            "member_card": _masked(_join("M", _text(10_000_000 + c)), pos),
            "wechat_openid": pa.nulls(n, pa.string()),
            "wechat_appid": pa.nulls(n, pa.string()),
            "wechat_unionid": pa.nulls(n, pa.string()),
            "buyer_name": pa.nulls(n, pa.string()),
            "address": _masked(_pick(address_pool, o_address[o]), ~pos),
            "store_code": _masked(store_code, pos),
            "store_guide": _masked(_join("G", pc.utf8_lpad(_text(c % 10 + 1), 2, "0")), pos),
            "sku": sku,
            "product_name": name,
            "category": _pick(CATEGORY_NAMES, l_cat[idx]),
            "brand": _pick(BRANDS, l_brand[idx]),
            "size": _pick(size_vocab, l_size[idx]),
            "colour": _pick(colour_vocab, l_colour[idx]),
            "quantity": pa.array(quantity[idx], pa.int32(), mask=~quantity_valid[idx]),
            "unit_price": _money(unit[idx]),
            "discount": _money(discount[idx]),
            "paid_amount": _money(pd_c, paid_valid[idx]),
            "refunded_amount": _money(rf_c, rf_valid),
            "currency": pa.array(["CNY"] * n, pa.string()),
            "status": _pick(STATUSES, st),
            "promotion": _pick(PROMOTIONS, l_promo[idx]),
            "created_at": pa.array(cr, TS),
            "paid_at": pa.array(cr + 120_000_000, TS, mask=~paid_valid[idx]),
            "refunded_at": pa.array(refunded_at, TS, mask=st != 1),
            "source": pa.array(source_names[src], pa.string()),
            "source_key": _join(order_id, "/", _text(ln)),
            "ingest_id": pa.array([f"bench-{batch:010d}"] * n, pa.string()),
            "ingested_at": pa.array(np.full(n, ingested[batch]), TS),
            "source_file": pc.binary_join_element_wise(pa.array(source_names[src], pa.string()), "orders.csv", "_"),
            "source_line": pa.array(idx + 2, pa.int64()),
        }
        return pa.Table.from_arrays([cols[f.name] for f in ORDER_LINE], schema=ORDER_LINE)

    facts_root = out / "facts" / "order_line"

    def write(idx: np.ndarray) -> int:
        day = dt.date(1970, 1, 1) + dt.timedelta(days=int(utc_day[idx[0]]))
        folder = facts_root / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table(idx, 1), folder / "bench-0000000001-0.parquet", compression="zstd")
        again = idx[reexport[idx]]
        if len(again):
            pq.write_table(table(again, 2), folder / "bench-0000000002-0.parquet", compression="zstd")
        return len(again)

    with ThreadPoolExecutor(max_workers=2) as pool:
        reexported = sum(pool.map(write, chunks))

    # the identity snapshot: every order's record key → its customer (ids 1..N), identifiers, no redirects
    say("  identity snapshot…")
    derived = DerivedStore(out / "derived")
    snap = derived.new_snapshot("identity")
    o_idx = np.arange(n_orders, dtype=np.int64)
    pos = o_source == 2
    store_code = _join("S", pc.utf8_lpad(_text(o_store + 1), 3, "0"))
    order_id = pc.if_else(
        pa.array(pos),
        _join(store_code, "-", _text(o_idx)),
        _join(pc.if_else(pa.array(o_source == 0), pa.scalar("26"), pa.scalar("25")), _text(10_000_000_000 + o_idx)),
    )
    keys = _join("o:", pa.array(source_names[o_source], pa.string()), ":", order_id)
    records = pa.table({"record_key": keys, "customer_id": pa.array(o_cust + 1, pa.int64())})
    con = duckdb.connect()
    con.register("records_in", records)
    con.execute(f"COPY (SELECT * FROM records_in ORDER BY record_key) TO '{snap / 'records.parquet'}' (FORMAT parquet)")
    del records, keys, order_id
    first_seen = pa.array(np.full(customers, int((AS_OF - dt.timedelta(days=HISTORY_DAYS)).timestamp() * 1e6)), TS)
    phones = _text(phone)
    identifiers = pa.table(
        {
            "customer_id": pa.array(c_ids + 1, pa.int64()),
            "key": _join("phone::", phones),
            "id_type": pa.array(["phone"] * customers, pa.string()),
            "scope": pa.array([""] * customers, pa.string()),
            "n_records": pa.array(per_customer, pa.int64()),
            "first_seen": first_seen,
            "last_seen": pa.array(np.full(customers, int(AS_OF.timestamp() * 1e6)), TS),
            "sources": pa.array(source_names[main_source], pa.string()),
            "value": phones,
            "merge_stage": pa.array(np.full(customers, 10), pa.int64()),
            "refusal": pa.nulls(customers, pa.string()),
            "holders": pa.array(np.ones(customers, dtype=np.int64), pa.int64()),
        }
    )
    pq.write_table(identifiers, snap / "identifiers.parquet")
    pq.write_table(
        pa.table({"old_id": pa.array([], pa.int64()), "customer_id": pa.array([], pa.int64())}),
        snap / "redirects.parquet",
    )
    info = {
        "customers": customers,
        "order_lines": lines,
        "orders": int(n_orders),
        "reexported_lines": int(reexported),
        "one_time_customers": int((per_customer == 1).sum()),
        "max_orders_per_customer": int(per_customer.max()),
        "date_files": len(chunks),
        "seed": seed,
        "as_of": AS_OF.isoformat(),
    }
    (snap / "stats.json").write_text(json.dumps({"synthetic": info}, indent=2), encoding="utf-8")
    derived.publish("identity", snap)
    StateStore(f"sqlite:///{out / 'state.db'}").dispose()  # migrated once here, not inside the timed refresh
    (out / "DONE.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def ensure_data(workdir: Path, customers: int, lines: int, seed: int) -> tuple[Path, dict[str, Any], float | None]:
    """The cached data of this size (generated if absent): (folder, info, generation seconds or None if cached)."""
    out = data_dir(workdir, customers, lines, seed)
    done = out / "DONE.json"
    if done.exists():
        return out, json.loads(done.read_text(encoding="utf-8")), None
    print(f"generating {customers:,} customers, {lines:,} order lines into {out} …", flush=True)
    started = time.perf_counter()
    info = generate(out, customers, lines, seed)
    return out, info, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------------------------
# The two sides (each run in a fresh subprocess)
# ---------------------------------------------------------------------------------------------------------------
def run_ours(data: Path, *, full: bool = True) -> dict[str, Any]:
    """refresh_portrait end to end; stage times from its ``say`` messages and from the engine's queries.

    ``full``: refit the models (BG/NBD, Gamma-Gamma, propensity); else reuse those a previous full run fitted."""
    from omnicrm.portrait.refresh import refresh_portrait
    from omnicrm.store.derived import DerivedStore
    from omnicrm.store.engine import Engine
    from omnicrm.store.facts import FactsStore
    from omnicrm.store.state import StateStore

    class TimedEngine(Engine):
        """The DuckDB engine, noting how long each materialisation and each result took."""

        calls: list[tuple[float, str, float]]

        def materialise(self, expr: Any, name: str) -> Any:
            begun = time.perf_counter()
            out = super().materialise(expr, name)
            self.calls.append((begun, f"materialise {name}", time.perf_counter() - begun))
            return out

        def to_arrow(self, expr: Any) -> pa.Table:
            begun = time.perf_counter()
            out = super().to_arrow(expr)
            self.calls.append((begun, f"to_arrow ({out.num_rows:,} rows)", time.perf_counter() - begun))
            return out

    state = StateStore(f"sqlite:///{data / 'state.db'}", migrate=False)
    engine = TimedEngine(FactsStore(data / "facts"))
    engine.calls = []
    derived = DerivedStore(data / "derived")
    rss_start = _rss_mb()
    marks: list[tuple[float, str]] = []
    started = time.perf_counter()
    marks.append((started, "inputs"))
    result = refresh_portrait(
        state, engine, derived, as_of=AS_OF, full=full, say=lambda msg: marks.append((time.perf_counter(), msg))
    )
    ended = time.perf_counter()
    marks.append((ended, "end"))
    stages = []
    for (t0, msg), (t1, _) in itertools.pairwise(marks):
        calls = [(name, round(sec, 3)) for at, name, sec in engine.calls if t0 <= at < t1]
        stages.append({"stage": msg.rstrip("…"), "seconds": round(t1 - t0, 3), "queries": calls})
    state.dispose()
    return {
        "seconds": ended - started,
        "rss_mb": _rss_mb(),
        "rss_start_mb": rss_start,
        "stages": stages,
        "snapshot": str(result.snapshot),
        "customers": result.customers,
        "tags": result.tags,
        "lifecycle_days": result.stats.get("lifecycle_days"),
        "value": {k: v for k, v in result.stats.get("value", {}).items() if k != "params"},
        "propensity": {k: v for k, v in result.stats.get("propensity", {}).items() if k != "cohorts"},
    }


def baseline_sql(data: Path, out: Path) -> list[str]:
    """Hand-written DuckDB SQL for the RFM, lifecycle and preference tags, with the portrait's semantics."""
    lines_glob = data / "facts" / "order_line" / "date=*" / "*.parquet"
    identity = data / "derived" / "identity" / "snapshots"
    current = (data / "derived" / "identity" / "CURRENT").read_text(encoding="utf-8").strip()
    records = identity / current / "records.parquet"
    as_of = AS_OF.isoformat()
    today = (AS_OF + dt.timedelta(hours=8)).date().isoformat()  # the calendar day in China time

    def top(column: str, k: int, where: str = "true") -> str:
        """The k values of ``column`` each customer kept most of (quantity, then spend, then name)."""
        return f"""
            SELECT customer_id, {", ".join(f"max({column}) FILTER (WHERE rn = {i}) AS {column}_{i}" for i in range(1, k + 1))}
            FROM (
                SELECT customer_id, {column},
                       row_number() OVER (PARTITION BY customer_id
                                          ORDER BY sum(qty) DESC, sum(paid_amount) DESC, {column}) AS rn
                FROM kept WHERE {column} IS NOT NULL AND {column} <> '' AND {where}
                GROUP BY customer_id, {column}
                QUALIFY rn <= {k}
            ) GROUP BY customer_id"""

    shoe = r"regexp_matches(size, '^[0-9]{2}(\.5)?$')"
    return [
        "SET TimeZone = 'UTC'",
        # latest version of each order line, as of the moment, with its customer
        f"""CREATE TEMP TABLE lines AS
            SELECT r.customer_id, l.created_at, l.category, l.brand, l.size, l.colour, l.quantity, l.paid_amount,
                   -- a refund made after the as-of moment had not happened yet
                   CASE WHEN l.refunded_at > TIMESTAMPTZ '{as_of}' THEN 0 ELSE l.refunded_amount END AS refunded_amount,
                   l.source, l.order_id
            FROM (
                SELECT * FROM read_parquet('{lines_glob}')
                WHERE created_at <= TIMESTAMPTZ '{as_of}'
                QUALIFY row_number() OVER (PARTITION BY source, order_id, line_no
                                           ORDER BY ingested_at DESC, ingest_id DESC, source_line DESC) = 1
            ) l
            JOIN read_parquet('{records}') r ON r.record_key = 'o:' || l.source || ':' || l.order_id""",
        # purchases: orders whose net (paid - refunded) is positive; their China-time calendar day
        """CREATE TEMP TABLE purchases AS
            SELECT customer_id, created_at, net, (created_at + INTERVAL 8 HOUR)::DATE AS day
            FROM (
                SELECT customer_id, min(created_at) AS created_at,
                       sum(coalesce(paid_amount, 0)) - sum(coalesce(refunded_amount, 0)) AS net
                FROM lines GROUP BY customer_id, source, order_id
            ) WHERE net > 0""",
        # lifecycle thresholds: 75/90/98 % quantiles of the gaps between a customer's purchase days
        """CREATE TEMP TABLE thresholds AS
            WITH days AS (SELECT DISTINCT customer_id, day FROM purchases),
            gaps AS (SELECT day - lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap FROM days),
            hist AS (SELECT gap, count(*) AS n FROM gaps WHERE gap IS NOT NULL GROUP BY gap),
            cum AS (SELECT gap, sum(n) OVER (ORDER BY gap) / sum(n) OVER () AS share, sum(n) OVER () AS total FROM hist),
            q AS (
                SELECT coalesce(max(total), 0) AS total, min(gap) FILTER (WHERE share >= 0.75) AS q1,
                       min(gap) FILTER (WHERE share >= 0.90) AS q2, min(gap) FILTER (WHERE share >= 0.98) AS q3
                FROM cum
            ),
            a AS (SELECT *, CASE WHEN total < 30 THEN 90 ELSE greatest(q1, 7) END AS active FROM q),
            b AS (SELECT *, CASE WHEN total < 30 THEN 180 ELSE greatest(q2, active + 1) END AS cooling FROM a)
            SELECT active, cooling, CASE WHEN total < 30 THEN 365 ELSE greatest(q3, cooling + 1) END AS dormant FROM b""",
        f"""CREATE TEMP TABLE rfm AS
            SELECT customer_id, count(*) AS purchases, sum(net) AS spend,
                   DATE '{today}' - max(day) AS recency_days, DATE '{today}' - min(day) AS tenure_days,
                   count(DISTINCT day) AS purchase_days,
                   max(day) - min(day) AS span_days,
                   coalesce(sum(net) FILTER (WHERE DATE '{today}' - day < 365), 0) AS spend_365d
            FROM purchases GROUP BY customer_id""",
        # preferences: what each customer kept (paid more than refunded), by line
        """CREATE TEMP TABLE kept AS
            SELECT customer_id, category, brand, size, colour, coalesce(quantity, 1) AS qty, paid_amount
            FROM lines WHERE paid_amount > coalesce(refunded_amount, 0)""",
        f"""CREATE TEMP TABLE prefs AS
            SELECT p.customer_id, p.avg_unit_price, c.category_1, c.category_2, c.category_3, b.brand_1,
                   s.size_1, h.size_1 AS shoe_size_1, k.colour_1
            FROM (
                SELECT customer_id,
                       CASE WHEN sum(qty) > 0 THEN sum(paid_amount)::DOUBLE / sum(qty)::DOUBLE END AS avg_unit_price
                FROM kept GROUP BY customer_id
            ) p
            LEFT JOIN ({top("category", 3)}) c USING (customer_id)
            LEFT JOIN ({top("brand", 1)}) b USING (customer_id)
            LEFT JOIN ({top("size", 1, f"NOT {shoe}")}) s USING (customer_id)
            LEFT JOIN ({top("size", 1, shoe)}) h USING (customer_id)
            LEFT JOIN ({top("colour", 1)}) k USING (customer_id)""",
        f"""CREATE TEMP TABLE scored AS
            SELECT c.customer_id, r.* EXCLUDE (customer_id), p.* EXCLUDE (customer_id),
                   coalesce(r.purchases, 0) > 0 AS buyer,
                   percent_rank() OVER (PARTITION BY coalesce(r.purchases, 0) > 0 ORDER BY r.recency_days DESC) AS r_rank,
                   percent_rank() OVER (PARTITION BY coalesce(r.purchases, 0) > 0 ORDER BY coalesce(r.purchases, 0)) AS f_rank,
                   percent_rank() OVER (PARTITION BY coalesce(r.purchases, 0) > 0 ORDER BY coalesce(r.spend, 0)) AS m_rank,
                   percent_rank() OVER (PARTITION BY p.avg_unit_price IS NOT NULL ORDER BY p.avg_unit_price) AS price_rank
            FROM (SELECT DISTINCT customer_id FROM read_parquet('{records}')) c
            LEFT JOIN rfm r USING (customer_id)
            LEFT JOIN prefs p USING (customer_id)""",
        """CREATE TEMP TABLE tags AS
            WITH s AS (
                SELECT *, CASE WHEN buyer THEN least(floor(r_rank * 5) + 1, 5) ELSE 0 END::DOUBLE AS r_score,
                          CASE WHEN buyer THEN least(floor(f_rank * 5) + 1, 5) ELSE 0 END::DOUBLE AS f_score,
                          CASE WHEN buyer THEN least(floor(m_rank * 5) + 1, 5) ELSE 0 END::DOUBLE AS m_score
                FROM scored
            ), f AS (SELECT *, round((f_score + m_score) / 2) AS fm FROM s)
            SELECT customer_id,
                   recency_days::DOUBLE AS recency_days,
                   coalesce(purchases, 0)::DOUBLE AS frequency,
                   coalesce(spend, 0)::DOUBLE AS monetary,
                   r_score, f_score, m_score,
                   CASE WHEN NOT buyer THEN 'no_purchase'
                        WHEN r_score >= 4 AND fm >= 4 THEN 'champions'
                        WHEN r_score >= 4 AND f_score <= 1 THEN 'new_customers'
                        WHEN r_score >= 3 AND fm >= 3 THEN 'loyal'
                        WHEN r_score >= 3 AND fm >= 2 THEN 'potential_loyalist'
                        WHEN r_score >= 3 THEN 'promising'
                        WHEN r_score = 2 AND fm >= 3 THEN 'need_attention'
                        WHEN r_score = 2 THEN 'about_to_sleep'
                        WHEN r_score <= 1 AND fm >= 4 THEN 'cannot_lose'
                        WHEN fm >= 3 THEN 'at_risk'
                        WHEN fm >= 2 THEN 'hibernating'
                        ELSE 'lost' END AS rfm_segment,
                   CASE WHEN buyer THEN spend::DOUBLE / purchases::DOUBLE END AS avg_order_value,
                   coalesce(spend_365d, 0)::DOUBLE AS spend_365d,
                   CASE WHEN NOT buyer THEN 'prospect'
                        WHEN tenure_days <= t.active AND purchase_days <= 1 THEN 'new'
                        WHEN recency_days <= t.active THEN 'active'
                        WHEN recency_days <= t.cooling THEN 'cooling'
                        WHEN recency_days <= t.dormant THEN 'dormant'
                        ELSE 'churned' END AS lifecycle_stage,
                   tenure_days::DOUBLE AS tenure_days,
                   CASE WHEN purchase_days >= 2 THEN span_days::DOUBLE / (purchase_days - 1) END AS purchase_interval_days,
                   coalesce(purchase_days, 0) >= 2 AS repeat_buyer,
                   coalesce(category_1, 'unknown') AS preferred_category,
                   list_filter([category_1, category_2, category_3], x -> x IS NOT NULL) AS top_categories,
                   coalesce(brand_1, 'unknown') AS preferred_brand,
                   coalesce(size_1, 'unknown') AS preferred_size,
                   coalesce(shoe_size_1, 'unknown') AS preferred_shoe_size,
                   coalesce(colour_1, 'unknown') AS preferred_colour,
                   CASE WHEN avg_unit_price IS NULL THEN 'unknown' WHEN price_rank < 1 / 3 THEN 'low'
                        WHEN price_rank < 2 / 3 THEN 'mid' ELSE 'high' END AS price_band,
                   avg_unit_price
            FROM f, thresholds t""",
        f"COPY (SELECT * FROM tags ORDER BY customer_id) TO '{out}' (FORMAT parquet, COMPRESSION zstd)",
    ]


def run_baseline(data: Path, out: Path) -> dict[str, Any]:
    rss_start = _rss_mb()
    statements = baseline_sql(data, out)
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET lambda_syntax = 'ENABLE_SINGLE_ARROW'")
    steps = []
    for sql in statements:
        begun = time.perf_counter()
        con.execute(sql)
        steps.append((sql.split("\n")[0][:60], round(time.perf_counter() - begun, 3)))
    thresholds = con.execute("SELECT * FROM thresholds").fetchone()
    con.close()
    ended = time.perf_counter()
    return {
        "seconds": ended - started,
        "rss_mb": _rss_mb(),
        "rss_start_mb": rss_start,
        "steps": steps,
        "lifecycle_days": dict(zip(("active", "cooling", "dormant"), thresholds or (), strict=False)),
        "output": str(out),
    }


def _rss_mb() -> float:
    """Peak RSS of this process so far, in MB. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
    through fork and exec, so a child would report the parent's peak if that were higher."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; elsewhere an upper bound


def _side(side: str, data: Path, result: Path) -> dict[str, Any]:
    """Run one side in a fresh interpreter (its own peak RSS, nothing cached from the other side)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--data", str(data), "--result", str(result)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return dict(json.loads(result.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------------------------
# Equality of the two sides' values
# ---------------------------------------------------------------------------------------------------------------
def compare(ours_tags: Path, baseline_tags: Path) -> dict[str, Any]:
    """Mismatches per tag over every customer (exact; floats also within 1e-9 relative), and a few examples."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW o AS SELECT customer_id, {', '.join(COMPARED)} FROM read_parquet('{ours_tags}')")
    con.execute(f"CREATE VIEW b AS SELECT customer_id, {', '.join(COMPARED)} FROM read_parquet('{baseline_tags}')")
    only = con.execute(
        """SELECT count(*) FILTER (WHERE b.customer_id IS NULL), count(*) FILTER (WHERE o.customer_id IS NULL), count(*)
           FROM o FULL JOIN b USING (customer_id)"""
    ).fetchone()
    assert only is not None
    exact = ", ".join(f"count(*) FILTER (WHERE o.{t} IS DISTINCT FROM b.{t}) AS {t}" for t in COMPARED)
    close = ", ".join(
        f"count(*) FILTER (WHERE NOT (o.{t} IS NOT DISTINCT FROM b.{t} OR abs(o.{t} - b.{t}) <= 1e-9 * greatest(1, abs(b.{t})))) AS {t}"
        for t in FLOAT_TAGS
    )
    counts = con.execute(f"SELECT {exact} FROM o JOIN b USING (customer_id)").fetchone()
    near = con.execute(f"SELECT {close} FROM o JOIN b USING (customer_id)").fetchone()
    assert counts is not None and near is not None
    mismatches = dict(zip(COMPARED, counts, strict=True))
    examples = {}
    for tag, n in mismatches.items():
        if n:
            examples[tag] = con.execute(
                f"SELECT customer_id, o.{tag} AS ours, b.{tag} AS baseline FROM o JOIN b USING (customer_id) "
                f"WHERE o.{tag} IS DISTINCT FROM b.{tag} ORDER BY customer_id LIMIT 3"
            ).fetchall()
    return {
        "customers_compared": int(only[2]) - int(only[0]) - int(only[1]),
        "only_ours": int(only[0]),
        "only_baseline": int(only[1]),
        "mismatches": mismatches,
        "float_mismatches_beyond_1e-9": dict(zip(FLOAT_TAGS, near, strict=True)),
        "examples": {k: [tuple(str(x) for x in row) for row in v] for k, v in examples.items()},
    }


# ---------------------------------------------------------------------------------------------------------------
# The race
# ---------------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options; those the caller's parser already has (e.g. ``--customers``) are left as they are."""
    for flag, spec in OPTIONS.items():
        try:
            parser.add_argument(flag, **spec)
        except argparse.ArgumentError:  # already defined by the caller: use theirs
            continue


def _option(args: argparse.Namespace, flag: str) -> Any:
    return getattr(args, flag.lstrip("-").replace("-", "_"), None) or OPTIONS[flag]["default"]


def bench_tags(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Generate (or reuse) the data, race ours against the baseline, compare the values; rows for a report."""
    customers, lines = int(_option(args, "--customers")), int(_option(args, "--orders"))
    rounds, seed = max(1, int(_option(args, "--rounds"))), int(_option(args, "--seed"))
    workdir = Path(_option(args, "--workdir"))
    workdir.mkdir(parents=True, exist_ok=True)
    data, info, gen_seconds = ensure_data(workdir, customers, lines, seed)
    gen = f"generated in {gen_seconds:.1f} s" if gen_seconds is not None else "cached"
    print(
        f"data: {info['customers']:,} customers, {info['orders']:,} orders, {info['order_lines']:,} order lines "
        f"(+{info['reexported_lines']:,} re-exported), {info['date_files']} date partitions — {gen} ({data})",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    results = data / "results"
    results.mkdir(exist_ok=True)
    for i in range(rounds):
        # rotate the order each round; the daily refresh always follows a full one (it reuses its models)
        for side in SIDES[i % len(SIDES) :] + SIDES[: i % len(SIDES)]:
            run = _side(side, data, results / f"{side}.json")
            runs[side].append(run)
            print(
                f"  round {i + 1}/{rounds} {side:8}: {run['seconds']:8.2f} s, peak RSS {run['rss_mb']:,.0f} MB",
                flush=True,
            )
    base = runs["baseline"]
    best = {side: min(r["seconds"] for r in rs) for side, rs in runs.items()}
    check = compare(Path(runs["ours"][-1]["snapshot"]) / "tags.parquet", Path(base[-1]["output"]))
    daily = compare(Path(runs["daily"][-1]["snapshot"]) / "tags.parquet", Path(base[-1]["output"]))
    print_report(runs, check)
    rows = []
    for side, title, check_ in (
        ("ours", "full refresh (models refitted)", check),
        ("daily", "daily refresh (models reused)", daily),
    ):
        wrong = {k: v for k, v in check_["mismatches"].items() if v}
        same_thresholds = runs[side][-1]["lifecycle_days"] == base[-1]["lifecycle_days"]
        equal = not wrong and not check_["only_ours"] and not check_["only_baseline"] and same_thresholds
        ratio = best[side] / best["baseline"]
        median = statistics.median(r["seconds"] for r in runs[side]) / statistics.median(r["seconds"] for r in base)
        notes = (
            f"best of {rounds}, median ratio {median:.2f}; peak RSS {max(r['rss_mb'] for r in runs[side]):,.0f} MB vs "
            f"{max(r['rss_mb'] for r in base):,.0f} MB; {len(COMPARED)} tags x {check_['customers_compared']:,} customers: "
            f"{'all equal' if equal else f'MISMATCHES {wrong}'}"
            f"{'' if same_thresholds else '; lifecycle thresholds differ'}; data {gen}"
        )
        rows.append(
            {
                "name": f"portrait tags, {title}: {customers:,} customers, {lines:,} order lines",
                "ours_s": round(best[side], 2),
                "baseline_s": round(best["baseline"], 2),
                "ratio": round(ratio, 2),
                "target": f"<= {TARGET}",
                "passed": ratio <= TARGET and equal,
                "notes": notes,
            }
        )
    return rows


def _print_stages(run: dict[str, Any], queries: int = 5) -> None:
    for stage in run["stages"]:
        print(f"  {stage['seconds']:8.2f} s  {stage['stage']}")
        calls = sorted(stage["queries"], key=lambda q: -q[1])
        for name, sec in calls[:queries]:
            print(f"  {'':8} {sec:8.2f} s  {name}")
        if len(calls) > queries:
            print(f"  {'':8} {sum(q[1] for q in calls[queries:]):8.2f} s  ({len(calls) - queries} more queries)")
    print(
        f"  {run['seconds']:8.2f} s  total; peak RSS {run['rss_mb']:,.0f} MB (after imports {run['rss_start_mb']:,.0f} MB)"
    )


def print_report(runs: dict[str, list[dict[str, Any]]], check: dict[str, Any]) -> None:
    best = {side: min(rs, key=lambda r: r["seconds"]) for side, rs in runs.items()}
    print("\nours, full refresh (best round), by stage of refresh_portrait (the engine's longest queries under each):")
    _print_stages(best["ours"])
    print(f"  value model: {best['ours']['value']}")
    print(f"  propensity: {best['ours']['propensity']}")
    print("\nours, daily refresh (best round; models reused):")
    _print_stages(best["daily"])
    print("\nbaseline (best round), by statement:")
    for name, sec in best["baseline"]["steps"]:
        print(f"  {sec:8.2f} s  {' '.join(name.split())}")
    b = best["baseline"]
    print(f"  {b['seconds']:8.2f} s  total; peak RSS {b['rss_mb']:,.0f} MB (after imports {b['rss_start_mb']:,.0f} MB)")
    print()
    for side, rs in runs.items():
        print(f"rounds, {side}: {[round(r['seconds'], 2) for r in rs]}")
    print(
        f"\nequality, full refresh vs baseline, over {check['customers_compared']:,} customers "
        f"(only ours {check['only_ours']}, only baseline {check['only_baseline']}):"
    )
    for tag, n in check["mismatches"].items():
        extra = f" (beyond 1e-9 relative: {check['float_mismatches_beyond_1e-9'][tag]})" if tag in FLOAT_TAGS else ""
        print(f"  {tag:24} {'equal' if n == 0 else f'{n:,} differ'}{extra}")
    for tag, rows in check["examples"].items():
        print(f"  e.g. {tag}: {rows}")
    print(f"  lifecycle thresholds: ours {runs['ours'][-1]['lifecycle_days']}, baseline {b['lifecycle_days']}\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        if args.side == "baseline":
            out = run_baseline(args.data, args.data / "baseline_tags.parquet")
        else:
            out = run_ours(args.data, full=args.side == "ours")
        args.result.write_text(json.dumps(out, default=str), encoding="utf-8")
        return
    for row in bench_tags(args):
        print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
