"""Portrait benchmarks, each against a reference measured in the same run.

1. BG/NBD fit time as a ratio to lifetimes' BetaGeoFitter, and both parameter sets (r, alpha, a, b), which must
   agree to 3 significant digits:
   - CDNOW master file (lifetimes' CDNOW_master.txt, 23,570 customers, 1997-01-01..1998-06-30), summarised by our
     Ibis code in weeks (as FHL do), calibration over the whole file (observation end = its last date) unless
     ``--cdnow-end`` gives the end of a calibration period (FHL's 39 weeks: 1997-09-30). Target ratio <= 0.15.
   - ``--customers`` (1M) synthetic customers drawn from the BG/NBD process with r=0.25, alpha=4, a=0.8, b=2.5:
     T in whole days uniform over 1..78 weeks, purchase times continuous (so only the x = 0 rows collapse into
     distinct rows). Target ratio <= 0.2; both fits are also compared with the true parameters.
   What is timed: the fit only, both sides given the same summary arrays. lifetimes' ``fit`` also computes the
   Hessian and the standard errors, so ours is timed as ``fit()`` + ``summary()`` (Hessian, standard errors); the
   fit alone is shown too. Rounds are interleaved, alternating which side goes first; ratio of the medians.
2. Tags: ``benchmarks/portrait_tags.py`` (``bench_tags(args)`` -> rows, dicts of column -> value; its options from
   ``add_arguments(parser)``), when present.

Run: ``.venv/bin/python benchmarks/portrait.py [--repeat 5] [--customers 1000000] [--only bgnbd|tags|all]``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnicrm.portrait.clv.bgnbd import BetaGeoModel, simulate_summary
from omnicrm.portrait.clv.summary import compress, rfm_summary_frame

PARAMS = ("r", "alpha", "a", "b")
TRUTH = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
TARGET_CDNOW, TARGET_SYNTHETIC = 0.15, 0.2
Arrays = dict[str, np.ndarray]


@dataclass
class BgnbdRun:
    """One BG/NBD race: times per round, both fits' parameters (and ours' standard errors), the truth if known."""

    name: str
    setup: str
    customers: int
    distinct: int
    target: float
    ours: list[float] = field(default_factory=list)  # fit + summary() (Hessian, standard errors)
    ours_fit: list[float] = field(default_factory=list)  # fit alone
    ref: list[float] = field(default_factory=list)  # lifetimes' fit (includes its Hessian)
    params_ours: dict[str, float] = field(default_factory=dict)
    params_ref: dict[str, float] = field(default_factory=dict)
    se_ours: dict[str, float] = field(default_factory=dict)
    truth: dict[str, float] | None = None

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.ref)

    @property
    def best_ratio(self) -> float:
        return min(self.ours) / min(self.ref)

    @property
    def agree(self) -> bool:
        return all(same_to_3_digits(self.params_ours[k], self.params_ref[k]) for k in PARAMS)


def same_to_3_digits(value: float, reference: float) -> bool:
    """|value - reference| below half a unit in the reference's third significant digit."""
    if reference == 0:
        return value == 0
    return abs(value - reference) < 0.5 * 10 ** (math.floor(math.log10(abs(reference))) - 2)


