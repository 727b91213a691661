"""A private jieba tokenizer that also knows a list of phrases, so that no caller changes jieba's global state.

The portrait's interest matcher and the inbox's complaint lexicon each cut Chinese text with their own phrases
added as words; both build their tokenizer here.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from typing import Any

__all__ = ["CJK", "private_tokenizer"]

CJK = re.compile(r"[\u3400-\u9fff]")


def private_tokenizer(words: Iterable[str]) -> Any:
    """A fresh jieba tokenizer (precise mode) with the Chinese phrases among ``words`` added (the others, spaced or
    single characters, would only mislead it)."""
    with warnings.catch_warnings():  # jieba 0.42 compiles regexes with invalid escapes
        warnings.simplefilter("ignore", DeprecationWarning)
        import jieba
    tok = jieba.Tokenizer()
    tok.initialize()
    for word in words:
        if len(word) > 1 and CJK.search(word) and " " not in word:
            tok.add_word(word)
    return tok
