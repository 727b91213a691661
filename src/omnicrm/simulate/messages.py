"""Service and social messages: marketplace chats (pre-sale questions, complaints after refunds),
WeChat OA messages, SMS campaigns with replies and opt-outs, emails, store-clerk notes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnicrm.simulate import identities as ids
from omnicrm.simulate import texts as tx
from omnicrm.simulate.catalogue import SIZES
from omnicrm.simulate.orderkeys import OrderKeys
from omnicrm.simulate.orders import Orders
from omnicrm.simulate.people import JD, TMALL, Population
from omnicrm.simulate.shapes import MESSAGES_FILE, OA_APPID, STORES
from omnicrm.simulate.timeline import Timeline
from omnicrm.simulate.truth import IdentifierTruth
from omnicrm.simulate.vec import Rng, StrArray, cat, fmt_int, fmt_time, json_str, pick, uuid4s, where

_AGENTS = {
    "wangwang": "言木官方旗舰店:小美",
    "jd_im": "言木京东旗舰店:客服01",
    "wechat_oa": "言木公众号",
    "sms": "106900051234",
    "email": "service@yanmu.example",
}
# month, day of yearly SMS campaigns (texts.SMS_CAMPAIGNS has one text per entry)
_SMS_DAYS = ((3, 6), (6, 1), (10, 20), (11, 10), (12, 10))


@dataclass
class MessageLines:
    """Rendered JSON lines with their send times, accumulated channel by channel."""

    lines: list[StrArray] = field(default_factory=list)
    times: list[np.ndarray] = field(default_factory=list)

    def add(self, rng: Rng, channel: str, key: StrArray, inbound: np.ndarray, sender: StrArray,
            text: StrArray, sent_s: np.ndarray, store: StrArray | None = None) -> None:  # fmt: skip
        """`sender` is the customer's identifier object; outbound messages are from the agent."""
        n = len(inbound)
        agent = f'{{"agent":"{_AGENTS.get(channel, "")}"}}'
        tail = cat(',"store_code":"', store, '"}\n') if store is not None else "}\n"
        line = cat(
            '{"message_id":"', uuid4s(rng, n), '","channel":"', channel,
            '","conversation_key":', json_str(key),
            ',"direction":"', where(inbound, "in", "out"), '","sender":', where(inbound, sender, agent),
            ',"recipient":', where(inbound, "null", sender), ',"text":', json_str(text),
            ',"sent_at":"', fmt_time(sent_s, "iso"), '"', tail,
        )  # fmt: skip
        self.lines.append(line)
        self.times.append(sent_s)

    def sorted(self) -> StrArray:
        """All lines in time order."""
        if not self.lines:
            return pa.array([], pa.string())
        order = np.argsort(np.concatenate(self.times), kind="stable")
        return pa.concat_arrays(self.lines).take(pa.array(order))


