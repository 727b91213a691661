"""Screening before the stages: the most that could merge bounds every customer the stages can make.

All merge keys, must-links and probabilistic edges joined at once — one connected-components pass —
give each record an *envelope*: no stage can ever join records of two envelopes. An envelope that
breaks no protection as a whole (no type beyond its limit, no cannot-link inside it, no two clearly
different names) breaks none in any of its parts either, so every merge inside it goes through and
the envelope is the customer. Only the records of the other envelopes go through the staged engine
(``omnicrm.identity.staged``), which gives them exactly the answer it would give on everything,
because the stages never look across envelopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from omnicrm.identity.arrays import distinct, lengths, member, ranges, runs
from omnicrm.identity.identifiers import names_conflict

if TYPE_CHECKING:
    from omnicrm.identity.resolve import Encoded

__all__ = ["Screen", "over_limit", "restrict", "screen", "stage_codes"]

IntArray = np.ndarray

NAMES_CHECKED = 8  # an envelope with more distinct names than this goes to the stages unchecked


@dataclass
class Screen:
    comp: IntArray  # the smallest record of each record's envelope
    doubtful: IntArray  # bool per record: its envelope breaks a protection as a whole
    present: IntArray  # bool per key: some record holds it


def stage_codes(priority: IntArray, stages: list[int]) -> IntArray:
    """Each key's merge stage, as an index into ``stages`` (``len(stages)``: it never merges)."""
    small = np.int8 if len(stages) < 127 else np.int64
    code = np.full(len(priority), len(stages), dtype=small)
    if len(priority) == 0 or not stages:
        return code
    lo, hi = min(int(priority.min()), min(stages)), max(int(priority.max()), max(stages))
    if hi - lo < 1 << 20:  # priorities are small numbers: a lookup table
        table = np.full(hi - lo + 1, len(stages), dtype=small)
        table[np.array(stages) - lo] = np.arange(len(stages))
        return table[priority - lo]
    order = np.array(stages, dtype=np.int64)
    pos = np.minimum(np.searchsorted(order, priority), len(order) - 1)
    hit = order[pos] == priority
    code[hit] = pos[hit]
    return code


def _graph(enc: Encoded, merges: IntArray) -> csr_matrix:
    """Records, then keys, then one node per must-link or probabilistic pair, joined by what could merge."""
    n, nk = enc.n_records, len(enc.key_priority)
    r, k = enc.r, enc.k
    if not merges.all():
        held = np.flatnonzero(merges[k])
        r, k = r[held], k[held]
    pair_a = np.concatenate([enc.must[0], enc.extra[0]])
    pair_b = np.concatenate([enc.must[1], enc.extra[1]])
    size = n + nk + len(pair_a)
    nnz = len(r) + 2 * len(pair_a)
    index = np.int32 if max(size, nnz) < 2**31 else np.int64
    data = np.ones(nnz, dtype=np.float64)  # what connected_components converts to anyway
    if len(r) < 2 or bool(np.all(r[1:] >= r[:-1])):  # occurrences grouped by record: build the rows directly
        indptr = np.empty(size + 1, dtype=index)
        indptr[0] = 0
        np.cumsum(np.bincount(r, minlength=n), out=indptr[1 : n + 1])
        indptr[n + 1 : n + nk + 1] = indptr[n]
        indptr[n + nk + 1 :] = indptr[n] + 2 * np.arange(1, len(pair_a) + 1)
        indices = np.empty(nnz, dtype=index)
        np.add(k, n, out=indices[: len(k)], casting="unsafe")
        indices[len(k) :: 2] = pair_a
        indices[len(k) + 1 :: 2] = pair_b
        return csr_matrix((data, indices, indptr), shape=(size, size))
    pairs = n + nk + np.arange(len(pair_a))
    rows = np.concatenate([r, pairs, pairs])
    cols = np.concatenate([k + n, pair_a, pair_b])
    return coo_matrix((data, (rows, cols)), shape=(size, size)).tocsr()


def screen(enc: Encoded, code: IntArray, n_stages: int) -> Screen:
    """Envelopes of the records, and which of them need the stages (``code``: each key's stage)."""
    n, nk = enc.n_records, len(enc.key_priority)
    merges = code < n_stages
    present = np.zeros(nk, dtype=bool)
    present[enc.k] = True
    if n == 0:
        return Screen(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), present)
    _, labels = connected_components(_graph(enc, merges), directed=False)
    labels = labels.astype(np.int64)
    envelope = labels[:n]
    size = int(labels.max()) + 1 if len(labels) else 0
    smallest = np.full(size, n, dtype=np.int64)
    np.minimum.at(smallest, envelope, np.arange(n, dtype=np.int64))
    doubtful = np.zeros(size, dtype=bool)
    # limits: distinct keys of each limited type per envelope
    limited = enc.limits < np.bincount(enc.key_type_code, minlength=len(enc.limits))
    if limited.any():
        col_of_type = np.where(limited, np.cumsum(limited) - 1, -1)
        width = int(limited.sum())
        col = col_of_type[enc.key_type_code]
        counted = merges & present & (col >= 0)  # a merge key lies inside one envelope: count it there
        keys = np.flatnonzero(counted)
        packed = labels[n + keys] * width + col[keys]
        elsewhere = ~merges & (col >= 0)  # other keys may lie in several envelopes: count each once
        if elsewhere.any():
            held = np.flatnonzero(elsewhere[enc.k])
            pairs = distinct(envelope[enc.r[held]] * nk + enc.k[held])
            env, key = np.divmod(pairs, nk)
            packed = np.concatenate([packed, env * width + col[key]])
        doubtful[over_limit(packed, size, enc.limits[limited])] = True
    if len(enc.cannot[0]):
        doubtful[_cannot_inside(enc, envelope)] = True
    if enc.names:
        doubtful[_names_differ(enc, envelope)] = True
    return Screen(smallest[envelope], doubtful[envelope], present)


