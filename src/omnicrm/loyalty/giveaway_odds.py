"""The chance in giveaways, as pure functions: the seed and its commitment, each entry's draw, the red-packet split.

A giveaway's 32-byte seed is drawn with ``secrets`` when it is created. Until it closes only ``commitment(seed)``
(sha256 of the seed's bytes) is shown; afterwards the seed itself is published. Everything random about the giveaway
follows from the seed with HMAC-SHA256, so anyone holding the published seed can recompute every outcome with these
functions (standard library only) and see that none was chosen after the fact:

- entry number k of customer c draws ``HMAC(seed, "<giveaway id>|<k>|<c>")``; read as a 256-bit integer, its
  remainder modulo the total weight picks a prize in proportion to its weight (``pick``);
- a red packet's amounts are fixed at creation by ``split_packets``: HMAC(seed, "<giveaway id>|packet|<n>") drives
  the classic "拼手气" split (each packet at least 1 fen, at most twice the mean of what is left).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

__all__ = ["SEED_BYTES", "commitment", "entry_draw", "new_seed", "pick", "split_packets"]

SEED_BYTES = 32


def new_seed() -> str:
    """A fresh seed: 32 random bytes from ``secrets``, as 64 hex characters."""
    return secrets.token_hex(SEED_BYTES)


def _key(seed: str) -> bytes:
    raw = bytes.fromhex(seed)  # a malformed seed raises ValueError
    if len(raw) != SEED_BYTES:
        raise ValueError(f"a seed is {SEED_BYTES} bytes ({2 * SEED_BYTES} hex characters), not {len(raw)}")
    return raw


def commitment(seed: str) -> str:
    """sha256 of the seed's bytes, in hex: what is published before the draw."""
    return hashlib.sha256(_key(seed)).hexdigest()


def _mac(seed: str, message: str) -> str:
    return hmac.new(_key(seed), message.encode(), hashlib.sha256).hexdigest()


def entry_draw(seed: str, giveaway_id: str, seq: int, customer_id: int) -> str:
    """The draw of entry number ``seq`` by ``customer_id``: HMAC-SHA256(seed, "<giveaway id>|<seq>|<customer>")."""
    return _mac(seed, f"{giveaway_id}|{seq}|{customer_id}")


def pick(draw: str, weights: Sequence[int], miss_weight: int) -> int | None:
    """The index of the prize ``draw`` lands on (each with probability weight / total), or None for "no prize".

    The remainder of a 256-bit number modulo the total is uniform up to a bias below total / 2**256.
    """
    total = sum(weights) + miss_weight
    if total <= 0:
        raise ValueError("the weights add up to nothing")
    point = int(draw, 16) % total
    for index, weight in enumerate(weights):
        if point < weight:
            return index
        point -= weight
    return None


def split_packets(seed: str, giveaway_id: str, total_fen: int, count: int) -> list[int]:
    """``total_fen`` split into ``count`` random packets of at least 1 fen each, adding up exactly (拼手气).

    Each packet but the last is uniform between 1 fen and twice the mean of what is left (and never so much that
    the packets after it could not each get 1 fen); the last takes the rest.
    """
    if count < 1 or total_fen < count:
        raise ValueError(f"cannot split {total_fen} fen into {count} packets of at least 1 fen")
    amounts: list[int] = []
    left = total_fen
    for number in range(1, count):
        still = count - number + 1  # packets left to fill, this one included
        most = max(1, min(2 * left // still, left - (still - 1)))
        amount = 1 + int(_mac(seed, f"{giveaway_id}|packet|{number}"), 16) % most
        amounts.append(amount)
        left -= amount
    amounts.append(left)
    return amounts
