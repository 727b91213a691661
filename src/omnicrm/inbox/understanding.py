"""What a customer's message says: is it a complaint, what is it about, and what does the customer tell about
themselves. The inbox calls ``understand`` on every inbound message; a complaint raises the conversation's
priority, and the attributes can be captured onto the portrait (``omnicrm.inbox.capture``).

- complaint: the classifier's probability (``complaint_score``) at or above the shipped threshold;
- intent: one of ``INTENTS`` — complaint, refund_return, logistics, product_question, size_advice,
  price_promotion, praise, other — the most probable of the intent model, except that ``complaint`` is only
  given to a complaint (otherwise the next most probable intent), and a complaint read as praise (sarcasm:
  "真是好质量啊，穿一次就破了") or as other ("人呢？？？都半小时了") is a complaint;
- signals: the lexicon words behind the decision, for the agent to see why (complaint words, negated praise,
  sarcasm beside praise, waiting);
- attributes: what the shipped extraction rules found (``omnicrm.inbox.extract``), each with its span.

Any text is understood: empty, emoji only, very long (only the first ``MAX_CHARS`` characters are read;
``truncated`` says so) or mixed Chinese and English. A text without a single word is ``other`` and no
complaint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from omnicrm.errors import InputError, Problem
from omnicrm.inbox.classifier import Model, features, load_model
from omnicrm.inbox.extract import Extracted, extract
from omnicrm.inbox.lexicon import INTENTS, load_lexicon, normalise

__all__ = ["INTENTS", "LANGS", "MAX_CHARS", "Understanding", "detect_lang", "prepare", "understand"]

MAX_CHARS = 20_000
LANGS = ("zh", "en")
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Understanding:
    """The reading of one message."""

    lang: str  # zh, en, or "" when the text has no words
    complaint: bool
    complaint_score: float  # 0..1
    intent: str  # one of INTENTS
    intent_scores: dict[str, float]
    priority: str  # high for a complaint, else normal
    signals: tuple[str, ...] = ()
    attributes: tuple[Extracted, ...] = ()
    truncated: bool = False


def prepare() -> None:
    """Load the lexicon, the tokenizer, the model and the rules now (a few seconds), so that the first message a
    server reads is not the one that waits for them."""
    load_lexicon().tokens("预热 warm up")
    load_model()
    extract("")


def detect_lang(text: str) -> str:
    """zh when the text has at least as many Chinese characters as Latin words, en when it has Latin words only,
    "" when it has neither."""
    cjk = len(_CJK.findall(text))
    words = len(_LATIN_WORD.findall(text))
    if cjk == 0 and words == 0:
        return ""
    return "zh" if cjk >= words else "en"


def understand(text: str, lang: str | None = None, *, model: Model | None = None) -> Understanding:
    """Complaint, intent, signals and attributes of one message (see the module docstring).

    ``lang`` (zh or en) is only reported back: the models read both languages, and mixed text, the same way.
    ``model``: another trained model than the shipped one (the benchmark measures a fresh training).
    """
    if not isinstance(text, str):
        raise InputError("the message text must be a string", [Problem(f"got {type(text).__name__}", field="text")])
    if lang is not None and lang not in LANGS:
        raise InputError(f"unknown language {lang!r}", [Problem(f"use one of {', '.join(LANGS)}, or none", "lang")])
    truncated = len(text) > MAX_CHARS
    text = text[:MAX_CHARS]
    said = lang or detect_lang(text)
    lexicon, model = load_lexicon(), model or load_model()
    feats = features(text, lexicon)
    if not any(name.startswith("w:") for name in feats):
        return Understanding(said, False, 0.0, "other", {"other": 1.0}, "normal", truncated=truncated)
    score = model.complaint_probability(feats)
    complaint = score >= model.threshold
    scores = model.intent_probabilities(feats)
    ranked = sorted(scores, key=lambda i: (-scores[i], INTENTS.index(i)))
    if complaint:
        intent = "complaint" if ranked[0] in ("praise", "other") else ranked[0]
    else:
        intent = next(i for i in ranked if i != "complaint")
    return Understanding(
        lang=said,
        complaint=complaint,
        complaint_score=round(score, 4),
        intent=intent,
        intent_scores={i: round(scores[i], 4) for i in ranked},
        priority="high" if complaint else "normal",
        signals=_signals(text),
        attributes=tuple(extract(text)),
        truncated=truncated,
    )


def _signals(text: str) -> tuple[str, ...]:
    """The lexicon hits that speak for a complaint, as 'kind: phrase', in order, each once."""
    hits = load_lexicon().hits(normalise(text))
    praise = any(h.category == "praise" and not h.negated for h in hits)
    out: list[str] = []
    for h in hits:
        if h.category == "complaint" and not h.negated:
            out.append(f"complaint: {h.phrase}")
        elif h.category == "praise" and h.negated:
            out.append(f"negated praise: {h.phrase}")
        elif h.category == "sarcasm" and praise:
            out.append(f"sarcasm: {h.phrase}")
        elif h.category == "waiting":
            out.append(f"waiting: {h.phrase}")
    return tuple(dict.fromkeys(out))
