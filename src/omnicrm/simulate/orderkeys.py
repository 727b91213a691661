"""Order numbers in each channel's own format, and the store-side facts of each receipt (store, guide,
whether the member card was shown) shared by the POS export, clerk notes and the ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicrm.simulate.orders import Orders
from omnicrm.simulate.people import JD, MP, STORE, TMALL, WEB, Population
from omnicrm.simulate.shapes import GUIDES_PER_STORE, STORES
from omnicrm.simulate.timeline import Timeline
from omnicrm.simulate.vec import (
    Rng,
    StrArray,
    cat,
    fmt_fixed,
    fmt_int,
    pick,
    rank_in_group,
    scatter,
    yyyymmdd,
)


@dataclass
class OrderKeys:
    """Per order: its number as the channel writes it, and store facts (-1 / False off-store)."""

    order_no: StrArray
    store: np.ndarray
    guide: np.ndarray
    card_shown: np.ndarray
    member_at_sale: np.ndarray


def _sequential(rng: Rng, n: int, base: int, step: int) -> np.ndarray:
    """Unique, time-ordered numeric ids with random low digits."""
    return base + np.arange(n, dtype=np.int64) * step + rng.integers(0, step, n)


def assign_keys(rng: Rng, tl: Timeline, pop: Population, o: Orders) -> OrderKeys:
    """Tmall 19-digit numbers, JD 12-digit numbers, own-shop `SO…`, store receipts `S002-20260305-0012`."""
    n = o.n_orders
    parts: list[tuple[np.ndarray, StrArray]] = []
    tm = np.flatnonzero(o.channel == TMALL)
    parts.append((tm, fmt_int(_sequential(rng, len(tm), 2_600_000_000_000_000_000, 10_000_000_000))))
    jd = np.flatnonzero(o.channel == JD)
    parts.append((jd, fmt_int(_sequential(rng, len(jd), 250_000_000_000, 1_000))))
    own = np.flatnonzero((o.channel == MP) | (o.channel == WEB))
    parts.append((own, fmt_fixed(_sequential(rng, len(own), 202_500_000_000, 10), 12, prefix="SO")))

    st = np.flatnonzero(o.channel == STORE)
    person, created = o.person[st], o.created_s[st]
    home = pop.home_store[person]
    k = len(st)
    store = np.where((home >= 0) & (rng.random(k) < 0.9), home, rng.integers(0, len(STORES), k))
    own_guide = (store == home) & (rng.random(k) < 0.7)
    guide = np.where(own_guide, pop.guide[person], store * GUIDES_PER_STORE + rng.integers(0, GUIDES_PER_STORE, k))
    day = yyyymmdd(created)
    order_by = np.lexsort((created, day, store))
    seq = np.empty(k, dtype=np.int64)
    seq[order_by] = rank_in_group(store[order_by] * 100_000_000 + day[order_by]) + 1
    receipt = cat(pick([s[0] for s in STORES], store), "-", fmt_fixed(day, 8), "-", fmt_fixed(seq, 4))
    parts.append((st, receipt))

    member = pop.member[person] & (created >= (tl.day0 + pop.member_day[person]) * 86400)
    full = np.full(n, -1, dtype=np.int64)
    store_full, guide_full = full.copy(), full.copy()
    store_full[st], guide_full[st] = store, guide
    member_full, card_full = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    member_full[st] = member
    card_full[st] = member & (rng.random(k) < 0.92)
    return OrderKeys(scatter(n, parts), store_full, guide_full, card_full, member_full)
