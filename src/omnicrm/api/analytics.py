"""Analytics through the API: one endpoint per report of the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from omnicrm.analytics.reports import Analytics
from omnicrm.api.customers import Key
from omnicrm.store.engine import Engine

__all__ = ["router"]

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


async def _report(request: Request, key: Key, pick: Callable[[Analytics], Any]) -> Any:
    key.require("analytics:read")

    def work() -> Any:
        return pick(Analytics(Engine(request.app.state.facts), request.app.state.derived))

    return await run_in_threadpool(work)


@router.get("/repeat-purchase", summary="Repeat-purchase rate, overall and by first-purchase channel")
async def repeat_purchase(request: Request, key: Key) -> Any:
    return await _report(request, key, lambda a: a.repeat_rate())


@router.get("/cohorts", summary="Retention of Double 11 / Double 12 / organic first-time buyers, by channel")
async def cohorts(request: Request, key: Key) -> Any:
    return await _report(request, key, lambda a: {"cohorts": a.cohort_retention()})


@router.get("/rfm", summary="RFM grid: customers and spend per R and F score")
async def rfm(request: Request, key: Key) -> Any:
    return await _report(request, key, lambda a: {"grid": a.rfm_grid()})


@router.get("/clv", summary="Distribution of predicted 1-year value among buyers")
async def clv(request: Request, key: Key) -> Any:
    return await _report(request, key, lambda a: a.clv_distribution())


@router.get("/channels", summary="Channel mix and cross-channel share of buyers")
async def channels(request: Request, key: Key) -> Any:
    return await _report(request, key, lambda a: a.channel_mix())


@router.get("/oneid", summary="OneID: customers, records, merges refused, identifiers ignored, sizes")
async def oneid(request: Request, key: Key) -> Any:
    return await _report(request, key, lambda a: a.oneid())
