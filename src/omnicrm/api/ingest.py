"""Segment-compatible ingest: POST /v1/identify, track, page, screen, group, alias and batch.

200 ``{"success": true}`` only after the request's messages are committed in the ingest buffer.
A request with some bad messages commits the good ones and answers 400 naming each bad message's
index and field (the bad ones are quarantined). Retrying a request is always safe: messageIds are
deduplicated per source.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from omnicrm.api.responses import JSONBody
from omnicrm.errors import PayloadTooLarge
from omnicrm.ingest.receive import ENDPOINTS, Receiver

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["ingest"])


async def get_receiver(request: Request) -> Receiver:
    receiver: Receiver = request.app.state.receiver
    return receiver


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request is over the limit of {limit:,} bytes; send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/{endpoint}", summary="Send Segment-spec messages", responses={400: {}, 401: {}, 413: {}, 503: {}})
async def ingest(
    endpoint: str,
    request: Request,
    receiver: Annotated[Receiver, Depends(get_receiver)],
    content_encoding: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONBody:
    if endpoint not in ENDPOINTS:
        return JSONBody(
            {"code": "not_found", "message": f"unknown endpoint /v1/{endpoint}; use one of {', '.join(ENDPOINTS)}"},
            status_code=404,
        )
    body = await _read_limited(request, receiver.max_batch_bytes)
    result = await run_in_threadpool(
        receiver.receive, endpoint, body, content_encoding=content_encoding, authorization=authorization
    )
    if result.rejected:
        bad = sorted({p.index for p in result.rejected if p.index is not None})
        count = len(bad) or 1
        return JSONBody(
            {
                "code": "invalid_messages",
                "message": f"{count} message(s) rejected and quarantined; {result.accepted} accepted "
                f"({result.duplicates} already received)",
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "problems": [p.as_dict() for p in result.rejected],
            },
            status_code=400,
        )
    return JSONBody({"success": True, "accepted": result.accepted, "duplicates": result.duplicates})
