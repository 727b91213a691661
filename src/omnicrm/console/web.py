"""What every console page shares: the signed-in user, the language, CSRF checks, templates and headers.

Pages are server-rendered (Jinja2) and enhanced with HTMX. A page asks for a permission with
``Depends(need("segments.view"))``; without a session the browser is sent to the log-in page (an HTMX
request gets ``HX-Redirect``), without the permission it gets a 403 page. Every unsafe request must
carry the session's CSRF token (form field or ``X-CSRF-Token`` header) and, when the browser sends an
``Origin``, come from this site.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from omnicrm.access.sessions import Session, session_for
from omnicrm.access.users import User
from omnicrm.console.i18n import COOKIE as LANG_COOKIE
from omnicrm.console.i18n import LANGUAGES, pick_language, translator

__all__ = [
    "SESSION_COOKIE",
    "Forbidden",
    "LoginRequired",
    "Page",
    "csrf_failed",
    "current",
    "foreign_origin",
    "login_redirect",
    "need",
    "render",
    "security_headers",
    "templates",
]

SESSION_COOKIE = "omnicrm_session"
PREFIX = "/console"

templates = Jinja2Templates(
    env=Environment(loader=PackageLoader("omnicrm.console", "templates"), autoescape=select_autoescape(["html"]))
)


class LoginRequired(Exception):
    """No live session: the browser goes to the log-in page."""


class Forbidden(Exception):
    """The user's role may not do this."""

    def __init__(self, permission: str) -> None:
        super().__init__(permission)
        self.permission = permission


@dataclass
class Page:
    """The request as a page sees it: who, in which language, with which CSRF token."""

    request: Request
    session: Session | None
    lang: str

    @property
    def user(self) -> User | None:
        return self.session.user if self.session else None

    @property
    def t(self) -> Callable[..., str]:
        return translator(self.lang)

    def may(self, permission: str) -> bool:
        return self.user is not None and self.user.may(permission)

    def url_with(self, **changes: Any) -> str:
        """This page's URL with some query parameters changed (for pagers and filters)."""
        params = {**dict(self.request.query_params), **{k: str(v) for k, v in changes.items()}}
        return f"{self.request.url.path}?{urlencode(params)}"

    def context(self, **values: Any) -> dict[str, Any]:
        return {
            "page": self,
            "t": self.t,
            "lang": self.lang,
            "languages": LANGUAGES,
            "user": self.user,
            "csrf_token": self.session.csrf_token if self.session else "",
            "path": self.request.url.path,
            "query": self.request.url.query,
            "url_with": self.url_with,
            **values,
        }


def language(request: Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


async def current(request: Request) -> Page:
    state = request.app.state.state_store
    session = await run_in_threadpool(session_for, state, request.cookies.get(SESSION_COOKIE))
    return Page(request, session, language(request))


def need(permission: str | None = None) -> Callable[[Request], Coroutine[Any, Any, Page]]:
    """A dependency: the page of a signed-in user who may ``permission`` (any signed-in user when None)."""

    async def check(request: Request) -> Page:
        page = await current(request)
        if page.session is None:
            raise LoginRequired()
        if permission is not None and not page.may(permission):
            raise Forbidden(permission)
        if request.method not in ("GET", "HEAD", "OPTIONS") and await csrf_failed(request, page.session):
            raise Forbidden("csrf")
        return page

    return check


def foreign_origin(request: Request) -> bool:
    """True when the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if not origin:
        return False
    return origin.split("://", 1)[-1] != request.headers.get("host", "")


async def csrf_failed(request: Request, session: Session | None) -> bool:
    """True when an unsafe request lacks this session's token or comes from another site."""
    if foreign_origin(request):
        return True
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get("csrf_token") or "")
    return session is None or not session.csrf_ok(sent)


def render(page: Page, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(page.request, template, page.context(**values), status_code=status_code)


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"{PREFIX}/login?next={quote(target, safe='')}"
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def security_headers(response: Response, *, static: bool = False) -> None:
    """Headers on every console response; pages are never cached (they show personal data), files are."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "public, max-age=3600" if static else "no-store")
