"""Redeeming coupons ("核销") online or at the till, reversing a redemption on refund, and the coupon report.

- ``redeem`` takes a code (typed or scanned from the QR code) and the order: online with the order id, at the till
  with the store code and the store guide (导购) who served the customer, who are credited with the redemption. It
  checks the coupon's dates, channel, category and threshold against the order and returns the discount in fen.
- A coupon is used once, however many tills scan it at the same moment: the redemption is one transaction whose
  decisive statement is ``UPDATE coupons SET status='redeemed' WHERE id=… AND status='issued'``; only the
  transaction that changed the row (rowcount 1) writes a redemption. On PostgreSQL a second redeemer blocks on the
  row lock, then finds the row no longer 'issued'; on SQLite ``BEGIN IMMEDIATE`` makes the writers take turns.
  Repeating the same redemption (same code, channel and order id) returns the first one, so a till may retry.
- ``reverse`` undoes the redemption of a refunded order; the coupon becomes usable again only while unexpired
  (an expired one stays spent: its ``expires_at`` has passed, so redeeming it is refused as expired).
- Every refusal names the code and the field at fault and leaves the state unchanged.
- ``report``: issued, redeemed, expired, redemption rate and discount per template, per store and per guide, as
  grouped SQL over the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, select, update

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.coupons import CHANNELS, Coupon, Template, coupon_of, normalise_code, template_of
from omnicrm.loyalty.locks import transaction, utc, when
from omnicrm.store.schema import coupon_redemptions, coupon_templates, coupons
from omnicrm.store.state import StateStore, utcnow

__all__ = ["CouponReport", "Redemption", "ReportRow", "Reversal", "discount", "redeem", "report", "reverse"]

T, C, R = coupon_templates, coupons, coupon_redemptions


@dataclass(frozen=True)
class Redemption:
    """One redemption of one coupon; ``replayed`` when a repeated request found it rather than wrote it."""

    id: int
    code: str
    template_id: str
    customer_id: int
    channel: str
    order_id: str | None
    store_code: str | None
    guide_id: str | None
    order_amount_fen: int
    eligible_fen: int
    discount_fen: int
    at: datetime
    reversed_at: datetime | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Reversal:
    """A reversed redemption and whether the coupon can be used again (it cannot once expired)."""

    redemption: Redemption
    usable_again: bool
    replayed: bool = False


def _redemption_of(row: Any, c: Coupon, replayed: bool = False) -> Redemption:
    return Redemption(
        int(row.id), c.code, c.template_id, c.customer_id, row.channel, row.order_id, row.store_code, row.guide_id,
        int(row.order_amount_fen), int(row.eligible_fen), int(row.discount_fen), utc(row.at),
        utc(row.reversed_at) if row.reversed_at is not None else None, replayed,
    )  # fmt: skip


def _fen(code: str, value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"coupon {code}: {name} must be a whole number of fen, at least 0", [Problem(f"got {value!r}", name)]
        )
    return value


def discount(
    t: Template, code: str, amount_fen: int, category_amounts: Mapping[str, int] | None = None
) -> tuple[int, int]:
    """(eligible amount, discount) in fen of a coupon of ``t`` on an order of ``amount_fen``.

    With a category restriction only that category's amount (from ``category_amounts``) is eligible. Refused, as an
    InputError naming the field, when the eligible amount is below the template's minimum spend (the threshold).
    The discount never exceeds the eligible amount; percentages round down to the fen.
    """
    amount = _fen(code, amount_fen, "amount_fen")
    eligible = amount
    if t.category is not None:
        if category_amounts is None:
            raise InputError(
                f"coupon {code} is only for category {t.category!r}: give the order's amount per category",
                [Problem(f"give the amount of {t.category!r} in the order", "category_amounts")],
            )
        eligible = _fen(code, category_amounts.get(t.category, 0), f"category_amounts.{t.category}")
        if eligible > amount:
            raise InputError(
                f"coupon {code}: the amount of category {t.category!r} is more than the order's amount",
                [Problem(f"{eligible} > {amount}", "category_amounts")],
            )
        if eligible == 0:
            raise InputError(
                f"coupon {code} is only for category {t.category!r}, and the order has none of it",
                [Problem(f"no {t.category!r} in the order", "category_amounts")],
            )
    if eligible < t.min_spend_fen:
        what = f"{t.category!r} items" if t.category else "the order"
        raise InputError(
            f"coupon {code} needs a spend of at least {t.min_spend_fen} fen, but {what} come(s) to {eligible} fen",
            [Problem(f"threshold not met: {eligible} < {t.min_spend_fen}", "amount_fen")],
        )
    if t.kind == "percent_off":
        off = eligible * (t.percent_off or 0) // 100
        if t.max_off_fen is not None:
            off = min(off, t.max_off_fen)
    else:
        off = t.amount_off_fen or 0
    return eligible, min(off, eligible)


def _where(row: Any) -> str:
    if row.channel == "store":
        guide = f", guide {row.guide_id}" if row.guide_id else ""
        receipt = f", receipt {row.order_id}" if row.order_id else ""
        return f"at store {row.store_code}{guide}{receipt}"
    return f"online on order {row.order_id}"


def _standing(conn: Connection, coupon_id: int) -> Any:
    """The coupon's redemption that has not been reversed, if any."""
    q = select(R).where(R.c.coupon_id == coupon_id, R.c.reversed_at.is_(None)).order_by(R.c.id.desc())
    return conn.execute(q).first()


