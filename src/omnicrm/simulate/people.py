"""The merchant's (latent) customers: behaviour type, true acquisition channel, the channels each person
uses and when they started, membership, home, marketing responsiveness and all their identifiers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from omnicrm.simulate import identities as ids
from omnicrm.simulate import reference as ref
from omnicrm.simulate.catalogue import CATEGORIES, SHOE_SIZE0
from omnicrm.simulate.shapes import GUIDES_PER_STORE, STORES
from omnicrm.simulate.timeline import Timeline
from omnicrm.simulate.vec import (
    Rng,
    StrArray,
    fmt_int,
    make_unique,
    pick,
    row_choice,
    uuid4s,
    weighted,
    where,
)

TYPES = ("loyal", "promo_hunter", "one_off", "drifting", "new_recent", "store_regular")
LOYAL, PROMO, ONE_OFF, DRIFTING, NEW_RECENT, STORE_REG = range(6)
TYPE_SHARES = (0.12, 0.26, 0.24, 0.13, 0.10, 0.15)
ACQ_CHANNELS = (
    "tmall_ads",
    "jd_ads",
    "social_ads",
    "organic_marketplace",
    "private_domain",
    "store_walkin",
    "referral",
)
TMALL_ADS, JD_ADS, SOCIAL_ADS, ORGANIC, PRIVATE_DOMAIN, STORE_WALKIN, REFERRAL = range(7)
CHANNELS = ("tmall", "jd", "mp", "web", "store")
TMALL, JD, MP, WEB, STORE = range(5)
RESPONSE_CHANNELS = ("email", "wechat", "sms", "push", "coupon")

# P(acquisition channel | type), rows follow TYPES, columns ACQ_CHANNELS.
_ACQ_BY_TYPE = np.array([
    [0.20, 0.08, 0.10, 0.25, 0.17, 0.10, 0.10],
    [0.40, 0.22, 0.05, 0.33, 0.00, 0.00, 0.00],
    [0.25, 0.15, 0.15, 0.30, 0.05, 0.05, 0.05],
    [0.22, 0.12, 0.10, 0.30, 0.12, 0.07, 0.07],
    [0.20, 0.10, 0.20, 0.20, 0.15, 0.05, 0.10],
    [0.00, 0.00, 0.00, 0.02, 0.08, 0.80, 0.10],
])  # fmt: skip
# P(primary shopping channel | acquisition channel), columns CHANNELS.
_PRIMARY_BY_ACQ = np.array([
    [1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0], [0.15, 0, 0.5, 0.35, 0], [0.65, 0.35, 0, 0, 0],
    [0, 0, 0.8, 0.2, 0], [0, 0, 0, 0, 1.0], [0, 0, 0.6, 0, 0.4],
])  # fmt: skip
_SECONDARY = np.array([0.15, 0.10, 0.25, 0.10, 0.30])
# mean response probability per type (rows) and channel (RESPONSE_CHANNELS).
_RESPONSE = np.array([
    [0.10, 0.20, 0.06, 0.10, 0.30], [0.03, 0.06, 0.03, 0.04, 0.45], [0.02, 0.04, 0.02, 0.03, 0.10],
    [0.04, 0.08, 0.03, 0.05, 0.15], [0.06, 0.12, 0.04, 0.08, 0.25], [0.05, 0.15, 0.08, 0.04, 0.25],
])  # fmt: skip
NEVER = np.iinfo(np.int64).max // 4


@dataclass
class Population:
    """Column-oriented people; person i is row i of every array."""

    btype: np.ndarray
    acq_channel: np.ndarray
    acq_day: np.ndarray
    male: np.ndarray
    birthday: np.ndarray
    name: StrArray
    city: np.ndarray
    district: StrArray
    street: StrArray
    phone: StrArray
    family_head: np.ndarray
    email: StrArray
    primary: np.ndarray
    start_day: np.ndarray  # n×5 first day per channel, NEVER if unused
    member: np.ndarray
    member_day: np.ndarray
    member_card: StrArray
    joined_store: np.ndarray  # store index, -1 when joined online
    home_store: np.ndarray
    guide: np.ndarray
    tmall_nick: StrArray
    tmall_nick2: StrArray
    jd_account: StrArray
    openid_oa: StrArray
    openid_mp: StrArray
    unionid: StrArray
    follows_oa: np.ndarray
    follow_day: np.ndarray
    web_device: StrArray
    web_device2: StrArray
    mp_device: StrArray
    response: np.ndarray
    fav_cat: np.ndarray
    apparel_size: np.ndarray
    shoe_size: np.ndarray
    activity: np.ndarray

    @property
    def n(self) -> int:
        return len(self.btype)

    def uses(self, channel: int) -> np.ndarray:
        return np.asarray(self.start_day[:, channel] < NEVER)


def _home(rng: Rng, n: int, store_primary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Home city index (store people live in a store city) and nearest store (-1 if none)."""
    city_names = [c[1] for c in ref.CITIES]
    store_city = np.array([city_names.index(s[2]) for s in STORES])
    city = weighted(rng, n, [c[2] for c in ref.CITIES])
    local = store_city[rng.choice(len(STORES), size=n, p=[0.42, 0.33, 0.25])]
    city = np.where(store_primary, local, city)
    lookup = np.full(len(ref.CITIES), -1)
    lookup[store_city] = np.arange(len(STORES))
    return city, lookup[city]


