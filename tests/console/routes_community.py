"""Who may use the community routes (communities, events, sign-ups, check-in), merged into the authorisation matrix.

The API's create requests run before the routes that name their ids (the matrix keeps this order), so in the shared
console merchant community 1 and event 1 exist by then; the event is cancelled last. The console pages run before the
API ones and find nothing at those ids: a permitted role gets a 404 page there, which is what the matrix asks (not
401 or 403). The venue page's ``token`` is the shared matrix's "not-a-token": a 404 page, public.
"""

from __future__ import annotations

from typing import Any

READ, WRITE, TILL = "api:loyalty:read", "api:loyalty:write", "api:till"
VIEW, RUN, CLERK = "console:loyalty.view", "console:loyalty.write", "console:till"
C, E = "/api/community/communities", "/api/community/events"
PAGES = "/console/loyalty/communities"

MATRIX: dict[tuple[str, str], str] = {
    ("POST", C): WRITE,
    ("GET", C): READ,
    ("GET", f"{C}/{{community_id}}"): READ,
    ("PATCH", f"{C}/{{community_id}}"): WRITE,
    ("GET", f"{C}/{{community_id}}/suggestions"): READ,
    ("GET", f"{C}/{{community_id}}/members"): READ,
    ("POST", f"{C}/{{community_id}}/members"): WRITE,
    ("DELETE", f"{C}/{{community_id}}/members/{{customer_id}}"): WRITE,
    ("GET", f"{C}/{{community_id}}/attendance"): READ,
    ("POST", E): WRITE,
    ("GET", E): READ,
    ("GET", f"{E}/{{event_id}}"): READ,
    ("GET", f"{E}/{{event_id}}/signups"): READ,
    ("POST", f"{E}/{{event_id}}/signups"): WRITE,
    ("POST", f"{E}/{{event_id}}/signups/{{customer_id}}/cancel"): WRITE,
    ("GET", f"{E}/{{event_id}}/check-ins"): READ,
    ("GET", f"{E}/{{event_id}}/venue.svg"): READ,
    ("GET", "/api/community/signups/{signup_id}/ticket.svg"): READ,
    ("POST", "/api/community/check-in"): TILL,
    ("POST", f"{E}/{{event_id}}/cancel"): WRITE,
    ("GET", "/e/{token}"): "public",  # the venue's signed token is the authority
    ("POST", "/e/{token}"): "public",  # and a form token, with a rate limit
    ("GET", PAGES): VIEW,
    ("POST", PAGES): RUN,
    ("GET", f"{PAGES}/{{community_id}}"): VIEW,
    ("POST", f"{PAGES}/{{community_id}}/invite"): RUN,
    ("POST", f"{PAGES}/{{community_id}}/status"): RUN,
    ("POST", f"{PAGES}/{{community_id}}/events"): RUN,
    ("GET", f"{PAGES}/events/{{event_id}}"): VIEW,
    ("POST", f"{PAGES}/events/{{event_id}}/signups"): RUN,
    ("POST", f"{PAGES}/events/{{event_id}}/signups/{{customer_id}}/cancel"): RUN,
    ("POST", f"{PAGES}/events/{{event_id}}/cancel"): RUN,
    ("GET", f"{PAGES}/tickets/{{signup_id}}"): VIEW,
    ("GET", "/console/till/check-in"): CLERK,
    ("POST", "/console/till/check-in"): CLERK,
}

API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", C): {"json": {"name_zh": "矩阵烘焙社", "name_en": "Matrix bakers", "interests": ["baking"]}},
    ("PATCH", f"{C}/{{community_id}}"): {"json": {"status": "active"}},
    ("POST", f"{C}/{{community_id}}/members"): {"json": {"customer_ids": [1]}},
    ("POST", E): {
        "json": {
            "community_id": 1,
            "title_zh": "矩阵烘焙课",
            "venue": "一楼活动区",
            "starts_at": "2099-01-01T10:00:00+08:00",
            "ends_at": "2099-01-01T12:00:00+08:00",
            "capacity": 5,
        }
    },
    ("POST", f"{E}/{{event_id}}/signups"): {"json": {"customer_id": 1}},
    ("POST", "/api/community/check-in"): {"json": {"ticket": "not-a-ticket"}},
    ("POST", f"{E}/{{event_id}}/cancel"): {"json": {"reason": "matrix"}},
}

PARAMS: dict[str, str] = {"community_id": "1", "event_id": "1", "signup_id": "1"}
