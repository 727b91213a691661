"""Log in, log out and switch language.

The log-in form is protected against cross-site posting by a double-submit token (a cookie and a form
field that must match) before any session exists; after log-in, the session's own CSRF token takes over.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.access.sessions import SESSION_HOURS, LoginThrottled, end_session, log_in
from omnicrm.console.i18n import COOKIE as LANG_COOKIE
from omnicrm.console.i18n import LANGUAGES
from omnicrm.console.web import PREFIX, SESSION_COOKIE, Page, current, foreign_origin, need, render
from omnicrm.errors import AuthError

__all__ = ["home_of", "router"]

router = APIRouter(prefix=PREFIX)
LOGIN_COOKIE = "omnicrm_login_csrf"


def _safe_next(target: str | None) -> str | None:
    """Only a path inside the console (never another site, never ``//host``)."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def home_of(page: Page) -> str:
    if page.may("dashboard"):
        return f"{PREFIX}/"
    return f"{PREFIX}/customers"


def _login_form(page: Page, *, error: str | None = None, status: int = 200, username: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        page, "login.html", status_code=status, login_token=token, error=error, username=username,
        next=_safe_next(page.request.query_params.get("next")) or "",
    )  # fmt: skip
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, secure=True, samesite="strict", path=f"{PREFIX}/login")
    return response


@router.get("/login", include_in_schema=False)
async def login_page(page: Annotated[Page, Depends(current)]) -> Response:
    if page.session is not None:
        return RedirectResponse(home_of(page), status_code=303)
    return _login_form(page)


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    page: Annotated[Page, Depends(current)],
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    login_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, login_token) or foreign_origin(request):
        return _login_form(page, error=page.t("login.expired"), status=403, username=username)
    address = request.client.host if request.client else "unknown"
    try:
        session = await run_in_threadpool(log_in, request.app.state.state_store, username, password, address)
    except LoginThrottled as exc:
        response = _login_form(page, error=page.t("login.throttled", minutes=max(1, exc.retry_after // 60)),
                               status=429, username=username)  # fmt: skip
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthError:
        return _login_form(page, error=page.t("login.wrong"), status=401, username=username)
    page.session = session
    response = RedirectResponse(_safe_next(next) or home_of(page), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session.token, max_age=SESSION_HOURS * 3600, httponly=True, secure=True, samesite="lax",
        path=PREFIX,
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, page: Annotated[Page, Depends(need())]) -> Response:
    await run_in_threadpool(end_session, request.app.state.state_store, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/lang/{code}", include_in_schema=False)
async def switch_language(code: str, request: Request) -> Response:
    """Keep the chosen language and go back where the user was (a preference, not a change of data)."""
    target = _safe_next(request.query_params.get("next")) or f"{PREFIX}/"
    response = RedirectResponse(target, status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", path="/", secure=True)
    return response
