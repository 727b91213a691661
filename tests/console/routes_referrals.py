"""Who may use the referral routes: the API (loyalty scopes), the public link landing and the console page."""

from __future__ import annotations

from typing import Any

MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/api/loyalty/referrals/programme"): "api:loyalty:read",
    ("PUT", "/api/loyalty/referrals/programme"): "api:loyalty:write",
    ("GET", "/api/loyalty/referrals/members/{customer_id}"): "api:loyalty:read",
    ("GET", "/api/loyalty/referrals/members/{customer_id}/qr.svg"): "api:loyalty:read",
    ("POST", "/api/loyalty/referrals"): "api:loyalty:write",
    ("GET", "/api/loyalty/referrals"): "api:loyalty:read",
    ("GET", "/api/loyalty/referrals/report"): "api:loyalty:read",
    ("POST", "/api/loyalty/referrals/settle"): "api:loyalty:write",
    ("GET", "/r/{referral_code}"): "public",  # a member's referral link: the code is the authority
    ("GET", "/console/loyalty/referrals"): "console:loyalty.view",
    ("POST", "/console/loyalty/referrals/programme"): "console:loyalty.write",
}

# valid requests (they reach the scope check; with it, an unknown code or an empty programme is refused as input)
API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/loyalty/referrals/programme"): {"json": {"programme": {}, "note": "matrix"}},
    ("POST", "/api/loyalty/referrals"): {
        "json": {"code": "23456789AB", "referee": {"type": "phone", "value": "13912345678"}}
    },
}

PARAMS: dict[str, str] = {"referral_code": "23456789AB"}
