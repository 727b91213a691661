"""Who may use the loyalty routes (points, tiers, liability, coupons, the till), merged into the authorisation matrix.

The API inputs are valid requests that change nothing in the shared console merchant: it has no loyalty rules, so
earning stops at "no rules", and spends, adjustments and redemptions find nothing to take.
"""

from __future__ import annotations

from typing import Any

READ, WRITE, TILL = "api:loyalty:read", "api:loyalty:write", "api:till"
VIEW, RUN, CLERK = "console:loyalty.view", "console:loyalty.write", "console:till"

MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/api/loyalty/members/{customer_id}"): READ,
    ("GET", "/api/loyalty/members/{customer_id}/lots"): READ,
    ("GET", "/api/loyalty/members/{customer_id}/history"): READ,
    ("POST", "/api/loyalty/members/{customer_id}/earn"): WRITE,
    ("POST", "/api/loyalty/members/{customer_id}/spend"): TILL,
    ("POST", "/api/loyalty/members/{customer_id}/adjust"): WRITE,
    ("POST", "/api/loyalty/orders/refund"): WRITE,
    ("GET", "/api/loyalty/rules"): READ,
    ("PUT", "/api/loyalty/rules"): WRITE,
    ("GET", "/api/loyalty/tiers"): READ,
    ("PUT", "/api/loyalty/tiers"): WRITE,
    ("POST", "/api/loyalty/tiers/evaluate"): WRITE,
    ("GET", "/api/loyalty/liability"): READ,
    ("POST", "/api/loyalty/jobs/award"): WRITE,
    ("POST", "/api/loyalty/jobs/activate"): WRITE,
    ("POST", "/api/loyalty/jobs/expire"): WRITE,
    ("GET", "/api/loyalty/coupon-templates"): READ,
    ("POST", "/api/loyalty/coupon-templates"): WRITE,
    ("GET", "/api/loyalty/coupon-templates/{coupon_template_id}"): READ,
    ("POST", "/api/loyalty/coupon-templates/{coupon_template_id}/issue"): WRITE,
    ("GET", "/api/loyalty/coupons/report"): READ,
    ("GET", "/api/loyalty/coupons/{coupon_code}"): READ,
    ("POST", "/api/loyalty/coupons/{coupon_code}/redeem"): TILL,
    ("POST", "/api/loyalty/coupons/{coupon_code}/reverse"): WRITE,
    ("GET", "/api/loyalty/till/lookup"): TILL,
    ("POST", "/api/loyalty/till/earn"): TILL,
    ("GET", "/console/loyalty"): VIEW,
    ("GET", "/console/loyalty/members"): VIEW,
    ("GET", "/console/loyalty/members/{customer_id}"): VIEW,
    ("POST", "/console/loyalty/members/{customer_id}/adjust"): RUN,
    ("GET", "/console/loyalty/tiers"): VIEW,
    ("POST", "/console/loyalty/tiers/evaluate"): RUN,
    ("GET", "/console/loyalty/liability"): VIEW,
    ("GET", "/console/loyalty/liability/chart"): VIEW,
    ("GET", "/console/loyalty/coupons"): VIEW,
    ("POST", "/console/loyalty/coupons/templates"): RUN,
    ("POST", "/console/loyalty/coupons/issue"): RUN,
    ("GET", "/console/loyalty/coupons/report"): VIEW,
    ("GET", "/console/till"): CLERK,
    ("POST", "/console/till/redeem/preview"): CLERK,
    ("POST", "/console/till/redeem"): CLERK,
    ("POST", "/console/till/earn"): CLERK,
    ("POST", "/console/till/spend"): CLERK,
}

API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/loyalty/members/{customer_id}/earn"): {
        "json": {"source": "matrix", "order_id": "matrix-1", "paid": "1.00"}
    },
    ("POST", "/api/loyalty/members/{customer_id}/spend"): {
        "json": {"points": 1, "idempotency_key": "matrix", "store_code": "S1", "guide_id": "g1"}
    },
    ("POST", "/api/loyalty/members/{customer_id}/adjust"): {"json": {"points": -1, "reason": "matrix"}},
    ("POST", "/api/loyalty/orders/refund"): {"json": {"source": "matrix", "order_id": "none"}},
    ("PUT", "/api/loyalty/rules"): {"json": {"points_per_unit": -1}},
    ("PUT", "/api/loyalty/tiers"): {"json": {"tiers": []}},
    ("POST", "/api/loyalty/coupon-templates"): {
        "json": {"id": "matrix", "name": "matrix", "kind": "amount_off", "amount_off_fen": 100, "total_quantity": 1}
    },
    ("POST", "/api/loyalty/coupon-templates/{coupon_template_id}/issue"): {
        "json": {"key": "matrix", "customer_ids": [1]}
    },
    ("POST", "/api/loyalty/coupons/{coupon_code}/redeem"): {
        "json": {"amount_fen": 100, "store_code": "S1", "guide_id": "g1"}
    },
    ("POST", "/api/loyalty/coupons/{coupon_code}/reverse"): {"json": {"order_id": "matrix", "reason": "matrix"}},
    ("GET", "/api/loyalty/till/lookup"): {"params": {"q": "13900000000"}},
    ("POST", "/api/loyalty/till/earn"): {
        "json": {"customer_id": 1, "receipt": "matrix", "amount": "1.00", "store_code": "S1", "guide_id": "g1"}
    },
}

PARAMS: dict[str, str] = {"coupon_template_id": "matrix", "coupon_code": "MATRIX"}
