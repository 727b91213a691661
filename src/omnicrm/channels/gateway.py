"""Shared plumbing of the HTTP channels: one httpx client per channel and the mapping of network
trouble and HTTP status codes onto retryable and permanent failures, plus a cached access token
for the WeChat-family APIs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from omnicrm.channels.base import Channel, ChannelSettings
from omnicrm.channels.retry import Permanent, Transient, parse_retry_after

__all__ = ["TOKEN_INVALID", "AccessToken", "HttpChannel", "TokenChannel"]


class HttpChannel(Channel):
    """A channel whose provider speaks HTTP; ``request`` raises ``Transient`` or ``Permanent`` for trouble."""

    def __init__(
        self,
        name: str,
        settings: ChannelSettings,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(name, settings, sleep)
        self.client = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            transport=transport,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        accept_status: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One HTTP call. 2xx (and ``accept_status``) come back; timeouts, connection errors, 429 and
        5xx raise ``Transient``; other 4xx raise ``Permanent`` with the provider's words."""
        try:
            response = self.client.request(method, path, params=params, json=json, headers=headers, auth=auth)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Transient(f"could not connect within the timeout ({type(exc).__name__})", code="timeout") from exc
        except httpx.TimeoutException as exc:
            raise Transient(f"no answer within the timeout ({type(exc).__name__})", code="timeout",
                            maybe_delivered=True) from exc  # fmt: skip
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise Transient(f"connection failed: {exc}", code="connection") from exc
        except httpx.TransportError as exc:  # the connection broke after the request was written
            raise Transient(f"connection lost: {exc}", code="connection", maybe_delivered=True) from exc
        status = response.status_code
        if status < 300 or status in accept_status:
            return response
        detail = response.text[:200].strip()
        if status == 429 or status >= 500:
            raise Transient(
                f"HTTP {status}: {detail}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                code=f"http_{status}",
            )
        raise Permanent(f"HTTP {status}: {detail}", code=f"http_{status}")

    @staticmethod
    def json_of(response: httpx.Response) -> dict[str, Any]:
        """The JSON object of an answer, or a retryable failure if the provider sent something else."""
        try:
            body = response.json()
        except ValueError as exc:
            raise Transient(f"answer is not JSON: {response.text[:100]!r}", code="bad_answer") from exc
        if not isinstance(body, dict):
            raise Transient(f"answer is not a JSON object: {response.text[:100]!r}", code="bad_answer")
        return body

    def close(self) -> None:
        self.client.close()


class AccessToken:
    """An access token cached until shortly before it expires, shared by threads; refreshed on demand.

    ``fetch`` returns (token, lifetime in seconds). ``invalidate(token)`` drops the token only if it is
    still the cached one, so several threads hitting "token expired" at once fetch just one new token.
    """

    def __init__(self, fetch: Callable[[], tuple[str, float]], margin: float = 300.0) -> None:
        self._fetch = fetch
        self._margin = margin
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                token, lifetime = self._fetch()
                self.fetches += 1
                self._token = token
                self._expires = time.monotonic() + max(0.0, lifetime - min(self._margin, lifetime / 2))
            return self._token

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None


# WeChat and WeCom errcodes for an access token that expired or was replaced
TOKEN_INVALID = frozenset({40001, 40014, 42001})


class TokenChannel(HttpChannel):
    """An HTTP channel whose provider wants an access token fetched with the app's credentials (WeChat, WeCom)."""

    def __init__(
        self,
        name: str,
        settings: ChannelSettings,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(name, settings, sleep, transport)
        self.token = AccessToken(self._fetch_token)

    def _fetch_token(self) -> tuple[str, float]:
        """A fresh token and its lifetime in seconds."""
        raise NotImplementedError

    def post_with_token(self, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST ``payload`` with the current token; once more with a fresh token if the provider says it expired.
        Returns the errcode (0 when absent) and the answer."""
        for _ in range(2):
            token = self.token.get()
            body = self.json_of(self.request("POST", path, params={"access_token": token}, json=payload))
            code = int(body.get("errcode", 0))
            if code not in TOKEN_INVALID:
                break
            self.token.invalidate(token)
        return code, body
