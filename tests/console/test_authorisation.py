"""The authorisation matrix: every route of the app × every console role, every API scope and anonymous.

Each route is declared here with what guards it: a console permission, an API scope, a source write key,
or nothing (public). The test fails when the app has a route this table does not declare, so a new route
cannot ship without a decision about who may use it. An area of the product may declare its routes in its own
``tests/console/routes_<area>.py`` (``MATRIX``, ``API_INPUTS`` and path ``PARAMS`` dicts); they are merged here.

Outcomes: anonymous console requests go to log-in (303); a role without the permission gets 403; with it,
anything but 401/403. API requests without a key get 401; a key with every other scope (not admin) gets
403; a key with the scope (or admin) gets anything but 401/403.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from omnicrm.access.api_keys import SCOPES, create_api_key
from omnicrm.access.users import ROLES
from omnicrm.portrait.refresh import catalogue
from omnicrm.portrait.tags.custom import define_tag
from omnicrm.segments import saved
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.store.engine import Engine
from tests.console.accounts import as_role, console_app, console_users, csrf_of, fresh_client

__all__ = ["as_role", "console_app", "console_users"]

PUBLIC = "public"
WRITE_KEY = "write key"
LOGIN_FORM = "log-in form token"  # anyone, but only with the form's double-submit token

# (method, path) → "console:<permission>" (None: any signed-in user), "api:<scope>", WRITE_KEY or PUBLIC
MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("POST", "/v1/{endpoint}"): WRITE_KEY,
    ("GET", "/api/customers/lookup"): "api:customers:read",
    ("GET", "/api/customers/{customer_id}"): "api:customers:read",
    ("GET", "/api/customers/{customer_id}/360"): "api:customers:read",
    ("POST", "/api/customers/join"): "api:customers:write",
    ("POST", "/api/customers/{customer_id}/split"): "api:customers:write",
    ("GET", "/api/tags"): "api:customers:read",
    ("GET", "/api/customers/{customer_id}/tags"): "api:customers:read",
    ("PUT", "/api/customers/{customer_id}/tags/{tag_id}"): "api:customers:write",
    ("DELETE", "/api/customers/{customer_id}/tags/{tag_id}"): "api:customers:write",
    ("POST", "/api/segments/count"): "api:segments:read",
    ("GET", "/api/segments"): "api:segments:read",
    ("POST", "/api/segments"): "api:segments:write",
    ("GET", "/api/segments/{segment_id}"): "api:segments:read",
    ("PATCH", "/api/segments/{segment_id}"): "api:segments:write",
    ("DELETE", "/api/segments/{segment_id}"): "api:segments:write",
    ("GET", "/api/segments/{segment_id}/members"): "api:segments:read",
    ("POST", "/api/segments/{segment_id}/snapshots"): "api:segments:write",
    ("GET", "/api/segments/{segment_id}/diff"): "api:segments:read",
    ("GET", "/api/segments/{segment_id}/export.csv"): "api:segments:read",
    ("POST", "/api/segments/overlap"): "api:segments:read",
    ("GET", "/api/analytics/repeat-purchase"): "api:analytics:read",
    ("GET", "/api/analytics/cohorts"): "api:analytics:read",
    ("GET", "/api/analytics/rfm"): "api:analytics:read",
    ("GET", "/api/analytics/clv"): "api:analytics:read",
    ("GET", "/api/analytics/channels"): "api:analytics:read",
    ("GET", "/api/analytics/oneid"): "api:analytics:read",
    ("POST", "/api/consents"): "api:consents:write",
    ("GET", "/api/consents"): "api:consents:read",
    ("PUT", "/api/consents/personalisation"): "api:consents:write",
    ("POST", "/api/consents/sms-replies"): "api:consents:write",
    ("GET", "/api/customers/{customer_id}/consents"): "api:consents:read",
    ("GET", "/api/campaigns"): "api:campaigns:read",
    ("POST", "/api/campaigns"): "api:campaigns:write",
    ("GET", "/api/campaigns/{campaign_id}"): "api:campaigns:read",
    ("POST", "/api/campaigns/{campaign_id}/launch"): "api:campaigns:write",
    ("POST", "/api/campaigns/{campaign_id}/cancel"): "api:campaigns:write",
    ("GET", "/api/campaigns/{campaign_id}/recipients"): "api:campaigns:read",
    ("GET", "/api/campaigns/{campaign_id}/results"): "api:campaigns:read",
    ("GET", "/api/campaigns/results/channels"): "api:campaigns:read",
    ("POST", "/api/campaigns/{campaign_id}/in-doubt"): "api:campaigns:write",
    ("GET", "/api/journeys"): "api:campaigns:read",
    ("POST", "/api/journeys"): "api:campaigns:write",
    ("GET", "/api/journeys/{journey_id}"): "api:campaigns:read",
    ("POST", "/api/journeys/{journey_id}/start"): "api:campaigns:write",
    ("POST", "/api/journeys/{journey_id}/stop"): "api:campaigns:write",
    ("POST", "/coupons/issue"): "api:coupons:write",
    ("GET", "/l/{token}"): PUBLIC,  # a tracked link: the signed token is the authority
    ("GET", "/u/{token}"): PUBLIC,  # the signed token is the authority
    ("POST", "/u/{token}"): PUBLIC,
    ("GET", "/wechat/{appid}/events"): PUBLIC,  # WeChat's signature is the authority
    ("POST", "/wechat/{appid}/events"): PUBLIC,
    ("POST", "/sms/aliyun/{token}/up"): PUBLIC,  # the secret address is the authority (SmsUp has no signature)
    ("GET", "/console/static"): PUBLIC,
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): LOGIN_FORM,
    ("GET", "/console/lang/{code}"): PUBLIC,
    ("POST", "/console/logout"): "console:",
    ("GET", "/console/"): "console:",
    ("GET", "/console/charts/{name}"): "console:dashboard",
    ("GET", "/console/customers"): "console:customers.search",
    ("GET", "/console/customers/{customer_id}"): "console:customers.view",
    ("GET", "/console/customers/{customer_id}/timeline"): "console:customers.view",
    ("POST", "/console/customers/{customer_id}/tags"): "console:customers.tag",
    ("GET", "/console/tags"): "console:tags.view",
    ("GET", "/console/segments"): "console:segments.view",
    ("POST", "/console/segments/count"): "console:segments.view",
    ("POST", "/console/segments"): "console:segments.write",
    ("GET", "/console/users"): "console:users.view",
    ("GET", "/console/campaigns"): "console:campaigns.view",
    ("GET", "/console/campaigns/new"): "console:campaigns.write",
    ("POST", "/console/campaigns"): "console:campaigns.write",
    ("GET", "/console/campaigns/channels"): "console:campaigns.view",
    ("GET", "/console/campaigns/channels/chart"): "console:campaigns.view",
    ("GET", "/console/campaigns/{campaign_id}"): "console:campaigns.view",
    ("GET", "/console/campaigns/{campaign_id}/chart"): "console:campaigns.view",
    ("POST", "/console/campaigns/{campaign_id}/launch"): "console:campaigns.write",
    ("POST", "/console/campaigns/{campaign_id}/cancel"): "console:campaigns.write",
    ("GET", "/console/journeys"): "console:campaigns.view",
    ("GET", "/console/journeys/new"): "console:campaigns.write",
    ("POST", "/console/journeys"): "console:campaigns.write",
    ("GET", "/console/journeys/{journey_id}"): "console:campaigns.view",
    ("POST", "/console/journeys/{journey_id}/start"): "console:campaigns.write",
    ("POST", "/console/journeys/{journey_id}/stop"): "console:campaigns.write",
}


# valid inputs, so that a request reaches the handler's scope check rather than stopping at validation
API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/customers/lookup"): {"params": {"type": "phone", "value": "13912345678"}},
    ("POST", "/api/customers/join"): {"json": {"customer_a": 0, "customer_b": 0, "reason": "matrix"}},
    ("POST", "/api/customers/{customer_id}/split"): {"json": {"detach": ["phone::+8613912345678"], "reason": "m"}},
    ("PUT", "/api/customers/{customer_id}/tags/{tag_id}"): {"json": {"value": "x"}},
    ("POST", "/api/segments/count"): {"json": {"text": "monetary > 0"}},
    ("POST", "/api/segments"): {"json": {"name": "matrix api", "text": "monetary > 0"}},
    ("PATCH", "/api/segments/{segment_id}"): {"json": {"name": "matrix renamed"}},
    ("GET", "/api/segments/{segment_id}/diff"): {"params": {"before": 0, "after": 0}},
    ("POST", "/api/segments/overlap"): {"json": [0]},
    ("POST", "/api/consents"): {
        "json": {
            "subject": "phone::+8613912345678",
            "channel": "sms",
            "purpose": "marketing",
            "status": "withdrawn",
            "source": "staff",
        }
    },
    ("GET", "/api/consents"): {"params": {"subject": "phone::+8613912345678"}},
    ("PUT", "/api/consents/personalisation"): {
        "json": {"subject": "phone::+8613912345678", "non_personalised": False, "source": "staff"}
    },
    ("POST", "/api/consents/sms-replies"): {"json": {"phone": "13912345678", "text": "hello"}},
    ("POST", "/api/campaigns"): {
        "json": {"name": "matrix", "segment_id": 0, "channel": "none", "content": {"zh": {"body": "hi"}}}
    },
    ("POST", "/api/campaigns/{campaign_id}/in-doubt"): {"json": {"decision": "resend"}},
    ("POST", "/coupons/issue"): {"json": {"template_id": "none", "customer_id": 1, "idempotency_key": "matrix"}},
    ("POST", "/api/journeys"): {
        "json": {
            "name": "matrix",
            "trigger": {"type": "first_order"},
            "steps": [{"after_days": 3, "channel": "none", "content": {"zh": {"body": "hi"}}}],
        }
    },
}

AREA_PARAMS: dict[str, str] = {}
for _area in sorted(Path(__file__).parent.glob("routes_*.py")):
    _module = importlib.import_module(f"tests.console.{_area.stem}")
    _twice = (MATRIX.keys() & getattr(_module, "MATRIX", {}).keys()) | (
        AREA_PARAMS.keys() & getattr(_module, "PARAMS", {}).keys()
    )
    assert not _twice, f"{_area.name} declares again: {sorted(_twice)}"
    MATRIX.update(getattr(_module, "MATRIX", {}))
    API_INPUTS.update(getattr(_module, "API_INPUTS", {}))
    AREA_PARAMS.update(getattr(_module, "PARAMS", {}))


def app_routes(app: Any) -> Iterator[tuple[str, str]]:
    def walk(routes: list[Any]) -> Iterator[Any]:
        for r in routes:
            if hasattr(r, "original_router"):  # routers included by FastAPI
                yield from walk(r.original_router.routes)
            else:
                yield r

    for route in walk(app.routes):
        if isinstance(route, Mount):
            yield "GET", route.path
        elif isinstance(route, APIRoute | Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path


@pytest.fixture(scope="module")
def params(console_app: TestClient) -> dict[str, str]:
    """Real values for the path parameters, so a permitted request reaches the handler."""
    app_state = console_app.app.state  # type: ignore[attr-defined]
    snap = app_state.derived.current("identity")
    customer = duckdb.sql(f"SELECT min(customer_id) FROM '{snap / 'records.parquet'}'").fetchall()[0][0]
    engine = SegmentEngine(Engine(app_state.facts), app_state.derived)
    segment = saved.create_segment(
        app_state.state_store, engine, name="matrix", rule={"tag": "monetary", "op": ">", "value": 0}, by="test"
    )
    known = {d.id: d.value_type for d in catalogue(app_state.state_store)}
    if "matrix_note" not in known:
        define_tag(app_state.state_store, known, tag_id="matrix_note", name_zh="备注", name_en="note",
                   value_type="category", by="test")  # fmt: skip
    return {
        "customer_id": str(customer),
        "segment_id": str(segment.id),
        "tag_id": "matrix_note",
        "name": "repeat",
        "code": "en",
        "endpoint": "track",
        "token": "not-a-token",
        "appid": "wxmatrix",
        "campaign_id": "0",
        "journey_id": "0",
        **AREA_PARAMS,
    }


def _url(path: str, params: dict[str, str]) -> str:
    if path == "/console/static":
        return "/console/static/console.css"
    return re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], path)


def test_every_route_is_in_the_matrix(console_app: TestClient) -> None:
    routes = set(app_routes(console_app.app))
    assert routes - MATRIX.keys() == set(), "declare who may use these routes in MATRIX"
    assert MATRIX.keys() - routes == set(), "MATRIX names routes the app no longer has"


CONSOLE = [(m, p, g.split(":", 1)[1]) for (m, p), g in MATRIX.items() if g.startswith("console:")]
API = [(m, p, g.split(":", 1)[1]) for (m, p), g in MATRIX.items() if g.startswith("api:")]


@pytest.mark.parametrize(("method", "path", "permission"), CONSOLE, ids=[f"{m} {p}" for m, p, _ in CONSOLE])
def test_console_route_by_role(
    console_app: TestClient,
    as_role: Callable[[str], TestClient],
    params: dict[str, str],
    method: str,
    path: str,
    permission: str,
) -> None:
    url = _url(path, params)
    anonymous = fresh_client(console_app).request(method, url, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/console/login"), (
        f"anonymous {method} {url}: {anonymous.status_code}"
    )
    outcomes = {}
    for role in ROLES:
        client = as_role(role)
        body = {"csrf_token": csrf_of(client)} if method != "GET" else None
        if path == "/console/logout":
            continue  # logging out ends the shared session; test_pages covers it
        res = client.request(method, url, data=body, follow_redirects=False)
        outcomes[role] = res.status_code
        allowed = not permission or permission in ROLES[role]
        if allowed:
            assert res.status_code not in (401, 403), f"{role} {method} {url}: {res.status_code} {res.text[:300]}"
        else:
            assert res.status_code == 403, f"{role} {method} {url} should be refused: {res.status_code}"


@pytest.mark.parametrize(("method", "path", "scope"), API, ids=[f"{m} {p}" for m, p, _ in API])
def test_api_route_by_scope(
    console_app: TestClient, params: dict[str, str], method: str, path: str, scope: str
) -> None:
    state = console_app.app.state.state_store  # type: ignore[attr-defined]
    url = _url(path, params)
    inputs = API_INPUTS.get((method, path), {})
    if "json" in inputs and path == "/api/segments/overlap":
        inputs = {"json": [int(params["segment_id"])]}
    assert console_app.request(method, url, **inputs).status_code == 401, f"anonymous {method} {url}"
    others = [s for s in SCOPES if s not in (scope, "admin")]
    wrong = create_api_key(state, "others", others)
    res = console_app.request(method, url, headers={"Authorization": f"Bearer {wrong}"}, **inputs)
    assert res.status_code == 403, f"{method} {url} with {others}: {res.status_code} {res.text[:200]}"
    for granted in ([scope], ["admin"]):
        key = create_api_key(state, "granted", granted)
        res = console_app.request(method, url, headers={"Authorization": f"Bearer {key}"}, **inputs)
        assert res.status_code not in (401, 403), f"{method} {url} with {granted}: {res.status_code} {res.text[:200]}"


def test_public_and_write_key_routes(console_app: TestClient, params: dict[str, str]) -> None:
    for (method, path), guard in MATRIX.items():
        url = _url(path, params)
        body = {"json": {"userId": "u1", "event": "Matrix Checked"}} if guard == WRITE_KEY else {}
        res = fresh_client(console_app).request(method, url, follow_redirects=False, **body)
        if guard == PUBLIC:
            assert res.status_code not in (401, 403), f"{method} {url}: {res.status_code}"
        elif guard == WRITE_KEY:
            assert res.status_code == 401, f"{method} {url} without a write key: {res.status_code}"
        elif guard == LOGIN_FORM:
            assert res.status_code == 403, f"{method} {url} without the form's token: {res.status_code}"
