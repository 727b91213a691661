"""The complaint and intent classifier: two logistic regressions over words and lexicon signals, trained on
labelled messages that ship with the package, and shipped as a small JSON of weights.

Features of a message (``features``):

- ``w:<token>``: each distinct jieba token (Chinese) or word (English) of the normalised text;
- ``n:<token>``: a token within two tokens after a negator in its clause (不 满意, not happy);
- ``x:<list>`` / ``x:<list>:neg``: how many phrases of each lexicon list are found, not negated / negated
  (at most 3), ``x:complaint:intense`` (太差, so rude), ``x:praise+complaint`` (both: sarcasm, mixed reviews),
  ``x:question`` and ``x:exclaim``.

Tokens seen in fewer than two training messages are left out. The complaint model is a binary logistic
regression with balanced class weights; the intent model a multinomial one over ``INTENTS``. Both are
scikit-learn's lbfgs fits, deterministic for the same data, and at run time only a dot product over the
weights in ``data/model.json`` (no scikit-learn needed).

The labelled set (``data/labelled_messages.jsonl``) is split by a hash of each normalised text: a fifth is held
out (``held_out``) and never trained on, so the shipped model can be measured on it (tests and
``benchmarks/complaints.py``). Retrain after changing the data or the lexicon with
``python -m omnicrm.inbox.classifier``; a test checks that the shipped model equals a fresh training.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from omnicrm.errors import InputError, Problem
from omnicrm.inbox.lexicon import CATEGORIES, INTENTS, Lexicon, load_lexicon, normalise

__all__ = [
    "HELD_OUT_BUCKETS",
    "Example",
    "Model",
    "features",
    "held_out",
    "load_examples",
    "load_model",
    "retrain",
    "split",
    "train",
]

HELD_OUT_BUCKETS = 5
"""A message is held out when the first 8 hex digits of sha256(normalised text), as a number, are 0 mod 5."""
MIN_DOCS = 2
COMPLAINT_C = 1.0
INTENT_C = 4.0
THRESHOLD = 0.4
"""A message is a complaint when its complaint probability is at least this: the best F1 in 5-fold cross-validation
on the training split (0.914 at 0.4 with precision 0.90 and recall 0.93; 0.913 at 0.5 with 0.93 and 0.90); of two
equal F1s, the one that misses fewer complaints."""
DIGITS = 6  # weights are rounded to this many decimals in the shipped JSON
_DATA = files("omnicrm.inbox").joinpath("data")
MODEL_FILE = "model.json"
EXAMPLES_FILE = "labelled_messages.jsonl"


@dataclass(frozen=True)
class Example:
    """One labelled message."""

    text: str
    lang: str
    intent: str
    complaint: bool
    hard: bool = False


def held_out(text: str) -> bool:
    """Whether a labelled message belongs to the held-out fifth (stable: a hash of its normalised text)."""
    digest = hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % HELD_OUT_BUCKETS == 0


def split(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(training, held-out) in file order."""
    train_part = [e for e in examples if not held_out(e.text)]
    test_part = [e for e in examples if held_out(e.text)]
    return train_part, test_part


def load_examples(path: str | Path | None = None) -> list[Example]:
    """The labelled messages (JSON lines with text, lang, intent, complaint and optional hard); every bad line is
    reported with its line number and field."""
    source = Path(path) if path is not None else None
    text = source.read_text(encoding="utf-8") if source else _DATA.joinpath(EXAMPLES_FILE).read_text(encoding="utf-8")
    name = str(source) if source else f"omnicrm/inbox/data/{EXAMPLES_FILE}"
    out: list[Example] = []
    problems: list[Problem] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(Problem(f"not valid JSON: {e.msg}", line=n))
            continue
        bad = _check_row(row)
        if bad:
            problems += [Problem(reason, field=field, line=n) for field, reason in bad]
            continue
        out.append(Example(row["text"], row["lang"], row["intent"], row["complaint"], bool(row.get("hard", False))))
    if problems:
        raise InputError(f"labelled messages {name}: {len(problems)} problem(s)", problems[:50])
    return out


