"""The loyalty API on SQLite and PostgreSQL: rules and tiers as versioned data, earn for an order once, spend at a
till with an idempotency key (and never overdrawn by concurrent tills), audited adjustments, refunds, the liability,
the jobs; coupon templates, issuing by batch key, look-up, the till's preview and redemption, reversal and the
report. Every refusal is a 4xx naming the field, and leaves the ledger as it was."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnicrm.access.api_keys import create_api_key
from omnicrm.api.app import create_app
from omnicrm.api.loyalty_programme import _order_slices
from omnicrm.loyalty.ledger import balance
from omnicrm.settings import load_settings
from omnicrm.store.schema import point_entries
from omnicrm.store.state import StateStore
from tests.loyalty.checks import check_ledger, counts, run

NOW = dt.datetime.now(dt.UTC)
PAID = (NOW - dt.timedelta(days=20)).isoformat()  # past the 15-day return window: active at once
RULES = {"points_per_unit": "1", "channels": {"store": "2"}, "return_window_days": 15, "expire_after_months": 12,
         "point_value": "0.05"}  # fmt: skip
PROGRAMME = {"basis": "points", "window_days": 365, "period_months": 12,
             "tiers": [{"name": "member", "threshold": 0},
                       {"name": "gold", "threshold": 100, "earn_multiplier": "1.5", "coupons": ["gold-welcome"]}]}  # fmt: skip
TEMPLATE = {"id": "gold-welcome", "name": "Gold welcome 20 off 100", "kind": "threshold", "amount_off_fen": 2000,
            "min_spend_fen": 10000, "total_quantity": 5, "per_person_limit": 1, "valid_days": 30}  # fmt: skip


class Api:
    """A client of the app with one key per scope: ``api.read``, ``api.write``, ``api.till``."""

    def __init__(self, client: TestClient, state: StateStore) -> None:
        self.client, self.state = client, state
        self.keys = {s: create_api_key(state, f"{s} key", [s]) for s in ("loyalty:read", "loyalty:write", "till")}

    def call(self, method: str, path: str, scope: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"}
        return self.client.request(method, "/api/loyalty" + path, headers=headers, **kw)

    def ok(self, method: str, path: str, scope: str, status: int = 200, **kw: Any) -> Any:
        res = self.call(method, path, scope, **kw)
        assert res.status_code == status, res.text
        return res.json()

    def refused(self, method: str, path: str, scope: str, status: int, field: str, **kw: Any) -> dict[str, Any]:
        """The call is refused with ``status``, naming ``field``, and the ledger's tables are unchanged."""
        before = counts(self.state)
        res = self.call(method, path, scope, **kw)
        assert res.status_code == status, res.text
        body = res.json()
        fields = [p.get("field", "") for p in body.get("problems", [])]
        assert any(f == field or f.endswith("." + field) for f in fields), body
        assert counts(self.state) == before
        return body  # type: ignore[no-any-return]


