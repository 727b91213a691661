"""Orders and order lines for every channel, driven by each person's behaviour type: an acquisition
order, then Poisson repeat orders over the channels they use (promo hunters only in promotions,
drifting customers fading out), with Double 11 presale, discounts, refunds and statuses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicrm.simulate.catalogue import DRESS, Catalogue, sample_lines
from omnicrm.simulate.people import DRIFTING, JD, NEVER, PROMO, STORE, TMALL, WEB, Population
from omnicrm.simulate.timeline import D11_DAY, D11_PRESALE, D11_WAVE, D12, NONE, P618, Timeline
from omnicrm.simulate.vec import Rng

# repeat orders per (average) year by type: online, store
_RATE_ONLINE = np.array([5.0, 0.35, 0.0, 7.0, 3.5, 2.5])
_RATE_STORE = np.array([4.0, 0.0, 0.0, 6.0, 3.5, 6.0])
_DRIFT_DAYS = 150.0
# activity code per order: "", 双11定金, 双11尾款, 双11, 双12, 618
ACT_NONE, ACT_DEPOSIT, ACT_BALANCE, ACT_D11, ACT_D12, ACT_618 = range(6)
ACTIVITY_LABELS = ("", "双11定金", "双11尾款", "双11", "双12", "618")
# line status code
ST_DONE, ST_CLOSED, ST_SHIPPED, ST_UNPAID, ST_REFUNDED = range(5)


@dataclass
class Orders:
    """Order-level columns (index o) and line-level columns (index l, `order` maps to o)."""

    person: np.ndarray
    channel: np.ndarray
    created_s: np.ndarray
    paid_s: np.ndarray  # -1 when unpaid
    activity: np.ndarray
    # lines
    order: np.ndarray
    line_no: np.ndarray
    style: np.ndarray
    colour: np.ndarray
    size: np.ndarray
    qty: np.ndarray
    price: np.ndarray
    discount: np.ndarray
    paid: np.ndarray
    refund: np.ndarray
    refund_s: np.ndarray  # -1 when not refunded
    status: np.ndarray

    @property
    def n_orders(self) -> int:
        return len(self.person)


def _repeats(rng: Rng, tl: Timeline, pop: Population, online: bool) -> tuple[np.ndarray, np.ndarray]:
    """(person, day) of repeat orders on online channels or in stores."""
    n, end = pop.n, tl.n_days
    if online:
        first = pop.start_day[:, :STORE].min(axis=1)
        is_primary = pop.primary != STORE
        rate = _RATE_ONLINE[pop.btype] * np.where(is_primary, 1.0, 0.3)
    else:
        first = pop.start_day[:, STORE]
        is_primary = pop.primary == STORE
        rate = _RATE_STORE[pop.btype] * np.where(is_primary, 1.0, 0.3)
    active = first < NEVER
    lo = np.where(active, np.minimum(np.where(is_primary, first + 1, first), end), end)
    hi = np.full(n, end)
    promo = pop.btype == PROMO
    cw = tl.cw_promo if online else tl.cw_store
    base_cw = tl.cw_online if online else tl.cw_store
    mass = np.where(promo, tl.mass(cw, lo, hi), tl.mass(base_cw, lo, hi))
    count = rng.poisson(np.where(active, rate * pop.activity * mass, 0.0))
    person = np.repeat(np.arange(n), count)
    plo, phi = lo[person], hi[person]
    is_promo = promo[person]
    day = np.empty(len(person), dtype=np.int64)
    day[is_promo] = tl.sample(rng, cw, plo[is_promo], phi[is_promo])
    day[~is_promo] = tl.sample(rng, base_cw, plo[~is_promo], phi[~is_promo])
    drifting = pop.btype[person] == DRIFTING
    keep = ~drifting | (rng.random(len(person)) < np.exp(-(day - pop.acq_day[person]) / _DRIFT_DAYS))
    return person[keep], day[keep]


def _online_channel(rng: Rng, pop: Population, person: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Pick among the person's online channels already in use on that day (primary preferred)."""
    starts = pop.start_day[person, :STORE]
    weight = np.where(starts <= day[:, None], 0.35, 0.0)
    prim = pop.primary[person]
    weight[np.arange(len(person)), np.minimum(prim, WEB)] *= np.where(prim < STORE, 1.0 / 0.35, 1.0)
    weight[weight.sum(axis=1) == 0, TMALL] = 1.0
    cum = np.cumsum(weight, axis=1)
    u = rng.random(len(person)) * cum[:, -1]
    return np.asarray(np.minimum((cum < u[:, None]).sum(axis=1), WEB))


def _activity(rng: Rng, tl: Timeline, channel: np.ndarray, day: np.ndarray) -> np.ndarray:
    promo = tl.promo[day]
    act = np.full(len(day), ACT_NONE)
    marketplace = (channel == TMALL) | (channel == JD)
    act[marketplace & np.isin(promo, [D11_WAVE, D11_DAY])] = ACT_D11
    act[marketplace & (promo == D12)] = ACT_D12
    act[(channel == JD) & (promo == P618)] = ACT_618
    presale = (channel == TMALL) & np.isin(promo, [D11_PRESALE, D11_WAVE]) & (rng.random(len(day)) < 0.55)
    act[presale] = ACT_BALANCE
    return act