def _check_row(row: Any) -> list[tuple[str, str]]:
    if not isinstance(row, dict):
        return [("text", "each line must be a JSON object")]
    bad = []
    if not isinstance(row.get("text"), str) or not row["text"].strip():
        bad.append(("text", "must be a non-empty string"))
    if row.get("lang") not in ("zh", "en"):
        bad.append(("lang", f"must be zh or en, not {row.get('lang')!r}"))
    if row.get("intent") not in INTENTS:
        bad.append(("intent", f"{row.get('intent')!r} is not one of {', '.join(INTENTS)}"))
    if not isinstance(row.get("complaint"), bool):
        bad.append(("complaint", "must be true or false"))
    elif row.get("intent") == "complaint" and not row["complaint"]:
        bad.append(("complaint", "a message whose intent is complaint must be a complaint"))
    if not isinstance(row.get("hard", False), bool):
        bad.append(("hard", "must be true or false when given"))
    return bad


# --- features ------------------------------------------------------------------------------------------


def features(text: str, lexicon: Lexicon | None = None) -> dict[str, float]:
    """The classifier's features of one message (see the module docstring)."""
    lex = lexicon or load_lexicon()
    norm = normalise(text)
    out: dict[str, float] = {}
    negators = lex.negators
    since_negator = 99
    for tok in lex.tokens(norm):
        if tok in ",，。.!！?？;；":
            since_negator = 99
            continue
        if not any(ch.isalnum() for ch in tok):
            continue
        out[f"w:{tok}"] = 1.0
        if since_negator < 2:
            out[f"n:{tok}"] = 1.0
        since_negator = 0 if tok in negators else since_negator + 1
    counts: dict[str, int] = {}
    for hit in lex.hits(norm):
        key = f"x:{hit.category}" + (":neg" if hit.negated else "")
        counts[key] = counts.get(key, 0) + 1
        if hit.category == "complaint" and hit.intensified and not hit.negated:
            counts["x:complaint:intense"] = counts.get("x:complaint:intense", 0) + 1
    if counts.get("x:praise") and (counts.get("x:complaint") or counts.get("x:praise:neg")):
        counts["x:praise+complaint"] = 1
    counts["x:question"] = int("?" in norm or "？" in norm or norm.endswith(("吗", "呢")))
    counts["x:exclaim"] = norm.count("!") + norm.count("！")
    counts["x:repeat"] = int(any(mark in norm for mark in ("??", "？？", "!!", "！！", "?!", "？！")))
    for key, n in counts.items():
        if n:
            out[key] = float(min(n, 3))
    return out


def _lexicon_features() -> list[str]:
    names = [f"x:{c}" for c in (*CATEGORIES, *INTENTS[1:-2], "other")]
    return sorted({*names, *(f"{n}:neg" for n in names), "x:complaint:intense", "x:praise+complaint", "x:question",
                   "x:exclaim", "x:repeat"})  # fmt: skip


# --- the model -----------------------------------------------------------------------------------------


