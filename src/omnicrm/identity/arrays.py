"""Integer-array building blocks for OneID resolution: runs of sorted values, ranges, and a union-find.

Everything here is numpy over whole arrays; nothing loops over rows in Python. Sorting goes through
``np.sort`` on packed int64 values (vectorised, much faster than ``np.argsort`` or ``np.unique``,
whose hashing path is slow on int64 in numpy 2.4), and grouping reads runs of equal values.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["Forest", "distinct", "lengths", "member", "ranges", "runs", "table"]

IntArray = np.ndarray

EMPTY = np.zeros(0, dtype=np.int64)


def runs(values: IntArray) -> IntArray:
    """Where each run of equal values starts, in an array grouped by value (e.g. sorted)."""
    if len(values) == 0:
        return EMPTY
    flags = np.empty(len(values), dtype=bool)
    flags[0] = True
    np.not_equal(values[1:], values[:-1], out=flags[1:])
    return np.flatnonzero(flags)


def lengths(starts: IntArray, total: int) -> IntArray:
    """The length of each run, from where runs start in an array of ``total`` elements."""
    return np.diff(starts, append=total) if len(starts) else EMPTY


def distinct(values: IntArray) -> IntArray:
    """Sorted distinct values of an int array."""
    s = np.sort(values)
    return s[runs(s)]


def ranges(starts: IntArray, counts: IntArray) -> IntArray:
    """The indices ``start, start + 1, ..., start + count - 1`` of each range, one range after another."""
    total = int(counts.sum()) if len(counts) else 0
    if total == 0:
        return EMPTY
    before = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) + np.repeat(starts - before, counts)


def table(values: IntArray, size: int) -> IntArray:
    """A lookup table over ``[0, size)``: True at ``values``."""
    out = np.zeros(size, dtype=bool)
    out[values] = True
    return out


def member(x: IntArray, values: IntArray, size: int) -> IntArray:
    """``x in values`` for ints in ``[0, size)``, through a lookup table."""
    return table(values, size)[x]


class Forest:
    """Union-find over the labels ``0 .. n-1``: ``root[x]`` is the smallest label joined with ``x``.

    Joins are vectorised rounds of hooking every root to the smallest root it shares an edge with
    (``np.minimum.at``) followed by pointer jumping; after a join every touched label points straight
    at its root, and ``reset`` undoes a tentative join in time proportional to the labels it touched.
    Hooking keeps the smallest label of each component as its root, so a merged component is
    labelled by its smallest constituent. After a few rounds the remaining edges (rare, long chains)
    go to scipy's connected components.
    """

    ROUNDS = 6

    def __init__(self, n: int) -> None:
        self.root = np.arange(n, dtype=np.int64)

    def join(self, u: IntArray, v: IntArray) -> IntArray:
        """Join the labels of each edge ``(u, v)``; returns the labels that were joined to another, sorted."""
        root = self.root
        joined = u != v
        u, v = u[joined], v[joined]
        nodes = distinct(np.concatenate([u, v]))
        for _ in range(self.ROUNDS):
            ru, rv = root[u], root[v]
            open_ = ru != rv
            if not open_.any():
                return nodes
            u, v, ru, rv = u[open_], v[open_], ru[open_], rv[open_]
            np.minimum.at(root, np.maximum(ru, rv), np.minimum(ru, rv))
            self._flatten(nodes)
        ru, rv = root[u], root[v]
        open_ = ru != rv
        if open_.any():
            self._finish(ru[open_], rv[open_])
            self._flatten(nodes)
        return nodes

    def _flatten(self, nodes: IntArray) -> None:
        root = self.root
        while True:
            up = root[nodes]
            upup = root[up]
            if np.array_equal(up, upup):
                return
            root[nodes] = upup

    def _finish(self, ru: IntArray, rv: IntArray) -> None:
        """Join the roots ``ru``, ``rv`` with scipy's connected components (for what hooking leaves over)."""
        labels = distinct(np.concatenate([ru, rv]))
        a, b = np.searchsorted(labels, ru), np.searchsorted(labels, rv)
        m = len(labels)
        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(m, m)).tocsr()
        _, comp = connected_components(graph, directed=False)
        smallest = np.full(int(comp.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(smallest, comp, labels)
        self.root[labels] = smallest[comp]

    def reset(self, nodes: IntArray) -> None:
        """Undo the joins of ``nodes`` (each becomes its own root again)."""
        self.root[nodes] = nodes
