"""Person-record exports: the CRM member list and the WeChat official-account follower list."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnicrm.simulate import identities as ids
from omnicrm.simulate import reference as ref
from omnicrm.simulate.people import LOYAL, NEVER, PRIVATE_DOMAIN, SOCIAL_ADS, STORE, Population
from omnicrm.simulate.shapes import (
    MEMBERS_FILE,
    MEMBERS_HEADER,
    STORES,
    WECHAT_FOLLOWERS_FILE,
    WECHAT_FOLLOWERS_HEADER,
)
from omnicrm.simulate.timeline import Timeline
from omnicrm.simulate.truth import IdentifierTruth
from omnicrm.simulate.vec import EIGHT_HOURS, Rng, cat, fmt_fixed, fmt_int, fmt_time, pick, where, yyyymmdd

_SCENES = (
    "ADD_SCENE_QR_CODE",
    "ADD_SCENE_SEARCH",
    "ADD_SCENE_PROFILE_CARD",
    "ADD_SCENE_OTHERS",
    "ADD_SCENE_WECHAT_ADVERTISEMENT",
    "ADD_SCENE_ACCOUNT_MIGRATION",
)
_STORE_SHORT = ("静安", "西湖", "新街口")


def members_table(rng: Rng, tl: Timeline, pop: Population, truth: IdentifierTruth) -> pa.Table:
    """`members.csv`: one row per member, in card (join) order."""
    person = np.flatnonzero(pop.member)
    person = person[np.argsort(pop.member_day[person], kind="stable")]  # card order
    joined = np.sort(tl.seconds(rng, np.minimum(pop.member_day[person], tl.n_days - 1), store=True))
    n = len(person)
    take = pa.array(person)
    name, _ = ids.typo_names(rng, pop.name.take(take))
    gender = np.where(rng.random(n) < 0.05, 2, pop.male[person].astype(np.int64))
    birthday_given = rng.random(n) < 0.7
    bday_s = pop.birthday[person].astype("datetime64[s]").astype(np.int64)
    phone, note = ids.noisy_phones(rng, pop.phone.take(take), p_format=0.10)
    phone = where(rng.random(n) < 0.95, phone, None)
    email = where(rng.random(n) < 0.7, pop.email.take(take), None)
    store = pop.joined_store[person]
    cols = [
        pop.member_card.take(take),
        name,
        where(gender < 2, pick(("女", "男"), np.minimum(gender, 1)), None),
        where(birthday_given, fmt_time(bday_s, "date"), None),
        phone,
        email,
        pick([c[0] for c in ref.CITIES], pop.city[person]),
        pick([c[1] for c in ref.CITIES], pop.city[person]),
        pop.district.take(take),
        pop.street.take(take),
        where(store >= 0, pick([s[0] for s in STORES], np.maximum(store, 0)), None),
        fmt_time(joined, "tmall"),
    ]
    truth.add(MEMBERS_FILE, "member_card", person, cols[0])
    truth.add(MEMBERS_FILE, "phone", person, phone, note)
    truth.add(MEMBERS_FILE, "email", person, email)
    return pa.table(cols, names=list(MEMBERS_HEADER))


def followers_table(rng: Rng, tl: Timeline, pop: Population, truth: IdentifierTruth) -> pa.Table:
    """`wechat_followers.csv`: the official account's follower export (WeChat user/info shape)."""
    person = np.flatnonzero(pop.follows_oa)
    follow_s = tl.seconds(rng, np.minimum(pop.follow_day[person], tl.n_days - 1))
    order = np.argsort(follow_s, kind="stable")
    person, follow_s = person[order], follow_s[order]
    n = len(person)
    take = pa.array(person)
    subscribed = rng.random(n) < 0.88
    acq = pop.acq_channel[person]
    in_store = (pop.start_day[person, STORE] < NEVER) & (
        np.abs(pop.follow_day[person] - pop.start_day[person, STORE]) < 30
    )
    u = rng.random(n)
    scene = np.select(
        [in_store, acq == SOCIAL_ADS, acq == PRIVATE_DOMAIN],
        [0, 4, np.where(u < 0.4, 0, np.where(u < 0.7, 1, 2))],
        np.where(u < 0.2, 0, np.where(u < 0.6, 1, np.where(u < 0.85, 2, np.where(u < 0.97, 3, 5)))),
    )
    store = np.maximum(pop.home_store[person], 0)
    store_qr = cat("store_", pick([s[0] for s in STORES], store), "_", fmt_fixed(pop.guide[person] + 1, 2, prefix="G"))
    poster = cat("poster_", fmt_int(yyyymmdd(follow_s) // 100))
    qr = where(scene == 0, where(in_store, store_qr, poster), None)
    surname = pc.utf8_slice_codeunits(pop.name.take(take), 0, 1)
    remark = cat(
        surname,
        pick(("女士", "先生"), pop.male[person].astype(np.int64)),
        " ",
        pick(_STORE_SHORT, store),
        "VIP",
    )
    loyal = pop.btype[person] == LOYAL
    tags = where(
        in_store,
        where(loyal, cat("[2,", fmt_int(101 + store), "]"), cat("[", fmt_int(101 + store), "]")),
        where(loyal, "[2]", "[]"),
    )
    unionid = where(rng.random(n) < 0.9, pop.unionid.take(take), None)
    cols = [
        pop.openid_oa.take(take),
        unionid,
        where(subscribed, ids.wechat_nicknames(rng, pop.name.take(take)), None),
        pick(("0", "1"), subscribed.astype(np.int64)),
        where(subscribed, fmt_int(follow_s - EIGHT_HOURS), None),
        where(subscribed, pick(_SCENES, scene), None),
        where(subscribed, qr, None),
        where(subscribed & in_store & (rng.random(n) < 0.3), remark, None),
        where(subscribed, tags, None),
    ]
    truth.add(WECHAT_FOLLOWERS_FILE, "wechat_openid", person, cols[0])
    truth.add(WECHAT_FOLLOWERS_FILE, "wechat_unionid", person, unionid)
    return pa.table(cols, names=list(WECHAT_FOLLOWERS_HEADER))