def _used(c: Coupon, row: Any) -> Conflict:
    if row is None:  # redeemed and reversed again while we waited: the caller may simply retry
        return Conflict(f"coupon {c.code} was being redeemed by another till", [Problem("try again", "code")])
    return Conflict(
        f"coupon {c.code} was already used on {utc(row.at).isoformat()} {_where(row)}",
        [Problem(f"used {utc(row.at).isoformat()} {_where(row)}", "code")],
    )


def redeem(
    state: StateStore, code: str, *, channel: str, amount_fen: int, order_id: str | None = None,
    store_code: str | None = None, guide_id: str | None = None, category_amounts: Mapping[str, int] | None = None,
    customer_id: int | None = None, by: str = "system", at: datetime | None = None,
) -> Redemption:  # fmt: skip
    """Redeem the coupon with ``code`` on an order of ``amount_fen``; returns the redemption with its discount.

    ``channel`` is ``online`` (``order_id`` required) or ``store`` (``store_code`` and ``guide_id`` required; the
    till's receipt as ``order_id`` makes a retry safe). With ``customer_id`` the coupon must be that customer's.
    Refused, nothing written: unknown code (NotFound), used already (Conflict saying when and where), not yet
    valid or expired, a channel the template does not allow, a category or threshold not met (InputError).
    """
    norm = normalise_code(code)
    now = utcnow()
    at_ = when(at, now)
    if channel not in CHANNELS:
        raise InputError(f"coupon {norm}: channel must be online or store", [Problem(f"got {channel!r}", "channel")])
    if channel == "online" and not (order_id and order_id.strip()):
        raise InputError(f"coupon {norm}: an online redemption needs the order id", [Problem("give it", "order_id")])
    if channel == "store":
        for name, value in (("store_code", store_code), ("guide_id", guide_id)):
            if not (value and value.strip()):
                raise InputError(
                    f"coupon {norm}: a redemption at the till needs the {name.replace('_', ' ')}",
                    [Problem("give the store and the store guide who served the customer", name)],
                )

    def work(conn: Connection) -> Redemption:
        row = conn.execute(select(C).where(C.c.code == norm)).first()
        if row is None:
            raise NotFound(f"coupon code {norm} is unknown", [Problem("no coupon has this code", "code")])
        c = coupon_of(row)
        t = template_of(conn.execute(select(T).where(T.c.id == c.template_id)).one())
        if c.status == "redeemed":
            used = _standing(conn, c.id)
            same = used is not None and order_id and (used.channel, used.order_id) == (channel, order_id)
            if same and (channel == "online" or used.store_code == store_code):  # a retry of the same redemption
                return _redemption_of(used, c, replayed=True)
            raise _used(c, used)
        if customer_id is not None and int(customer_id) != c.customer_id:
            raise InputError(
                f"coupon {norm} belongs to another customer", [Problem(f"not customer {customer_id}'s", "customer_id")]
            )
        if at_ < c.starts_at:
            raise InputError(
                f"coupon {norm} is valid from {c.starts_at.isoformat()}, not yet",
                [Problem("not valid yet", "starts_at")],
            )
        if at_ >= c.expires_at:
            raise InputError(
                f"coupon {norm} expired on {c.expires_at.isoformat()}",
                [Problem(f"expired {c.expires_at.isoformat()}", "expires_at")],
            )
        if channel not in t.channels:
            where = "online" if channel == "online" else "in stores"
            raise InputError(
                f"coupon {norm} cannot be used {where}: it is for {' and '.join(t.channels)} only",
                [Problem(f"redeemable {', '.join(t.channels)}", "channel")],
            )
        eligible, off = discount(t, norm, amount_fen, category_amounts)
        taken = conn.execute(
            update(C).where(C.c.id == c.id, C.c.status == "issued").values(status="redeemed", redeemed_at=at_)
        )
        if taken.rowcount != 1:  # another redemption got there first (it committed while we waited for the row)
            raise _used(c, _standing(conn, c.id))
        values = {
            "coupon_id": c.id, "channel": channel, "order_id": order_id, "store_code": store_code,
            "guide_id": guide_id, "order_amount_fen": amount_fen, "eligible_fen": eligible, "discount_fen": off,
            "redeemed_by": by, "at": at_, "reversed_at": None, "reversal_reason": None,
        }  # fmt: skip
        new_id = int(conn.execute(insert(R).values(**values).returning(R.c.id)).scalar_one())
        return _redemption_of(conn.execute(select(R).where(R.c.id == new_id)).one(), c)

    return transaction(state, work)


