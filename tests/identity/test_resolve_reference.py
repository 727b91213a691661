"""The staged engine gives exactly the reference engine's answer on random resolution problems.

Random problems are small and dense, so that limits, the name veto, cannot-links, must-links and
probabilistic edges all bite: components, merge stages, refusals and stats must all be equal.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from omnicrm.identity.resolve import Encoded, resolve_encoded
from tests.identity.reference_resolve import resolve_encoded as reference

STAGES = [10, 20, 30, 40, 50, 60, 70]
NAMES = ["张伟", "张玮", "全玉平", "孙晨杰", "李娜", "李娜娜", "王芳", "wangfang"]


def random_problem(seed: int) -> Encoded:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    n_types = int(rng.integers(1, 6))
    priority_of = rng.choice([*STAGES, -1], n_types)
    limit_of = rng.integers(1, 4, n_types)
    named = bool(rng.random() < 0.5)
    if named:  # the name type: never merges, vetoes merges of clearly different names
        priority_of = np.append(priority_of, -1)
        limit_of = np.append(limit_of, 1_000_000)
    n_keys = int(rng.integers(1, 45))
    key_type_code = rng.integers(0, len(limit_of), n_keys)
    m = int(rng.integers(0, 4 * n + 1)) if n else 0
    r = rng.integers(0, max(n, 1), m)
    k = np.minimum(rng.geometric(rng.uniform(0.03, 0.3), m) - 1, n_keys - 1)  # a few keys held often
    k = rng.permutation(n_keys)[k]
    names = {}
    if named:
        name_keys = np.flatnonzero(key_type_code == len(limit_of) - 1)
        names = {int(key): str(rng.choice(NAMES)) for key in name_keys}
    enc = Encoded(r, k, n, key_type_code, limit_of.astype(np.int64), priority_of[key_type_code].astype(np.int64), names)
    if n and rng.random() < 0.3:
        size = int(rng.integers(1, 4))
        enc.must = (rng.integers(0, n, size), rng.integers(0, n, size))
    if rng.random() < 0.3:
        size = int(rng.integers(1, 4))
        enc.cannot = (rng.integers(0, n_keys, size), rng.integers(0, n_keys, size))
    if n and rng.random() < 0.4:
        size = int(rng.integers(1, 8))
        enc.extra = (rng.integers(0, n, size), rng.integers(0, n, size))
    return enc


def assert_same(enc: Encoded) -> None:
    want_comp, want_stage, want_refusal, want_stats = reference(enc)
    for screening in (True, False):  # envelopes screened first, or every record through the stages
        comp, key_stage, refusal, stats = resolve_encoded(enc, screening=screening)
        assert comp.tolist() == want_comp.tolist()
        assert key_stage.tolist() == want_stage.tolist()
        assert refusal == want_refusal
        assert stats == want_stats


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_staged_engine_agrees_with_the_reference(seed: int) -> None:
    assert_same(random_problem(seed))


def test_agreement_on_many_fixed_seeds() -> None:
    for seed in range(300):
        assert_same(random_problem(seed))
