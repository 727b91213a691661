"""Receiving one Segment-compatible request: size limits, gzip, JSON, write key, per-message checks.

Framework-free, so the HTTP router stays thin and the same path can be driven from tests or other
transports. Whole-request failures raise omnicrm errors; per-message failures are quarantined.
"""

from __future__ import annotations

import base64
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from omnicrm.errors import InputError, PayloadTooLarge, Problem, Unavailable
from omnicrm.ingest.buffer import AcceptResult, Rejected, accept
from omnicrm.ingest.segment import TYPES, Message, normalise
from omnicrm.ingest.sources import SourceKeys
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Receiver", "basic_auth_user", "decode_body"]

ENDPOINTS = (*TYPES, "batch")


def basic_auth_user(header: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header (Segment/Rudder put the write key there)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InputError("the Authorization header is not valid HTTP Basic (base64 of 'writeKey:')") from None
    return decoded.split(":", 1)[0] or None


def decode_body(body: bytes, *, encoding: str | None, limit: int) -> bytes:
    """Un-gzip (if so encoded) with a hard limit on the decompressed size."""
    if encoding and encoding.lower() not in ("gzip", "identity", "x-gzip"):
        raise InputError(f"Content-Encoding '{encoding}' is not supported; send gzip or plain JSON")
    if encoding and encoding.lower() in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise InputError(f"the body says Content-Encoding: gzip but is not valid gzip ({exc})") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(
                f"the request is over the limit of {limit:,} bytes once decompressed; send smaller batches"
            )
        return data
    if len(body) > limit:
        raise PayloadTooLarge(f"the request is {len(body):,} bytes, over the limit of {limit:,}; send smaller batches")
    return body


def _parse(data: bytes) -> Any:
    if not data.strip():
        raise InputError("the request body is empty; send a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"the request body is not valid JSON: {exc}") from None


@dataclass
class Receiver:
    """Everything one ingest request needs; shared by all requests of a server."""

    state: StateStore
    keys: SourceKeys
    max_message_bytes: int
    max_batch_bytes: int
    buffer_high_water: int
    buffered: int = 0  # refreshed by the loader; back-pressure reads it

    def receive(
        self,
        endpoint: str,
        body: bytes,
        *,
        content_encoding: str | None,
        authorization: str | None,
    ) -> AcceptResult:
        if endpoint not in ENDPOINTS:
            raise InputError(f"unknown endpoint /v1/{endpoint}; use one of {', '.join(ENDPOINTS)}")
        if self.buffered > self.buffer_high_water:
            raise Unavailable(
                f"ingest is behind ({self.buffered:,} events waiting to be loaded); retry later", retry_after=10
            )
        doc = _parse(decode_body(body, encoding=content_encoding, limit=self.max_batch_bytes))
        if not isinstance(doc, dict):
            raise InputError(f"the request body must be a JSON object, got {type(doc).__name__}")
        key = basic_auth_user(authorization) or doc.get("writeKey")
        source = self.keys.resolve(key if isinstance(key, str) else None)
        received_at = utcnow()

        if endpoint == "batch":
            raw_messages = doc.get("batch")
            if not isinstance(raw_messages, list):
                raise InputError("field 'batch' must be a list of messages", [Problem("must be a list", "batch")])
            implied = None
            shared = {k: doc[k] for k in ("context", "integrations") if isinstance(doc.get(k), dict)}
        else:
            if len(body) > self.max_message_bytes and not content_encoding:
                raise PayloadTooLarge(
                    f"the message is {len(body):,} bytes, over the limit of {self.max_message_bytes:,}"
                )
            raw_messages = [{k: v for k, v in doc.items() if k != "writeKey"}]
            implied = endpoint
            shared = {}
        batch_sent = doc.get("sentAt")
        sent_at = None
        if isinstance(batch_sent, str):
            try:
                sent_at = datetime.fromisoformat(batch_sent.replace("Z", "+00:00"))
            except ValueError:
                sent_at = None

        good: list[Message] = []
        bad: list[Rejected] = []
        for index, raw in enumerate(raw_messages):
            if shared and isinstance(raw, dict):
                raw = {**raw, **{k: {**v, **(raw.get(k) or {})} for k, v in shared.items()}}
            out = normalise(
                raw,
                index=index if endpoint == "batch" else None,
                received_at=received_at,
                implied_type=implied,
                sent_at=sent_at,
                max_bytes=self.max_message_bytes,
            )
            if isinstance(out, Message):
                good.append(out)
            else:
                bad.append(Rejected(problems=out, raw=raw))
        if endpoint != "batch" and bad and bad[0].problems[0].reason.startswith("message is "):
            raise PayloadTooLarge(bad[0].problems[0].reason)
        return accept(
            self.state,
            source=source,
            messages=good,
            rejected=bad,
            received_at=received_at,
            ref=uuid.uuid4().hex[:16],
        )
