"""Expressions over fact columns that the portrait, segments and analytics share: JSON members kept as text,
the merchant's calendar day (China time), and where and in which promotion an order happened."""

from __future__ import annotations

import datetime as dt
import functools
import operator

import ibis
import ibis.expr.types as ir

__all__ = [
    "CHINA",
    "CHINA_OFFSET_SECONDS",
    "json_number",
    "json_text",
    "local_date",
    "order_channel",
    "promotion_kind",
]

# China keeps one time zone and no daylight saving: local dates are UTC + 8 hours.
CHINA = dt.timezone(dt.timedelta(hours=8))
CHINA_OFFSET_SECONDS = 8 * 3600


def json_text(doc: ir.StringValue, path: str) -> ir.StringValue:
    """A string member of a JSON object kept as text, e.g. ``query`` or ``campaign.source`` (null if absent).

    A regular expression rather than a JSON function, so DuckDB and Spark read it alike.
    """
    *parents, name = path.split(".")
    scope = doc
    for parent in parents:
        scope = scope.re_extract(rf'"{parent}"\s*:\s*(\{{[^{{}}]*\}})', 1)
    found = scope.re_extract(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)"', 1)
    return ibis.cases((found == "", ibis.null("string")), else_=found)


def json_number(doc: ir.StringValue, name: str) -> ir.FloatingValue:
    found = doc.re_extract(rf'"{name}"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?)', 1)
    return ibis.cases((found == "", ibis.null("float64")), else_=found.cast("float64"))


def local_date(ts: ir.TimestampValue) -> ir.DateValue:
    """The merchant's calendar day (China time) of a UTC timestamp."""
    return (ts + ibis.interval(seconds=CHINA_OFFSET_SECONDS)).date()


def promotion_kind(promotion: ir.StringValue, created_at: ir.TimestampValue, online: ir.BooleanValue) -> ir.StringValue:
    """double11 / double12 / 618 / other / null: the order's declared promotion, else (online orders only) the
    shopping festival its day falls in (1–11 November, 10–12 December, 1–18 June)."""
    p = promotion.lower()
    day = local_date(created_at)
    month, dom = day.month(), day.day()
    return ibis.cases(
        (_any(p, "双11", "双十一", "11.11", "double11", "double 11"), "double11"),
        (_any(p, "双12", "双十二", "12.12", "double12", "double 12"), "double12"),
        (p.contains("618"), "618"),
        (p.notnull() & (p != ""), "other"),
        (online & (month == 11) & (dom <= 11), "double11"),
        (online & (month == 12) & (dom >= 10) & (dom <= 12), "double12"),
        (online & (month == 6) & (dom <= 18), "618"),
        else_=ibis.null("string"),
    )


def _any(text: ir.StringValue, *words: str) -> ir.BooleanValue:
    """Whether ``text`` contains any of ``words`` (plain substring tests: far cheaper than a regex per row)."""
    return functools.reduce(operator.or_, (text.contains(w) for w in words))


def order_channel(kind: str, t: ir.Table) -> ir.StringValue:
    """marketplace / web / wechat / store: where an order (or event) happened."""
    source = t.source.lower()
    if kind == "event":
        return ibis.cases((source.re_search(r"wechat|weixin|mp|miniprogram"), "wechat"), else_="web")
    return ibis.cases(
        (t.store_code.notnull() | source.startswith("pos") | source.startswith("store"), "store"),
        (source.startswith("web") | source.startswith("shop") | source.startswith("site"), "web"),
        (_any(source, "wechat", "weixin", "miniprogram") | source.startswith("mp"), "wechat"),
        else_="marketplace",
    )