def _next_d11(tl: Timeline) -> np.ndarray:
    """Per day, the index of the next Double 11 day (or -1)."""
    idx = np.where(tl.promo == D11_DAY, np.arange(tl.n_days), tl.n_days)
    nxt = np.minimum.accumulate(idx[::-1])[::-1]
    return np.where(nxt < tl.n_days, nxt, -1)


def build_orders(rng: Rng, tl: Timeline, pop: Population, cat: Catalogue) -> Orders:
    """All orders and lines, sorted by creation time."""
    n = pop.n
    p_on, d_on = _repeats(rng, tl, pop, online=True)
    p_st, d_st = _repeats(rng, tl, pop, online=False)
    person = np.concatenate([np.arange(n), p_on, p_st])
    day = np.concatenate([pop.acq_day, d_on, d_st]).astype(np.int64)
    channel = np.concatenate([pop.primary, _online_channel(rng, pop, p_on, d_on), np.full(len(p_st), STORE)])
    store = channel == STORE
    created = np.empty(len(person), dtype=np.int64)
    created[store] = tl.seconds(rng, day[store], store=True)
    created[~store] = tl.seconds(rng, day[~store])
    order_by = np.lexsort((person, created))
    person, day, channel, created = person[order_by], day[order_by], channel[order_by], created[order_by]
    n_o = len(person)

    activity = _activity(rng, tl, channel, day)
    paid_s = created + np.minimum(rng.exponential(120, n_o).astype(np.int64) + 15, 3600)
    balance_day = _next_d11(tl)[day]
    presale = activity == ACT_BALANCE
    forfeit = presale & ((rng.random(n_o) < 0.06) | (balance_day < 0))
    balance_s = (tl.day0 + balance_day) * 86400 + np.minimum(rng.exponential(2400, n_o).astype(np.int64), 86399)
    paid_s = np.where(presale & ~forfeit, balance_s, paid_s)
    activity[forfeit] = ACT_DEPOSIT
    unpaid = ~store & ~presale & (rng.random(n_o) < 0.03)
    paid_s = np.where(unpaid, -1, paid_s)

    # lines
    extra = (rng.random(n_o) < 0.3).astype(np.int64) + (rng.random(n_o) < np.where(activity > 0, 0.25, 0.08))
    n_lines = 1 + extra
    order = np.repeat(np.arange(n_o), n_lines)
    line_no = np.arange(len(order)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
    lp = person[order]
    style, colour, size = sample_lines(
        rng, cat, tl.month[day[order]], pop.fav_cat[lp], pop.male[lp], pop.apparel_size[lp], pop.shoe_size[lp]
    )
    n_l = len(order)
    qty = 1 + (rng.random(n_l) < 0.08) + (rng.random(n_l) < 0.01)
    price = cat.price_cents[style]
    gross = price * qty
    on_promo = (tl.promo[day[order]] != NONE) | (activity[order] > 0)
    pct = np.where(
        on_promo,
        rng.uniform(0.10, 0.30, n_l),
        np.where(rng.random(n_l) < 0.35, rng.uniform(0.05, 0.15, n_l), 0),
    )
    discount = np.minimum((gross * pct / 100).astype(np.int64) * 100, gross)
    paid = gross - discount
    paid = np.where(forfeit[order], (paid * 0.2 / 100).astype(np.int64) * 100, paid)
    paid = np.where(unpaid[order], 0, paid)

    # refunds
    lpaid_s = paid_s[order]
    online = channel[order] != STORE
    p_ref = np.where(online, 0.08, 0.03) * np.where(cat.category[style] == DRESS, 1.8, 1.0)
    p_ref = p_ref * np.where(pop.btype[lp] == PROMO, 1.3, 1.0)
    refund_s = lpaid_s + rng.integers(86400, 20 * 86400, n_l)
    refunded = (rng.random(n_l) < p_ref) & (lpaid_s >= 0) & ~forfeit[order] & (refund_s < tl.end_s) & (paid > 0)
    partial = rng.random(n_l) < 0.2
    refund = np.where(
        refunded, np.where(partial, (paid * rng.uniform(0.3, 0.7, n_l) / 100).astype(np.int64) * 100, paid), 0
    )
    refund_s = np.where(refunded, refund_s, -1)

    status = np.full(n_l, ST_DONE)
    recent = (lpaid_s >= 0) & (lpaid_s >= tl.end_s - 7 * 86400)
    status[recent] = ST_SHIPPED
    status[refunded & (refund == paid)] = ST_REFUNDED
    closed_unpaid = (unpaid[order] & (created[order] < tl.end_s - 86400)) | (forfeit[order] & (balance_day[order] >= 0))
    status[closed_unpaid] = ST_CLOSED
    status[(unpaid[order] | forfeit[order]) & ~closed_unpaid] = ST_UNPAID
    return Orders(
        person=person,
        channel=channel,
        created_s=created,
        paid_s=paid_s,
        activity=activity,
        order=order,
        line_no=line_no,
        style=style,
        colour=colour,
        size=size,
        qty=qty,
        price=price,
        discount=discount,
        paid=paid,
        refund=refund,
        refund_s=refund_s,
        status=status,
    )
