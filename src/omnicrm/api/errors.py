"""One JSON error shape for the whole API: ``{"code": ..., "message": ..., "problems"?: [...]}``.

Segment and RudderStack clients read ``code`` and ``message`` from error bodies, so every error —
ours, FastAPI's validation errors and unexpected ones — is rendered in this shape.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from omnicrm.api.responses import JSONBody
from omnicrm.errors import InputError, OmnicrmError, Problem, Unavailable
from omnicrm.logs import get_logger

__all__ = ["error_response", "install_error_handlers", "one_idempotency_key"]

log = get_logger(__name__)


def error_response(exc: OmnicrmError) -> JSONBody:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
    return JSONBody(exc.as_dict(), status_code=exc.status, headers=headers)


def one_idempotency_key(header: str | None, body: str | None) -> str | None:
    """The request's idempotency key, from its ``Idempotency-Key`` header or its body; two different keys are
    refused, since the client would not know which of them a retry must repeat."""
    if header and body and header != body:
        raise InputError(
            "two different idempotency keys", [Problem("the header and the body differ", "idempotency_key")]
        )
    return body or header


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OmnicrmError)
    async def _ours(_: Request, exc: OmnicrmError) -> JSONBody:
        return error_response(exc)

    @app.exception_handler(OperationalError)
    async def _db_busy(_: Request, exc: OperationalError) -> JSONBody:
        log.warning("state database unavailable", error=str(exc.orig))
        return error_response(Unavailable("the state database is busy or unreachable; retry shortly", retry_after=2))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONBody:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONBody({"code": code, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONBody:
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()]
        return JSONBody(
            {"code": "invalid_request", "message": "the request does not match the API", "problems": problems},
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONBody:
        log.exception("unhandled error", error=repr(exc))
        return JSONBody(
            {"code": "internal_error", "message": "an unexpected error happened; it has been logged"},
            status_code=500,
        )
