"""Identifier types: how each is normalised, how far it is trusted, and when it stops being a merge key.

Normalisation is an Ibis expression, so it runs set-based on DuckDB and on Spark alike. A value that
normalises to nothing (empty, malformed, a placeholder such as ``13800000000`` or ``test@test.com``,
a masked marketplace nick such as ``t**1``) is never a merge key; ``reason`` says why.

Per type: ``priority`` orders the merge stages (lower first: the most trusted keys merge first),
``limit`` is the most distinct values of the type one customer may hold — a merge that would exceed
it is refused, and the identifier that would have caused it gives way (compare Segment Unify's
limits and priorities, RudderStack's maximum edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

__all__ = ["IDENTIFIER_TYPES", "IdentifierType", "names_conflict", "normalise", "type_of"]


@dataclass(frozen=True)
class IdentifierType:
    """One kind of identifier; ``scoped`` types carry a scope (source, platform or app id) in the key."""

    name: str
    priority: int
    limit: int
    trust: float
    scoped: bool
    description: str
    merges: bool = True  # False: an attribute that can veto a merge but never makes one


IDENTIFIER_TYPES: dict[str, IdentifierType] = {
    t.name: t
    for t in (
        IdentifierType("member_card", 10, 1, 0.99, False, "the merchant's membership card number"),
        IdentifierType("user_id", 10, 1, 0.99, True, "a logged-in user id, scoped by the source that issued it"),
        IdentifierType("wechat_unionid", 20, 1, 0.99, False, "WeChat unionid of the merchant's open-platform account"),
        IdentifierType("phone", 30, 2, 0.95, False, "mobile phone in E.164 (+86 for mainland numbers)"),
        IdentifierType("email", 40, 3, 0.9, False, "e-mail address, lower-cased"),
        IdentifierType("marketplace_nick", 50, 2, 0.9, True, "buyer nick on a marketplace, scoped by platform"),
        IdentifierType("wechat_openid", 60, 1, 0.95, True, "WeChat openid, scoped by the app id that issued it"),
        IdentifierType("anonymous_id", 70, 20, 0.7, False, "a device or browser id from an SDK"),
        IdentifierType(
            "name",
            1000,
            1_000_000,
            0.0,
            False,
            "a person's name: never joins, but two clearly different names stop a merge (a family sharing one phone)",
            merges=False,
        ),
    )
}

PLACEHOLDER_PHONES = ("13800000000", "13800138000", "12345678901", "13888888888", "18888888888", "13900000000")
PLACEHOLDER_EMAILS = ("test@test.com", "a@a.com", "test@qq.com", "none@none.com", "null@null.com", "abc@abc.com")
# 1 followed by one digit ten times (13333333333), or a mobile prefix followed by zeros (13000000000).
_REPEATED_PHONE = "^1(" + "|".join(d * 10 for d in "0123456789") + ")$|^1[3-9]0{9}$"
PLACEHOLDER_TEXT = ("", "null", "none", "nil", "n/a", "na", "anonymous", "unknown", "test", "匿名", "无", "-", "0")


def type_of(name: str) -> IdentifierType:
    try:
        return IDENTIFIER_TYPES[name]
    except KeyError:
        known = ", ".join(IDENTIFIER_TYPES)
        raise ValueError(f"unknown identifier type {name!r}; known types: {known}") from None


def _trim(raw: ir.StringValue) -> ir.StringValue:
    """Leading and trailing white space removed, alike on every engine (Ibis's strip() is not on Spark)."""
    return raw.re_replace(r"^\s+|\s+$", "")


def _phone(raw: ir.StringValue) -> tuple[ir.StringValue, ir.StringValue]:
    digits = raw.re_replace(r"[^0-9+]", "")
    national = (
        ibis.cases(
            (digits.re_search(r"^\+86"), digits.substr(3)),
            (digits.re_search(r"^0086"), digits.substr(4)),
            (digits.re_search(r"^86[0-9]{11}$"), digits.substr(2)),
            else_=digits,
        )
    ).cast("string")
    mainland = national.re_search(r"^1[3-9][0-9]{9}$")
    placeholder = national.isin(PLACEHOLDER_PHONES) | national.re_search(_REPEATED_PHONE)
    foreign = digits.re_search(r"^\+[1-9][0-9]{6,14}$") & ~digits.re_search(r"^\+86")
    value = ibis.cases(
        (mainland & ~placeholder, "+86" + national),
        (foreign, digits),
        else_=ibis.null("string"),
    )
    reason = ibis.cases(
        (_trim(raw) == "", "empty"),
        (mainland & placeholder, "placeholder phone"),
        (value.isnull(), "not a valid phone number"),
        else_=ibis.null("string"),
    )
    return value, reason


def _email(raw: ir.StringValue) -> tuple[ir.StringValue, ir.StringValue]:
    text = _trim(raw).lower()
    valid = text.re_search(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    placeholder = text.isin(PLACEHOLDER_EMAILS) | text.re_search(r"@(example\.(com|org|net)|test\.com)$")
    value = ibis.cases((valid & ~placeholder, text), else_=ibis.null("string"))
    reason = ibis.cases(
        (text == "", "empty"),
        (valid & placeholder, "placeholder email"),
        (~valid, "not a valid email address"),
        else_=ibis.null("string"),
    )
    return value, reason


def _text(raw: ir.StringValue, *, pattern: str | None, upper: bool = False) -> tuple[ir.StringValue, ir.StringValue]:
    text = _trim(raw)
    text = text.upper() if upper else text
    placeholder = (
        text.lower().isin(PLACEHOLDER_TEXT) | text.re_search(r"^0+$") | text.re_search(r"^0{8}-0{4}-0{4}-0{4}-0{12}$")
    )
    masked = text.contains("*")
    malformed = ~text.re_search(pattern) if pattern else ibis.literal(False)
    value = ibis.cases((placeholder | masked | malformed, ibis.null("string")), else_=text)
    reason = ibis.cases(
        (text == "", "empty"),
        (placeholder, "placeholder value"),
        (masked, "masked value (contains *)"),
        (malformed, "malformed value"),
        else_=ibis.null("string"),
    )
    return value, reason


def normalise(id_type: ir.StringValue, raw: ir.StringValue) -> tuple[ir.StringValue, ir.StringValue]:
    """(normalised value or NULL, reason it was refused or NULL) for a column of raw identifiers.

    ``id_type`` names the type of each row; scoped types are normalised on their value and keep
    their scope (added by the caller) untouched.
    """
    raw = raw.cast("string").fill_null("")
    phone_v, phone_r = _phone(raw)
    email_v, email_r = _email(raw)
    card_v, card_r = _text(raw, pattern=r"^[0-9A-Za-z_-]{3,64}$", upper=True)
    openid_v, openid_r = _text(raw, pattern=r"^[0-9A-Za-z_-]{16,64}$")
    anon_v, anon_r = _text(raw.lower(), pattern=r"^[0-9a-z_.:-]{6,128}$")
    free_v, free_r = _text(raw, pattern=None)
    name_text = raw.re_replace(r"[\s·•.,，。()（）]", "").lower()
    name_v, name_r = _text(name_text, pattern=r"^.{2,40}$")
    value = ibis.cases(
        (id_type == "name", name_v),
        (id_type == "phone", phone_v),
        (id_type == "email", email_v),
        (id_type == "member_card", card_v),
        (id_type.isin(["wechat_openid", "wechat_unionid"]), openid_v),
        (id_type == "anonymous_id", anon_v),
        else_=free_v,
    )
    reason = ibis.cases(
        (id_type == "name", name_r),
        (id_type == "phone", phone_r),
        (id_type == "email", email_r),
        (id_type == "member_card", card_r),
        (id_type.isin(["wechat_openid", "wechat_unionid"]), openid_r),
        (id_type == "anonymous_id", anon_r),
        else_=free_r,
    )
    return value, reason


def names_conflict(a: str, b: str) -> bool:
    """Two normalised names that cannot be one person's: they differ in two or more characters.

    One different character is a typo (张伟/张玮) and is tolerated; 全玉平 and 孙晨杰 are two people.
    """
    if a == b:
        return False
    from collections import Counter

    shared = sum((Counter(a) & Counter(b)).values())
    return max(len(a), len(b)) - shared >= 2
