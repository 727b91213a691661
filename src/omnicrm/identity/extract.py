"""From facts to identifier occurrences: which record carries which identifier, set-based in Ibis.

A *record* is the unit a source vouches for as one person: a marketplace or POS order (source +
order id), a person record (source + key), a service conversation (source + conversation key), or,
for events, one distinct combination of ids a device sent (source + user id + anonymous id + traits).
Every identifier a record carries is one occurrence row, normalised (``identifiers.normalise``);
refused values keep their reason so each refresh can report what it ignored and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from omnicrm.identity.identifiers import normalise
from omnicrm.store.engine import Engine

__all__ = ["OCCURRENCE_SCHEMA", "extract_occurrences", "platform", "record_key"]

OCCURRENCE_SCHEMA = pa.schema(
    [
        pa.field("record_key", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("source", pa.string()),
        pa.field("id_type", pa.string()),
        pa.field("scope", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("key", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("first_seen", pa.timestamp("us", tz="UTC")),
        pa.field("last_seen", pa.timestamp("us", tz="UTC")),
        pa.field("n", pa.int64()),
    ]
)

# (identifier type, scope) for the identifier columns that orders, person records and messages share.
_SHARED = ("marketplace_nick", "phone", "email", "member_card", "wechat_openid", "wechat_unionid")
_TRAITS = ("phone", "email", "member_card", "wechat_openid", "wechat_unionid", "wechat_appid", "name")


def _trait(traits: ir.StringValue, name: str) -> ir.StringValue:
    """A top-level scalar of a JSON object kept as text (portable across DuckDB and Spark)."""
    found = traits.re_extract(rf'"{name}"\s*:\s*"?([^",}}]*)', 1)
    return ibis.cases((found == "", ibis.null("string")), else_=found)


def _long(
    t: ir.Table, record_key: ir.StringValue, kind: str, seen: ir.TimestampValue, ids: dict[str, tuple]
) -> ir.Table:
    """One row per (record, identifier column) with a non-null value."""
    parts = []
    for id_type, (scope, value) in ids.items():
        parts.append(
            t.select(
                record_key=record_key,
                kind=ibis.literal(kind),
                source=t.source,
                id_type=ibis.literal(id_type.split("#")[0]),
                scope=scope,
                raw=value.cast("string"),
                seen=seen,
            ).filter(lambda x: x.raw.notnull())
        )
    return ibis.union(*parts)


def platform(name: ir.StringValue) -> ir.StringValue:
    """The marketplace whose account namespace a source or channel name belongs to.

    Tmall and Taobao share one buyer account (淘宝账号), and Wangwang is their chat; JD's chat is
    JD IM. Sources are matched by prefix, so "tmall-flagship" and "jd-outlet" work as expected.
    """
    low = name.lower()
    return ibis.cases(
        (low.re_search(r"^(tmall|taobao|tb|wangwang|qianniu)"), "taobao"),
        (low.re_search(r"^(jd|jingdong)"), "jd"),
        (low.re_search(r"^(pdd|pinduoduo)"), "pdd"),
        (low.re_search(r"^(douyin|doudian)"), "douyin"),
        else_=low,
    )


def _shared_ids(t: ir.Table, nick_scope: ir.StringValue | None = None) -> dict[str, tuple]:
    empty = ibis.literal("")
    ids: dict[str, tuple] = {}
    for name in _SHARED:
        scope: ir.Value = empty
        if name == "marketplace_nick":
            scope = nick_scope if nick_scope is not None else platform(t.source)
        elif name == "wechat_openid":
            scope = t.wechat_appid.fill_null("?")
        ids[name] = (scope, t[name])
    return ids


def _event_combo(source: ir.StringValue, parts: list[ir.StringValue]) -> ir.StringValue:
    """An event record's key: the combination of ids itself, so every batch and engine names it alike."""
    return "e:" + source + ":" + ibis.literal("|").join([p.fill_null("") for p in parts])


def record_key(kind: str, t: ir.Table) -> ir.StringValue:
    """The identity record a fact row belongs to (see the module docstring); joins facts to customers."""
    if kind == "order_line":
        return "o:" + t.source + ":" + t.order_id
    if kind == "person":
        return "p:" + t.source + ":" + t.source_key.fill_null(t.ingest_id + "#" + t.source_line.cast("string"))
    if kind == "message":
        return "m:" + t.source + ":" + t.conversation_key.fill_null(t.message_id)
    if kind == "event":
        traits = t.traits.fill_null("")
        return _event_combo(t.source, [t.user_id, t.anonymous_id, t.previous_id, *(_trait(traits, n) for n in _TRAITS)])
    raise ValueError(f"unknown fact kind {kind!r}")