def over_limit(packed: IntArray, size: int, limits: IntArray) -> IntArray:
    """Groups (of ``size``) holding more than ``limits[t]`` of the ``packed`` ``group * len(limits) + t`` entries."""
    width = len(limits)
    if size * width <= 8 * len(packed):  # dense enough for a count per group and type
        counts = np.bincount(packed, minlength=size * width).reshape(size, width)
        return np.flatnonzero((counts > limits).ravel()) // width
    values = np.sort(packed)
    starts = runs(values)
    found = values[starts]
    return distinct(found[lengths(starts, len(values)) > limits[found % width]] // width)


def _holding(
    enc: Encoded, envelope: IntArray, keys: IntArray, *, by_envelope: bool = False
) -> tuple[IntArray, IntArray]:
    """Distinct (key, envelope) pairs for ``keys``, sorted by key (or by envelope)."""
    nk, width = len(enc.key_priority), int(envelope.max()) + 1
    held = np.flatnonzero(member(enc.k, keys, nk))
    if by_envelope:
        env, key = np.divmod(distinct(envelope[enc.r[held]] * nk + enc.k[held]), nk)
        return key, env
    return np.divmod(distinct(enc.k[held] * width + envelope[enc.r[held]]), width)


def _cannot_inside(enc: Encoded, envelope: IntArray) -> IntArray:
    """Envelopes holding both keys of a cannot-link."""
    a, b = enc.cannot
    key, env = _holding(enc, envelope, np.concatenate([a, b]))
    width = int(envelope.max()) + 1
    sides = []
    for side in (a, b):
        lo = np.searchsorted(key, side, side="left")
        counts = np.searchsorted(key, side, side="right") - lo
        sides.append(distinct(np.repeat(np.arange(len(side)), counts) * width + env[ranges(lo, counts)]))
    return np.intersect1d(sides[0], sides[1], assume_unique=True) % width


def _names_differ(enc: Encoded, envelope: IntArray) -> list[int]:
    """Envelopes holding two clearly different names (or too many names to compare)."""
    name_keys = np.fromiter(enc.names, dtype=np.int64, count=len(enc.names))
    key, env = _holding(enc, envelope, name_keys, by_envelope=True)
    starts = runs(env)
    lens = lengths(starts, len(env))
    several = np.flatnonzero(lens >= 2)
    out = env[starts[several[lens[several] > NAMES_CHECKED]]].tolist()
    few = several[lens[several] <= NAMES_CHECKED]
    rows = ranges(starts[few], lens[few])
    groups: dict[int, list[str]] = {}
    for e, k in zip(env[rows].tolist(), key[rows].tolist(), strict=True):
        groups.setdefault(e, []).append(enc.names[k])
    for e, names in groups.items():
        if any(names_conflict(a, b) for i, a in enumerate(names) for b in names[i + 1 :]):
            out.append(e)
    return out


def restrict(enc: Encoded, records: IntArray) -> tuple[Encoded, IntArray]:
    """The problem on the records where ``records`` is true, and the key ids it keeps (its keys, in order)."""
    from omnicrm.identity.resolve import Encoded

    n, nk = enc.n_records, len(enc.key_priority)
    ids = np.flatnonzero(records)
    new_id = np.full(n, -1, dtype=np.int64)
    new_id[ids] = np.arange(len(ids))
    held = np.flatnonzero(records[enc.r])
    k = enc.k[held]
    keys = distinct(k)
    new_key = np.full(nk, -1, dtype=np.int64)
    new_key[keys] = np.arange(len(keys))
    name_keys = np.fromiter(enc.names, dtype=np.int64, count=len(enc.names))
    kept = name_keys[new_key[name_keys] >= 0].tolist()
    names = {int(i): enc.names[key] for i, key in zip(new_key[kept].tolist(), kept, strict=True)}
    sub = Encoded(
        new_id[enc.r[held]],
        new_key[k],
        len(ids),
        enc.key_type_code[keys],
        enc.limits,
        enc.key_priority[keys],
        names,
    )
    a, b = enc.must
    inside = records[a] & records[b]
    sub.must = (new_id[a[inside]], new_id[b[inside]])
    a, b = enc.cannot
    inside = (new_key[a] >= 0) & (new_key[b] >= 0)
    sub.cannot = (new_key[a[inside]], new_key[b[inside]])
    a, b = enc.extra
    inside = records[a] & records[b]
    sub.extra = (new_id[a[inside]], new_id[b[inside]])
    return sub, keys
