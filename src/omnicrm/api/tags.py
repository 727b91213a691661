"""Tags through the API: the catalogue, a customer's tags with reasons, and manual tag values."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from omnicrm.api.customers import Key
from omnicrm.portrait import explain
from omnicrm.portrait.refresh import catalogue
from omnicrm.portrait.tags import custom

__all__ = ["router"]

router = APIRouter(tags=["tags"])


class ManualValue(BaseModel):
    value: Any = Field(description='in the tag\'s type: true, 3, "VIP", ["a", "b"]')
    note: str | None = Field(default=None, description="why (kept with the value)")


@router.get("/api/tags", summary="Every tag: names in zh and en, category, value type, inputs, origin")
def list_tags(request: Request, key: Key) -> dict[str, Any]:
    key.require("customers:read")
    return {"tags": [d.describe() for d in catalogue(request.app.state.state_store)]}


@router.get("/api/customers/{customer_id}/tags", summary="A customer's tags, each with its inputs and when computed")
def customer_tags(request: Request, key: Key, customer_id: int) -> dict[str, Any]:
    key.require("customers:read")
    derived = request.app.state.derived
    return explain.customer_tags(
        derived.current("portrait"), derived.current("identity"), customer_id, request.app.state.state_store
    ).as_dict()


@router.put("/api/customers/{customer_id}/tags/{tag_id}", summary="Set a manual tag on a customer")
def set_manual(request: Request, key: Key, customer_id: int, tag_id: str, body: ManualValue) -> dict[str, Any]:
    key.require("customers:write")
    custom.set_manual(
        request.app.state.state_store, customer_id, tag_id, body.value, by=f"api:{key.name}", note=body.note
    )
    return {"customer_id": customer_id, "tag": tag_id, "value": body.value}


@router.delete("/api/customers/{customer_id}/tags/{tag_id}", summary="Remove a manual tag from a customer")
def clear_manual(request: Request, key: Key, customer_id: int, tag_id: str) -> dict[str, Any]:
    key.require("customers:write")
    return {"cleared": custom.clear_manual(request.app.state.state_store, customer_id, tag_id)}
