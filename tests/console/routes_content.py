"""Who may use the content library's routes (merged into the authorisation matrix of test_authorisation.py)."""

from __future__ import annotations

from typing import Any

MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/api/content/items"): "api:loyalty:read",
    ("POST", "/api/content/items"): "api:loyalty:write",
    ("GET", "/api/content/items/{content_id}"): "api:loyalty:read",
    ("PATCH", "/api/content/items/{content_id}"): "api:loyalty:write",
    ("GET", "/api/content/items/{content_id}/link"): "api:loyalty:read",
    ("POST", "/api/content/items/{content_id}/shares"): "api:loyalty:write",
    ("GET", "/api/content/report"): "api:loyalty:read",
    ("GET", "/api/content/recommendations"): "api:loyalty:read",
    ("GET", "/api/content/customers/{customer_id}/recommendations"): "api:loyalty:read",
    ("GET", "/c/{token}"): "public",  # a content link: the signed token is the authority
    ("GET", "/console/loyalty/content"): "console:loyalty.view",
    ("POST", "/console/loyalty/content"): "console:loyalty.write",
    ("GET", "/console/loyalty/content/new"): "console:loyalty.write",
    ("GET", "/console/loyalty/content/recommendations"): "console:loyalty.view",
    ("GET", "/console/loyalty/content/{content_id}"): "console:loyalty.view",
    ("GET", "/console/loyalty/content/{content_id}/chart"): "console:loyalty.view",
    ("GET", "/console/loyalty/content/{content_id}/edit"): "console:loyalty.write",
    ("POST", "/console/loyalty/content/{content_id}"): "console:loyalty.write",
    ("POST", "/console/loyalty/content/{content_id}/status"): "console:loyalty.write",
}

API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/content/items"): {
        "json": {"title_zh": "周末烘焙课", "url": "https://shop.example.com/bake", "idempotency_key": "matrix-item"}
    },
    ("PATCH", "/api/content/items/{content_id}"): {"json": {"title_en": "Weekend baking"}},
    ("POST", "/api/content/items/{content_id}/shares"): {
        "json": {"customer_id": 1, "channel": "wechat", "idempotency_key": "matrix-share"}
    },
    ("GET", "/api/content/recommendations"): {"params": {"segment_id": 0}},
}

PARAMS: dict[str, str] = {"content_id": "1"}