def cdnow_master_summary(observation_end: str | None = None) -> tuple[Arrays, str]:
    """Weekly (frequency, recency, T) of CDNOW_master.txt by our Ibis summary; ids kept as strings (leading zeros)."""
    path = files("lifetimes") / "datasets" / "CDNOW_master.txt"
    tx = pd.read_csv(str(path), sep=r"\s+", dtype={"customer_id": str, "date": str})
    tx["timestamp"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    last = tx["timestamp"].max().date().isoformat()
    end = observation_end or last
    summary = rfm_summary_frame(tx, observation_end=end, unit="weeks", monetary="dollar_value")
    period = "whole file" if end == last else "calibration"
    setup = f"{len(tx):,} transactions, weekly summary 1997-01-01..{end} ({period})"
    return {k: summary[k].to_numpy(np.float64) for k in ("frequency", "recency", "T")}, setup


def synthetic_summary(n: int, seed: int = 11) -> Arrays:
    """``n`` customers from the BG/NBD process with TRUTH; T in whole days over 1..78 weeks, purchase times exact."""
    rng = np.random.default_rng(seed)
    t_end = rng.integers(7, 7 * 78 + 1, n) / 7.0
    frame = simulate_summary(**TRUTH, T=t_end, seed=rng)
    return {k: frame[k].to_numpy(np.float64) for k in ("frequency", "recency", "T")}


def race(run: BgnbdRun, data: Arrays, repeat: int, *, warmup: bool) -> BgnbdRun:
    """Interleaved rounds, alternating which side goes first, so that load from other processes hits both alike."""
    import lifetimes

    f, r, t_end = data["frequency"], data["recency"], data["T"]
    out: dict[str, Any] = {}

    def ours() -> None:
        start = time.perf_counter()
        model = BetaGeoModel().fit(data)
        run.ours_fit.append(time.perf_counter() - start)
        out["ours"], out["se"] = model, model.summary()["se(coef)"]

    def ref() -> None:
        out["ref"] = lifetimes.BetaGeoFitter().fit(f, r, t_end)

    sides: list[tuple[Callable[[], None], list[float]]] = [(ours, run.ours), (ref, run.ref)]
    if warmup:
        ours()
        ref()
        run.ours_fit.clear()
    for i in range(repeat):
        for fn, times in sides if i % 2 == 0 else sides[::-1]:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    run.params_ours = {k: float(out["ours"].params_[k]) for k in PARAMS}
    run.params_ref = {k: float(out["ref"].params_[k]) for k in PARAMS}
    run.se_ours = {k: float(out["se"][k]) for k in PARAMS}
    return run


def bench_bgnbd_cdnow_master(repeat: int = 5, observation_end: str | None = None) -> BgnbdRun:
    data, setup = cdnow_master_summary(observation_end)
    distinct = len(compress(data["frequency"], data["recency"], data["T"])[1])
    run = BgnbdRun("BG/NBD, CDNOW master", setup, len(data["T"]), distinct, TARGET_CDNOW)
    return race(run, data, repeat, warmup=True)


def bench_bgnbd_synthetic(n: int = 1_000_000, repeat: int = 5) -> BgnbdRun:
    data = synthetic_summary(n)
    distinct = len(compress(data["frequency"], data["recency"], data["T"])[1])
    setup = "BG/NBD draw r=0.25 α=4 a=0.8 b=2.5; T whole days in 1..78 weeks; t_x continuous"
    run = BgnbdRun(f"BG/NBD, {n:,} synthetic", setup, n, distinct, TARGET_SYNTHETIC, truth=dict(TRUTH))
    return race(run, data, repeat, warmup=n <= 100_000)


def _fmt_params(params: Mapping[str, float]) -> list[str]:
    return [f"{params[k]:.5g}" for k in PARAMS]


def print_bgnbd(console: Console, runs: Sequence[BgnbdRun], repeat: int) -> None:
    times = Table(title=f"BG/NBD fit time, ours / lifetimes (median of {repeat} interleaved rounds)")
    for col in ("benchmark", "customers (distinct rows)", "ours fit+SE s", "ours fit s", "lifetimes s"):
        times.add_column(col, justify="left" if col == "benchmark" else "right")
    for col in ("ratio (best)", "target", "pass", "params agree (3 s.f.)"):
        times.add_column(col, justify="right")
    for run in runs:
        ok = run.ratio <= run.target
        times.add_row(
            run.name,
            f"{run.customers:,} ({run.distinct:,})",
            f"{statistics.median(run.ours):.3f}",
            f"{statistics.median(run.ours_fit):.3f}",
            f"{statistics.median(run.ref):.3f}",
            f"{run.ratio:.3f} ({run.best_ratio:.3f})",
            f"<= {run.target}",
            "[green]PASS[/]" if ok else "[red]FAIL[/]",
            "[green]yes[/]" if run.agree else "[red]NO[/]",
        )
    console.print(times)
    params = Table(title="BG/NBD parameters (ours' standard errors; truth of the synthetic draw)")
    for col in ("benchmark", "fit", *PARAMS, "3 s.f. / vs truth"):
        params.add_column(col, justify="left" if col in ("benchmark", "fit") else "right")
    for run in runs:
        params.add_row(run.name, "ours", *_fmt_params(run.params_ours), "")
        params.add_row("", "lifetimes", *_fmt_params(run.params_ref), "same" if run.agree else "DIFFERENT")
        params.add_row("", "  s.e. (ours)", *_fmt_params(run.se_ours), "")
        if run.truth is not None:
            z = max(abs(run.params_ours[k] - run.truth[k]) / run.se_ours[k] for k in PARAMS)
            params.add_row("", "truth", *_fmt_params(run.truth), f"max |ours − truth| = {z:.1f} s.e.")
        params.add_section()
    console.print(params)
    for run in runs:
        console.print(f"  {run.name}: {run.setup}")
    console.print(
        "  timed: the fit on the same arrays; lifetimes' fit includes its Hessian and standard errors (autograd),"
        " ours is fit() + summary() (Hessian by differences of the analytic gradient, standard errors)"
    )


def print_rows(console: Console, title: str, rows: Sequence[Any]) -> None:
    """Rows from another section: dicts (column -> value) or plain sequences."""
    table = Table(title=title)
    if rows and isinstance(rows[0], Mapping):
        names = list(dict.fromkeys(k for row in rows for k in row))
        for name in names:
            table.add_column(str(name))
        for row in rows:
            table.add_row(*(str(row.get(n, "")) for n in names))
    else:
        width = max((len(row) for row in rows), default=0)
        for i in range(width):
            table.add_column(str(i))
        for row in rows:
            table.add_row(*(str(v) for v in row))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds per race")
    parser.add_argument(
        "--customers", type=int, default=1_000_000, help="synthetic customers (BG/NBD race; the tags benchmark too)"
    )
    parser.add_argument("--only", choices=("bgnbd", "tags", "all"), default="all")
    parser.add_argument("--cdnow-end", default=None, help="CDNOW calibration end (default: the file's last date)")
    tags = None
    if importlib.util.find_spec("benchmarks.portrait_tags") is not None:
        tags = importlib.import_module("benchmarks.portrait_tags")
        if hasattr(tags, "add_arguments"):  # its own options (--orders, --rounds, ...); --customers is shared
            tags.add_arguments(parser)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # lifetimes and autograd warn under numpy 2 / pandas 3
    console = Console(width=None if sys.stdout.isatty() else 150)
    if args.only in ("bgnbd", "all"):
        runs = [
            bench_bgnbd_cdnow_master(args.repeat, args.cdnow_end),
            bench_bgnbd_synthetic(args.customers, args.repeat),
        ]
        print_bgnbd(console, runs, args.repeat)
    if args.only in ("tags", "all"):
        if tags is None:
            console.print("tags: benchmarks/portrait_tags.py is not there yet; skipped")
        else:
            print_rows(console, "Tags", tags.bench_tags(args))


if __name__ == "__main__":
    main()
