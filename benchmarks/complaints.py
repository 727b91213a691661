"""Complaint and intent detection on the held-out labelled messages, against the lexicon alone, in the same run.

Data: ``src/omnicrm/inbox/data/labelled_messages.jsonl`` (Chinese and English customer messages, each labelled
with its intent and whether it is a complaint; ``hard`` marks sarcasm, negated complaint words, implicit
complaints and mixed language). The split is fixed and documented in ``omnicrm.inbox.classifier.held_out``: a
message is held out when sha256 of its normalised text (NFKC, lower case), read as a number from its first 8 hex
digits, is 0 modulo 5 — about a fifth, the same on every machine and run, and never trained on.

Sides, both on the held-out messages:
- model: the complaint and intent classifiers trained here on the training split (``classifier.train``), read
  through ``understand`` exactly as the inbox reads a message (threshold, intent rules); with ``--shipped``, the
  model that ships in the package instead (a test checks the two are the same);
- lexicon only: ``lexicon.baseline`` (complaint words not negated, negated praise, sarcasm beside praise; intent
  by the most intent words).

Printed: complaint precision, recall and F1 and intent accuracy per side, the same per language and on the hard
messages, intent accuracy per intent, and the reading speed.

Run: ``.venv/bin/python benchmarks/complaints.py [--shipped]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnicrm.inbox.classifier import HELD_OUT_BUCKETS, Example, Model, load_examples, load_model, split, train
from omnicrm.inbox.lexicon import INTENTS, baseline
from omnicrm.inbox.understanding import understand

Reading = tuple[bool, str]  # complaint, intent


def scores(examples: Sequence[Example], readings: Sequence[Reading]) -> tuple[float, float, float, float]:
    """Complaint precision, recall, F1 and intent accuracy."""
    tp = sum(r[0] and e.complaint for e, r in zip(examples, readings, strict=True))
    fp = sum(r[0] and not e.complaint for e, r in zip(examples, readings, strict=True))
    fn = sum(e.complaint and not r[0] for e, r in zip(examples, readings, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(r[1] == e.intent for e, r in zip(examples, readings, strict=True)) / len(examples)
    return precision, recall, f1, accuracy


def read_all(
    progress: Progress, label: str, held: Sequence[Example], read: Callable[[Example], Reading]
) -> list[Reading]:
    task = progress.add_task(label, total=len(held))
    out = []
    for e in held:
        out.append(read(e))
        progress.advance(task)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipped", action="store_true", help="measure the shipped model instead of a fresh training")
    args = parser.parse_args()
    console = Console()
    examples = load_examples()
    training, held = split(examples)
    console.print(
        f"[bold]{len(examples)}[/] labelled messages: training {len(training)}, held out {len(held)} "
        f"(sha256 of the normalised text mod {HELD_OUT_BUCKETS} == 0), "
        f"{sum(e.complaint for e in held)} held-out complaints, {sum(e.hard for e in held)} hard"
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        if args.shipped:
            model = load_model()
        else:
            task = progress.add_task("training on the training split (tokens, lexicon, two regressions)", total=None)
            model = train(training)
            progress.update(task, total=1, completed=1)
        started = time.perf_counter()
        ours = read_all(progress, "model: understand()", held, lambda e: _ours(e, model))
        seconds = time.perf_counter() - started
        lexicon = read_all(progress, "lexicon only", held, lambda e: baseline(e.text))
    which = "shipped model" if args.shipped else f"model trained here ({model.info['features']} features)"
    table = Table(title=f"Complaints and intent on the held-out messages — {which}")
    for name in ("messages", "side", "precision", "recall", "F1", "intent accuracy"):
        table.add_column(name, justify="left" if name in ("messages", "side") else "right")
    groups = [("all", list(range(len(held))))]
    groups += [(f"lang={lang}", [i for i, e in enumerate(held) if e.lang == lang]) for lang in ("zh", "en")]
    groups.append(("hard", [i for i, e in enumerate(held) if e.hard]))
    for label, idx in groups:
        subset = [held[i] for i in idx]
        for side, readings in (("model", ours), ("lexicon only", lexicon)):
            p, r, f1, acc = scores(subset, [readings[i] for i in idx])
            style = "bold" if side == "model" else "dim"
            table.add_row(f"{label} ({len(idx)})" if side == "model" else "", side, f"{p:.3f}", f"{r:.3f}", f"{f1:.3f}",
                          f"{acc:.3f}", style=style)  # fmt: skip
        table.add_section()
    console.print(table)
    per_intent = Table(title="Intent accuracy per intent (held out)")
    for name in ("intent", "messages", "model", "lexicon only"):
        per_intent.add_column(name, justify="left" if name == "intent" else "right")
    for intent in INTENTS:
        idx = [i for i, e in enumerate(held) if e.intent == intent]
        if idx:
            mine = sum(ours[i][1] == intent for i in idx) / len(idx)
            theirs = sum(lexicon[i][1] == intent for i in idx) / len(idx)
            per_intent.add_row(intent, str(len(idx)), f"{mine:.3f}", f"{theirs:.3f}")
    console.print(per_intent)
    console.print(f"reading speed: {len(held) / seconds:,.0f} messages/s (understand(): tokens, both models, rules)")


def _ours(e: Example, model: Model) -> Reading:
    reading = understand(e.text, e.lang, model=model)
    return reading.complaint, reading.intent


if __name__ == "__main__":
    main()
