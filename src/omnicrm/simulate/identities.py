"""Identifier and personal-detail generators (names, phones, emails, nicks, openids, device ids) and
the record-level imperfections real exports have (typos, phone formats, placeholders).

All draws are vectorised: name parts come from Faker's zh_CN provider lists, sampled with numpy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from faker.providers.person.zh_CN import Provider as ZhPerson

from omnicrm.simulate import reference as ref
from omnicrm.simulate.vec import (
    ALNUM_LOWER,
    B64URL,
    DIGITS,
    HEX,
    Rng,
    StrArray,
    cat,
    fmt_fixed,
    fmt_int,
    from_matrix,
    make_unique,
    pick,
    rand_chars,
    rand_str,
    weighted,
    where,
)

CLEAN, FORMATTED, PLACEHOLDER, TYPO = 0, 1, 2, 3
NOTES = ("clean", "formatted", "placeholder", "typo")


def names(rng: Rng, male: np.ndarray) -> StrArray:
    """Surname (by Faker's frequency weights) + one- or two-character given name."""
    n = len(male)
    surnames = list(ZhPerson.last_names.keys())
    surname = pick(surnames, weighted(rng, n, list(ZhPerson.last_names.values())))
    female_names, male_names = list(ZhPerson.first_names_female), list(ZhPerson.first_names_male)
    given = where(
        male,
        pick(male_names, rng.integers(0, len(male_names), size=n)),
        pick(female_names, rng.integers(0, len(female_names), size=n)),
    )
    singles = [c for c in ZhPerson.first_names if len(c) == 1]
    second = pick(singles, rng.integers(0, len(singles), size=n))
    one_char = np.asarray(pc.equal(pc.utf8_length(given), 1).to_numpy(zero_copy_only=False))
    given = where(one_char & (rng.random(n) < 0.55), cat(given, second), given)
    return cat(surname, given)


def typo_names(rng: Rng, name: StrArray, rate: float = 0.03) -> tuple[StrArray, np.ndarray]:
    """Replace the last character of ~`rate` of names with a different one."""
    n = len(name)
    hit = rng.random(n) < rate
    last = pc.utf8_slice_codeunits(name, -1)
    repl = pick(ref.TYPO_CHARS, rng.integers(0, len(ref.TYPO_CHARS), size=n))
    alt = pick(ref.TYPO_CHARS, rng.integers(0, len(ref.TYPO_CHARS), size=n))
    repl = pc.if_else(pc.equal(repl, last), alt, repl)
    typo = cat(pc.utf8_slice_codeunits(name, 0, -1), repl)
    changed = hit & ~np.asarray(pc.equal(typo, name).to_numpy(zero_copy_only=False), dtype=bool)
    return where(changed, typo, name), np.where(changed, TYPO, CLEAN).astype(np.int8)


def phone_numbers(rng: Rng, n: int) -> np.ndarray:
    """Unique 11-digit mainland mobile numbers as int64 (valid 1[3-9]x prefixes)."""
    prefixes = np.array([int(p) for p in ref.PHONE_PREFIXES], dtype=np.int64)
    values = prefixes[rng.integers(0, len(prefixes), size=n)] * 10**8 + rng.integers(0, 10**8, size=n)
    for _ in range(50):
        _, first = np.unique(values, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        values[dup] = prefixes[rng.integers(0, len(prefixes), size=int(dup.sum()))] * 10**8 + rng.integers(
            0, 10**8, size=int(dup.sum())
        )
    return values


def noisy_phones(
    rng: Rng, phone: StrArray, p_format: float = 0.10, p_placeholder: float = 0.0
) -> tuple[StrArray, np.ndarray]:
    """Phones as clerks and buyers type them: `+86 138-0013-8000`, `86 13800138000`, spaces …"""
    n = len(phone)
    a, b, c = (pc.utf8_slice_codeunits(phone, s, e) for s, e in ((0, 3), (3, 7), (7, 11)))
    variants = [
        cat("+86 ", a, "-", b, "-", c),
        cat("86 ", phone),
        cat(a, " ", b, " ", c),
        cat("+86", phone),
        cat(a, "-", b, "-", c),
    ]
    fmt = rng.integers(0, len(variants), size=n)
    formatted = pc.choose(pa.array(fmt), *variants)
    u = rng.random(n)
    is_fmt = u < p_format
    is_ph = (u >= p_format) & (u < p_format + p_placeholder)
    placeholder = pick(ref.PLACEHOLDER_PHONES, rng.integers(0, len(ref.PLACEHOLDER_PHONES), size=n))
    out = where(is_fmt, formatted, where(is_ph, placeholder, phone))
    note = np.where(is_fmt, FORMATTED, np.where(is_ph, PLACEHOLDER, CLEAN)).astype(np.int8)
    return out, note


def emails(rng: Rng, n: int) -> StrArray:
    """Unique emails: QQ numbers @qq.com, letters+digits elsewhere."""
    domain = weighted(rng, n, [w for _, w in ref.EMAIL_DOMAINS])
    length = rng.integers(6, 11, size=n)
    keep = np.arange(10)[None, :] < length[:, None]
    letters = rand_chars(rng, n, 10, ALNUM_LOWER)
    letters[:, 0] = rand_chars(rng, n, 1, b"abcdefghijklmnopqrstuvwxyz")[:, 0]
    qq = rand_chars(rng, n, 10, DIGITS)
    qq[:, 0] = rand_chars(rng, n, 1, b"123456789")[:, 0]
    is_qq = domain == 0
    local = from_matrix(np.where(is_qq[:, None], qq, letters), keep)
    local = make_unique(rng, local)
    return cat(local, "@", pick([d for d, _ in ref.EMAIL_DOMAINS], domain))


def marketplace_nicks(rng: Rng, n: int, prefix: str) -> StrArray:
    """Tmall/JD buyer nicks: `tb8371920454` / `jd_4f7a9b2c1d3e` style or a Chinese-ish nick."""
    tb = prefix == "tb"
    auto = rand_str(rng, n, 10 if tb else 12, DIGITS if tb else HEX, prefix="tb" if tb else "jd_")
    heads = pick(ref.NICK_HEADS, rng.integers(0, len(ref.NICK_HEADS), size=n))
    tails = pick(ref.NICK_TAILS, rng.integers(0, len(ref.NICK_TAILS), size=n))
    num = fmt_int(rng.integers(1, 9999, size=n))
    chinese = cat(heads, tails, num)
    return make_unique(rng, where(rng.random(n) < 0.5, auto, chinese))


def openids(rng: Rng, n: int) -> StrArray:
    """WeChat-style openid/unionid: `o` + 27 base64url characters."""
    return make_unique(rng, rand_str(rng, n, 27, B64URL, prefix="o"))


def member_cards(rng: Rng, join_s: np.ndarray) -> StrArray:
    """`M` + 8 digits, issued in join order with random gaps (unique)."""
    order = np.argsort(join_s, kind="stable")
    numbers = np.empty(len(join_s), dtype=np.int64)
    numbers[order] = 10_000_000 + np.cumsum(rng.integers(1, 4, size=len(join_s)))
    return fmt_fixed(numbers, 8, prefix="M")


def addresses(rng: Rng, n: int) -> StrArray:
    """Street-level address: `文三路128号翠湖天地3幢502室`."""
    street = pick(ref.STREETS, rng.integers(0, len(ref.STREETS), size=n))
    community = pick(ref.COMMUNITIES, rng.integers(0, len(ref.COMMUNITIES), size=n))
    room = rng.integers(1, 26, size=n) * 100 + rng.integers(1, 6, size=n)
    return cat(
        street,
        fmt_int(rng.integers(1, 999, size=n)),
        "号",
        community,
        fmt_int(rng.integers(1, 31, size=n)),
        "幢",
        fmt_int(room),
        "室",
    )


def wechat_nicknames(rng: Rng, name: StrArray) -> StrArray:
    """WeChat nicknames: mostly playful, sometimes the real name."""
    n = len(name)
    nick = pick(ref.WECHAT_NICKS, rng.integers(0, len(ref.WECHAT_NICKS), size=n))
    return where(rng.random(n) < 0.2, name, nick)
