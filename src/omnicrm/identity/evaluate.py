"""Pairwise precision and recall of a clustering against the truth, as record-linkage papers report it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PairScores", "pairwise_scores"]


@dataclass(frozen=True)
class PairScores:
    precision: float
    recall: float
    f1: float
    predicted_pairs: int
    true_pairs: int
    correct_pairs: int

    def __str__(self) -> str:
        return (
            f"precision {self.precision:.4f}  recall {self.recall:.4f}  F1 {self.f1:.4f}  "
            f"(pairs: {self.correct_pairs:,} correct of {self.predicted_pairs:,} predicted, {self.true_pairs:,} true)"
        )


def _pairs(counts: np.ndarray) -> int:
    return int((counts * (counts - 1) // 2).sum())


def pairwise_scores(predicted: np.ndarray, truth: np.ndarray) -> PairScores:
    """Scores over all pairs of items: a pair is predicted when both share a predicted label."""
    predicted = np.unique(np.asarray(predicted), return_inverse=True)[1].astype(np.int64)
    truth = np.unique(np.asarray(truth), return_inverse=True)[1].astype(np.int64)
    both = np.unique(predicted * (int(truth.max(initial=0)) + 1) + truth, return_counts=True)[1]
    correct = _pairs(both)
    pred = _pairs(np.bincount(predicted))
    true = _pairs(np.bincount(truth))
    precision = correct / pred if pred else 1.0
    recall = correct / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairScores(precision, recall, f1, pred, true, correct)
