"""Who may use the stored-value routes (merged into the authorisation matrix of test_authorisation.py)."""

from __future__ import annotations

from typing import Any

MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/api/stored-value/report"): "api:loyalty:read",
    ("GET", "/api/stored-value/{customer_id}"): "api:loyalty:read",
    ("GET", "/api/stored-value/{customer_id}/entries"): "api:loyalty:read",
    ("POST", "/api/stored-value/{customer_id}/top-ups"): "api:till",
    ("POST", "/api/stored-value/{customer_id}/spends"): "api:till",
    ("POST", "/api/stored-value/{customer_id}/refunds"): "api:till",
    ("POST", "/api/stored-value/{customer_id}/top-up-refunds"): "api:till",
    ("POST", "/api/stored-value/{customer_id}/reversals"): "api:loyalty:write",
    ("GET", "/console/loyalty/stored-value"): "console:loyalty.view",
    ("POST", "/console/loyalty/stored-value/reversals"): "console:loyalty.write",
    ("GET", "/console/till/stored-value"): "console:till",
    ("POST", "/console/till/stored-value/top-up"): "console:till",
    ("POST", "/console/till/stored-value/spend"): "console:till",
    ("POST", "/console/till/stored-value/refund"): "console:till",
}

_TILL = {"store_code": "matrix-store", "guide_id": "matrix-guide"}
API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/stored-value/{customer_id}/top-ups"): {
        "json": {**_TILL, "paid_fen": 100, "idempotency_key": "matrix-top-up"}
    },
    ("POST", "/api/stored-value/{customer_id}/spends"): {
        "json": {**_TILL, "amount_fen": 1, "idempotency_key": "matrix-spend"}
    },
    ("POST", "/api/stored-value/{customer_id}/refunds"): {
        "json": {**_TILL, "spend_id": 1, "idempotency_key": "matrix-refund"}
    },
    ("POST", "/api/stored-value/{customer_id}/top-up-refunds"): {
        "json": {**_TILL, "topup_id": 1, "reason": "matrix", "idempotency_key": "matrix-top-up-refund"}
    },
    ("POST", "/api/stored-value/{customer_id}/reversals"): {
        "json": {"entry_id": 1, "reason": "matrix", "idempotency_key": "matrix-reversal"}
    },
}

PARAMS: dict[str, str] = {}