def _districts(rng: Rng, city: np.ndarray) -> StrArray:
    counts = np.array([len(c[3]) for c in ref.CITIES])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    flat = [d for c in ref.CITIES for d in c[3]]
    return pick(flat, offsets[city] + (rng.random(len(city)) * counts[city]).astype(np.int64))


def _days_between(rng: Rng, lo: np.ndarray, hi: int) -> np.ndarray:
    return np.asarray(lo + (rng.random(len(lo)) * np.maximum(hi - lo, 1)).astype(np.int64))


def _channels(
    rng: Rng, tl: Timeline, btype: np.ndarray, acq: np.ndarray, acq_day: np.ndarray, home_store: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Primary channel and first day on each channel (secondary channels start later)."""
    n = len(btype)
    primary = row_choice(rng, _PRIMARY_BY_ACQ[acq])
    near = home_store >= 0
    primary = np.where((primary == STORE) & ~near, MP, primary)
    p2 = np.broadcast_to(_SECONDARY, (n, 5)).copy()
    p2[btype == LOYAL] *= 1.8
    p2[np.isin(btype, [PROMO, ONE_OFF])] *= 0.3
    p2[:, STORE] *= near
    used = rng.random((n, 5)) < p2
    used[np.arange(n), primary] = True
    later = acq_day[:, None] + (rng.random((n, 5)) * (tl.n_days - acq_day)[:, None]).astype(np.int64)
    start = np.where(used, later, NEVER)
    start[np.arange(n), primary] = acq_day
    return primary, start


def _membership(
    rng: Rng, btype: np.ndarray, start: np.ndarray, home_store: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Who joined the member programme, when, and where (store index, or -1 for online)."""
    n = len(btype)
    p_store = np.where(btype == STORE_REG, 0.9, 0.55)
    p_online = np.where(btype == LOYAL, 0.75, 0.45)
    cand = np.full((n, 3), NEVER)
    cand[:, 0] = np.where(rng.random(n) < p_store, start[:, STORE], NEVER)
    cand[:, 1] = np.where(rng.random(n) < p_online, start[:, MP], NEVER)
    cand[:, 2] = np.where(rng.random(n) < p_online * 0.6, start[:, WEB], NEVER)
    via = cand.argmin(axis=1)
    day = cand.min(axis=1)
    member = day < NEVER
    joined_store = np.where(member & (via == 0), home_store, -1)
    return member, np.where(member, day, NEVER), joined_store


def build_population(rng: Rng, n: int, tl: Timeline) -> Population:
    """Draw n people with everything the channel generators need."""
    btype = weighted(rng, n, TYPE_SHARES)
    acq = row_choice(rng, _ACQ_BY_TYPE[btype])
    end = tl.n_days
    recent = max(end - 90, 1)  # new_recent people arrive in the last 90 days, established ones before
    lo = np.where(btype == NEW_RECENT, recent - 1, 0)
    hi = np.where((btype == NEW_RECENT) | (btype == ONE_OFF) | (btype == PROMO), end, recent)
    acq_day = np.where(
        btype == PROMO,
        tl.sample(rng, tl.cw_acquire_promo, np.zeros(n, np.int64), np.full(n, end)),
        tl.sample(rng, tl.cw_acquire, lo, hi),
    ).astype(np.int64)
    male = rng.random(n) < 0.28
    home_city, home_store = _home(rng, n, (acq == STORE_WALKIN) | (btype == STORE_REG))
    primary, start = _channels(rng, tl, btype, acq, acq_day, home_store)
    member, member_day, joined_store = _membership(rng, btype, start, home_store)

    name = ids.names(rng, male)
    district = _districts(rng, home_city)
    street = ids.addresses(rng, n)
    phone_int = ids.phone_numbers(rng, n)
    # family phones: ~1.6% heads each share their phone with 1-2 relatives (~4% of people in all).
    perm = rng.permutation(n)
    n_heads = round(0.016 * n)
    size = rng.choice([1, 2], size=n_heads, p=[0.6, 0.4])
    heads, deps = perm[:n_heads], perm[n_heads : n_heads + int(size.sum())]
    head_of = np.repeat(heads, size)[: len(deps)]
    family_head = np.full(n, -1, dtype=np.int64)
    family_head[deps] = head_of
    phone_int[deps] = phone_int[head_of]
    home_city[deps], home_store[deps] = home_city[head_of], home_store[head_of]
    district = district.take(pa.array(_self_or(family_head)))
    street = street.take(pa.array(_self_or(family_head)))

    age_days = (np.clip(rng.normal(31, 8, n), 18, 62) * 365.25).astype(np.int64)
    birthday = (np.datetime64(tl.end, "D") - age_days).astype("datetime64[D]")
    apparel_size = np.where(
        male,
        rng.choice(5, n, p=[0.05, 0.2, 0.35, 0.28, 0.12]),
        rng.choice(5, n, p=[0.3, 0.38, 0.2, 0.09, 0.03]),
    )
    shoe = np.where(male, rng.integers(4, 10, n), rng.integers(0, 5, n)) + SHOE_SIZE0
    fav_cat = np.where(male, rng.choice([1, 2, 3, 4, 8], n), rng.integers(0, len(CATEGORIES), n))

    k = 8.0
    mean = _RESPONSE[btype]
    response = rng.beta(mean * k, (1 - mean) * k)

    follows_p = np.select(
        [acq == PRIVATE_DOMAIN, btype == STORE_REG, btype == LOYAL, start[:, MP] < NEVER], [0.9, 0.7, 0.55, 0.5], 0.08
    )
    follows_oa = rng.random(n) < follows_p
    follow_day = np.where(acq == PRIVATE_DOMAIN, acq_day, _days_between(rng, acq_day, end))
    store_follow = follows_oa & (start[:, STORE] < NEVER) & (rng.random(n) < 0.7)
    follow_day = np.where(store_follow, np.minimum(start[:, STORE] + rng.integers(0, 30, n), end - 1), follow_day)

    tmall_nick = ids.marketplace_nicks(rng, n, "tb")
    tmall_nick2_all = ids.marketplace_nicks(rng, n, "tb")
    second = (start[:, TMALL] < NEVER) & (rng.random(n) < 0.02)
    return Population(
        btype=btype,
        acq_channel=acq,
        acq_day=acq_day,
        male=male,
        birthday=birthday,
        name=name,
        city=home_city,
        district=district,
        street=street,
        phone=fmt_int(phone_int),
        family_head=family_head,
        email=where(rng.random(n) < 0.35, ids.emails(rng, n), None),
        primary=primary,
        start_day=start,
        member=member,
        member_day=member_day,
        member_card=where(member, ids.member_cards(rng, np.where(member, member_day, NEVER)), None),
        joined_store=joined_store,
        home_store=home_store,
        guide=np.maximum(home_store, 0) * GUIDES_PER_STORE + rng.integers(0, GUIDES_PER_STORE, n),
        tmall_nick=tmall_nick,
        tmall_nick2=_unique_second(rng, tmall_nick, tmall_nick2_all, second),
        jd_account=ids.marketplace_nicks(rng, n, "jd"),
        openid_oa=ids.openids(rng, n),
        openid_mp=ids.openids(rng, n),
        unionid=ids.openids(rng, n),
        follows_oa=follows_oa,
        follow_day=follow_day,
        web_device=uuid4s(rng, n),
        web_device2=where(rng.random(n) < 0.2, uuid4s(rng, n), None),
        mp_device=uuid4s(rng, n),
        response=response,
        fav_cat=fav_cat,
        apparel_size=apparel_size,
        shoe_size=shoe,
        activity=rng.gamma(2.0, 0.5, n),
    )


def _self_or(head: np.ndarray) -> np.ndarray:
    return np.where(head >= 0, head, np.arange(len(head)))


def _unique_second(rng: Rng, first: StrArray, second: StrArray, mask: np.ndarray) -> StrArray:
    """Second Tmall nick for `mask` rows, never equal to anyone's first nick."""
    both = make_unique(rng, pa.concat_arrays([first, second]))
    return where(mask, both.slice(len(first)), None)
