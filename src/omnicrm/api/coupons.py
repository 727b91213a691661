"""The coupon service inside omnicrm, in the shape the campaigns' coupon channel speaks.

``POST /coupons/issue`` with ``{template_id, customer_id, idempotency_key, campaign_id}`` (and the key again in
the ``Idempotency-Key`` header) issues one coupon; the same key always hands back the same coupon, so a retried
or recovered send never issues two. A configured channel ``kind = "coupon"`` whose ``base_url`` is omnicrm's own
address and whose ``credentials.token`` is an API key with ``coupons:write`` issues from here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.coupons import issue

__all__ = ["router"]

router = APIRouter(tags=["coupons"])


class IssueRequest(BaseModel):
    template_id: str = Field(min_length=1, max_length=64)
    customer_id: int = Field(description="the OneID customer the coupon is for")
    idempotency_key: str = Field(min_length=1, max_length=255, description="the same key, the same coupon")
    campaign_id: str | None = Field(default=None, max_length=64)


def _refused(code: str, exc: InputError | Conflict | NotFound) -> JSONResponse:
    fields = [p.field for p in exc.problems if p.field]
    return JSONResponse({"code": code, "field": fields[0] if fields else None, "message": exc.message},
                        status_code=422)  # fmt: skip


@router.post("/coupons/issue", summary="Issue one coupon (idempotent by key); the coupon channel's counterpart")
async def issue_coupon(
    request: Request, key: Key, body: IssueRequest,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:  # fmt: skip
    key.require("coupons:write")
    if idempotency_key is not None and idempotency_key != body.idempotency_key:
        problem = Problem("the header and the body name different keys", field="idempotency_key")
        return _refused("key_mismatch", InputError("two different idempotency keys", [problem]))
    state = request.app.state.state_store
    try:
        coupon = await run_in_threadpool(
            issue, state, body.template_id, body.customer_id, idempotency_key=body.idempotency_key,
            by=f"api:{key.name}", campaign_id=body.campaign_id,
        )  # fmt: skip
    except NotFound as exc:
        return _refused("unknown_template", exc)
    except Conflict as exc:
        return _refused("refused", exc)
    except InputError as exc:
        return _refused("invalid", exc)
    return {"coupon_id": coupon.code, "status": "issued", "template_id": coupon.template_id,
            "expires_at": coupon.expires_at.isoformat()}  # fmt: skip
