"""Tracked links: each URL of a campaign's content becomes ``{public_url}/l/{token}`` per recipient.

``track_links`` finds the http(s) URLs written in the text parts (body, provider parameters) and in
the ``href`` attributes of the HTML, numbers the distinct ones from 1 (``extract_links``), and rewrites
the templates so each becomes ``link(n)``; ``register_links`` stores the destinations in
``campaign_links``. At render time ``link(n)`` is the recipient's tracked URL (``link_maker``), and
``record_click`` turns a click into a ``link_clicks`` row and the stored destination: the token names
a link, never a URL, so the redirect cannot be pointed elsewhere (no open redirect).

The token is base64url of ``payload + mac``: the payload is varints of (campaign_id, step,
customer_id, link_no), a numeric step as a number, any other step as its UTF-8 text; the mac is the
first 10 bytes of HMAC-SHA256 over the payload with a key derived from ``settings.secret_key`` under
its own label. SMS is billed per 67 characters, so tokens stay short: 22 to 32 characters for
numeric steps. Links do not expire; changing the secret key voids every link already sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from jinja2 import nodes
from jinja2.visitor import NodeTransformer
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from omnicrm.campaigns.content import CompiledContent, Content, Part, compile_content
from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.store.schema import campaign_links, link_clicks
from omnicrm.store.state import StateStore

__all__ = [
    "MAX_LINKS",
    "Link",
    "LinkToken",
    "extract_links",
    "link_maker",
    "make_token",
    "read_token",
    "record_click",
    "register_links",
    "track_links",
    "tracked_url",
]

MAX_LINKS = 100  # link(n) takes n up to 100
_MAC_BYTES = 10
_MAX_TOKEN_CHARS = 128
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_TEXT_URL = re.compile(rf"https?://{_URL_CHARS}+", re.IGNORECASE)
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)
# A URL running into a template tag is built per recipient: it cannot be one stored destination.
_DYNAMIC_TEXT = re.compile(rf"https?://{_URL_CHARS}*\{{[{{%]", re.IGNORECASE)
_DYNAMIC_HREF = re.compile(r"""\bhref\s*=\s*["']?\s*https?://[^"'\s>{]*\{[{%]""", re.IGNORECASE)
_TRAILING = ".,;:!?'\""
_USER_AGENT_CHARS = 512


# --- finding and rewriting links ----------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A destination of a campaign and its number (``link(no)`` in the templates)."""

    no: int
    url: str


def _trim(url: str) -> str:
    """A URL found in text without the punctuation that ends the sentence around it."""
    while url and (
        url[-1] in _TRAILING
        or (url[-1] == ")" and url.count("(") < url.count(")"))
        or (url[-1] == "]" and url.count("[") < url.count("]"))
    ):
        url = url[:-1]
    return url


def _spans(data: str, is_html: bool, public_url: str | None) -> Iterator[tuple[int, int, str]]:
    """(start, end, url) of each trackable URL in a piece of literal template text."""
    if is_html:
        for m in _HREF.finditer(data):
            group = next(g for g in (1, 2, 3) if m.group(g) is not None)
            raw = m.group(group)
            url = html.unescape(raw).strip()
            if _trackable(url, public_url):
                yield m.start(group), m.end(group), url
    else:
        for m in _TEXT_URL.finditer(data):
            url = _trim(m.group(0))
            if _trackable(url, public_url):
                yield m.start(), m.start() + len(url), url


def _trackable(url: str, public_url: str | None) -> bool:
    if not url.lower().startswith(("http://", "https://")) or not urlsplit(url).netloc:
        return False
    return not (public_url and url.startswith(public_url.rstrip("/") + "/"))  # ours: unsubscribe or tracked


def _data_nodes(part: Part) -> Iterator[nodes.TemplateData]:
    yield from part.environment.parse(part.source).find_all(nodes.TemplateData)


def _tracked_parts(compiled: CompiledContent) -> Iterator[Part]:
    """The parts whose URLs are tracked: bodies, provider parameters and HTML (not subjects)."""
    return (p for p in compiled.parts() if p.kind != "subject")


def extract_links(content: CompiledContent | Content, public_url: str | None = None) -> list[Link]:
    """The distinct URLs of the content, numbered from 1 in order of appearance (zh before en).

    URLs under ``public_url`` (unsubscribe and tracked links) and ``{{ unsubscribe_url }}`` are left
    alone. A URL that runs into a template tag (``https://x.cn/{{ city }}``) is refused: a tracked
    link has one destination per campaign.
    """
    compiled = content if isinstance(content, CompiledContent) else compile_content(content)
    problems: list[Problem] = []
    found: dict[str, int] = {}
    for part in _tracked_parts(compiled):
        is_html = part.kind == "html"
        if (_DYNAMIC_HREF if is_html else _DYNAMIC_TEXT).search(part.source):
            problems.append(Problem("a tracked link cannot contain template fields: write the whole URL", part.where))
            continue
        for data in _data_nodes(part):
            for _, _, url in _spans(data.data, is_html, public_url):
                found.setdefault(url, len(found) + 1)
    if len(found) > MAX_LINKS:
        problems.append(Problem(f"{len(found)} distinct links; a campaign tracks at most {MAX_LINKS}", "content"))
    if problems:
        raise InputError("the links of the campaign content cannot be tracked", problems)
    return [Link(no, url) for url, no in found.items()]


class _Rewrite(NodeTransformer):
    """Replaces each trackable URL of the literal text with a ``link(n)`` call."""

    def __init__(self, part: Part, numbers: dict[str, int], public_url: str | None) -> None:
        self.part = part
        self.numbers = numbers
        self.public_url = public_url

    def visit_TemplateData(self, node: nodes.TemplateData) -> nodes.Node | list[nodes.Node]:
        spans = list(_spans(node.data, self.part.kind == "html", self.public_url))
        if not spans:
            return node
        out: list[nodes.Node] = []
        pos = 0
        for start, end, url in spans:
            if start > pos:
                out.append(nodes.TemplateData(node.data[pos:start]))
            out.append(nodes.Call(nodes.Name("link", "load"), [nodes.Const(self.numbers[url])], [], None, None))
            pos = end
        if pos < len(node.data):
            out.append(nodes.TemplateData(node.data[pos:]))
        for new in out:
            new.set_environment(self.part.environment)
            new.set_lineno(node.lineno)
        return out


def track_links(content: CompiledContent | Content, public_url: str | None = None) -> CompiledContent:
    """The content with every trackable URL rewritten to ``link(n)`` and ``links`` set to the destinations.

    ``link(n)`` written by hand refers to the n-th distinct URL; a number beyond them is refused.
    """
    compiled = content if isinstance(content, CompiledContent) else compile_content(content)
    links = extract_links(compiled, public_url)
    numbers = {link.url: link.no for link in links}
    beyond = [
        Problem(f"link({n}): the content has {len(links)} distinct links", part.where)
        for part in compiled.parts()
        for n in sorted(part.links)
        if n > len(links)
    ]
    if beyond:
        raise InputError("the links of the campaign content cannot be tracked", beyond)
    rewritten: dict[str, Part] = {}
    for part in _tracked_parts(compiled):
        ast = part.environment.parse(part.source)
        new = _Rewrite(part, numbers, public_url).visit(ast)
        assert isinstance(new, nodes.Template)
        rewritten[part.where] = part.recompiled(new)
    return compiled.with_parts(rewritten, tuple(link.url for link in links))


def register_links(state: StateStore, campaign_id: int, urls: Sequence[str] | Sequence[Link]) -> None:
    """Store the destinations of a campaign (idempotent): ``Link``s by their number, or URLs where
    ``urls[n - 1]`` is link n (``CompiledContent.links``).

    Registering the same links again changes nothing; a different destination for a link already
    registered is a Conflict, as messages already sent point to it.
    """
    numbered = [(u.no, u.url) if isinstance(u, Link) else (no, u) for no, u in enumerate(urls, start=1)]

    def work(conn: Connection) -> None:
        rows = conn.execute(
            select(campaign_links.c.link_no, campaign_links.c.url).where(campaign_links.c.campaign_id == campaign_id)
        )
        known = {int(no): url for no, url in rows}
        for no, url in numbered:
            if no not in known:
                conn.execute(insert(campaign_links).values(campaign_id=campaign_id, link_no=no, url=url))
            elif known[no] != url:
                raise Conflict(
                    f"campaign {campaign_id}: link {no} already goes to {known[no]}, not {url}; "
                    "messages sent carry it, so it cannot change",
                    [Problem("destination changed", f"links.{no}")],
                )

    for attempt in range(2):  # a concurrent registration may insert first (PostgreSQL); the second pass agrees
        try:
            with state.begin() as conn:
                work(conn)
            return
        except IntegrityError:
            if attempt:
                raise


# --- tokens ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkToken:
    """What a tracked link's token says: which campaign step sent which link to which customer."""

    campaign_id: int
    step: str
    customer_id: int
    link_no: int


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"omnicrm tracked link v1", hashlib.sha256).digest()


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError(f"a tracked link carries whole numbers from 0, not {n}")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated number")
        byte = data[pos]
        n |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return n, pos


