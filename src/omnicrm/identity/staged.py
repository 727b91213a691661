"""The engine behind ``resolve``: identifier stages merged one after another, checked incrementally.

State between stages, all integer arrays:

- ``comp``: the component (customer) of each record, labelled by its smallest record;
- ``counts``: per component label, how many distinct keys of each limited type (type and scope) it
  holds — kept for the current components only and updated when they merge;
- the *split keys*: distinct ``(key, component)`` pairs of the keys held by two or more components,
  sorted by stage, key and component. They are the only keys a merge can join through, and the
  only keys a merged component can count twice: after a merge a component holds
  ``sum(counts of its parts) - (repeats of a split key among its parts)`` keys of a type.

A stage joins its split keys with a vectorised union-find, measures every merged component from
the counts of its parts and the split keys that collapsed, and checks the limits (a merge may not
give a component more keys of a type than the limit and than its worst part had), the cannot-links
and the name veto. If some merged components break them, the stage's keys inside those components
give way as described in ``resolve``, and only those components are merged and checked again. The
work per stage is proportional to the split keys and the components it touches, never to the
records left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from omnicrm.identity.arrays import EMPTY, Forest, distinct, lengths, member, ranges, runs, table
from omnicrm.identity.identifiers import names_conflict
from omnicrm.identity.screen import stage_codes

if TYPE_CHECKING:
    from omnicrm.identity.resolve import Encoded

__all__ = ["Staged", "StagedMerge", "resolve_staged"]

IntArray = np.ndarray

ALONE = "would join {} customers beyond a per-customer identifier limit"
TOGETHER = "together with other identifiers would join different customers"


@dataclass
class _Check:
    """Merged components (new labels, sorted), their key counts per limited type, which break a rule,
    and the split keys relabelled to them (sorted packed ``key * n + component``, repeats flagged)."""

    comps: IntArray
    counts: IntArray
    bad: IntArray
    packed: IntArray
    first: IntArray

    def good(self) -> _Check:
        keep = ~self.bad
        return _Check(self.comps[keep], self.counts[keep], self.bad[keep], EMPTY, EMPTY)


@dataclass
class Staged:
    """What the stages made of a problem: components, merge stage and refusal per key, refusals counted."""

    comp: IntArray
    key_stage: IntArray
    refused: dict[int, str]
    refused_by_stage: list[int]
    probabilistic_refused: int


def resolve_staged(enc: Encoded, stages: list[int]) -> Staged:
    """Run the stages (then the probabilistic pairs) over every record of ``enc``."""
    engine = StagedMerge(enc, stages)
    refused: dict[int, str] = {}
    by_stage = [0] * len(stages)
    for s in range(len(stages)):
        if engine.present[s]:
            got = engine.stage(s)
            refused.update(got)
            by_stage[s] = len(got)
    engine.key_stage[np.fromiter(refused, dtype=np.int64, count=len(refused))] = -1
    probabilistic = engine.probabilistic(*enc.extra) if len(enc.extra[0]) else 0
    return Staged(engine.comp, engine.key_stage, refused, by_stage, probabilistic)


def _conflicting(groups: dict[int, list[tuple[int, str]]]) -> list[int]:
    """Groups holding two clearly different names that come from different members."""
    bad = []
    for g, pairs in groups.items():
        if len({name for _, name in pairs}) < 2:
            continue
        if any(m1 != m2 and names_conflict(n1, n2) for i, (m1, n1) in enumerate(pairs) for m2, n2 in pairs[i + 1 :]):
            bad.append(g)
    return bad


class StagedMerge:
    """Records joined stage by stage through shared keys, refusing merges that break the protections."""

    def __init__(self, enc: Encoded, stages: list[int]) -> None:
        n, nk, n_stages = enc.n_records, len(enc.key_priority), len(stages)
        self.n, self.nk, self.stages = n, nk, stages
        if (n_stages + 1) * nk * max(n, 1) >= 2**63:
            raise ValueError(f"{n:,} records and {nk:,} identifier keys are too many to resolve in one pass")
        code = stage_codes(enc.key_priority, stages).astype(np.int64)
        self.forest = Forest(n)
        self.comp = np.arange(n, dtype=np.int64)
        if len(enc.must[0]):  # operator joins come first and are never checked
            touched = self.forest.join(enc.must[0], enc.must[1])
            self.comp = self.forest.root[self.comp]
            self.forest.reset(touched)
        # holdings: distinct (stage key, component) pairs, sorted; a stage key is code * nk + key
        packed = np.sort((code[enc.k] * nk + enc.k) * n + self.comp[enc.r])
        packed = packed[runs(packed)]
        held_sk, held_c = np.divmod(packed, n)
        del packed
        held_code, held_key = np.divmod(held_sk, nk)
        starts = runs(held_sk)
        self.present = np.bincount(held_code[starts], minlength=n_stages + 1)[:n_stages] > 0
        merging = starts[held_code[starts] < n_stages]
        self.key_stage = np.full(nk, -1, dtype=np.int64)
        self.key_stage[held_key[merging]] = np.array(stages, dtype=np.int64)[held_code[merging]]
        # counts only for the types whose limit a component could break (not names: 1,000,000 of them)
        limited = enc.limits < np.bincount(enc.key_type_code, minlength=len(enc.limits))
        col_of_type = np.where(limited, np.cumsum(limited) - 1, -1)
        self.limits = enc.limits[limited]
        self.n_cols = t = len(self.limits)
        self.col = col_of_type[enc.key_type_code] if nk else EMPTY
        held_col = self.col[held_key]
        counted = np.flatnonzero(held_col >= 0)
        counts = np.zeros(n * t, dtype=np.int32)
        np.add.at(counts, held_c[counted] * t + held_col[counted], np.ones(len(counted), dtype=np.int32))
        self.counts = counts.reshape(n, t)
        del counted, held_col
        # split keys: held by two or more components (keys that never merge only if they are counted)
        lens = lengths(starts, len(held_sk))
        useful = (lens >= 2) & ((held_code[starts] < n_stages) | (self.col[held_key[starts]] >= 0))
        keep = np.repeat(useful, lens)
        self.split_k, self.split_c = held_sk[keep], held_c[keep]
        del keep
        self.names = enc.names
        if enc.names:
            name_keys = np.fromiter(enc.names, dtype=np.int64, count=len(enc.names))
            named = np.flatnonzero(member(held_key, name_keys, nk))
            self.name_c, self.name_k = held_c[named], held_key[named]
        ca, cb = enc.cannot
        self.cannot = len(ca) > 0
        if self.cannot:
            self.cannot_a = self._holders(held_sk, held_c, code[ca] * nk + ca)
            self.cannot_b = self._holders(held_sk, held_c, code[cb] * nk + cb)

    @staticmethod
    def _holders(held_sk: IntArray, held_c: IntArray, sks: IntArray) -> tuple[IntArray, IntArray]:
        """(index of the key in ``sks``, component) for every component holding one of the stage keys ``sks``."""
        lo = np.searchsorted(held_sk, sks, side="left")
        counts = np.searchsorted(held_sk, sks, side="right") - lo
        return np.repeat(np.arange(len(sks)), counts), held_c[ranges(lo, counts)]

    # ----------------------------------------------------------------------------------------------
    def stage(self, s: int) -> dict[int, str]:
        """Merge stage ``s`` (an index into ``stages``); returns the refused keys with the reason."""
        lo, hi = np.searchsorted(self.split_k, [s * self.nk, (s + 1) * self.nk])
        if lo == hi:
            return {}
        sk, sc = self.split_k[lo:hi], self.split_c[lo:hi]
        starts = runs(sk)
        lens = lengths(starts, len(sk))
        first = sc[starts]
        touched = self.forest.join(sc, np.repeat(first, lens))
        affected = self._affected()
        check = self._check(touched, affected)
        refused: dict[int, str] = {}
        if not check.bad.any():
            self._commit(touched, [check], affected, check)
            return refused
        # the keys inside the offending components give way: first those that break a rule alone ...
        root = self.forest.root
        bad = table(check.comps[check.bad], self.n)  # by component label
        joining = np.flatnonzero(bad[root[first]])  # segments of the keys that joined them
        alone, holders = self._alone(sc, starts[joining], lens[joining])
        for key, count in zip((sk[starts[joining[alone]]] % self.nk).tolist(), holders[alone].tolist(), strict=True):
            refused[key] = ALONE.format(count)
        region_affected = affected[bad[root[self.split_c[affected]]]]
        self.forest.reset(touched[bad[root[touched]]])
        kept = joining[~alone]
        again = self.forest.join(sc[ranges(starts[kept], lens[kept])], np.repeat(first[kept], lens[kept]))
        second = self._check(again, region_affected)
        if second.bad.any():  # ... then every key still joining a component that breaks one
            bad = table(second.comps[second.bad], self.n)
            rest = kept[bad[root[first[kept]]]]
            for key in (sk[starts[rest]] % self.nk).tolist():
                refused[key] = TOGETHER
            self.forest.reset(again[bad[root[again]]])
        self._commit(touched, [check.good(), second.good()], affected, None)
        return refused

    def probabilistic(self, a: IntArray, b: IntArray) -> int:
        """Join the record pairs ``(a, b)`` unless the component they would make breaks a protection;
        returns how many pairs were refused."""
        u, v = self.comp[a], self.comp[b]
        touched = self.forest.join(u, v)
        check = self._check(touched, self._affected())
        root = self.forest.root
        keep = ~member(root[u], check.comps[check.bad], self.n)
        self.forest.reset(touched)
        touched = self.forest.join(u[keep], v[keep])
        self.comp = self.forest.root[self.comp]
        self.forest.reset(touched)
        return int((~keep).sum())

    def customers(self) -> int:
        return int(np.count_nonzero(self.comp == np.arange(self.n)))

    # ----------------------------------------------------------------------------------------------
    def _affected(self) -> IntArray:
        """Positions of the split keys that have a holder whose component the current join relabelled."""
        moved = self.forest.root[self.split_c] != self.split_c
        if not moved.any():
            return EMPTY
        starts = runs(self.split_k)
        return np.flatnonzero(np.repeat(np.logical_or.reduceat(moved, starts), lengths(starts, len(moved))))

    def _check(self, touched: IntArray, affected: IntArray) -> _Check:
        """Measure the components the current join made from ``touched`` labels, and check them."""
        n, root = self.n, self.forest.root
        packed = np.sort(self.split_k[affected] * n + root[self.split_c[affected]])
        first = np.ones(len(packed), dtype=bool)
        np.not_equal(packed[1:], packed[:-1], out=first[1:])
        if len(touched) == 0:
            return _Check(EMPTY, np.zeros((0, self.n_cols), np.int32), np.zeros(0, bool), packed, first)
        by_comp = np.sort(root[touched] * n + touched)
        new, parts = np.divmod(by_comp, n)
        starts = runs(new)
        comps = new[starts]
        rows = self.counts[parts]
        counts = np.add.reduceat(rows, starts, axis=0)
        worst = np.maximum.reduceat(rows, starts, axis=0)
        repeat_k, repeat_c = np.divmod(packed[~first], n)
        col = self.col[repeat_k % self.nk]
        counted = col >= 0
        at = np.searchsorted(comps, repeat_c[counted]) * self.n_cols + col[counted]
        np.subtract.at(counts.reshape(-1), at, np.ones(len(at), dtype=counts.dtype))
        bad = np.asarray(((counts > self.limits) & (counts > worst)).any(axis=1))
        if self.cannot:
            bad |= member(comps, self._cannot_broken(comps), n)
        if self.names:
            bad |= member(comps, np.array(self._names_broken(comps), dtype=np.int64), n)
        return _Check(comps, counts, bad, packed, first)

    def _commit(self, touched: IntArray, checks: list[_Check], affected: IntArray, measured: _Check | None) -> None:
        """Make the current join permanent: components, their counts and the split keys left."""
        n, root = self.n, self.forest.root
        for check in checks:
            self.counts[check.comps] = check.counts
        if measured is None:
            packed = np.sort(self.split_k[affected] * n + root[self.split_c[affected]])
            first = np.ones(len(packed), dtype=bool)
            np.not_equal(packed[1:], packed[:-1], out=first[1:])
        else:
            packed, first = measured.packed, measured.first
        if len(affected):
            distinct_pairs = packed[first]
            keys = distinct_pairs // n
            starts = runs(keys)
            lens = lengths(starts, len(keys))
            keep_affected = first.copy()
            keep_affected[first] = np.repeat(lens >= 2, lens)  # still held by two or more components
            self.split_c[affected] = packed % n
            keep = np.ones(len(self.split_k), dtype=bool)
            keep[affected] = keep_affected
            self.split_k, self.split_c = self.split_k[keep], self.split_c[keep]
        if len(touched):
            self.comp = root[self.comp]
        self.forest.reset(touched)

    def _cannot_broken(self, comps: IntArray) -> IntArray:
        """Components among ``comps`` holding both keys of a cannot-link."""
        n, root = self.n, self.forest.root
        mark = table(comps, n)
        sides = []
        for pair, held in (self.cannot_a, self.cannot_b):
            new = root[self.comp[held]]
            sel = mark[new]
            sides.append(distinct(pair[sel] * n + new[sel]))
        return np.intersect1d(sides[0], sides[1], assume_unique=True) % n

    def _names_broken(self, comps: IntArray) -> list[int]:
        """Components among ``comps`` holding clearly different names from different former components."""
        old = self.comp[self.name_c]
        new = self.forest.root[old]
        sel = member(new, comps, self.n)
        return self._name_groups(new[sel], old[sel], self.name_k[sel])

    def _name_groups(self, group: IntArray, part: IntArray, key: IntArray) -> list[int]:
        """Groups whose names, coming from different parts, clearly differ (the name veto)."""
        if len(group) == 0:
            return []
        # distinct (group, part, key) in that order: rank the (part, key) pairs, then sort (group, rank)
        pairs = part * self.nk + key
        ranked = distinct(pairs)
        triples = distinct(group * len(ranked) + np.searchsorted(ranked, pairs))
        group, rank = np.divmod(triples, len(ranked))
        part, key = np.divmod(ranked[rank], self.nk)
        starts = runs(group)
        new_part = np.ones(len(group), dtype=np.int64)
        new_part[1:] = (group[1:] != group[:-1]) | (part[1:] != part[:-1])
        parts = np.add.reduceat(new_part, starts)  # distinct parts per group
        lo_key, hi_key = np.minimum.reduceat(key, starts), np.maximum.reduceat(key, starts)
        candidates = np.flatnonzero((parts >= 2) & (lo_key != hi_key))
        if len(candidates) == 0:
            return []
        lens = lengths(starts, len(group))
        rows = ranges(starts[candidates], lens[candidates])
        groups: dict[int, list[tuple[int, str]]] = {}
        for g, m, k in zip(group[rows].tolist(), part[rows].tolist(), key[rows].tolist(), strict=True):
            groups.setdefault(g, []).append((m, self.names[k]))
        return _conflicting(groups)

    def _alone(self, sc: IntArray, starts: IntArray, lens: IntArray) -> tuple[IntArray, IntArray]:
        """For the keys whose holders are ``sc[start : start + len]``: whether joining its holders alone
        would break a limit or the name veto, and how many components hold it."""
        n, nk, width = self.n, self.nk, self.n_cols
        j = len(starts)
        if j == 0:
            return np.zeros(0, dtype=bool), EMPTY
        held = sc[ranges(starts, lens)]
        owner = np.repeat(np.arange(j), lens)
        counts = np.add.reduceat(self.counts[held], np.cumsum(lens) - lens, axis=0)
        # split keys held by two or more holders of the same key count once
        holders = distinct(held)
        near = np.flatnonzero(member(self.split_c, holders, n))
        by_comp = np.sort(held * j + owner)
        comp_of, owner_of = np.divmod(by_comp, j)
        lo = np.searchsorted(comp_of, self.split_c[near], side="left")
        hits = np.searchsorted(comp_of, self.split_c[near], side="right") - lo
        pairs = np.sort(owner_of[ranges(lo, hits)] * nk + np.repeat(self.split_k[near] % nk, hits))
        pair_starts = runs(pairs)
        pair_lens = lengths(pair_starts, len(pairs))
        many = pair_lens >= 2
        who, key = np.divmod(pairs[pair_starts[many]], nk)
        col = self.col[key]
        counted = col >= 0
        repeats = (pair_lens[many][counted] - 1).astype(counts.dtype)
        np.subtract.at(counts.reshape(-1), who[counted] * width + col[counted], repeats)
        over = np.asarray((counts > self.limits).any(axis=1))
        if self.names:
            old = self.comp[self.name_c]
            sel = np.flatnonzero(member(old, holders, n))
            lo = np.searchsorted(comp_of, old[sel], side="left")
            hits = np.searchsorted(comp_of, old[sel], side="right") - lo
            at = np.repeat(sel, hits)
            broken = self._name_groups(owner_of[ranges(lo, hits)], old[at], self.name_k[at])
            over[np.array(broken, dtype=np.int64)] = True
        return over, lens
