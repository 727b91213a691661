"""The array building blocks of OneID resolution: the union-find against scipy, ranges, runs, limits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from omnicrm.identity.arrays import Forest, distinct, ranges, runs
from omnicrm.identity.screen import over_limit


def smallest_of_component(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    _, labels = connected_components(coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n)), directed=False)
    smallest = np.full(labels.max() + 1, n)
    np.minimum.at(smallest, labels, np.arange(n))
    return smallest[labels]


@pytest.mark.parametrize("rounds", [0, 1, Forest.ROUNDS])  # 0 and 1: scipy finishes what hooking leaves
@pytest.mark.parametrize("seed", range(20))
def test_join_labels_each_component_by_its_smallest_label(seed: int, rounds: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    m = int(rng.integers(0, 2 * n))
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    if seed % 3 == 0:  # a long chain in scrambled order: many hooking rounds
        order = rng.permutation(n)
        u, v = np.concatenate([u, order[:-1]]), np.concatenate([v, order[1:]])
    forest = Forest(n)
    forest.ROUNDS = rounds
    touched = forest.join(u, v)
    assert forest.root.tolist() == smallest_of_component(n, u, v).tolist()
    assert touched.tolist() == sorted(set(u[u != v].tolist()) | set(v[u != v].tolist()))
    forest.reset(touched)
    assert forest.root.tolist() == list(range(n))


def test_ranges_and_runs() -> None:
    assert ranges(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist() == [5, 6, 9, 10, 11]
    assert runs(np.array([1, 1, 2, 3, 3, 3])).tolist() == [0, 2, 3]
    assert runs(np.array([], dtype=np.int64)).tolist() == []
    assert distinct(np.array([3, 1, 3, 2, 1])).tolist() == [1, 2, 3]


@pytest.mark.parametrize("size", [3, 1000])  # a count per group and type, or a sort of the entries
def test_over_limit(size: int) -> None:
    limits = np.array([1, 2])
    group_type = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (1, 1), (2, 0), (2, 1), (2, 1)]
    packed = np.array([g * 2 + t for g, t in group_type])
    assert over_limit(packed, size, limits).tolist() == [0, 1]
