"""Demo-merchant simulator: a fashion brand's raw exports (Tmall, JD, POS, CRM, WeChat, web and
mini-program events, service messages) in the shapes real exports have, plus the ground truth behind
them. Deterministic by seed, vectorised, linear in the number of people.

    from omnicrm.simulate import simulate
    summary = simulate(Path("demo"), people=20_000, seed=1)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from omnicrm.simulate import shapes
from omnicrm.simulate.catalogue import build_catalogue
from omnicrm.simulate.crm import followers_table, members_table
from omnicrm.simulate.events import build_events
from omnicrm.simulate.groundtruth import orders_truth, people_truth
from omnicrm.simulate.marketplace import jd_table, pos_table, tmall_table
from omnicrm.simulate.messages import build_messages
from omnicrm.simulate.orderkeys import assign_keys
from omnicrm.simulate.orders import build_orders
from omnicrm.simulate.people import MP, WEB, build_population
from omnicrm.simulate.segment import SegmentRenderer, record_identifiers
from omnicrm.simulate.timeline import build_timeline
from omnicrm.simulate.truth import IdentifierTruth
from omnicrm.simulate.vec import StrArray
from omnicrm.simulate.writer import write_csv, write_lines, write_manifest, write_parquet

__all__ = ["SimulationSummary", "simulate"]

_STREAMS = ("catalogue", "people", "orders", "keys", "tmall", "jd", "pos", "members", "followers",
            "events_web", "render_web", "events_mp", "render_mp", "messages")  # fmt: skip
_STEPS = 14
_CHUNK = 500_000


@dataclass(frozen=True)
class SimulationSummary:
    """What `simulate` wrote: rows per file (relative path → count) and where."""

    out_dir: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        """All rows/events/messages written to the exports (ground truth excluded)."""
        return sum(v for k, v in self.counts.items() if not k.startswith(shapes.GROUND_TRUTH_DIR))


class _Steps:
    """Advances a rich progress bar (or nothing) as the simulation moves on."""

    def __init__(self, bar: Progress | None) -> None:
        self.bar = bar
        self.task = bar.add_task("starting", total=_STEPS) if bar is not None else None

    def __call__(self, label: str, advance: float = 1.0) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, advance=advance, description=label)

    def chunks(self, label: str, parts: Iterable[StrArray], total: int) -> Iterator[StrArray]:
        """Pass rendered chunks through, advancing one step over all of them."""
        n = max(1, -(-total // _CHUNK))
        for i, part in enumerate(parts, start=1):
            yield part
            self(f"{label} {min(i, n)}/{n}", 1.0 / n)


@contextmanager
def _progress(enabled: bool) -> Iterator[_Steps]:
    """A rich progress bar over the simulation steps (a no-op when disabled)."""
    if not enabled:
        yield _Steps(None)
        return
    columns = (TextColumn("[bold]simulate[/] {task.description:<34}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as bar:
        steps = _Steps(bar)
        yield steps
        if steps.task is not None:
            bar.update(steps.task, completed=_STEPS, description="done")


def simulate(
    out_dir: Path,
    people: int,
    seed: int,
    *,
    start: date = date(2025, 1, 1),
    end: date = date(2026, 11, 24),
    progress: bool = True,
) -> SimulationSummary:
    """Write the demo merchant's raw exports and ground truth for `people` people into `out_dir`."""
    if people <= 0:
        raise ValueError("people must be positive")
    if end <= start:
        raise ValueError("end must be after start")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rngs = dict(
        zip(
            _STREAMS,
            (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS))),
            strict=True,
        )
    )
    counts: dict[str, int] = {}
    truth = IdentifierTruth()
    with _progress(progress) as step:
        tl = build_timeline(start, end)
        catalogue = build_catalogue(rngs["catalogue"])
        pop = build_population(rngs["people"], people, tl)
        step("people")
        orders = build_orders(rngs["orders"], tl, pop, catalogue)
        keys = assign_keys(rngs["keys"], tl, pop, orders)
        step("orders")
        table = tmall_table(rngs["tmall"], pop, orders, keys, catalogue, truth)
        counts[shapes.TMALL_ORDERS_FILE] = write_csv(table, out / shapes.TMALL_ORDERS_FILE)
        step(shapes.TMALL_ORDERS_FILE)
        table = jd_table(rngs["jd"], tl, pop, orders, keys, catalogue, truth)
        counts[shapes.JD_ORDERS_FILE] = write_csv(table, out / shapes.JD_ORDERS_FILE)
        step(shapes.JD_ORDERS_FILE)
        table = pos_table(rngs["pos"], pop, orders, keys, catalogue, truth)
        counts[shapes.POS_FILE] = write_csv(table, out / shapes.POS_FILE)
        step(shapes.POS_FILE)
        counts[shapes.MEMBERS_FILE] = write_csv(
            members_table(rngs["members"], tl, pop, truth), out / shapes.MEMBERS_FILE
        )
        followers = followers_table(rngs["followers"], tl, pop, truth)
        counts[shapes.WECHAT_FOLLOWERS_FILE] = write_csv(followers, out / shapes.WECHAT_FOLLOWERS_FILE)
        step("members, followers")
        for channel, name, file in ((WEB, "web", shapes.EVENTS_WEB_FILE), (MP, "mp", shapes.EVENTS_MP_FILE)):
            ev = build_events(rngs[f"events_{name}"], tl, pop, orders, catalogue, channel)
            step(f"{file} (sessions)")
            renderer = SegmentRenderer(rngs[f"render_{name}"], tl, pop, orders, catalogue, ev, channel, keys.order_no)
            chunks = step.chunks(file, renderer.chunks(_CHUNK), len(ev))
            counts[file] = write_lines(chunks, out / file)
            record_identifiers(truth, file, pop, ev, channel)
            del ev, renderer
        lines = build_messages(rngs["messages"], tl, pop, orders, keys, truth)
        counts[shapes.MESSAGES_FILE] = write_lines([lines], out / shapes.MESSAGES_FILE)
        del lines
        step(shapes.MESSAGES_FILE)
        counts[shapes.PEOPLE_FILE] = write_parquet(people_truth(tl, pop, orders), out / shapes.PEOPLE_FILE)
        counts[shapes.ORDERS_TRUTH_FILE] = write_parquet(orders_truth(orders, keys), out / shapes.ORDERS_TRUTH_FILE)
        step("ground truth (people, orders)")
        counts[shapes.IDENTIFIERS_FILE] = write_parquet(truth.table(), out / shapes.IDENTIFIERS_FILE)
        step("ground truth (identifiers)")
        write_manifest(
            out / shapes.MANIFEST_FILE,
            {
                "generator": "omnicrm.simulate",
                "merchant": "言木 YANMU (demo fashion brand)",
                "seed": seed,
                "people": people,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "rows": counts,
            },
        )
        step("manifest")
    return SimulationSummary(out_dir=out, counts=dict(counts))
