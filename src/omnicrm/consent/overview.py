"""A customer's consents: customer (following OneID redirects) → their address keys → current states."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from omnicrm.consent import ledger, personalisation
from omnicrm.consent.subjects import CHANNELS
from omnicrm.identity.explain import resolve_id
from omnicrm.store.state import StateStore

__all__ = ["CustomerConsents", "customer_consents", "subject_consents"]

ADDRESS_TYPES = sorted({t for types in CHANNELS.values() for t in types})


@dataclass
class CustomerConsents:
    customer_id: int
    asked_id: int
    addresses: list[dict[str, Any]] = field(default_factory=list)
    consents: list[ledger.Consent] = field(default_factory=list)
    choices: list[personalisation.Choice] = field(default_factory=list)

    @property
    def non_personalised(self) -> bool:
        return any(c.non_personalised for c in self.choices)

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "redirected_from": self.asked_id if self.asked_id != self.customer_id else None,
            "addresses": self.addresses,
            "consents": [c.as_dict() for c in self.consents],
            "non_personalised": self.non_personalised,
            "personalisation_choices": [c.as_dict() for c in self.choices],
        }


def customer_consents(state: StateStore, snapshot: Path | None, customer_id: int) -> CustomerConsents:
    """The current consent of every address the customer holds now (NotFound for an unknown customer)."""
    current = resolve_id(snapshot, customer_id)
    assert snapshot is not None  # resolve_id refuses a missing snapshot
    rows = (
        duckdb.connect()
        .execute(
            f"""SELECT key, id_type FROM read_parquet('{snapshot / "identifiers.parquet"}')
            WHERE customer_id = $id AND id_type IN (SELECT unnest($types::VARCHAR[])) ORDER BY id_type, key""",
            {"id": current, "types": ADDRESS_TYPES},
        )
        .fetchall()
    )
    keys = [r[0] for r in rows]
    return CustomerConsents(
        customer_id=current,
        asked_id=customer_id,
        addresses=[{"key": k, "type": t} for k, t in rows],
        consents=ledger.states(state, keys),
        choices=personalisation.choices_of(state, keys),
    )


def subject_consents(state: StateStore, subject: str) -> dict[str, Any]:
    """Current states, the personalisation choice and the full history of one address key."""
    return {
        "subject": subject,
        "consents": [c.as_dict() for c in ledger.states(state, [subject])],
        "personalisation_choices": [c.as_dict() for c in personalisation.choices_of(state, [subject])],
        "history": [c.as_dict() for c in ledger.history(state, [subject])],
    }