@pytest.fixture
def api(state_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = load_settings(data_dir=tmp_path / "data", state_url=state_url, loader_interval_seconds=0)
    with TestClient(create_app(settings)) as client:
        store = client.app.state.state_store  # type: ignore[attr-defined]
        yield Api(client, store)


def test_rules_and_tiers_are_versioned_and_checked(api: Api) -> None:
    assert api.ok("GET", "/rules", "loyalty:read")["version"] == 0  # the defaults, before any are saved
    bad = api.refused("PUT", "/rules", "loyalty:write", 400, "points_per_unit", json={"points_per_unit": "0.001"})
    assert bad["message"] == "the loyalty rules are not valid"
    api.refused("PUT", "/rules", "loyalty:write", 400, "tiers.tiers.1.coupons.0", json={**RULES, "tiers": PROGRAMME})
    api.ok("POST", "/coupon-templates", "loyalty:write", 201, json=TEMPLATE)
    assert api.ok("PUT", "/rules", "loyalty:write", json=RULES)["version"] == 1
    saved = api.ok("PUT", "/tiers", "loyalty:write", params={"base_version": 1}, json=PROGRAMME)
    assert saved["version"] == 2 and [t["name"] for t in saved["programme"]["tiers"]] == ["member", "gold"]
    stale = api.refused("PUT", "/tiers", "loyalty:write", 409, "base_version", params={"base_version": 1},
                        json=PROGRAMME)  # fmt: skip
    assert "version 2, not 1" in stale["message"]
    rules = api.ok("GET", "/rules", "loyalty:read")
    assert (rules["version"], rules["point_value"], rules["channels"]) == (2, "0.05", {"store": "2"})
    api.refused("PUT", "/tiers", "loyalty:write", 400, "tiers.tiers", json={"tiers": []})
    assert api.call("PUT", "/rules", "loyalty:read", json=RULES).status_code == 403


def test_earn_spend_adjust_refund_and_history(api: Api) -> None:
    api.refused("POST", "/members/7/earn", "loyalty:write", 404, "rules",
                json={"source": "tmall", "order_id": "T1", "paid": "123.45", "paid_at": PAID})  # fmt: skip
    api.ok("PUT", "/rules", "loyalty:write", json=RULES)
    order = {"source": "tmall", "order_id": "T1", "paid": "123.45", "paid_at": PAID}
    first = api.ok("POST", "/members/7/earn", "loyalty:write", json=order)
    assert (first["earned"], first["points"], first["lot"]["status"]) == (True, 123, "active")
    again = api.ok("POST", "/members/7/earn", "loyalty:write", json=order)
    assert (again["earned"], again["lot"]["id"]) == (False, first["lot"]["id"])
    api.refused("POST", "/members/8/earn", "loyalty:write", 409, "order_id", json=order)
    api.refused("POST", "/members/7/earn", "loyalty:write", 400, "paid_at",
                json={**order, "order_id": "T2", "paid_at": (NOW + dt.timedelta(hours=1)).isoformat()})  # fmt: skip
    api.refused("POST", "/members/7/earn", "loyalty:write", 400, "paid_at",
                json={**order, "order_id": "T2", "paid_at": "2026-01-01T10:00:00"})  # fmt: skip
    api.refused("POST", "/members/7/earn", "loyalty:write", 422, "paid", json={**order, "paid": "1.234"})
    in_store = api.ok("POST", "/members/7/earn", "loyalty:write",
                      json={"source": "pos", "order_id": "R1", "paid": "10", "channel": "store"})  # fmt: skip
    assert (in_store["points"], in_store["lot"]["status"]) == (20, "pending")  # store x2; inside the return window

    summary = api.ok("GET", "/members/7", "loyalty:read")
    assert summary["balance"] | {"next_expiry": None} == {
        "available": 123, "active": 123, "pending": 20, "overdue": 0, "debt": 0, "total": 143, "next_expiry": None}  # fmt: skip

    spend = {"points": 23, "idempotency_key": "till-1:r-9", "store_code": "SH01", "guide_id": "g7", "receipt": "r-9"}
    spent = api.ok("POST", "/members/7/spend", "till", json=spend)["entry"]
    assert (spent["points"], spent["reference"], spent["recorded_by"]) == (
        -23,
        "r-9",
        "api:till key store:SH01 guide:g7",
    )
    assert api.ok("POST", "/members/7/spend", "till", json=spend)["entry"]["id"] == spent["id"]  # a retry: once
    api.refused("POST", "/members/7/spend", "till", 409, "idempotency_key", json={**spend, "points": 24})
    short = api.refused("POST", "/members/7/spend", "till", 400, "points",
                        json={**spend, "points": 101, "idempotency_key": "till-1:r-10"})  # fmt: skip
    assert short["message"] == "customer 7 does not have 101 points to spend"
    assert "20 points are pending" in short["problems"][1]["reason"]
    api.refused("POST", "/members/7/spend", "till", 422, "store_code", json={**spend, "store_code": ""})
    assert api.call("POST", "/members/7/spend", "loyalty:write", json=spend).status_code == 403

    api.refused("POST", "/members/7/adjust", "loyalty:write", 400, "reason", json={"points": 5, "reason": "  "})
    api.refused("POST", "/members/7/adjust", "loyalty:write", 400, "points", json={"points": 0, "reason": "x"})
    credit = api.ok("POST", "/members/7/adjust", "loyalty:write", json={"points": 50, "reason": "lost parcel"})["entry"]
    assert (credit["points"], credit["reason"], credit["recorded_by"]) == (50, "lost parcel", "api:loyalty:write key")

    page = api.ok("GET", "/members/7/history", "loyalty:read", params={"limit": 2})
    assert [e["kind"] for e in page["entries"]] == ["adjust", "spend"] and page["next_before"] == spent["id"]
    rest = api.ok("GET", "/members/7/history", "loyalty:read", params={"limit": 2, "before": page["next_before"]})
    assert [e["kind"] for e in rest["entries"]] == ["earn", "earn"] and rest["next_before"] is None

    back = api.ok("POST", "/orders/refund", "loyalty:write", json={"source": "tmall", "order_id": "T1"})
    assert back["reversed"] and back["entry"]["points"] == -123
    assert (
        api.ok("POST", "/orders/refund", "loyalty:write", json={"source": "tmall", "order_id": "T1"})["reversed"]
        is False
    )
    api.refused(
        "POST", "/orders/refund", "loyalty:write", 404, "order_id", json={"source": "tmall", "order_id": "nope"}
    )
    b = balance(api.state, 7)
    assert (b.available, b.pending, b.balance) == (123 - 23 + 50 - 123, 20, 123 - 23 + 50 - 123 + 20)
    check_ledger(api.state, 7, NOW + dt.timedelta(seconds=5))
    lots = api.ok("GET", "/members/7/lots", "loyalty:read", params={"open_only": True})["lots"]
    assert sorted((x["source"], x["remaining"]) for x in lots) == [("manual", 27), ("pos", 20)]


def test_concurrent_tills_never_overdraw(api: Api) -> None:
    api.ok("POST", "/members/9/adjust", "loyalty:write", json={"points": 100, "reason": "opening balance"})

    def spend(i: int) -> int:
        body = {"points": 30, "idempotency_key": f"storm-{i % 6}", "store_code": "SH01", "guide_id": f"g{i}"}
        return int(api.call("POST", "/members/9/spend", "till", json=body).status_code)

    codes = run(12, spend)
    assert sorted(codes) == [200] * 6 + [400] * 6  # the 3 keys that spent, each twice (a retry replays)
    with api.state.connect() as conn:
        spends = conn.execute(select(point_entries.c.idempotency_key).where(
            point_entries.c.customer_id == 9, point_entries.c.kind == "spend")).scalars().all()  # fmt: skip
    assert len(spends) == 3 and len(set(spends)) == 3  # 3 x 30 of 100; each key spent once however often retried
    assert balance(api.state, 9).available == 10
    check_ledger(api.state, 9, NOW + dt.timedelta(seconds=5))


def test_tiers_evaluate_with_upgrade_coupons_liability_and_jobs(api: Api) -> None:
    api.ok("POST", "/coupon-templates", "loyalty:write", 201, json=TEMPLATE)
    api.ok("PUT", "/rules", "loyalty:write", json={**RULES, "tiers": PROGRAMME})
    for customer, paid in ((21, "150"), (22, "40")):
        api.ok("POST", f"/members/{customer}/earn", "loyalty:write",
               json={"source": "jd", "order_id": f"J{customer}", "paid": paid, "paid_at": PAID})  # fmt: skip
    done = api.ok("POST", "/tiers/evaluate", "loyalty:write")
    assert done["changes"] == {"upgrade": 1}  # 22 stays in the lowest tier, which needs no change recorded
    assert [(m["customer_id"], m["from"], m["to"]) for m in done["members"]] == [(21, None, "gold")]
    assert (done["coupons"]["issued"], done["coupons"]["refused"]) == (1, 0)
    tiers = api.ok("GET", "/tiers", "loyalty:read")
    assert tiers["members"] == [{"tier": "member", "members": 0}, {"tier": "gold", "members": 1}]
    assert tiers["changes"]["total"] == 1 and tiers["changes"]["rows"][0]["to"] == "gold"
    gold = api.ok("GET", "/members/21", "loyalty:read")
    assert (gold["tier"]["name"], gold["tier"]["earn_multiplier"], gold["tier"]["next"]) == ("gold", "1.5", None)
    assert [c["template_id"] for c in gold["coupons"]] == ["gold-welcome"]
    member = api.ok("GET", "/members/22", "loyalty:read")["tier"]
    assert (member["name"], member["qualifying"], member["to_next"]) == ("member", 40, 60)
    assert api.ok("POST", "/tiers/evaluate", "loyalty:write")["changes"] == {}

    owed = api.ok("GET", "/liability", "loyalty:read")
    assert (owed["outstanding"], owed["outstanding_money"], owed["issued"], owed["balance"]) == (190, "9.50", 190, 190)
    assert [(m["month"], m["points"]) for m in owed["months"]] == [(owed["months"][0]["month"], 190)]

    later = (NOW + dt.timedelta(days=800)).isoformat()
    assert api.ok("POST", "/jobs/activate", "loyalty:write", params={"at": later})["lots"] == 0
    assert api.ok("POST", "/jobs/expire", "loyalty:write", params={"at": later}) == {"members": 2, "lots": 2,
                                                                                     "points": 190}  # fmt: skip
    assert api.ok("POST", "/jobs/expire", "loyalty:write", params={"at": later})["points"] == 0  # idempotent
    assert api.call("POST", "/jobs/award", "loyalty:write").status_code == 404  # no OneID snapshot yet


def test_coupon_templates_issue_till_redeem_reverse_report(api: Api) -> None:
    bad = api.refused("POST", "/coupon-templates", "loyalty:write", 400, "valid_until",
                      json={**TEMPLATE, "valid_days": None})  # fmt: skip
    assert "give valid_until" in bad["message"]
    api.ok("POST", "/coupon-templates", "loyalty:write", 201, json=TEMPLATE)
    api.refused("POST", "/coupon-templates", "loyalty:write", 409, "id", json={**TEMPLATE, "total_quantity": 9})
    listed = api.ok("GET", "/coupon-templates", "loyalty:read")
    assert listed["total"] == 1 and listed["templates"][0]["left"] == 5

    batch = {"key": "welcome-wave-1", "customer_ids": [31, 32, 31]}
    issued = api.ok("POST", "/coupon-templates/gold-welcome/issue", "loyalty:write", json=batch)
    assert (issued["issued"], issued["repeated"], issued["refused"]) == (2, 0, {})
    again = api.ok("POST", "/coupon-templates/gold-welcome/issue", "loyalty:write", json=batch)
    assert (again["issued"], again["repeated"]) == (0, 2)
    assert {c["code"] for c in again["coupons"]} == {c["code"] for c in issued["coupons"]}
    more = api.ok("POST", "/coupon-templates/gold-welcome/issue", "loyalty:write",
                  json={"key": "welcome-wave-2", "customer_ids": [31, 33, 34, 35, 36]})  # fmt: skip
    assert (more["issued"], more["refused"]) == (3, {"per_person_limit": 1, "total_quantity": 1})
    api.refused("POST", "/coupon-templates/none/issue", "loyalty:write", 404, "template_id",
                json={"key": "k", "customer_id": 1})  # fmt: skip
    api.refused("POST", "/coupon-templates/gold-welcome/issue", "loyalty:write", 400, "segment_id", json={"key": "k"})

    code = next(c["code"] for c in issued["coupons"] if c["customer_id"] == 31)
    found = api.ok("GET", "/till/lookup", "till", params={"q": code.lower(), "amount_fen": 12000})
    assert found["coupon"]["preview"] == {"amount_fen": 12000, "eligible_fen": 12000, "discount_fen": 2000,
                                          "to_pay_fen": 10000}  # fmt: skip
    assert [m["customer_id"] for m in found["members"]] == [31]
    api.refused("GET", "/till/lookup", "till", 400, "amount_fen", params={"q": code, "amount_fen": 5000})
    typo = code[:-1] + ("2" if code[-1] != "2" else "3")
    assert (
        api.call("GET", "/till/lookup", "till", params={"q": typo})
        .json()["problems"][0]["reason"]
        .startswith("its check character is wrong")
    )

    till = {"amount_fen": 12000, "order_id": "r-77", "store_code": "SH01", "guide_id": "g7", "customer_id": 31}
    api.refused("POST", f"/coupons/{code}/redeem", "till", 400, "guide_id", json={**till, "guide_id": None})
    api.refused("POST", f"/coupons/{code}/redeem", "till", 400, "customer_id", json={**till, "customer_id": 32})
    done = api.ok("POST", f"/coupons/{code}/redeem", "till", json=till)
    assert (done["discount_fen"], done["to_pay_fen"], done["replayed"]) == (2000, 10000, False)
    assert api.ok("POST", f"/coupons/{code}/redeem", "till", json=till)["replayed"] is True
    used = api.call("POST", f"/coupons/{code}/redeem", "till", json={**till, "order_id": "r-78"})
    assert used.status_code == 409 and "already used" in used.json()["message"]
    assert api.call("POST", f"/coupons/{code}/redeem", "loyalty:write", json=till).status_code == 403
    assert api.ok("GET", f"/coupons/{code}", "loyalty:read")["status"] == "redeemed"

    report = api.ok("GET", "/coupons/report", "loyalty:read")
    assert [(r["key"], r["issued"], r["redeemed"], r["discount_fen"]) for r in report["templates"]] == [
        ("gold-welcome", 5, 1, 2000)]  # fmt: skip
    assert [(g["key"], g["redeemed_here"]) for g in report["guides"]] == [("SH01/g7", 1)]
    back = api.ok("POST", f"/coupons/{code}/reverse", "loyalty:write", json={"order_id": "r-77", "reason": "refund 5"})
    assert back["usable_again"] is True
    assert api.ok("GET", f"/coupons/{code}", "loyalty:read")["status"] == "issued"

    api.ok("PUT", "/rules", "loyalty:write", json=RULES)
    sale = {"customer_id": 31, "receipt": "r-77", "amount": "100.00", "store_code": "SH01", "guide_id": "g7"}
    earned = api.ok("POST", "/till/earn", "till", json=sale)
    assert (earned["earned"], earned["points"], earned["lot"]["source"], earned["lot"]["order_id"]) == (
        True, 200, "pos", "r-77")  # fmt: skip
    assert api.ok("POST", "/till/earn", "till", json=sale)["earned"] is False


def test_a_long_award_is_sliced_between_orders() -> None:
    rows = [("tmall", f"T{i % 7}", c) for i, c in enumerate("abcdefghijklmnopqrstu")] + [("pos", "T1", "v")]
    table = pa.table(
        {"source": [r[0] for r in rows], "order_id": [r[1] for r in rows], "category": [r[2] for r in rows]}
    )
    parts = list(_order_slices(table, 3))
    keys = [{(s, o) for s, o in zip(p["source"].to_pylist(), p["order_id"].to_pylist(), strict=True)} for p in parts]
    assert [len(k) for k in keys] == [3, 3, 2] and sum(p.num_rows for p in parts) == len(rows)
    assert all(a.isdisjoint(b) for i, a in enumerate(keys) for b in keys[i + 1 :])  # no order in two slices
