"""Operator corrections that every later refresh respects: join two customers, split one.

A join is a must-link between the two customers' most trusted identifiers; a split is a cannot-link
between each identifier the operator detaches and the customer's most trusted one that stays. Both
are rows in the state store, with who, when and why, and can be revoked.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, or_, update

from omnicrm.errors import InputError
from omnicrm.identity.explain import explain_customer
from omnicrm.store.schema import identity_links
from omnicrm.store.state import StateStore, utcnow

__all__ = ["join_customers", "split_customer"]


def _anchor(snapshot: Path | None, customer_id: int, exclude: frozenset[str] = frozenset()) -> str:
    explained = explain_customer(snapshot, customer_id)
    for joined in explained.identifiers:
        if joined.key not in exclude and joined.note is None and not joined.key.startswith("name:"):
            return joined.key
    raise InputError(f"customer {customer_id} has no identifier left to anchor it after the split")


def _record(state: StateStore, kind: str, pairs: list[tuple[str, str]], reason: str, by: str) -> None:
    if not reason.strip():
        raise InputError("say why (reason): it is kept with the correction for whoever reads it later")
    with state.begin() as conn:
        conn.execute(
            insert(identity_links),
            [
                {"kind": kind, "key_a": a, "key_b": b, "reason": reason, "created_by": by, "created_at": utcnow()}
                for a, b in pairs
            ],
        )


def join_customers(
    state: StateStore, snapshot: Path | None, a: int, b: int, *, reason: str, by: str
) -> tuple[str, str]:
    """Record that customers ``a`` and ``b`` are one person; the next refresh merges them."""
    if a == b:
        raise InputError("a customer cannot be joined to itself")
    pair = (_anchor(snapshot, a), _anchor(snapshot, b))
    _record(state, "must", [pair], reason, by)
    return pair


def split_customer(
    state: StateStore, snapshot: Path | None, customer_id: int, detach: list[str], *, reason: str, by: str
) -> list[tuple[str, str]]:
    """Record that the identifiers ``detach`` (keys) are not this customer; the next refresh splits them off."""
    held = {j.key for j in explain_customer(snapshot, customer_id).identifiers}
    unknown = [k for k in detach if k not in held]
    if unknown or not detach:
        raise InputError(
            f"customer {customer_id} does not hold {unknown or 'any identifier given'}; "
            "use keys as `omnicrm identity explain` shows them (e.g. phone::+8613800138001)"
        )
    keep = _anchor(snapshot, customer_id, exclude=frozenset(detach))
    pairs = [(keep, key) for key in detach]
    _record(state, "cannot", pairs, reason, by)
    # a later split overrides an earlier join of what it detaches
    with state.begin() as conn:
        conn.execute(
            update(identity_links)
            .where(
                identity_links.c.kind == "must",
                identity_links.c.revoked_at.is_(None),
                or_(identity_links.c.key_a.in_(detach), identity_links.c.key_b.in_(detach)),
            )
            .values(revoked_at=utcnow())
        )
    return pairs
