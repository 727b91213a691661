"""The resolution engine as it was before ``omnicrm.identity.staged`` (2026-11): a reference to compare with.

Each stage builds a compressed graph of the components and keys it touches, runs scipy's connected
components on it, and re-counts the distinct keys of every merged component from the occurrences.
Slow, but straightforward; ``test_resolve_reference.py`` checks that the engine gives the same
answer (components, stages, refusals and stats) on random problems.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from omnicrm.identity.identifiers import IDENTIFIER_TYPES, names_conflict
from omnicrm.identity.resolve import Encoded

IntArray = np.ndarray


def _unique(x: IntArray, *, counts: bool = False) -> tuple[IntArray, IntArray]:
    """Sorted distinct values (and their counts) of an int array; a plain sort beats np.unique's hashing here."""
    s = np.sort(x) if len(x) else x.astype(np.int64)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.zeros(0, dtype=np.int64)
    values = s[starts]
    if not counts:
        return values, np.zeros(0, dtype=np.int64)
    return values, np.diff(np.r_[starts, len(s)])


def _factorize(x: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """(distinct values, index of each element's value among them) for ints in [0, size), through a
    lookup table rather than a sort."""
    present = np.zeros(size, dtype=bool)
    present[x] = True
    values = np.flatnonzero(present)
    index = np.empty(size, dtype=np.int64)
    index[values] = np.arange(len(values))
    return values, index[x]


def _unique_pairs(a: IntArray, b: IntArray) -> tuple[IntArray, IntArray]:
    """Distinct (a, b) pairs of non-negative ints, sorted by a then b."""
    if len(a) == 0:
        return a.astype(np.int64), b.astype(np.int64)
    m = int(b.max()) + 1
    return np.divmod(_unique(a.astype(np.int64) * m + b)[0], m)


def _member(x: IntArray, values: IntArray) -> IntArray:
    """``x in values`` for non-negative ints, through a lookup table."""
    if len(values) == 0 or len(x) == 0:
        return np.zeros(len(x), dtype=bool)
    table = np.zeros(max(int(x.max()), int(values.max())) + 1, dtype=bool)
    table[values] = True
    return table[x]


class _Graph:
    """The occurrence pairs with the limits, and the vectorised merge and checks of one stage."""

    def __init__(self, enc: Encoded) -> None:
        self.r, self.k, self.n = enc.r, enc.k, enc.n_records
        self.key_type_code = enc.key_type_code
        self.limits = enc.limits
        self.n_types = len(enc.limits)
        self.names = enc.names
        self.name_occ = _member(enc.k, np.fromiter(enc.names, dtype=np.int64, count=len(enc.names)))
        self.cannot = enc.cannot
        self.n_keys = len(enc.key_priority)

    def merge(self, comp: IntArray, active: IntArray, extra: tuple[IntArray, IntArray] | None = None) -> IntArray:
        """New component per record after joining ``comp`` through the occurrences ``active``.

        Only the components and keys the edges touch become graph nodes; a merged component is
        labelled by its smallest constituent label, so untouched components keep theirs.
        """
        a = comp[self.r[active]]
        b = self.k[active]
        ea, eb = (comp[extra[0]], comp[extra[1]]) if extra is not None else (a[:0], a[:0])
        if len(a) + len(ea) == 0:
            return comp
        comps, comp_idx = _factorize(np.concatenate([a, ea, eb]), self.n)
        keys, key_idx = _factorize(b, self.n_keys)
        m = len(comps)
        src = np.concatenate([comp_idx[: len(a)], comp_idx[len(a) : len(a) + len(ea)]])
        dst = np.concatenate([m + key_idx, comp_idx[len(a) + len(ea) :]])
        nodes = m + len(keys)
        graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(nodes, nodes)).tocsr()
        _, labels = connected_components(graph, directed=False)
        first = np.empty(int(labels.max()) + 1, dtype=np.int64)
        first[labels[:m][::-1]] = comps[::-1]  # comps ascend: written last, the smallest label wins
        mapping = np.arange(self.n, dtype=np.int64)
        mapping[comps] = first[labels[:m]]
        return mapping[comp]

    def _counts(self, comp: IntArray, occ: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """(component, type, distinct keys of that type) over the occurrences ``occ``."""
        c, kk = _unique_pairs(comp[self.r[occ]], self.k[occ])
        groups, counts = _unique(c * self.n_types + self.key_type_code[kk], counts=True)
        cc, tt = np.divmod(groups, self.n_types)
        return cc, tt, counts

    def violating(self, old: IntArray, new: IntArray) -> IntArray:
        """Labels of components of ``new`` that the merge made break a limit, a cannot-link or the name veto."""
        merged = _unique(new[new != old])[0]
        if len(merged) == 0:
            return merged
        occ = np.flatnonzero(_member(new[self.r], merged))
        nc, nt, nn = self._counts(new, occ)
        over = nn > self.limits[nt]
        bad: set[int] = set()
        if over.any():
            # a merge may not make things worse than its worst constituent already was, per type
            suspects = np.unique(nc[over])
            sub = occ[_member(new[self.r[occ]], suspects)]
            oc, ot, on = self._counts(old, sub)
            before_key = new[oc] * self.n_types + ot
            order = np.argsort(before_key, kind="stable")
            before_key, on = before_key[order], on[order]
            starts = np.flatnonzero(np.r_[True, before_key[1:] != before_key[:-1]])
            worst_key, worst = before_key[starts], np.maximum.reduceat(on, starts)
            at = np.searchsorted(worst_key, nc[over] * self.n_types + nt[over])
            bad.update(nc[over][nn[over] > worst[np.minimum(at, len(worst) - 1)]].tolist())
        ca, cb = self.cannot
        if len(ca):
            sub_r, sub_k = self.r[occ], self.k[occ]
            held = set(zip(new[sub_r].tolist(), sub_k.tolist(), strict=True))
            bad.update(c for c in merged.tolist() for a_, b_ in zip(ca.tolist(), cb.tolist(), strict=True)
                       if (c, a_) in held and (c, b_) in held)  # fmt: skip
        if self.names:
            name_occ = occ[self.name_occ[occ]]
            bad.update(self._conflicting(self._names_in(new[self.r[name_occ]], old[self.r[name_occ]], name_occ)))
        return np.array(sorted(bad), dtype=np.int64)

    def _names_in(self, group: IntArray, member: IntArray, occ: IntArray) -> dict[int, list[tuple[int, str]]]:
        triples = set(zip(group.tolist(), member.tolist(), self.k[occ].tolist(), strict=True))
        out: dict[int, list[tuple[int, str]]] = {}
        for g, m, key in triples:
            out.setdefault(g, []).append((m, self.names[key]))
        return out

    @staticmethod
    def _conflicting(groups: dict[int, list[tuple[int, str]]]) -> list[int]:
        """Groups holding two clearly different names that come from different members."""
        bad = []
        for g, pairs in groups.items():
            if len({name for _, name in pairs}) < 2:
                continue
            if any(
                m1 != m2 and names_conflict(n1, n2) for i, (m1, n1) in enumerate(pairs) for m2, n2 in pairs[i + 1 :]
            ):
                bad.append(g)
        return bad

    def joining_keys(self, old: IntArray, new: IntArray, allowed: IntArray, bad: IntArray) -> IntArray:
        """Allowed keys that joined two or more old components inside the ``bad`` new ones."""
        occ = np.flatnonzero(allowed[self.k] & _member(new[self.r], bad))
        keys, _ = _unique_pairs(self.k[occ], old[self.r[occ]])
        found, counts = _unique(keys, counts=True)
        return found[counts > 1]

    def alone_violations(self, old: IntArray, keys: IntArray) -> tuple[IntArray, IntArray]:
        """Which of ``keys`` would break a limit or the name veto if it alone joined its holders,
        and how many old components hold each."""
        if len(keys) == 0:
            return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
        holds = np.flatnonzero(_member(self.k, keys))
        key_of, comp_of = _unique_pairs(self.k[holds], old[self.r[holds]])  # (key, old comp holding it)
        held_by = np.flatnonzero(_member(old[self.r], comp_of))
        prof_comp, prof_key = _unique_pairs(old[self.r[held_by]], self.k[held_by])  # (old comp, key it holds)
        starts = np.searchsorted(prof_comp, comp_of, side="left")
        lens = np.searchsorted(prof_comp, comp_of, side="right") - starts
        offsets = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        held = prof_key[np.repeat(starts, lens) + offsets]
        kk, hh = _unique_pairs(np.repeat(key_of, lens), held)
        groups, counts = _unique(kk * self.n_types + self.key_type_code[hh], counts=True)
        gk, gt = np.divmod(groups, self.n_types)
        over = set(gk[counts > self.limits[gt]].tolist())
        if self.names:
            named = held_by[self.name_occ[held_by]]
            names_of = self._names_in(old[self.r[named]], old[self.r[named]], named)
            pairs: dict[int, list[tuple[int, str]]] = {}
            for key, comp in zip(key_of.tolist(), comp_of.tolist(), strict=True):
                pairs.setdefault(key, []).extend((comp, name) for _, name in names_of.get(comp, []))
            over.update(self._conflicting(pairs))
        holder_keys, holder_counts = _unique(key_of, counts=True)
        holders = holder_counts[np.searchsorted(holder_keys, keys)]
        return _member(keys, np.fromiter(over, dtype=np.int64, count=len(over))), holders


def resolve_encoded(enc: Encoded) -> tuple[IntArray, IntArray, list[str | None], dict[str, int]]:
    """(component per record, merge stage per key, refusal per key, stats) for an encoded problem."""
    graph = _Graph(enc)
    n_keys = len(enc.key_priority)
    key_stage = np.full(n_keys, -1, dtype=np.int64)
    refusal: list[str | None] = [None] * n_keys
    stats: dict[str, int] = {"records": enc.n_records, "keys": n_keys}
    comp = np.arange(enc.n_records, dtype=np.int64)
    if len(enc.must[0]):
        comp = graph.merge(comp, np.zeros(0, dtype=np.int64), enc.must)
        stats["must_link"] = len(enc.must[0])
    order = np.argsort(enc.key_priority[enc.k], kind="stable")  # occurrences grouped by stage
    stage_of_occ = enc.key_priority[enc.k][order]
    for priority in sorted({t.priority for t in IDENTIFIER_TYPES.values() if t.merges}):
        lo, hi = np.searchsorted(stage_of_occ, [priority, priority + 1])
        if lo == hi:
            continue
        stage_occ = order[lo:hi]
        stage_name = "+".join(t.name for t in IDENTIFIER_TYPES.values() if t.priority == priority and t.merges)
        allowed = np.zeros(n_keys, dtype=bool)
        allowed[enc.k[stage_occ]] = True
        in_stage = allowed.copy()
        new = graph.merge(comp, stage_occ)
        bad = graph.violating(comp, new)
        if len(bad):
            joining = graph.joining_keys(comp, new, allowed, bad)
            alone, holders = graph.alone_violations(comp, joining)
            for key, n in zip(joining[alone].tolist(), holders[alone].tolist(), strict=True):
                refusal[key] = f"would join {n} customers beyond a per-customer identifier limit"
            allowed[joining[alone]] = False
            new = graph.merge(comp, stage_occ[allowed[enc.k[stage_occ]]])
            bad = graph.violating(comp, new)
            if len(bad):
                rest = graph.joining_keys(comp, new, allowed, bad)
                for key in rest.tolist():
                    refusal[key] = "together with other identifiers would join different customers"
                allowed[rest] = False
                new = graph.merge(comp, stage_occ[allowed[enc.k[stage_occ]]])
        key_stage[allowed] = priority
        stats[f"stage {stage_name}: refused"] = int((in_stage & ~allowed).sum())
        comp = new
    if len(enc.extra[0]):
        ea, eb = enc.extra
        new = graph.merge(comp, np.zeros(0, dtype=np.int64), (ea, eb))
        bad = _member(new, graph.violating(comp, new))
        keep = ~bad[ea]
        stats["probabilistic: refused"] = int((~keep).sum())
        stats["probabilistic: merged"] = int(keep.sum())
        comp = graph.merge(comp, np.zeros(0, dtype=np.int64), (ea[keep], eb[keep]))
    stats["customers"] = len(_unique(comp)[0])
    return comp, key_stage, refusal, stats
