"""Who a person is, through OneID: a customer id (following merges) or an identifier, and a walk-in's phone.

Identifiers are normalised exactly as OneID's refresh normalises them (``identity.explain``), so a phone written
``138 0013 8000`` finds the customer holding ``+8613800138000``. Every refusal names the field it is about.
"""

from __future__ import annotations

from pathlib import Path

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.identity.explain import lookup, normalise_many, resolve_id

__all__ = ["customer_of", "normalise_phone", "phone_holder"]


def _need(identity: Path | None, field: str) -> Path:
    if identity is None:
        raise NotFound("there is no OneID snapshot yet; run `omnicrm refresh` first", [Problem("unknown yet", field)])
    return identity


def customer_of(
    identity: Path | None, *, customer_id: int | None = None, id_type: str | None = None, value: str | None = None
) -> int:
    """The customer in force for an id (merged ids lead to the survivor) or for an identifier held by one customer.

    NotFound when OneID knows no such customer or identifier; Conflict when the identifier is shared (a family
    phone): then sign the person up by customer id.
    """
    if (customer_id is None) == (value is None):
        raise InputError("give a customer id or an identifier, not both or neither",
                         [Problem("one of customer_id, identifier", "customer_id")])  # fmt: skip
    if customer_id is not None:
        snapshot = _need(identity, "customer_id")
        try:
            return resolve_id(snapshot, customer_id)
        except NotFound:
            raise NotFound(
                f"OneID knows no customer {customer_id}", [Problem("unknown customer", "customer_id")]
            ) from None
    snapshot = _need(identity, "identifier")
    kind = id_type or "phone"
    try:
        found = lookup(snapshot, kind, value or "")
    except InputError as exc:
        raise InputError(exc.message, [Problem(exc.message, "identifier")]) from None
    if not found:
        raise NotFound(f"no customer holds the {kind} {value!r}", [Problem("unknown to OneID", "identifier")])
    if len(found) > 1:
        raise Conflict(
            f"the {kind} {value!r} is shared by {len(found)} customers ({', '.join(map(str, found[:5]))})",
            [Problem("shared identifier: give the customer id instead", "identifier")],
        )
    return found[0]


def normalise_phone(raw: str) -> str:
    """A mobile phone as OneID keeps it (E.164, +86 for mainland numbers); InputError on the field ``phone``."""
    text = (raw or "").strip()
    if not text or len(text) > 32:
        raise InputError("give a mobile phone number", [Problem("1 to 32 characters", "phone")])
    value, reason = normalise_many([("phone", text)])[0]
    if value is None:
        raise InputError(f"{text!r} is not a phone number we can use: {reason}", [Problem(str(reason), "phone")])
    return value


def phone_holder(identity: Path | None, phone: str) -> int | None:
    """The one customer OneID joined this (normalised) phone to; None when unknown, shared, or before any refresh."""
    if identity is None:
        return None
    found = lookup(identity, "phone", phone)
    return found[0] if len(found) == 1 else None
