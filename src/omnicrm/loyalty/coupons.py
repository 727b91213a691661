"""Coupons: templates (the budget and the rules), issuing coupons from them, and their redeemable codes.

This is the merchant's coupon service inside omnicrm: campaigns (the coupon channel), segments and referral rewards
issue through ``issue`` / ``issue_many``; tills and online shops redeem through ``omnicrm.loyalty.coupon_redemptions``.

- A template says what a coupon is worth (``amount_off`` in fen, ``percent_off``, or ``threshold``: spend at least
  X fen to get Y fen off), an optional category whose amount alone counts, how long a coupon is valid (fixed dates,
  or N days from issue), how many may ever be issued (``total_quantity``, the budget), how many one customer may
  hold (``per_person_limit``) and where it is redeemable (``online``, ``store``).
- Issuing never goes over the quantity or the per-person limit, however many issue at once: every issue is one
  transaction that first locks the template's row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` makes the writer alone), then counts what was issued and inserts. What is left of the budget
  is never stored: it is ``total_quantity`` less the coupons issued from it.
- Every issue has an idempotency key: a repeat returns the coupon the first call made, so a campaign retrying a
  send gives the customer exactly one coupon.
- Each coupon has a short code of unambiguous characters (no 0/O, 1/I/L) with a check character, so a mistyped code
  is told apart from an unknown one. The code is uppercase letters and digits only, which QR codes encode in their
  compact alphanumeric mode: the same string serves as text and as QR payload.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.locks import chunks, insert_or_nothing, transaction, utc, when
from omnicrm.store.schema import coupon_templates, coupons
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "CHANNELS",
    "KINDS",
    "Coupon",
    "IssueResult",
    "Template",
    "coupon",
    "coupon_of",
    "create_template",
    "customer_coupons",
    "get_template",
    "issue",
    "issue_many",
    "issue_within",
    "lock_template",
    "make_code",
    "normalise_code",
    "template_of",
]

T, C = coupon_templates, coupons
KINDS = ("amount_off", "percent_off", "threshold")
CHANNELS = ("online", "store")
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # 31 characters, none that read like another (0/O, 1/I/L)
CODE_LENGTH = 10  # 9 random characters (31**9 ≈ 2.6e13) and a check character


@dataclass(frozen=True)
class Template:
    """A coupon template; money in fen. See the module docstring for what each field means."""

    id: str
    name: str
    kind: str
    total_quantity: int
    per_person_limit: int = 1
    amount_off_fen: int | None = None
    percent_off: int | None = None
    max_off_fen: int | None = None
    min_spend_fen: int = 0
    category: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = None
    channels: tuple[str, ...] = CHANNELS


@dataclass(frozen=True)
class Coupon:
    """One issued coupon. ``status`` is issued or redeemed; whether it has expired is ``expires_at`` against now."""

    id: int
    code: str
    template_id: str
    customer_id: int
    status: str
    idempotency_key: str
    campaign_id: str | None
    store_code: str | None
    guide_id: str | None
    issued_at: datetime
    starts_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None

    @property
    def qr_payload(self) -> str:
        """What to put in the QR code: the code itself (QR alphanumeric mode)."""
        return self.code

    def expired(self, at: datetime) -> bool:
        return self.status == "issued" and at >= self.expires_at


@dataclass(frozen=True)
class IssueResult:
    """What ``issue_many`` did: coupons it issued now, coupons earlier calls with the same key had issued, and the
    customers it refused, each with the field at fault (``per_person_limit`` or ``total_quantity``)."""

    issued: list[Coupon] = field(default_factory=list)
    repeated: list[Coupon] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


# --- codes -------------------------------------------------------------------------------------------------------


def _check_char(body: str) -> str:
    total = sum((i + 1) * ALPHABET.index(ch) for i, ch in enumerate(body))
    return ALPHABET[total % len(ALPHABET)]


def make_code() -> str:
    """A new random code: 9 characters from ``ALPHABET`` and a check character (weighted sum mod 31)."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH - 1))
    return body + _check_char(body)


