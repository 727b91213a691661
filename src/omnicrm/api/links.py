"""Tracked links: ``GET /l/{token}`` records the click and redirects to the link's stored destination.

Public: the signed token is the authority. A token that is not ours, was altered, or names a link
that is not registered gets a small 404 page in Chinese and English, never a trace. The redirect
sends no referrer, so the destination does not learn the token.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from omnicrm.campaigns.links import record_click
from omnicrm.errors import InputError, NotFound
from omnicrm.store.state import utcnow

__all__ = ["NOT_FOUND_PAGE", "TRACKED_HEADERS", "router"]

router = APIRouter(tags=["campaigns"])

NOT_FOUND_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>链接无效 / Link not found</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.6}</style>
</head><body><h1>链接无效</h1><p>这个链接无效或已失效，请检查是否完整复制。</p>
<p>This link is not valid or no longer works. Check that it was copied in full.</p></body></html>"""

TRACKED_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


@router.get(
    "/l/{token}", summary="A tracked link: records the click and redirects (public; the token is the authority)"
)
def follow_link(request: Request, token: str) -> Response:
    settings = request.app.state.settings
    try:
        url = record_click(
            request.app.state.state_store, settings.secret_key, token, request.headers.get("user-agent"), utcnow()
        )
    except (InputError, NotFound):
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=TRACKED_HEADERS)
    return RedirectResponse(url, status_code=302, headers=TRACKED_HEADERS)
