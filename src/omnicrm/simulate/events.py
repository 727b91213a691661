"""Behavioural events on the merchant's own web shop and mini-program: sessions (converting ones
for own-shop orders, browse-only ones far more often) expanded into identify / page|screen / search /
product viewed / product added / order completed events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicrm.simulate.catalogue import Catalogue, sample_lines
from omnicrm.simulate.orders import Orders
from omnicrm.simulate.people import (
    DRIFTING,
    MP,
    NEVER,
    PRIVATE_DOMAIN,
    PROMO,
    REFERRAL,
    SOCIAL_ADS,
    WEB,
    Population,
)
from omnicrm.simulate.texts import GENERIC_QUERIES, QUERIES
from omnicrm.simulate.timeline import Timeline
from omnicrm.simulate.vec import Rng, first_in_group

IDENTIFY, PAGE, SEARCH, VIEW, ADD, ORDER = range(6)
# identify variants
ID_WECHAT, ID_MEMBER, ID_GUEST = range(3)
_BROWSE_RATE = np.array([25.0, 6.0, 4.0, 28.0, 20.0, 8.0])  # browse-only sessions per average year


@dataclass
class Sessions:
    """One row per session, sorted by (person, start)."""

    person: np.ndarray
    start_s: np.ndarray
    device: np.ndarray  # 0 = main device, 1 = second web device
    order: np.ndarray  # own-shop order index, -1 if none
    converting: np.ndarray
    utm: np.ndarray
    referrer: np.ndarray


@dataclass
class Events:
    """One row per event, sorted by timestamp."""

    kind: np.ndarray
    ts_s: np.ndarray
    ts_ms: np.ndarray
    session: np.ndarray
    person: np.ndarray
    style: np.ndarray
    query: np.ndarray  # flat index into all_queries()
    page: np.ndarray
    variant: np.ndarray  # identify variant
    logged_in: np.ndarray
    sessions: Sessions

    def __len__(self) -> int:
        return len(self.kind)


def all_queries() -> list[str]:
    """Search queries flattened: per category blocks of 5, then the generic ones."""
    return [q for qs in QUERIES for q in qs] + list(GENERIC_QUERIES)


def build_sessions(rng: Rng, tl: Timeline, pop: Population, o: Orders, channel: int) -> Sessions:
    """Converting sessions for own-shop orders plus Poisson browse-only sessions."""
    own = np.flatnonzero(o.channel == channel)
    users = pop.uses(channel)
    lo = np.where(users, np.minimum(pop.start_day[:, channel], tl.n_days), tl.n_days)
    hi = np.full(pop.n, tl.n_days)
    promo = pop.btype == PROMO
    mass = np.where(promo, tl.mass(tl.cw_promo, lo, hi), tl.mass(tl.cw_online, lo, hi))
    count = rng.poisson(np.where(users, _BROWSE_RATE[pop.btype] * pop.activity * mass, 0.0))
    person = np.repeat(np.arange(pop.n), count)
    day = np.empty(len(person), dtype=np.int64)
    is_p = promo[person]
    day[is_p] = tl.sample(rng, tl.cw_promo, lo[person][is_p], hi[person][is_p])
    day[~is_p] = tl.sample(rng, tl.cw_online, lo[person][~is_p], hi[person][~is_p])
    keep = (pop.btype[person] != DRIFTING) | (rng.random(len(person)) < np.exp(-(day - pop.acq_day[person]) / 150))
    person, day = person[keep], day[keep]
    browse_start = tl.seconds(rng, day)

    persons = np.concatenate([o.person[own], person])
    start = np.concatenate([o.created_s[own] - rng.integers(60, 900, len(own)), browse_start])
    order = np.concatenate([own, np.full(len(person), -1)])
    converting = np.concatenate([o.paid_s[own] >= 0, np.zeros(len(person), dtype=bool)])
    idx = np.lexsort((start, persons))
    persons, start, order, converting = persons[idx], start[idx], order[idx], converting[idx]
    n = len(persons)
    if channel == WEB:
        second = pop.web_device2.is_valid().to_numpy(zero_copy_only=False)[persons]
        device = (second & (rng.random(n) < 0.4)).astype(np.int8)
    else:
        device = np.zeros(n, dtype=np.int8)
    first = first_in_group(persons)
    ads = np.isin(pop.acq_channel[persons], [SOCIAL_ADS, PRIVATE_DOMAIN, REFERRAL])
    utm = ads & (first | (rng.random(n) < 0.15))
    referrer = np.where(utm, 1, np.where(rng.random(n) < 0.3, 2, 0))
    return Sessions(persons, start, device, order, converting, utm, referrer)


def _identify(tl: Timeline, pop: Population, s: Sessions, channel: int) -> tuple[np.ndarray, np.ndarray]:
    """Sessions that start with an identify call, and which kind of identify."""
    n = len(s.person)
    join_s = np.where(pop.member, (tl.day0 + np.minimum(pop.member_day, tl.n_days)) * 86400, NEVER)[s.person]
    after = np.flatnonzero(s.start_s >= join_s)
    _, first_after = np.unique(s.person[after], return_index=True)
    variant = np.full(n, -1, dtype=np.int64)
    if channel == MP:
        variant[first_in_group(s.person)] = ID_WECHAT
        variant[after[first_after]] = ID_MEMBER
    else:
        buyers = np.flatnonzero(s.converting & ~pop.member[s.person])
        _, first_buy = np.unique(s.person[buyers], return_index=True)
        variant[buyers[first_buy]] = ID_GUEST
        variant[after[first_after]] = ID_MEMBER
    return variant >= 0, variant


def build_events(rng: Rng, tl: Timeline, pop: Population, o: Orders, cat: Catalogue, channel: int) -> Events:
    """Expand sessions into Segment events with realistic counts and in-session timing."""
    s = build_sessions(rng, tl, pop, o, channel)
    n = len(s.person)
    has_id, variant = _identify(tl, pop, s, channel)
    cart = (s.order >= 0) | (rng.random(n) < 0.12)
    counts = np.stack(
        [
            has_id.astype(np.int64),
            1 + rng.poisson(1.2, n),
            (rng.random(n) < 0.35) * (1 + (rng.random(n) < 0.3)),
            1 + rng.poisson(2.0, n),
            cart * (1 + (rng.random(n) < 0.3)),
            s.converting.astype(np.int64),
        ],
        axis=1,
    )
    per_session = counts.sum(axis=1)
    duration = 60 + rng.exponential(240, n) + 25 * per_session
    kind = np.concatenate([np.full(int(counts[:, k].sum()), k) for k in range(6)])
    session = np.concatenate([np.repeat(np.arange(n), counts[:, k]) for k in range(6)])
    m = len(kind)
    frac = np.where(kind == IDENTIFY, 0.0, np.where(kind == ORDER, 1.0, rng.random(m)))
    offset_ms = (frac * duration[session] * 1000).astype(np.int64) + np.where(kind == ORDER, 5000, 0)
    ts = s.start_s[session] * 1000 + offset_ms + rng.integers(0, 1000, m)
    order_by = np.lexsort((kind, session, ts))
    kind, session, ts = kind[order_by], session[order_by], ts[order_by]
    person = s.person[session]

    style, _, _ = sample_lines(
        rng,
        cat,
        tl.month[np.clip(ts // 86_400_000 - tl.day0, 0, tl.n_days - 1)],
        pop.fav_cat[person],
        pop.male[person],
        pop.apparel_size[person],
        pop.shoe_size[person],
    )
    has_order = s.order[session] >= 0
    first_line = np.searchsorted(o.order, np.maximum(s.order[session], 0))
    focus = o.style[np.minimum(first_line, len(o.style) - 1)] if len(o.style) else style
    style = np.where(has_order & ((kind == ADD) | (first_in_group(session) & (kind == VIEW))), focus, style)
    own_cat = rng.random(m) < 0.7
    query = np.where(
        own_cat,
        pop.fav_cat[person] * 5 + rng.integers(0, 5, m),
        len(QUERIES) * 5 + rng.integers(0, len(GENERIC_QUERIES), m),
    )
    join_ms = np.where(pop.member, (tl.day0 + np.minimum(pop.member_day, tl.n_days)) * 86_400_000, NEVER)
    logged_in = ts >= join_ms[person]
    return Events(
        kind=kind,
        ts_s=ts // 1000,
        ts_ms=ts % 1000,
        session=session,
        person=person,
        style=style,
        query=query,
        page=rng.integers(0, 6, m),
        variant=variant[session],
        logged_in=logged_in,
        sessions=s,
    )