def _pairs(rng: Rng, start_s: np.ndarray, reply_prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conversation turns: an inbound message, then usually an outbound reply minutes later.
    Returns (conversation index, inbound flag, time)."""
    n = len(start_s)
    reply = rng.random(n) < reply_prob
    conv = np.concatenate([np.arange(n), np.flatnonzero(reply)])
    inbound = np.concatenate([np.ones(n, dtype=bool), np.zeros(int(reply.sum()), dtype=bool)])
    delay = np.concatenate([np.zeros(n, dtype=np.int64), rng.integers(20, 1800, int(reply.sum()))])
    return conv, inbound, start_s[conv] + delay


def _obj(key: str, value: StrArray, extra: str = "") -> StrArray:
    return cat(f'{{"{key}":', json_str(value), extra, "}")


def _marketplace(rng: Rng, tl: Timeline, pop: Population, o: Orders, out: MessageLines,
                 truth: IdentifierTruth) -> None:  # fmt: skip
    """Wangwang (Tmall) and JD IM chats: pre-sale questions and after-sale complaints."""
    refunded_orders = np.unique(o.order[o.refund > 0])
    refund_s = np.full(o.n_orders, -1, dtype=np.int64)
    np.maximum.at(refund_s, o.order, o.refund_s)
    for channel, code, ident, id_name in (
        ("wangwang", TMALL, pop.tmall_nick, "nick"),
        ("jd_im", JD, pop.jd_account, "jd_account"),
    ):
        orders = np.flatnonzero(o.channel == code)
        ask = orders[rng.random(len(orders)) < 0.12]
        ask_s = o.created_s[ask] - rng.integers(120, 7200, len(ask))
        bad = refunded_orders[o.channel[refunded_orders] == code]
        bad = bad[rng.random(len(bad)) < 0.5]
        slow = orders[(rng.random(len(orders)) < 0.015) & (o.paid_s[orders] >= 0)]
        bad_s = np.concatenate([refund_s[bad] - rng.integers(600, 86400, len(bad)), o.paid_s[slow] + 3 * 86400])
        person = np.concatenate([o.person[ask], o.person[bad], o.person[slow]])
        start = np.concatenate([ask_s, bad_s])
        complaint = np.r_[np.zeros(len(ask), bool), np.ones(len(bad) + len(slow), bool)]
        conv, inbound, sent = _pairs(rng, np.clip(start, tl.day0 * 86400, tl.end_s - 1), 0.9)
        n = len(conv)
        cp = complaint[conv]
        q = pick(tx.PRESALE_QUESTIONS, rng.integers(0, len(tx.PRESALE_QUESTIONS), n))
        a = pick(tx.PRESALE_ANSWERS, rng.integers(0, len(tx.PRESALE_ANSWERS), n))
        c_idx = np.where(conv >= len(ask) + len(bad), 0, rng.integers(1, len(tx.COMPLAINTS), n))
        c = pick(tx.COMPLAINTS, c_idx)
        s = pick(tx.APOLOGIES, rng.integers(0, len(tx.APOLOGIES), n))
        text = where(inbound, where(cp, c, q), where(cp, s, a))
        who = ident.take(pa.array(person[conv]))
        prefix = "ww:" if code == TMALL else "jdim:"
        out.add(rng, channel, cat(prefix, who), inbound, _obj(id_name, who), text, sent)
        truth.add(MESSAGES_FILE, "tmall_nick" if code == TMALL else "jd_account", person[conv], who)


def _wechat(rng: Rng, tl: Timeline, pop: Population, out: MessageLines, truth: IdentifierTruth) -> None:
    """Followers writing to the official account, answered by the account."""
    followers = np.flatnonzero(pop.follows_oa)
    count = rng.poisson(0.8 * pop.activity[followers])
    person = np.repeat(followers, count)
    lo = np.minimum(pop.follow_day[person], tl.n_days - 1)
    day = lo + (rng.random(len(person)) * (tl.n_days - lo)).astype(np.int64)
    conv, inbound, sent = _pairs(rng, tl.seconds(rng, day), 0.85)
    n = len(conv)
    text = where(
        inbound,
        pick(tx.OA_MESSAGES, rng.integers(0, len(tx.OA_MESSAGES), n)),
        pick(tx.OA_REPLIES, rng.integers(0, len(tx.OA_REPLIES), n)),
    )
    openid = pop.openid_oa.take(pa.array(person[conv]))
    sender = _obj("openid", openid, f',"appid":"{OA_APPID}"')
    out.add(rng, "wechat_oa", cat(f"{OA_APPID}:", openid), inbound, sender, text, np.minimum(sent, tl.end_s - 1))
    truth.add(MESSAGES_FILE, "wechat_openid", person[conv], openid)


def _sms(rng: Rng, tl: Timeline, pop: Population, out: MessageLines, truth: IdentifierTruth) -> None:
    """Yearly SMS campaigns to members; some reply, a few opt out (and get no more SMS)."""
    opted_out = np.zeros(pop.n, dtype=bool)
    days = np.arange(tl.n_days)
    md = (days + tl.day0).astype("datetime64[D]")
    months = md.astype("datetime64[M]")
    mon = months.astype(np.int64) % 12 + 1
    dom = (md - months.astype("datetime64[D]")).astype(np.int64) + 1
    for day in days[np.isin(mon * 100 + dom, [m * 100 + d for m, d in _SMS_DAYS])]:
        which = [m * 100 + d for m, d in _SMS_DAYS].index(int(mon[day] * 100 + dom[day]))
        joined = pop.member & (pop.member_day < day)
        person = np.flatnonzero(joined & ~opted_out & (rng.random(pop.n) < 0.7))
        k = len(person)
        send_s = (tl.day0 + day) * 86400 + 10 * 3600 + rng.integers(0, 1800, k)
        u = rng.random(k)
        stop = u < 0.015
        reply = ~stop & (u < 0.015 + pop.response[person, 2] * 0.2)
        opted_out[person[stop]] = True
        answered = stop | reply
        conv = np.concatenate([np.arange(k), np.flatnonzero(answered)])
        inbound = np.r_[np.zeros(k, bool), np.ones(int(answered.sum()), bool)]
        sent = send_s[conv] + np.where(inbound, rng.integers(30, 7200, len(conv)), 0)
        opt = pick(tx.SMS_OPT_OUTS, rng.integers(0, len(tx.SMS_OPT_OUTS), len(conv)))
        ok = pick(tx.SMS_REPLIES, rng.integers(0, len(tx.SMS_REPLIES), len(conv)))
        text = where(inbound, where(stop[conv], opt, ok), tx.SMS_CAMPAIGNS[which])
        phone, note = ids.noisy_phones(rng, pop.phone.take(pa.array(person[conv])), p_format=0.05)
        phone = where(inbound, phone, pop.phone.take(pa.array(person[conv])))
        note = np.where(inbound, note, ids.CLEAN)
        key = cat("sms:", pop.phone.take(pa.array(person[conv])))
        out.add(rng, "sms", key, inbound, _obj("phone", phone), text, np.minimum(sent, tl.end_s - 1))
        truth.add(MESSAGES_FILE, "phone", person[conv], phone, note)


def _email(rng: Rng, tl: Timeline, pop: Population, out: MessageLines, truth: IdentifierTruth) -> None:
    """Customers emailing the service address."""
    has = np.flatnonzero(pop.email.is_valid().to_numpy(zero_copy_only=False))
    person = np.repeat(has, rng.poisson(0.2 * pop.activity[has]))
    lo = np.minimum(pop.acq_day[person], tl.n_days - 1)
    day = lo + (rng.random(len(person)) * (tl.n_days - lo)).astype(np.int64)
    conv, inbound, sent = _pairs(rng, tl.seconds(rng, day), 0.8)
    n = len(conv)
    text = where(
        inbound,
        pick(tx.EMAIL_QUESTIONS, rng.integers(0, len(tx.EMAIL_QUESTIONS), n)),
        pick(tx.EMAIL_REPLIES, rng.integers(0, len(tx.EMAIL_REPLIES), n)),
    )
    email = pop.email.take(pa.array(person[conv]))
    out.add(
        rng,
        "email",
        cat("email:", email),
        inbound,
        _obj("email", email),
        text,
        np.minimum(sent, tl.end_s - 1),
    )
    truth.add(MESSAGES_FILE, "email", person[conv], email)


def _clerk_notes(rng: Rng, tl: Timeline, pop: Population, o: Orders, keys: OrderKeys, out: MessageLines,
                 truth: IdentifierTruth) -> None:  # fmt: skip
    """Notes store clerks type after serving a member: family, home district, hobbies, sizes."""
    visits = np.flatnonzero(keys.card_shown)
    visits = visits[rng.random(len(visits)) < 0.15]
    n = len(visits)
    person = o.person[visits]
    take = pa.array(person)
    options = [
        pick(tx.CLERK_FIXED, rng.integers(0, len(tx.CLERK_FIXED), n)),
        cat("顾客说宝宝", fmt_int(rng.integers(2, 24, n)), "个月大"),
        cat("住在", pop.district.take(take)),
        cat("喜欢", pick(tx.HOBBIES, rng.integers(0, len(tx.HOBBIES), n))),
        cat("平时穿", pick(SIZES, pop.apparel_size[person]), "码"),
    ]
    text = pc.choose(pa.array(rng.choice(5, n, p=[0.4, 0.12, 0.2, 0.16, 0.12])), *options)
    card = pop.member_card.take(take)
    store = pick([s[0] for s in STORES], keys.store[visits])
    sent = np.minimum(o.created_s[visits] + rng.integers(60, 1800, n), tl.end_s - 1)
    key = cat("note:", store, ":", card)
    out.add(rng, "clerk_note", key, np.ones(n, bool), _obj("member_card", card), text, sent, store)
    truth.add(MESSAGES_FILE, "member_card", person, card)


def build_messages(rng: Rng, tl: Timeline, pop: Population, o: Orders, keys: OrderKeys,
                   truth: IdentifierTruth) -> StrArray:  # fmt: skip
    """All message lines, sorted by time."""
    out = MessageLines()
    _marketplace(rng, tl, pop, o, out, truth)
    _wechat(rng, tl, pop, out, truth)
    _sms(rng, tl, pop, out, truth)
    _email(rng, tl, pop, out, truth)
    _clerk_notes(rng, tl, pop, o, keys, out, truth)
    return out.sorted()
