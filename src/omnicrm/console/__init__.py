"""The web console: server-rendered pages (Jinja2 + HTMX, ECharts from the package) in Chinese and English."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from omnicrm.console import (
    campaigns,
    catalogue,
    community,
    content,
    customers,
    dashboard,
    giveaways,
    inbox,
    inbox_actions,
    inbox_reports,
    journeys,
    login,
    loyalty,
    loyalty_coupons,
    referrals,
    stored_value,
    till,
)
from omnicrm.console.web import PREFIX, Forbidden, LoginRequired, current, login_redirect, render, security_headers

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Add the console's pages, static files, error pages and security headers to ``app``."""
    app.state.console_reports = {}  # dashboard reports per derived snapshot (see dashboard._report)
    static = resources.files("omnicrm.console").joinpath("static")
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(static)), name="console-static")
    for module in (
        login, dashboard, customers, catalogue, campaigns, journeys, stored_value, content, giveaways, loyalty,
        loyalty_coupons, till, referrals, community, inbox_reports, inbox, inbox_actions,
    ):  # fmt: skip
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        return login_redirect(request)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        page = await current(request)
        key = "error.csrf" if exc.permission == "csrf" else "error.forbidden"
        return render(page, "error.html", status_code=403, message=page.t(key))

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path.startswith(PREFIX):
            security_headers(response, static=request.url.path.startswith(f"{PREFIX}/static/"))
        return response