def reverse(
    state: StateStore, code: str, *, order_id: str, reason: str, by: str = "system", at: datetime | None = None
) -> Reversal:
    """Reverse the redemption of the coupon on ``order_id`` (the order was refunded); repeating it is a no-op that
    returns the same reversal. The coupon is usable again only while it has not expired."""
    norm = normalise_code(code)
    at_ = when(at, utcnow())
    if not (reason and reason.strip()):
        raise InputError(f"coupon {norm}: a reversal needs a reason", [Problem("e.g. the refund id", "reason")])

    def work(conn: Connection) -> Reversal:
        row = conn.execute(select(C).where(C.c.code == norm)).first()
        if row is None:
            raise NotFound(f"coupon code {norm} is unknown", [Problem("no coupon has this code", "code")])
        c = coupon_of(row)
        q = select(R).where(R.c.coupon_id == c.id, R.c.order_id == order_id).order_by(R.c.id.desc())
        red = conn.execute(q).first()
        if red is None:
            raise NotFound(
                f"coupon {norm} was not redeemed on order {order_id!r}", [Problem("no such redemption", "order_id")]
            )
        if red.reversed_at is None:
            done = conn.execute(
                update(R)
                .where(R.c.id == red.id, R.c.reversed_at.is_(None))
                .values(reversed_at=at_, reversal_reason=reason.strip())
            )
            if done.rowcount == 1:
                conn.execute(update(C).where(C.c.id == c.id, C.c.status == "redeemed").values(
                    status="issued", redeemed_at=None))  # fmt: skip
                red = conn.execute(select(R).where(R.c.id == red.id)).one()
                return Reversal(_redemption_of(red, c), usable_again=at_ < c.expires_at)
            red = conn.execute(select(R).where(R.c.id == red.id)).one()
        return Reversal(_redemption_of(red, c), usable_again=utc(red.reversed_at) < c.expires_at, replayed=True)

    return transaction(state, work)


# --- the report --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One line of the report. For a template: coupons issued from it, redeemed, expired unused, and the discount
    given. For a store or guide: coupons they handed out (issued, with how many of those were redeemed and
    expired), redemptions credited to them (``redeemed_here``) and the discount given there."""

    key: str
    issued: int
    redeemed: int
    expired: int
    discount_fen: int
    redeemed_here: int = 0

    @property
    def redemption_rate(self) -> float | None:
        """Redeemed / issued; None when nothing was issued."""
        return self.redeemed / self.issued if self.issued else None


@dataclass(frozen=True)
class CouponReport:
    at: datetime
    templates: list[ReportRow]
    stores: list[ReportRow]
    guides: list[ReportRow]  # key "<store_code>/<guide_id>"


def report(state: StateStore, at: datetime | None = None) -> CouponReport:
    """Issued, redeemed, expired, redemption rate and discount per template, per store and per store guide, as of
    ``at`` (default now). Reversed redemptions do not count; an expired coupon is an unredeemed one past expiry."""
    at_ = when(at, utcnow())
    redeemed = func.coalesce(func.sum(case((C.c.status == "redeemed", 1), else_=0)), 0)
    expired = func.coalesce(func.sum(case((and_(C.c.status == "issued", C.c.expires_at <= at_), 1), else_=0)), 0)
    live = R.c.reversed_at.is_(None)
    with state.connect() as conn:
        made = conn.execute(
            select(T.c.id, func.count(C.c.id), redeemed, expired)
            .select_from(T.outerjoin(C, C.c.template_id == T.c.id))
            .group_by(T.c.id)
            .order_by(T.c.id)
        ).all()
        given = dict(
            conn.execute(
                select(C.c.template_id, func.sum(R.c.discount_fen)).join(C, C.c.id == R.c.coupon_id)
                .where(live).group_by(C.c.template_id)
            ).all()
        )  # fmt: skip
        handed = {
            (s, g): (int(n), int(r), int(e))
            for s, g, n, r, e in conn.execute(
                select(C.c.store_code, C.c.guide_id, func.count(), redeemed, expired)
                .where(C.c.store_code.is_not(None)).group_by(C.c.store_code, C.c.guide_id)
            ).all()
        }  # fmt: skip
        credited = {
            (s, g): (int(n), int(d))
            for s, g, n, d in conn.execute(
                select(R.c.store_code, R.c.guide_id, func.count(), func.sum(R.c.discount_fen))
                .where(live, R.c.store_code.is_not(None)).group_by(R.c.store_code, R.c.guide_id)
            ).all()
        }  # fmt: skip
    templates = [ReportRow(tid, int(n), int(r), int(e), int(given.get(tid) or 0)) for tid, n, r, e in made]
    guides: list[ReportRow] = []
    stores: dict[str, list[int]] = {}
    for store, guide in sorted(set(handed) | set(credited), key=lambda k: (k[0], k[1] or "")):
        n, r, e = handed.get((store, guide), (0, 0, 0))
        here, off = credited.get((store, guide), (0, 0))
        if guide is not None:
            guides.append(ReportRow(f"{store}/{guide}", n, r, e, off, here))
        total = stores.setdefault(store, [0, 0, 0, 0, 0])
        for i, v in enumerate((n, r, e, off, here)):
            total[i] += v
    store_rows = [ReportRow(s, v[0], v[1], v[2], v[3], v[4]) for s, v in sorted(stores.items())]
    return CouponReport(at_, templates, store_rows, guides)
