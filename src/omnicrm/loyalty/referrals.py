"""Referrals (value sharing): the programme, members' codes, links and QR codes, and referrals checked by OneID.

- The programme is versioned data, like the loyalty rules (``ReferralProgramme``): what the referrer and the referee
  each get (points and/or a coupon template), the return window of the referee's first paid order, the dates it
  runs and the shop page its links land on. A referral keeps the version in force when it was recorded.
- Every member has one code for good (the coupons' alphabet and check character), its link
  ``{public_url}/r/{code}`` and that link as a QR code (SVG). Following a link records a visit (``record_visit``);
  the landing hands the shop a signed token of the visit, which it sends back once the person identifies.
- ``record_referral``: a person identified by one identifier (phone, e-mail, WeChat openid ...) came with a code.
  OneID says who they are, and the referral is refused, with the OneID link or the chain that shows why, when the
  referee is the referrer under another identifier (self-referral), when it would close a ring, when the referee was
  referred already (one referrer each) or has ordered already (not new). A refused attempt is kept (status
  ``refused``) for the console; bad input (an unknown code, a value that is no identifier) records nothing.
- Rewards, one level only (the referrer and the referee), are settled by ``referral_rewards.settle_referrals``.

Recording is one transaction. The claim on the referee's identifier is a unique key, so one identifier gets one
referrer even under concurrency. When OneID knows the referee, the transaction also holds the member locks
(``locks.lock_members``) of the referee and of the top of the referrer's chain of referrers: the referee has no
referrer yet, so it is the top of its own chain, and two referrals that would close a ring together always lock a
member in common, so the second sees the first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import segno
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.identity.explain import CustomerIdentity, explain_customer, normalise_one, resolve_id
from omnicrm.identity.identifiers import IDENTIFIER_TYPES
from omnicrm.loyalty.coupons import get_template, make_code, normalise_code
from omnicrm.loyalty.locks import insert_or_nothing, lock_members, transaction, utc, when
from omnicrm.store.schema import point_lots, referral_codes, referral_programmes, referral_visits, referrals
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "Referral", "ReferralProgramme", "ReferralRefused", "code_owner", "ids_in_force", "load_programme", "member_code",
    "normalise_referral_code", "oneid_link", "qr_svg", "record_referral", "record_visit", "referral_link",
    "referral_of", "save_programme", "sentence", "why_already", "why_not_new", "why_ring", "why_self",
]  # fmt: skip

R, RC, RV, RP, L = referrals, referral_codes, referral_visits, referral_programmes, point_lots
_CHAIN_LIMIT = 1000  # a chain of referrers longer than this is not walked further


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give the time with its offset, e.g. 2026-06-01T00:00:00+08:00")
    return utc(value)


Aware = Annotated[datetime, AfterValidator(_aware)]


class ReferralProgramme(BaseModel):
    """One version of the referral programme. Each side gets points, a coupon of a template, or both."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(default=0, ge=0, description="0: not saved; saved versions are numbered 1, 2, ...")
    referrer_points: int = Field(default=0, ge=0, le=1_000_000, description="points for the member who referred")
    referrer_coupon: str | None = Field(default=None, min_length=1, max_length=64, description="a coupon template")
    referee_points: int = Field(default=0, ge=0, le=1_000_000, description="points for the new customer")
    referee_coupon: str | None = Field(default=None, min_length=1, max_length=64, description="a coupon template")
    return_window_days: int = Field(default=15, ge=0, le=365, description="after the first paid order, before rewards")
    points_valid_days: int | None = Field(default=730, ge=1, le=3650, description="reward points expire; None: never")
    starts_at: Aware = Field(description="referrals are recorded from then")
    ends_at: Aware | None = Field(default=None, description="and until then (exclusive); None: open-ended")
    landing_url: str = Field(min_length=8, max_length=2000, description="the shop page a referral link leads to")

    def running(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


def _check(data: dict[str, Any]) -> ReferralProgramme:
    """The programme, or every problem with it at once, each naming its field."""
    try:
        programme = ReferralProgramme.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(e["msg"], ".".join(str(p) for p in e["loc"])) for e in exc.errors()]
        raise InputError("the referral programme is not valid", problems) from exc
    problems = []
    if programme.ends_at is not None and programme.ends_at <= programme.starts_at:
        problems.append(Problem("it must end after it starts", "ends_at"))
    for side in ("referrer", "referee"):
        if not getattr(programme, f"{side}_points") and getattr(programme, f"{side}_coupon") is None:
            problems.append(Problem(f"give the {side} points, a coupon template or both", f"{side}_points"))
    url = urlsplit(programme.landing_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        problems.append(Problem("an http(s) address of the shop, e.g. https://shop.example/welcome", "landing_url"))
    if problems:
        raise InputError("the referral programme is not valid", problems)
    return programme


def save_programme(
    state: StateStore, programme: ReferralProgramme | dict[str, Any], *, by: str, note: str | None = None
) -> ReferralProgramme:
    """Store ``programme`` as the next version (its coupon templates must exist); earlier versions stay."""
    checked = _check(programme if isinstance(programme, dict) else programme.model_dump(mode="json"))
    missing = []
    for side in ("referrer", "referee"):
        template = getattr(checked, f"{side}_coupon")
        try:
            if template is not None:
                get_template(state, template)
        except NotFound:
            missing.append(Problem(f"no coupon template {template!r}: create it first", f"{side}_coupon"))
    if missing:
        raise InputError("the referral programme is not valid", missing)
    try:
        with state.begin() as conn:
            version = int(conn.execute(select(func.coalesce(func.max(RP.c.version), 0))).scalar_one()) + 1
            saved = checked.model_copy(update={"version": version})
            conn.execute(insert(RP).values(version=version, definition=saved.model_dump_json(), note=note,
                                           created_by=by, created_at=utcnow()))  # fmt: skip
    except IntegrityError as exc:  # another save took the number first (PostgreSQL)
        raise Conflict("the referral programme was saved by someone else at the same moment: save again") from exc
    return saved


def load_programme(state: StateStore, version: int | None = None) -> ReferralProgramme:
    """The saved programme of ``version`` (default: the latest)."""
    query = select(RP.c.definition)
    query = query.where(RP.c.version == version) if version is not None else query.order_by(RP.c.version.desc())
    with state.connect() as conn:
        found = conn.execute(query.limit(1)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no referral programme version {version}" if version else "no referral programme saved yet")
    return ReferralProgramme.model_validate(json.loads(found))


# --- codes, links, QR codes and visits ------------------------------------------------------------------------


def normalise_referral_code(text: str | None) -> str:
    """The code in ``text`` as stored (spaces and hyphens dropped, upper case), checked like a coupon code."""
    try:
        return normalise_code(text)
    except NotFound:
        mistyped = Problem("its check character is wrong: mistyped?", "code")
        raise NotFound(f"referral code {text!r} is unknown", [mistyped]) from None
    except InputError as exc:
        raise InputError(f"referral code {text!r} is not a referral code", [Problem(exc.problems[0].reason, "code")]
                         ) from None  # fmt: skip


def ids_in_force(snapshot: Path | None, ids: list[int]) -> dict[int, int]:
    """Each id as OneID has it now: a customer merged into another is that other (``redirects``)."""
    found = {int(i): int(i) for i in ids}
    if snapshot is None or not found:
        return found
    con = duckdb.connect()
    con.register("asked", pa.table({"old_id": pa.array(sorted(found), pa.int64())}))
    rows = con.execute(f"SELECT old_id, customer_id FROM read_parquet('{snapshot / 'redirects.parquet'}') "
                       "JOIN asked USING (old_id)").fetchall()  # fmt: skip
    return {**found, **{int(a): int(b) for a, b in rows}}


def member_code(state: StateStore, snapshot: Path | None, customer_id: int) -> tuple[int, str]:
    """(the customer id in force, its code): made at the first request, the same ever after."""
    current = resolve_id(snapshot, int(customer_id))
    now = utcnow()

    def work(conn: Connection) -> str | None:
        insert_or_nothing(conn, RC, [{"customer_id": current, "code": make_code(), "created_at": now}])
        return conn.execute(select(RC.c.code).where(RC.c.customer_id == current)).scalar_one_or_none()

    for _attempt in range(5):  # None: the new code was another member's already (≈ never); draw again
        code = transaction(state, work)
        if code is not None:
            return current, str(code)
    raise Conflict(f"customer {current}: could not find a free referral code", [Problem("retry", "code")])


def referral_link(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/r/{code}"


def qr_svg(text: str) -> str:
    """``text`` (a referral link) as a QR code, an SVG document of its own."""
    return str(segno.make(text, error="m", micro=False).svg_inline(scale=6, border=2))


def code_owner(conn: Connection, code: str) -> int:
    owner = conn.execute(select(RC.c.customer_id).where(RC.c.code == code)).scalar_one_or_none()
    if owner is None:
        raise NotFound(f"referral code {code} is unknown", [Problem("no member has this code", "code")])
    return int(owner)


def _running(state: StateStore, now: datetime) -> ReferralProgramme:
    programme = load_programme(state)
    if programme.running(now):
        return programme
    when_ = f"starts on {programme.starts_at.isoformat()}"
    if programme.ends_at is not None and now >= programme.ends_at:
        when_ = f"ended on {programme.ends_at.isoformat()}"
    raise Conflict(f"the referral programme {when_}: referral codes are not active now",
                   [Problem("the programme is not running", "code")])  # fmt: skip


def record_visit(state: StateStore, code: str, *, user_agent: str | None, now: datetime | None = None) -> int:
    """Record that someone followed the link of ``code`` (a running programme's); the visit's id."""
    norm, now_ = normalise_referral_code(code), when(now, utcnow(), "now")
    _running(state, now_)

    def work(conn: Connection) -> int:
        code_owner(conn, norm)
        row = {"code": norm, "at": now_, "user_agent": user_agent[:512] if user_agent else None}
        return int(conn.execute(insert(RV).values(**row).returning(RV.c.id)).scalar_one())

    return transaction(state, work)


# --- OneID: who the referee is, and how two identifiers are one person ----------------------------------------


def oneid_link(identity: CustomerIdentity, keys: list[str]) -> list[dict[str, Any]]:
    """How each of ``keys`` joins the customer: its steps up to the anchor (their most trusted identifier)."""
    by_key, steps, seen = {j.key: j for j in identity.identifiers}, [], set()
    for key in keys:
        while key in by_key and key not in seen:
            seen.add(key)
            j = by_key[key]
            via = by_key.get(j.via) if j.via else None
            steps.append({"id_type": j.id_type, "value": j.value, "how": j.how, "record": j.record,
                          "via_type": via and via.id_type, "via_value": via and via.value})  # fmt: skip
            if j.via is None:
                break
            key = j.via
    return steps


def sentence(step: dict[str, Any]) -> str:
    """One step of ``oneid_link`` as a sentence."""
    if step["via_type"] is None:
        return f"{step['id_type']} {step['value']} is the customer's anchor"
    return (f"{step['id_type']} {step['value']} is joined to {step['via_type']} {step['via_value']} "
            f"by {step['record']} ({step['how']})")  # fmt: skip


def why_self(identity: CustomerIdentity | None, key: str, id_type: str, customer: int) -> dict[str, Any]:
    """Self-referral: the referee's identifier belongs to the referrer; the OneID link shows how it joins the
    customer's other identifiers (their merge keys; the first dozen steps)."""
    others = [j.key for j in identity.identifiers if j.note is None and j.id_type != "name"] if identity else []
    steps = oneid_link(identity, [key, *others])[:12] if identity else []
    return {"reason": "self", "summary": f"customer {customer} cannot refer themselves: OneID joins the referee's "
            f"{id_type} to customer {customer}, the referrer", "details": [sentence(s) for s in steps],
            "links": steps}  # fmt: skip


def why_already(identity: CustomerIdentity | None, keys: list[str], whom: str, earlier: int, by: int) -> dict[str, Any]:
    """Already referred: referral ``earlier`` (by customer ``by``) has the same person, maybe as another identifier."""
    steps = oneid_link(identity, keys) if identity else []
    return {"reason": "already_referred", "summary": f"{whom} was already referred by customer {by} (referral "
            f"#{earlier}); a referee has one referrer", "details": [sentence(s) for s in steps], "links": steps,
            "referral_id": earlier}  # fmt: skip


def why_ring(chain: list[dict[str, int]], referee: int, referrer: int) -> dict[str, Any]:
    """A ring: the referee is up the referrer's chain of referrers (``chain``, from the referrer up)."""
    text = [f"customer {c['referrer_id']} referred customer {c['referee_id']} (referral #{c['referral_id']})"
            for c in reversed(chain)]  # fmt: skip
    return {"reason": "ring", "summary": f"customer {referee} is up customer {referrer}'s chain of referrers: "
            "the referral would close a ring", "details": text, "chain": chain}  # fmt: skip


def why_not_new(orders: list[dict[str, str]], customer: int | None) -> dict[str, Any]:
    """Not new: the referee has ordered before (``orders``: what shows it and when)."""
    return {"reason": "not_new", "summary": f"customer {customer} is not new: they have ordered already",
            "details": [f"{o['order']} ({o['at']})" for o in orders], "orders": orders}  # fmt: skip


@dataclass(frozen=True)
class Referral:
    """One referral as stored; ``explanation`` says why it is void or refused."""

    id: int
    status: str
    reason: str | None
    code: str
    referrer_id: int
    referee_type: str
    referee_key: str
    referee_id: int | None
    programme_version: int
    visit_id: int | None
    recorded_at: datetime
    order: str | None = None
    due_at: datetime | None = None
    settled_at: datetime | None = None
    referrer_points: int = 0
    referee_points: int = 0
    referrer_coupon: str | None = None
    referee_coupon: str | None = None
    explanation: dict[str, Any] | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def referral_of(row: Any) -> Referral:
    return Referral(
        int(row.id), row.status, row.reason, row.code, int(row.referrer_id), row.referee_type, row.referee_key,
        None if row.referee_id is None else int(row.referee_id), int(row.programme_version), row.visit_id,
        utc(row.recorded_at), f"{row.order_source}:{row.order_id}" if row.order_id else None,
        utc(row.due_at) if row.due_at else None, utc(row.settled_at) if row.settled_at else None,
        int(row.referrer_points), int(row.referee_points), row.referrer_coupon, row.referee_coupon,
        json.loads(row.explanation) if row.explanation else None,
    )  # fmt: skip


class ReferralRefused(Conflict):
    """A referral refused for a reason OneID or the referrals show; the attempt is kept as ``referral_id``."""

    code = "referral_refused"

    def __init__(self, referral: Referral) -> None:
        why = referral.explanation or {}
        super().__init__(f"referral refused: {why.get('summary', referral.reason)}",
                         [Problem(text, "referee") for text in why.get("details", [])])  # fmt: skip
        self.referral = referral

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "referral_id": self.referral.id, "reason": self.referral.reason,
                "explanation": self.referral.explanation}  # fmt: skip


# --- recording ------------------------------------------------------------------------------------------------


@dataclass
class _Referee:
    """What OneID says about the referee, read before the transaction (it reads files, not the state)."""

    id_type: str
    key: str
    customer_id: int | None = None
    identity: CustomerIdentity | None = None
    orders: list[dict[str, Any]] = field(default_factory=list)


def _referee(snapshot: Path | None, id_type: str, value: str, scope: str) -> _Referee:
    """The identifier's key and, when OneID knows it, its customer and the orders OneID has of them."""
    if id_type not in IDENTIFIER_TYPES or not IDENTIFIER_TYPES[id_type].merges:
        known = ", ".join(t for t, d in IDENTIFIER_TYPES.items() if d.merges)
        raise InputError(f"unknown identifier type {id_type!r}", [Problem(f"use one of {known}", "referee.type")])
    if IDENTIFIER_TYPES[id_type].scoped != bool(scope.strip()):
        need = ("needs its scope (the app id of an openid, the platform of a nick)" if not scope.strip()
                else "has no scope: leave it empty")  # fmt: skip
        raise InputError(f"a {id_type} identifier {need}", [Problem(f"a {id_type} {need}", "referee.scope")])
    try:
        key = normalise_one(id_type, value, scope.strip())
    except InputError as exc:
        raise InputError(exc.message, [Problem("give an identifier the referee uses", "referee.value")]) from None
    found = _Referee(id_type, key)
    if snapshot is None:
        return found
    con = duckdb.connect()  # (``explain.lookup`` by the key already normalised: normalising costs a query)
    holders = [int(c) for (c,) in con.execute(f"SELECT DISTINCT customer_id FROM read_parquet("
                                              f"'{snapshot / 'identifiers.parquet'}') WHERE key = $k ORDER BY 1",
                                              {"k": key}).fetchall()]  # fmt: skip
    if len(holders) > 1:
        raise InputError(f"{id_type} {value!r} is shared by customers {', '.join(map(str, holders))}",
                         [Problem("identify the referee by an identifier of their own", "referee.value")])  # fmt: skip
    if holders:
        found.customer_id = holders[0]
        found.identity = explain_customer(snapshot, holders[0])
        rows = con.execute(
            f"SELECT r.record_key, min(o.first_seen) FROM read_parquet('{snapshot / 'records.parquet'}') r "
            f"JOIN read_parquet('{snapshot / 'occurrences.parquet'}') o USING (record_key) "
            "WHERE r.customer_id = $c AND r.record_key LIKE 'o:%' GROUP BY 1 ORDER BY 2, 1 LIMIT 3", {"c": holders[0]},
        ).fetchall()  # fmt: skip
        found.orders = [{"order": "{} order {}".format(*k[2:].split(":", 1)), "at": utc(at).isoformat()}
                        for k, at in rows]  # fmt: skip
    return found


def _chain(conn: Connection, start: int) -> list[dict[str, int]]:
    """The referrals up from ``start``: who referred them, who referred that one, ... (recorded, even void)."""
    chain: list[dict[str, int]] = []
    seen, current = {start}, start
    while len(chain) < _CHAIN_LIMIT:
        row = conn.execute(select(R.c.id, R.c.referrer_id).where(R.c.referee_id == current, R.c.claim.is_not(None))
                           .order_by(R.c.id).limit(1)).first()  # fmt: skip
        if row is None:
            break
        chain.append({"referral_id": int(row.id), "referrer_id": int(row.referrer_id), "referee_id": current})
        if int(row.referrer_id) in seen:
            break
        current = int(row.referrer_id)
        seen.add(current)
    return chain


def _lock_chains(conn: Connection, referrer: int, referee: int, now: datetime) -> list[dict[str, int]]:
    """Hold the referee's and the referrer's chain top's member locks; the referrer's chain once it is stable."""
    held: set[int] = set()
    while True:
        chain = _chain(conn, referrer)
        top = chain[-1]["referrer_id"] if chain else referrer
        if {top, referee} <= held:
            return chain
        held |= set(lock_members(conn, {top, referee} - held, now))


def _why_refused(
    conn: Connection, who: _Referee, referrer: int, chain: list[dict[str, int]]
) -> tuple[dict[str, Any] | None, Any]:
    """(why the referral is refused, None) or (None, the same referral recorded before) or (None, None): record."""
    y = who.customer_id
    if y is not None and y == referrer:
        return why_self(who.identity, who.key, who.id_type, y), None
    if y is not None and any(link["referrer_id"] == y for link in chain):
        return why_ring(chain, y, referrer), None
    keys = [j.key for j in who.identity.identifiers] if who.identity else [who.key]
    same_person = [R.c.claim.in_(keys), *([R.c.referee_id == y] if y is not None else [])]
    taken = conn.execute(select(R).where(R.c.claim.is_not(None), or_(*same_person)).order_by(R.c.id)).first()
    if taken is not None:
        if taken.claim == who.key and int(taken.referrer_id) == referrer:
            return None, taken
        whom = f"customer {y}" if y is not None else f"this {who.id_type}"
        return why_already(
            who.identity, [who.key, taken.referee_key], whom, int(taken.id), int(taken.referrer_id)
        ), None
    orders = list(who.orders)
    if y is not None:
        lots = conn.execute(select(L.c.source, L.c.order_id, L.c.earned_at).where(
            L.c.customer_id == y, L.c.spend_cents > 0).order_by(L.c.earned_at).limit(3))  # fmt: skip
        orders += [{"order": f"{s} order {o}", "at": utc(at).isoformat()} for s, o, at in lots]
    return (why_not_new(orders, y) if orders else None), None


def _visit_code(conn: Connection, visit_id: int, key: str) -> str:
    """The code of the link visit; refused when the visit already brought another person."""
    code = conn.execute(select(RV.c.code).where(RV.c.id == visit_id)).scalar_one_or_none()
    if code is None:
        raise NotFound(f"referral visit {visit_id} is unknown", [Problem("no such visit", "visit_token")])
    earlier = conn.execute(select(R.c.id).where(R.c.visit_id == visit_id, R.c.claim != key)).scalar()
    if earlier is not None:
        raise Conflict(f"this link visit already brought referral #{earlier}, for another person",
                       [Problem("a visit brings one person", "visit_token")])  # fmt: skip
    return str(code)


def record_referral(
    state: StateStore, *, referee_type: str, referee_value: str, referee_scope: str = "", code: str | None = None,
    visit_id: int | None = None, snapshot: Path | None, by: str, idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Referral:  # fmt: skip
    """Record that the person with this identifier came with ``code`` (or through the link visit ``visit_id``).

    Returns the pending referral (the same one for a repeat, by idempotency key or by the same code and
    identifier). Raises ReferralRefused, with the explanation, after keeping the refused attempt; InputError or
    NotFound for bad input and Conflict for a programme that is not running, recording nothing.
    """
    now_ = when(now, utcnow(), "now")
    if (code is None) == (visit_id is None):
        raise InputError("a referral needs the referrer's code or the link visit", [Problem("give one", "code")])
    who = _referee(snapshot, referee_type, referee_value or "", referee_scope or "")
    norm = normalise_referral_code(code) if code is not None else None
    programme = _running(state, now_)

    def attempt(conn: Connection) -> Any:
        given = _visit_code(conn, visit_id, who.key) if visit_id is not None else norm
        assert given is not None
        if idempotency_key is not None:
            row = conn.execute(select(R).where(R.c.idempotency_key == idempotency_key)).first()
            if row is not None and (row.code, row.referee_key) != (given, who.key):
                raise Conflict(f"the idempotency key {idempotency_key!r} was used for another referral",
                               [Problem("use a new key for a new referral", "idempotency_key")])  # fmt: skip
            if row is not None:
                return row
        referrer = ids_in_force(snapshot, [code_owner(conn, given)])
        referrer_id = next(iter(referrer.values()))
        chain = _lock_chains(conn, referrer_id, who.customer_id, now_) if who.customer_id is not None else []
        why, same = _why_refused(conn, who, referrer_id, chain)
        if same is not None:
            return same
        new = {
            "status": "refused" if why else "pending", "reason": why["reason"] if why else None,
            "explanation": json.dumps(why, ensure_ascii=False, default=str) if why else None, "code": given,
            "referrer_id": referrer_id, "referee_type": who.id_type, "referee_key": who.key,
            "referee_id": who.customer_id, "claim": None if why else who.key, "programme_version": programme.version,
            "visit_id": visit_id, "idempotency_key": idempotency_key, "recorded_by": by, "recorded_at": now_,
            "referrer_points": 0, "referee_points": 0,
        }  # fmt: skip
        made = insert_or_nothing(conn, R, [new], returning=("id",))
        return conn.execute(select(R).where(R.c.id == made[0].id)).one() if made else None

    def work(conn: Connection) -> Any:
        for _ in range(3):  # nothing inserted: the identifier (or the key) was taken meanwhile; look again
            found = attempt(conn)
            if found is not None:
                return found
        raise Conflict("the referee was being recorded by another request at the same moment: retry",
                       [Problem("retry", "referee")])  # fmt: skip

    referral = referral_of(transaction(state, work))
    if referral.status == "refused":
        raise ReferralRefused(referral)
    return referral
