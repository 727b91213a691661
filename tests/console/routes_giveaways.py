"""Who may use the giveaway routes (merged into the authorisation matrix of test_authorisation.py).

The API's create request sets up a real red-packet drop with the id of ``PARAMS``, so the entry, close and verify
requests that follow it in the matrix reach a giveaway that exists.
"""

from __future__ import annotations

from typing import Any

MATRIX: dict[tuple[str, str], str] = {
    ("POST", "/api/giveaways"): "api:loyalty:write",
    ("GET", "/api/giveaways"): "api:loyalty:read",
    ("GET", "/api/giveaways/{giveaway_id}"): "api:loyalty:read",
    ("POST", "/api/giveaways/{giveaway_id}/entries"): "api:loyalty:write",
    ("GET", "/api/giveaways/{giveaway_id}/entries"): "api:loyalty:read",
    ("POST", "/api/giveaways/{giveaway_id}/close"): "api:loyalty:write",
    ("GET", "/api/giveaways/{giveaway_id}/verify"): "api:loyalty:read",
    ("GET", "/console/loyalty/draws"): "console:loyalty.view",
    ("GET", "/console/loyalty/draws/new"): "console:loyalty.write",
    ("POST", "/console/loyalty/draws"): "console:loyalty.write",
    ("GET", "/console/loyalty/draws/{giveaway_id}"): "console:loyalty.view",
    ("POST", "/console/loyalty/draws/{giveaway_id}/close"): "console:loyalty.write",
}

API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/giveaways"): {
        "json": {
            "id": "matrix-draw",
            "name": "matrix",
            "kind": "red_packet",
            "opens_at": "2026-01-01T00:00:00+08:00",
            "closes_at": "2036-01-01T00:00:00+08:00",
            "budget_fen": 100,
            "packets": 10,
        }
    },
    ("POST", "/api/giveaways/{giveaway_id}/entries"): {"json": {"customer_id": 1, "idempotency_key": "matrix"}},
}

PARAMS: dict[str, str] = {"giveaway_id": "matrix-draw"}