def _payload(campaign_id: int, step: str, customer_id: int, link_no: int) -> bytes:
    if step.isdecimal() and step.isascii() and str(int(step)) == step:
        step_bytes = _varint(int(step) * 2)
    else:
        text = step.encode()
        step_bytes = _varint(len(text) * 2 + 1) + text
    return _varint(campaign_id) + step_bytes + _varint(customer_id) + _varint(link_no)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(key: bytes, payload: bytes) -> str:
    return _b64(payload + hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES])


def make_token(secret: str, campaign_id: int, step: str, customer_id: int, link_no: int) -> str:
    """The signed token of link ``link_no`` sent to ``customer_id`` by ``step`` of ``campaign_id``."""
    return _signed(_key(secret), _payload(campaign_id, step, customer_id, link_no))


def _bad(reason: str) -> InputError:
    return InputError("this link is not valid", [Problem(reason, "token")])


def read_token(secret: str, token: str) -> LinkToken:
    """What a token this product signed says, or InputError naming the token (altered, truncated, foreign)."""
    if len(token) > _MAX_TOKEN_CHARS or not _TOKEN_CHARS.match(token):
        raise _bad("not a link token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise _bad("not a link token") from None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    expected = hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, expected):
        raise _bad("the signature does not match: the link was altered or not issued here")
    try:
        campaign_id, pos = _read_varint(payload, 0)
        step_code, pos = _read_varint(payload, pos)
        if step_code % 2:
            end = pos + step_code // 2
            step, pos = payload[pos:end].decode(), end
        else:
            step = str(step_code // 2)
        customer_id, pos = _read_varint(payload, pos)
        link_no, pos = _read_varint(payload, pos)
    except (ValueError, UnicodeDecodeError):
        raise _bad("the signed content is not readable") from None
    if pos != len(payload) or make_token(secret, campaign_id, step, customer_id, link_no) != token:
        raise _bad("the signed content is not readable")
    return LinkToken(campaign_id, step, customer_id, link_no)


def tracked_url(public_url: str, secret: str, campaign_id: int, step: str, customer_id: int, link_no: int) -> str:
    """The URL a recipient clicks: ``{public_url}/l/{token}``."""
    return f"{public_url.rstrip('/')}/l/{make_token(secret, campaign_id, step, customer_id, link_no)}"


def link_maker(public_url: str, secret: str, campaign_id: int, step: str, customer_id: int) -> Callable[[int], str]:
    """``link(n)`` for one recipient, as ``content.render`` takes it."""
    base = f"{public_url.rstrip('/')}/l/"
    key = _key(secret)

    def link(n: int) -> str:
        return base + _signed(key, _payload(campaign_id, step, customer_id, n))

    return link


# --- clicks ---------------------------------------------------------------------------------------


def record_click(state: StateStore, secret: str, token: str, user_agent: str | None, now: datetime) -> str:
    """Verify ``token``, record the click, and return the link's stored destination.

    InputError for a token that is not ours or was altered; NotFound for a valid token whose link
    is not registered. The destination comes from ``campaign_links``, never from the request.
    """
    link = read_token(secret, token)
    with state.connect() as conn:
        url = conn.execute(
            select(campaign_links.c.url).where(
                campaign_links.c.campaign_id == link.campaign_id, campaign_links.c.link_no == link.link_no
            )
        ).scalar_one_or_none()
    if url is None:
        raise NotFound(f"campaign {link.campaign_id} has no link {link.link_no}")
    row = {
        "campaign_id": link.campaign_id,
        "step": link.step,
        "customer_id": link.customer_id,
        "link_no": link.link_no,
        "at": now,
        "user_agent": user_agent[:_USER_AGENT_CHARS] if user_agent else None,
    }
    state.group_commit(lambda conn: conn.execute(insert(link_clicks).values(**row)))  # clicks come in bursts
    return str(url)
