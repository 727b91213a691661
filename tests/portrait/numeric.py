"""Numerical helpers shared by the CLV model tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def central_differences(f: Callable[[np.ndarray], float], p: np.ndarray, rel: float = 1e-6) -> np.ndarray:
    """The gradient of ``f`` at ``p`` by central differences, to check analytic gradients against."""
    out = np.empty_like(p)
    for i in range(len(p)):
        h = rel * p[i]
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        out[i] = (f(up) - f(down)) / (2 * h)
    return out