@dataclass
class Model:
    """Weights per feature: the complaint model's, then one per intent (in ``intents`` order)."""

    feature_names: list[str]
    complaint_coef: list[float]
    complaint_intercept: float
    intents: list[str]
    intent_coef: list[list[float]]  # per feature, one weight per intent
    intent_intercept: list[float]
    info: dict[str, Any]

    def __post_init__(self) -> None:
        self._index = {name: i for i, name in enumerate(self.feature_names)}

    @property
    def threshold(self) -> float:
        """The complaint probability from which a message counts as a complaint."""
        return float(self.info.get("threshold", THRESHOLD))

    def complaint_probability(self, feats: dict[str, float]) -> float:
        z = self.complaint_intercept
        for name, value in feats.items():
            i = self._index.get(name)
            if i is not None:
                z += self.complaint_coef[i] * value
        return _sigmoid(z)

    def intent_probabilities(self, feats: dict[str, float]) -> dict[str, float]:
        z = list(self.intent_intercept)
        for name, value in feats.items():
            i = self._index.get(name)
            if i is not None:
                for k, w in enumerate(self.intent_coef[i]):
                    z[k] += w * value
        top = max(z)
        exp = [math.exp(v - top) for v in z]
        total = sum(exp)
        return {intent: e / total for intent, e in zip(self.intents, exp, strict=True)}

    def as_json(self) -> str:
        """The model as the JSON that ships (one line per feature, so a diff of a retraining reads well)."""
        head = {
            "format": 1,
            "info": self.info,
            "intents": self.intents,
            "complaint_intercept": self.complaint_intercept,
            "intent_intercept": self.intent_intercept,
        }
        rows = [
            json.dumps([name, self.complaint_coef[i], self.intent_coef[i]], ensure_ascii=False)
            for i, name in enumerate(self.feature_names)
        ]
        body = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
        return body + ',\n "weights": [\n' + ",\n".join(rows) + "\n ]\n}\n"

    @classmethod
    def from_json(cls, text: str) -> Model:
        data = json.loads(text)
        rows = data["weights"]
        return cls(
            [r[0] for r in rows],
            [float(r[1]) for r in rows],
            float(data["complaint_intercept"]),
            list(data["intents"]),
            [[float(w) for w in r[2]] for r in rows],
            [float(w) for w in data["intent_intercept"]],
            dict(data["info"]),
        )


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def train(examples: Sequence[Example], lexicon: Lexicon | None = None) -> Model:
    """Fit both models on ``examples`` (deterministic: same examples and lexicon, same weights)."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    if not examples:
        raise InputError("no labelled messages to train on", [Problem("give at least one example", field="examples")])
    lex = lexicon or load_lexicon()
    rows = [features(e.text, lex) for e in examples]
    docs: dict[str, int] = {}
    for row in rows:
        for name in row:
            docs[name] = docs.get(name, 0) + 1
    names = sorted({n for n, d in docs.items() if d >= MIN_DOCS and not n.startswith("x:")} | set(_lexicon_features()))
    index = {n: i for i, n in enumerate(names)}
    data, cols, ptr = [], [], [0]
    for row in rows:
        for name, value in sorted(row.items()):
            if name in index:
                data.append(value)
                cols.append(index[name])
        ptr.append(len(cols))
    x = csr_matrix((np.asarray(data, dtype=np.float64), cols, ptr), shape=(len(rows), len(names)))
    complaint = LogisticRegression(C=COMPLAINT_C, class_weight="balanced", max_iter=5000, tol=1e-8)
    intent = LogisticRegression(C=INTENT_C, max_iter=5000, tol=1e-8)
    with threadpool_limits(1):  # one BLAS thread: the same sums in the same order on every run, and no oversubscription
        complaint.fit(x, np.asarray([e.complaint for e in examples]))
        intent.fit(x, np.asarray([e.intent for e in examples]))
    classes = [str(c) for c in intent.classes_]
    order = [classes.index(i) for i in INTENTS if i in classes]
    info = {
        "examples": len(examples),
        "complaints": sum(e.complaint for e in examples),
        "features": len(names),
        "min_docs": MIN_DOCS,
        "complaint_C": COMPLAINT_C,
        "threshold": THRESHOLD,
        "intent_C": INTENT_C,
        "trained_on": f"the training split of {EXAMPLES_FILE} (messages not held out)",
    }
    return Model(
        names,
        [round(float(w), DIGITS) for w in complaint.coef_[0]],
        round(float(complaint.intercept_[0]), DIGITS),
        [classes[k] for k in order],
        [[round(float(intent.coef_[k][j]), DIGITS) for k in order] for j in range(len(names))],
        [round(float(intent.intercept_[k]), DIGITS) for k in order],
        info,
    )


@cache
def load_model() -> Model:
    """The shipped model, loaded once and shared."""
    return Model.from_json(_DATA.joinpath(MODEL_FILE).read_text(encoding="utf-8"))


def retrain(path: str | Path | None = None) -> Model:
    """Train on the training split of the shipped labelled messages and write the model (default: the shipped
    ``data/model.json``)."""
    training, _ = split(load_examples())
    model = train(training)
    target = Path(path) if path is not None else Path(str(_DATA.joinpath(MODEL_FILE)))
    target.write_text(model.as_json(), encoding="utf-8")
    load_model.cache_clear()
    return model


def main() -> None:
    """``python -m omnicrm.inbox.classifier [PATH]``: retrain and write the model."""
    import sys

    from rich.console import Console

    console = Console()
    with console.status("training the complaint and intent models on the labelled messages…"):
        model = retrain(sys.argv[1] if len(sys.argv) > 1 else None)
    info = model.info
    console.print(
        f"trained on {info['examples']} messages ({info['complaints']} complaints), {info['features']} features"
    )


if __name__ == "__main__":
    main()
