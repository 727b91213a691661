"""Deterministic resolution: records joined through shared identifiers, with merge protection.

The graph is bipartite (records and identifier keys). Identifier types merge in stages, most trusted
first (``IdentifierType.priority``). After each stage every new component is checked against the
per-type limits (``IdentifierType.limit``: e.g. one member card per customer) and the operator's
cannot-links; an identifier whose merge would break them gives way — it stays attached to each of
its holders but joins nobody ("shared"), which is what keeps a family phone from merging a family.
A key on the orders of many different buyers (a shop's own phone) breaks the limits at once and so
never merges anyone. Everything runs on numpy arrays with scipy's connected components.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from omnicrm.identity.identifiers import IDENTIFIER_TYPES, names_conflict

__all__ = ["Resolution", "resolve"]

IntArray = np.ndarray


@dataclass
class Resolution:
    """Which component each record and identifier key belongs to, and why keys did or did not merge."""

    record_keys: pa.Array  # string, one per record
    record_comp: IntArray  # component label per record (labels are record indices)
    keys: pa.Array  # string, one per identifier key
    key_type: pa.Array  # its identifier type
    key_stage: IntArray  # priority of the stage that used it (-1: never a merge key)
    key_refusal: list[str | None]  # why a key was refused as a merge key, or None
    stats: dict[str, int] = field(default_factory=dict)


def _codes(values: pa.Array | pa.ChunkedArray) -> tuple[IntArray, pa.Array]:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary


def _union(n: int, a: IntArray, b: IntArray) -> IntArray:
    """Connected-component label (smallest member index) of each of ``n`` nodes joined by edges a–b."""
    if len(a) == 0:
        return np.arange(n)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    return first[labels]


class _Graph:
    """Occurrence pairs (record r holds key k) and the per-type limits, with vectorised checks."""

    def __init__(
        self,
        r: IntArray,
        k: IntArray,
        n_records: int,
        key_type_code: IntArray,
        limits: IntArray,
        names: dict[int, str],
    ) -> None:
        self.r, self.k, self.n = r, k, n_records
        self.key_type_code = key_type_code
        self.limits = limits
        self.n_types = len(limits)
        self.names = names  # key index → normalised name, for the name-conflict veto
        self.name_occ = np.isin(k, np.fromiter(names, dtype=np.int64, count=len(names)))

    def _names_by(self, group: IntArray, member: IntArray, within: IntArray) -> dict[int, list[tuple[int, str]]]:
        """For each group in ``within``: its (member, name) pairs, from the name occurrences."""
        occ = self.name_occ & np.isin(group, within)
        triples = {(int(g), int(m), int(key)) for g, m, key in zip(group[occ], member[occ], self.k[occ], strict=True)}
        out: dict[int, list[tuple[int, str]]] = {}
        for g, m, key in triples:
            out.setdefault(g, []).append((m, self.names[key]))
        return out

    def _conflicting(self, groups: dict[int, list[tuple[int, str]]]) -> list[int]:
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

    def merge(self, comp: IntArray, active: IntArray, extra: tuple[IntArray, IntArray] | None = None) -> IntArray:
        """New component per record after joining ``comp`` through the occurrences in ``active``."""
        n_keys = int(self.k.max()) + 1 if len(self.k) else 0
        a = comp[self.r[active]]
        b = self.n + self.k[active]
        if extra is not None:
            a = np.concatenate([a, comp[extra[0]]])
            b = np.concatenate([b, comp[extra[1]]])
        labels = _union(self.n + n_keys, a, b)
        return labels[comp]

    def type_counts(self, comp: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """(component, type, distinct keys of that type) for every component."""
        c, kk = _unique_pairs(comp[self.r], self.k)
        groups, counts = np.unique(c * self.n_types + self.key_type_code[kk], return_counts=True)
        cc, tt = np.divmod(groups, self.n_types)
        return cc, tt, counts

    def violating(self, old: IntArray, new: IntArray, cannot: tuple[IntArray, IntArray]) -> IntArray:
        """Components of ``new`` that broke a limit or a cannot-link they did not already break in ``old``."""
        oc, ot, on = self.type_counts(old)
        # the worst constituent of each new component, per type: a merge may not make things worse
        before_key = new[oc] * self.n_types + ot
        order = np.argsort(before_key, kind="stable")
        before_key, on = before_key[order], on[order]
        starts = np.flatnonzero(np.r_[True, before_key[1:] != before_key[:-1]]) if len(before_key) else before_key
        worst_key = before_key[starts]
        worst = np.maximum.reduceat(on, starts) if len(on) else on
        nc, nt, nn = self.type_counts(new)
        at = np.searchsorted(worst_key, nc * self.n_types + nt)
        prior = worst[np.minimum(at, len(worst) - 1)] if len(worst) else np.zeros_like(nn)
        over = nn > np.maximum(self.limits[nt], prior)
        bad = np.zeros(self.n, dtype=bool)
        bad[nc[over]] = True
        ca, cb = cannot
        if len(ca):
            in_a, in_b = np.isin(self.k, ca), np.isin(self.k, cb)
            holders_a = set(zip(new[self.r[in_a]].tolist(), self.k[in_a].tolist(), strict=True))
            pairs = set(zip(ca.tolist(), cb.tolist(), strict=True))
            for comp_, key_b in zip(new[self.r[in_b]].tolist(), self.k[in_b].tolist(), strict=True):
                if any((comp_, key_a) in holders_a for key_a, b in pairs if b == key_b):
                    bad[comp_] = True
        constituents = np.bincount(_unique_pairs(new, old)[0], minlength=self.n)
        merged = constituents > 1
        if self.names:
            by_comp = self._names_by(new[self.r], old[self.r], np.flatnonzero(merged & ~bad))
            bad[self._conflicting(by_comp)] = True
        return bad & merged

    def alone_violations(self, old: IntArray, keys: IntArray) -> IntArray:
        """Which of ``keys`` would break a limit if it alone joined the components that hold it."""
        if len(keys) == 0:
            return np.zeros(0, dtype=bool)
        holds = np.isin(self.k, keys)
        key_of, comp_of = _unique_pairs(self.k[holds], old[self.r[holds]])  # (key, old comp)
        prof_comp, prof_key = _unique_pairs(old[self.r], self.k)  # (old comp, key it holds), sorted by comp
        starts = np.searchsorted(prof_comp, comp_of, side="left")
        lens = np.searchsorted(prof_comp, comp_of, side="right") - starts
        offsets = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        held = prof_key[np.repeat(starts, lens) + offsets]
        kk, hh = _unique_pairs(np.repeat(key_of, lens), held)
        groups, counts = np.unique(kk * self.n_types + self.key_type_code[hh], return_counts=True)
        gk, gt = np.divmod(groups, self.n_types)
        over = set(gk[counts > self.limits[gt]].tolist())
        if self.names:
            # the names its holders carry: (key, holder component) groups by key
            pairs: dict[int, list[tuple[int, str]]] = {}
            comp_names = self._names_by(old[self.r], old[self.r], np.unique(comp_of))
            for key, comp in zip(key_of.tolist(), comp_of.tolist(), strict=True):
                pairs.setdefault(key, []).extend((comp, name) for _, name in comp_names.get(comp, []))
            over.update(self._conflicting(pairs))
        return np.isin(keys, np.fromiter(over, dtype=np.int64, count=len(over)))


def _unique_pairs(a: IntArray, b: IntArray) -> tuple[IntArray, IntArray]:
    """Distinct (a, b) pairs of non-negative ints, sorted by a then b."""
    if len(a) == 0:
        return a.astype(np.int64), b.astype(np.int64)
    m = int(b.max()) + 1
    return np.divmod(np.unique(a.astype(np.int64) * m + b), m)


def resolve(
    occurrences: pa.Table,
    *,
    must_link: Sequence[tuple[str, str]] = (),
    cannot_link: Sequence[tuple[str, str]] = (),
    extra_edges: tuple[pa.Array, pa.Array] | None = None,
) -> Resolution:
    """Join records through shared identifier keys, stage by stage, refusing merges that break limits.

    ``occurrences`` needs ``record_key``, ``id_type`` and ``key`` (null keys are ignored: refused at
    normalisation). ``must_link``/``cannot_link`` are pairs of keys from the operator; ``extra_edges``
    are record-key pairs to join last (probabilistic matches), under the same protections.
    """
    usable = occurrences.filter(pc.is_valid(occurrences["key"]))
    all_records, record_dict = _codes(occurrences["record_key"])
    r_all = all_records[pc.is_valid(occurrences["key"]).to_numpy(zero_copy_only=False)]
    k, key_dict = _codes(usable["key"])
    n = len(record_dict)
    first_of_key = np.zeros(len(key_dict), dtype=np.int64)
    first_of_key[k[::-1]] = np.arange(len(k))[::-1]
    take = pa.array(first_of_key)
    key_types = pc.take(usable["id_type"], take).combine_chunks() if len(k) else pa.array([], pa.string())
    # Limits hold per type and scope: one openid per app, two nicks per marketplace, ...
    key_scopes = pc.take(usable["scope"], take).combine_chunks() if len(k) else pa.array([], pa.string())
    type_scope = pc.binary_join_element_wise(key_types, key_scopes.fill_null(""), "|")
    key_type_code, type_scope_dict = _codes(type_scope)
    scope_type = [ts.split("|", 1)[0] for ts in type_scope_dict.to_pylist()]
    limits = np.array([IDENTIFIER_TYPES[t].limit for t in scope_type], dtype=np.int64)
    key_priority = np.array([IDENTIFIER_TYPES[t].priority for t in key_types.to_pylist()], dtype=np.int64)
    name_keys: IntArray = (
        np.flatnonzero(pc.equal(key_types, "name").to_numpy(zero_copy_only=False)) if len(k) else np.zeros(0, np.int64)
    )
    key_list = key_dict.to_pylist()
    names = {int(i): key_list[i].split(":", 2)[2] for i in name_keys}
    graph = _Graph(r_all, k, n, key_type_code, limits, names)

    key_index = {key: i for i, key in enumerate(key_dict.to_pylist())}
    cannot = (
        np.array([key_index[a] for a, b in cannot_link if a in key_index and b in key_index], dtype=np.int64),
        np.array([key_index[b] for a, b in cannot_link if a in key_index and b in key_index], dtype=np.int64),
    )
    key_stage = np.full(len(key_dict), -1, dtype=np.int64)
    refusal: list[str | None] = [None] * len(key_dict)
    stats: dict[str, int] = {"records": n, "keys": len(key_dict)}

    comp = np.arange(n)
    if must_link:
        first_record = np.full(len(key_dict), -1, dtype=np.int64)
        first_record[k[::-1]] = r_all[::-1]
        pairs = [(key_index[a], key_index[b]) for a, b in must_link if a in key_index and b in key_index]
        if pairs:
            ea = first_record[np.array([p[0] for p in pairs])]
            eb = first_record[np.array([p[1] for p in pairs])]
            comp = graph.merge(comp, np.zeros(0, dtype=np.int64), (ea, eb))
        stats["must_link"] = len(pairs)

    for priority in sorted({t.priority for t in IDENTIFIER_TYPES.values() if t.merges}):
        in_stage = key_priority == priority
        if not in_stage.any():
            continue
        stage_name = "+".join(t.name for t in IDENTIFIER_TYPES.values() if t.priority == priority and t.merges)
        allowed = in_stage.copy()
        new = graph.merge(comp, np.flatnonzero(allowed[k]))
        bad = graph.violating(comp, new, cannot)
        if bad.any():
            # the keys that joined two or more components inside a violating one
            joining = _joining_keys(graph, comp, new, allowed, bad)
            alone = graph.alone_violations(comp, joining)
            for key in joining[alone].tolist():
                refusal[key] = _limit_reason(graph, comp, key)
            allowed[joining[alone]] = False
            new = graph.merge(comp, np.flatnonzero(allowed[k]))
            bad = graph.violating(comp, new, cannot)
            if bad.any():
                rest = _joining_keys(graph, comp, new, allowed, bad)
                for key in rest.tolist():
                    refusal[key] = "together with other identifiers would join different customers"
                allowed[rest] = False
                new = graph.merge(comp, np.flatnonzero(allowed[k]))
        key_stage[allowed] = priority
        stats[f"stage {stage_name}: refused"] = int((in_stage & ~allowed).sum())
        comp = new

    if extra_edges is not None and len(extra_edges[0]):
        rec_index = {key: i for i, key in enumerate(record_dict.to_pylist())}
        ea = np.array([rec_index[x] for x in extra_edges[0].to_pylist()], dtype=np.int64)
        eb = np.array([rec_index[x] for x in extra_edges[1].to_pylist()], dtype=np.int64)
        new = graph.merge(comp, np.zeros(0, dtype=np.int64), (ea, eb))
        bad = graph.violating(comp, new, cannot)
        keep = ~(bad[new[ea]])
        stats["probabilistic: refused"] = int((~keep).sum())
        comp = graph.merge(comp, np.zeros(0, dtype=np.int64), (ea[keep], eb[keep]))

    stats["customers"] = len(np.unique(comp))
    return Resolution(record_dict, comp, key_dict, key_types, key_stage, refusal, stats)


def _joining_keys(graph: _Graph, old: IntArray, new: IntArray, allowed: IntArray, bad: IntArray) -> IntArray:
    occ = allowed[graph.k] & bad[new[graph.r]]
    holders = np.bincount(_unique_pairs(graph.k[occ], old[graph.r[occ]])[0], minlength=len(allowed))
    return np.flatnonzero(holders > 1)


def _limit_reason(graph: _Graph, old: IntArray, key: int) -> str:
    holders = np.unique(old[graph.r[graph.k == key]])
    return f"would join {len(holders)} customers beyond a per-customer identifier limit"
