"""Ground-truth tables kept apart from the exports: the latent people and who placed each order,
for OneID precision/recall, acquisition-attribution and portrait accuracy tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from omnicrm.simulate import reference as ref
from omnicrm.simulate.orderkeys import OrderKeys
from omnicrm.simulate.orders import ACTIVITY_LABELS, Orders
from omnicrm.simulate.people import ACQ_CHANNELS, CHANNELS, NEVER, RESPONSE_CHANNELS, TYPES, Population
from omnicrm.simulate.shapes import STORES
from omnicrm.simulate.timeline import Timeline
from omnicrm.simulate.vec import EIGHT_HOURS, pick, where

_TS = pa.timestamp("s", tz="Asia/Shanghai")


def _ts(local_s: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Beijing wall-clock seconds as a tz-aware Arrow timestamp (nulls where not valid)."""
    utc = pa.array(np.asarray(local_s, dtype=np.int64) - EIGHT_HOURS, pa.int64())
    arr = utc.cast(_TS)
    if valid is None:
        return arr
    return pa.compute.if_else(pa.array(valid), arr, pa.scalar(None, _TS))


def _first_order(person: np.ndarray) -> np.ndarray:
    """Index of each person's first order (orders are sorted by time)."""
    _, first = np.unique(person, return_index=True)
    return np.asarray(first)


def people_truth(tl: Timeline, pop: Population, o: Orders) -> pa.Table:
    """ground_truth/people.parquet: one row per latent person."""
    first = _first_order(o.person)
    acquired = np.zeros(pop.n, dtype=np.int64)
    acquired[o.person[first]] = o.created_s[first]
    first_channel = np.zeros(pop.n, dtype=np.int64)
    first_channel[o.person[first]] = o.channel[first]
    n_orders = np.bincount(o.person, minlength=pop.n)
    cols: dict[str, pa.Array] = {
        "person_id": pa.array(np.arange(pop.n, dtype=np.int64)),
        "name": pop.name,
        "gender": pick(("女", "男"), pop.male.astype(np.int64)),
        "birthday": pa.array(pop.birthday),
        "behaviour_type": pick(TYPES, pop.btype),
        "acquisition_channel": pick(ACQ_CHANNELS, pop.acq_channel),
        "acquired_at": _ts(acquired),
        "first_order_channel": pick(CHANNELS, first_channel),
        "primary_channel": pick(CHANNELS, pop.primary),
    }
    for i, name in enumerate(RESPONSE_CHANNELS):
        cols[f"response_{name}"] = pa.array(pop.response[:, i])
    cols |= {
        "home_province": pick([c[0] for c in ref.CITIES], pop.city),
        "home_city": pick([c[1] for c in ref.CITIES], pop.city),
        "home_district": pop.district,
        "address": pop.street,
        "home_store": where(pop.home_store >= 0, pick([s[0] for s in STORES], np.maximum(pop.home_store, 0)), None),
        "phone": pop.phone,
        "family_head": pa.array(np.where(pop.family_head >= 0, pop.family_head, 0), mask=pop.family_head < 0),
        "email": pop.email,
        "is_member": pa.array(pop.member),
        "member_card": pop.member_card,
        "member_joined_on": pa.array(
            (tl.day0 + np.where(pop.member, pop.member_day, 0)).astype("datetime64[D]"), mask=~pop.member
        ),
        "tmall_nick": pop.tmall_nick,
        "tmall_nick2": pop.tmall_nick2,
        "jd_account": pop.jd_account,
        "wechat_openid_oa": pop.openid_oa,
        "wechat_openid_mp": pop.openid_mp,
        "wechat_unionid": pop.unionid,
        "follows_oa": pa.array(pop.follows_oa),
        "n_orders": pa.array(n_orders.astype(np.int64)),
        "activity": pa.array(pop.activity),
    }
    for i, name in enumerate(CHANNELS):
        cols[f"uses_{name}"] = pa.array(pop.start_day[:, i] < NEVER)
    return pa.table(cols)


def orders_truth(o: Orders, keys: OrderKeys) -> pa.Table:
    """ground_truth/orders.parquet: who placed each order, where and when, and what it was worth."""
    paid = np.bincount(o.order, weights=o.paid, minlength=o.n_orders).astype(np.int64)
    refund = np.bincount(o.order, weights=o.refund, minlength=o.n_orders).astype(np.int64)
    first = np.zeros(o.n_orders, dtype=bool)
    first[_first_order(o.person)] = True
    return pa.table(
        {
            "order_no": keys.order_no,
            "person_id": pa.array(o.person.astype(np.int64)),
            "channel": pick(CHANNELS, o.channel),
            "created_at": _ts(o.created_s),
            "paid_at": _ts(np.maximum(o.paid_s, 0), o.paid_s >= 0),
            "paid_cents": pa.array(np.where(o.paid_s >= 0, paid, 0)),
            "refund_cents": pa.array(refund),
            "activity": pick(ACTIVITY_LABELS, o.activity),
            "is_first_order": pa.array(first),
            "store_code": where(keys.store >= 0, pick([s[0] for s in STORES], np.maximum(keys.store, 0)), None),
        }
    )