def normalise_code(text: str | None) -> str:
    """The code in ``text`` as stored: spaces and hyphens dropped, upper case. A code that cannot be one (wrong
    length or characters) is an InputError; one whose check character is wrong is reported as mistyped."""
    raw = "".join((text or "").split()).replace("-", "").upper()
    if len(raw) != CODE_LENGTH or any(ch not in ALPHABET for ch in raw):
        raise InputError(
            f"coupon code {text!r} is not a coupon code",
            [Problem(f"a code is {CODE_LENGTH} characters from {ALPHABET}", "code")],
        )
    if _check_char(raw[:-1]) != raw[-1]:
        raise NotFound(f"coupon code {raw} is unknown", [Problem("its check character is wrong: mistyped?", "code")])
    return raw


# --- templates ---------------------------------------------------------------------------------------------------


def _bad(template_id: str, reason: str, name: str) -> InputError:
    return InputError(f"coupon template {template_id!r}: {reason}", [Problem(reason, name)])


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _aware(template_id: str, value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise _bad(template_id, f"{name} has no time zone: give it with an offset, e.g. +08:00", name)
    return when(value, value, name) if value is not None else None


def _checked(t: Template) -> Template:
    """``t`` with its times in UTC, or the first problem with it as an InputError naming the field."""
    tid = t.id
    if not isinstance(tid, str) or not tid.strip() or len(tid) > 64:
        raise InputError("a coupon template needs an id of 1-64 characters", [Problem(f"got {tid!r}", "id")])
    if not t.name or not t.name.strip():
        raise _bad(tid, "give the template a name", "name")
    if t.kind not in KINDS:
        raise _bad(tid, f"kind must be one of {', '.join(KINDS)}, not {t.kind!r}", "kind")
    for name in ("total_quantity", "per_person_limit"):
        value = getattr(t, name)
        if not _whole(value) or value <= 0:
            raise _bad(tid, f"{name} must be a whole number above zero, not {value!r}", name)
    if not _whole(t.min_spend_fen) or t.min_spend_fen < 0:
        raise _bad(
            tid, f"min_spend_fen must be a whole number of fen, at least 0, not {t.min_spend_fen!r}", "min_spend_fen"
        )
    if t.kind in ("amount_off", "threshold"):
        if not _whole(t.amount_off_fen) or (t.amount_off_fen or 0) <= 0:
            raise _bad(tid, f"a {t.kind} coupon needs amount_off_fen above zero", "amount_off_fen")
        if t.percent_off is not None or t.max_off_fen is not None:
            raise _bad(tid, f"a {t.kind} coupon has no percent_off or max_off_fen", "percent_off")
    if t.kind == "threshold" and t.min_spend_fen < (t.amount_off_fen or 0):
        raise _bad(tid, "a threshold coupon needs min_spend_fen of at least amount_off_fen", "min_spend_fen")
    if t.kind == "percent_off":
        if not _whole(t.percent_off) or not 1 <= (t.percent_off or 0) <= 99:
            raise _bad(tid, f"percent_off must be a whole percent from 1 to 99, not {t.percent_off!r}", "percent_off")
        if t.amount_off_fen is not None:
            raise _bad(tid, "a percent_off coupon has no amount_off_fen (use max_off_fen for a cap)", "amount_off_fen")
        if t.max_off_fen is not None and (not _whole(t.max_off_fen) or t.max_off_fen <= 0):
            raise _bad(tid, "max_off_fen must be above zero (or left out)", "max_off_fen")
    channels = tuple(sorted(set(t.channels)))
    if not channels or any(c not in CHANNELS for c in channels):
        raise _bad(tid, f"channels must be some of {', '.join(CHANNELS)}, not {list(t.channels)!r}", "channels")
    if t.category is not None and not t.category.strip():
        raise _bad(tid, "category is empty (leave it out for every category)", "category")
    if t.valid_days is None and t.valid_until is None:
        raise _bad(tid, "give valid_until (fixed dates) or valid_days (days from issue)", "valid_until")
    if t.valid_days is not None and (not _whole(t.valid_days) or t.valid_days <= 0):
        raise _bad(tid, f"valid_days must be a whole number above zero, not {t.valid_days!r}", "valid_days")
    start, until = _aware(tid, t.valid_from, "valid_from"), _aware(tid, t.valid_until, "valid_until")
    if start is not None and until is not None and until <= start:
        raise _bad(tid, "valid_until must be after valid_from", "valid_until")
    return Template(
        tid.strip(), t.name.strip(), t.kind, t.total_quantity, t.per_person_limit, t.amount_off_fen, t.percent_off,
        t.max_off_fen, t.min_spend_fen, t.category.strip() if t.category else None, start, until, t.valid_days,
        channels,
    )  # fmt: skip


def _row_of(t: Template, by: str, now: datetime) -> dict[str, Any]:
    return {
        "id": t.id, "name": t.name, "kind": t.kind, "amount_off_fen": t.amount_off_fen, "percent_off": t.percent_off,
        "max_off_fen": t.max_off_fen, "min_spend_fen": t.min_spend_fen, "category": t.category,
        "valid_from": t.valid_from, "valid_until": t.valid_until, "valid_days": t.valid_days,
        "total_quantity": t.total_quantity, "per_person_limit": t.per_person_limit, "channels": ",".join(t.channels),
        "created_by": by, "created_at": now,
    }  # fmt: skip


def template_of(row: Any) -> Template:
    """A ``coupon_templates`` row as a Template (times in UTC)."""
    return Template(
        row.id, row.name, row.kind, int(row.total_quantity), int(row.per_person_limit), row.amount_off_fen,
        row.percent_off, row.max_off_fen, int(row.min_spend_fen), row.category,
        utc(row.valid_from) if row.valid_from is not None else None,
        utc(row.valid_until) if row.valid_until is not None else None, row.valid_days,
        tuple(row.channels.split(",")),
    )  # fmt: skip


def create_template(state: StateStore, template: Template, *, by: str, now: datetime | None = None) -> Template:
    """Create a template. Creating the same definition again returns it (idempotent); a different definition under
    an existing id is refused, as coupons already issued from it were issued under the old terms."""
    t = _checked(template)
    now_ = when(now, utcnow(), "now")

    def work(conn: Connection) -> Template:
        insert_or_nothing(conn, T, [_row_of(t, by, now_)])
        found = template_of(conn.execute(select(T).where(T.c.id == t.id)).one())
        if found != t:
            raise Conflict(
                f"coupon template {t.id!r} already exists with other terms",
                [Problem("use a new id for new terms", "id")],
            )
        return found

    return transaction(state, work)


def get_template(state: StateStore, template_id: str) -> Template:
    with state.connect() as conn:
        row = conn.execute(select(T).where(T.c.id == template_id)).first()
    if row is None:
        raise NotFound(f"coupon template {template_id!r} does not exist", [Problem("unknown template", "template_id")])
    return template_of(row)


def lock_template(conn: Connection, template_id: str) -> Template:
    """Lock the template's row for the rest of the transaction (every issue from it waits) and return it."""
    row = conn.execute(select(T).where(T.c.id == template_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"coupon template {template_id!r} does not exist", [Problem("unknown template", "template_id")])
    return template_of(row)


# --- issuing -----------------------------------------------------------------------------------------------------


def coupon_of(row: Any) -> Coupon:
    """A ``coupons`` row as a Coupon (times in UTC)."""
    return Coupon(
        int(row.id), row.code, row.template_id, int(row.customer_id), row.status, row.idempotency_key,
        row.campaign_id, row.store_code, row.guide_id, utc(row.issued_at), utc(row.starts_at), utc(row.expires_at),
        utc(row.redeemed_at) if row.redeemed_at is not None else None,
    )  # fmt: skip


def _window(t: Template, now: datetime) -> tuple[datetime, datetime]:
    """When a coupon issued now starts and expires; refused when the template's dates are over."""
    if t.valid_until is not None and now >= t.valid_until:
        raise InputError(
            f"coupon template {t.id!r} ended on {t.valid_until.isoformat()}: no more coupons can be issued from it",
            [Problem("the template's dates are over", "valid_until")],
        )
    starts = max(t.valid_from, now) if t.valid_from is not None else now
    ends = starts + timedelta(days=t.valid_days) if t.valid_days is not None else t.valid_until
    if t.valid_until is not None and ends is not None:
        ends = min(ends, t.valid_until)
    assert ends is not None  # _checked requires valid_days or valid_until
    return starts, ends


def issue_within(
    conn: Connection, template_id: str, wants: Sequence[tuple[int, str]], *, campaign_id: str | None, by: str,
    store_code: str | None, guide_id: str | None, now: datetime,
) -> IssueResult:  # fmt: skip
    """Issue one coupon per (customer, key) in ``wants`` inside the caller's transaction, holding the template."""
    t = lock_template(conn, template_id)
    result = IssueResult()
    existing: dict[str, Any] = {}
    for keys in chunks([k for _, k in wants]):
        existing.update({r.idempotency_key: r for r in conn.execute(select(C).where(C.c.idempotency_key.in_(keys)))})
    for customer_id, key in wants:
        row = existing.get(key)
        if row is not None and (row.template_id, int(row.customer_id)) != (template_id, customer_id):
            raise Conflict(
                f"customer {customer_id}: the idempotency key {key!r} was used for another coupon",
                [Problem("use a new key for a new coupon", "idempotency_key")],
            )
    fresh = [(c, k) for c, k in wants if k not in existing]
    result.repeated.extend(coupon_of(existing[k]) for _, k in wants if k in existing)
    if not fresh:
        return result
    starts, ends = _window(t, now)
    issued = int(conn.execute(select(func.count()).select_from(C).where(C.c.template_id == t.id)).scalar_one())
    held: dict[int, int] = {}
    for members in chunks(sorted({c for c, _ in fresh})):
        q = select(C.c.customer_id, func.count()).where(C.c.template_id == t.id, C.c.customer_id.in_(members))
        held.update({int(c): int(n) for c, n in conn.execute(q.group_by(C.c.customer_id)).all()})
    left = t.total_quantity - issued
    rows: list[dict[str, Any]] = []
    for customer_id, key in fresh:
        if held.get(customer_id, 0) >= t.per_person_limit:
            result.refused[customer_id] = "per_person_limit"
        elif left <= 0:
            result.refused[customer_id] = "total_quantity"
        else:
            held[customer_id] = held.get(customer_id, 0) + 1
            left -= 1
            rows.append({
                "template_id": t.id, "customer_id": customer_id, "status": "issued", "idempotency_key": key,
                "campaign_id": campaign_id, "store_code": store_code, "guide_id": guide_id, "issued_by": by,
                "issued_at": now, "starts_at": starts, "expires_at": ends, "redeemed_at": None,
            })  # fmt: skip
    ids: list[int] = []
    for block in chunks(rows):
        todo = list(block)
        for _attempt in range(5):  # a code already taken (≈ never) gets a new one
            batch = [{**r, "code": make_code()} for r in todo]
            done = {x.idempotency_key: int(x.id) for x in insert_or_nothing(conn, C, batch, ("id", "idempotency_key"))}
            ids += done.values()
            todo = [r for r in todo if r["idempotency_key"] not in done]
            if not todo:
                break
            keys = [r["idempotency_key"] for r in todo]
            taken = conn.execute(select(C.c.idempotency_key).where(C.c.idempotency_key.in_(keys))).scalars().first()
            if taken is not None:  # taken meanwhile by an issue from another template, not a code clash
                raise Conflict(
                    f"the idempotency key {taken!r} was used for another coupon",
                    [Problem("use a new key for a new coupon", "idempotency_key")],
                )
        else:
            raise Conflict(f"coupon template {t.id!r}: could not find free codes", [Problem("retry", "code")])
    for new in chunks(ids):
        result.issued.extend(coupon_of(r) for r in conn.execute(select(C).where(C.c.id.in_(new)).order_by(C.c.id)))
    return result


def issue(
    state: StateStore, template_id: str, customer_id: int, *, idempotency_key: str | None = None, by: str = "system",
    campaign_id: str | None = None, store_code: str | None = None, guide_id: str | None = None,
    now: datetime | None = None,
) -> Coupon:  # fmt: skip
    """Issue one coupon of the template to the customer; a repeat with the same idempotency key returns the coupon
    the first call issued. Refused (Conflict, nothing written) when the customer already holds ``per_person_limit``
    coupons of it or the template's ``total_quantity`` is used up. A guide handing the coupon out in a store gives
    ``store_code`` and ``guide_id``, which the report credits."""
    now_ = when(now, utcnow(), "now")
    key = idempotency_key or f"coupon:{secrets.token_hex(16)}"

    def work(conn: Connection) -> IssueResult:
        return issue_within(conn, template_id, [(int(customer_id), key)], campaign_id=campaign_id, by=by,
                      store_code=store_code, guide_id=guide_id, now=now_)  # fmt: skip

    result = transaction(state, work)
    if result.issued or result.repeated:
        return (result.issued or result.repeated)[0]
    why = result.refused[int(customer_id)]
    if why == "per_person_limit":
        t = get_template(state, template_id)
        raise Conflict(
            f"customer {customer_id} already holds {t.per_person_limit} coupon(s) of template {template_id!r}",
            [Problem(f"the limit is {t.per_person_limit} per person", "per_person_limit")],
        )
    raise Conflict(
        f"coupon template {template_id!r} has no coupons left to issue",
        [Problem("its total_quantity has been issued", "total_quantity")],
    )


def issue_many(
    state: StateStore, template_id: str, customer_ids: Iterable[int], *, key: str, by: str = "system",
    campaign_id: str | None = None, now: datetime | None = None,
) -> IssueResult:  # fmt: skip
    """Issue one coupon to each customer (e.g. a segment snapshot's ids) in one transaction, set-based.

    The idempotency key of each coupon is ``<key>:<customer_id>``, so running the same issue again (a retried
    job) issues nothing new and returns the earlier coupons as ``repeated``. Customers over their per-person limit,
    and those beyond the template's remaining quantity (in the order given), are refused, not issued.
    """
    now_ = when(now, utcnow(), "now")
    if not key or not key.strip():
        raise InputError("issuing to many customers needs a key", [Problem("give a key, e.g. the campaign id", "key")])
    wants = list(dict.fromkeys((int(c), f"{key}:{int(c)}") for c in customer_ids))

    def work(conn: Connection) -> IssueResult:
        return issue_within(conn, template_id, wants, campaign_id=campaign_id, by=by, store_code=None, guide_id=None,
                      now=now_)  # fmt: skip

    return transaction(state, work)


def coupon(state: StateStore, code: str) -> Coupon:
    """The coupon with this code (text or QR payload, spaces and hyphens ignored)."""
    norm = normalise_code(code)
    with state.connect() as conn:
        row = conn.execute(select(C).where(C.c.code == norm)).first()
    if row is None:
        raise NotFound(f"coupon code {norm} is unknown", [Problem("no coupon has this code", "code")])
    return coupon_of(row)


def customer_coupons(state: StateStore, customer_id: int) -> list[Coupon]:
    """The customer's coupons, newest first."""
    with state.connect() as conn:
        rows = conn.execute(select(C).where(C.c.customer_id == customer_id).order_by(C.c.id.desc())).all()
    return [coupon_of(r) for r in rows]