def _orders(t: ir.Table) -> ir.Table:
    ids = {**_shared_ids(t), "name": (ibis.literal(""), t.buyer_name)}
    return _long(t, record_key("order_line", t), "order_line", t.created_at, ids)


def _people(t: ir.Table) -> ir.Table:
    ids = {**_shared_ids(t), "name": (ibis.literal(""), t.name)}
    return _long(t, record_key("person", t), "person", t.observed_at, ids)


def _messages(t: ir.Table) -> ir.Table:
    # a chat's nick belongs to the marketplace of its channel (wangwang → taobao), not to the inbox
    return _long(t, record_key("message", t), "message", t.sent_at, _shared_ids(t, platform(t.channel)))


def _events(t: ir.Table, user_id_types: Mapping[str, str]) -> ir.Table:
    traits = t.traits.fill_null("")
    combos = (
        t.select(
            source=t.source,
            user_id=t.user_id,
            anonymous_id=t.anonymous_id,
            previous_id=t.previous_id,
            **{f"t_{name}": _trait(traits, name) for name in _TRAITS},
            timestamp=t.timestamp,
        )
        .group_by(["source", "user_id", "anonymous_id", "previous_id", *(f"t_{n}" for n in _TRAITS)])
        .aggregate(seen=lambda x: x.timestamp.min())
    )
    combo = _event_combo(
        combos.source, [combos[c] for c in ("user_id", "anonymous_id", "previous_id", *(f"t_{n}" for n in _TRAITS))]
    )
    empty = ibis.literal("")
    # A logged-in user id is a user_id scoped by its source, unless the source declares it is another
    # identifier (e.g. the member card); that case is resolved below by re-typing the rows.
    ids: dict[str, tuple] = {
        "user_id": (combos.source, combos.user_id),
        "user_id#previous": (combos.source, combos.previous_id),
        "anonymous_id": (empty, combos.anonymous_id),
        "phone": (empty, combos.t_phone),
        "email": (empty, combos.t_email),
        "member_card": (empty, combos.t_member_card),
        "wechat_openid": (combos.t_wechat_appid.fill_null("?"), combos.t_wechat_openid),
        "wechat_unionid": (empty, combos.t_wechat_unionid),
        "name": (empty, combos.t_name),
    }
    long = _long(combos, combo, "event", combos.seen, ids)
    retyped: ir.StringValue = (
        ibis.cases(*((long.source == s, ty) for s, ty in user_id_types.items()), else_="user_id")
        if user_id_types
        else ibis.literal("user_id")
    )
    is_user = long.id_type == "user_id"
    return long.mutate(
        id_type=ibis.cases((is_user, retyped), else_=long.id_type),
        scope=ibis.cases((is_user & (retyped != "user_id"), empty), else_=long.scope),
    )


def extract_occurrences(
    engine: Engine,
    *,
    files: Mapping[str, Iterable[Path]] | None = None,
    user_id_types: Mapping[str, str] | None = None,
) -> pa.Table:
    """Identifier occurrences of every record in the facts (or only in ``files``, per fact kind)."""
    builders = {"order_line": _orders, "person": _people, "message": _messages}
    parts: list[ir.Table] = []
    for kind in ("order_line", "person", "message", "event"):
        chosen = None if files is None else list(files.get(kind, []))
        if chosen == []:
            continue
        t = engine.fact_table(kind, chosen)
        parts.append(_events(t, user_id_types or {}) if kind == "event" else builders[kind](t))
    if not parts:
        return OCCURRENCE_SCHEMA.empty_table()
    long = ibis.union(*parts)
    value, reason = normalise(long.id_type, long.raw)
    keyed = long.mutate(
        value=value,
        reason=reason,
    )
    keyed = keyed.mutate(key=ibis.cases((keyed.value.notnull(), keyed.id_type + ":" + keyed.scope + ":" + keyed.value)))
    grouped = keyed.group_by(["record_key", "kind", "source", "id_type", "scope", "raw", "key", "reason"]).aggregate(
        first_seen=keyed.seen.min(), last_seen=keyed.seen.max(), n=keyed.count()
    )
    return engine.to_arrow(grouped).select(OCCURRENCE_SCHEMA.names).cast(OCCURRENCE_SCHEMA)
