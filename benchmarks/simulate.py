"""Benchmark the demo-merchant simulator: time two sizes and check that cost grows ~linearly.

    .venv/bin/python benchmarks/simulate.py            # N = 20 000 and 200 000
    .venv/bin/python benchmarks/simulate.py 5000 50000 # other sizes

Prints rows (order lines, events, messages, person records) per second for each size and the ratio of
time per row between the large and the small run (≈ 1 means linear).
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from omnicrm.simulate import simulate


def run(people: int, seed: int = 1) -> tuple[int, float]:
    """Simulate into a temporary folder; return (rows written, seconds)."""
    out = Path(tempfile.mkdtemp(prefix=f"omnicrm-sim-{people}-"))
    try:
        t0 = time.perf_counter()
        summary = simulate(out, people, seed, progress=False)
        elapsed = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"people={people:>9,}  rows={summary.total_rows:>12,}  time={elapsed:7.1f}s  "
        f"rows/s={summary.total_rows / elapsed:>10,.0f}  output={size / 1e9:5.2f} GB  peak RSS={rss:,.0f} MB"
    )
    for name, count in summary.counts.items():
        print(f"    {name:<36}{count:>12,}")
    return summary.total_rows, elapsed


def main(argv: list[str]) -> None:
    small, large = (int(argv[0]), int(argv[1])) if len(argv) >= 2 else (20_000, 200_000)
    run(1_000)  # warm-up: imports and first-call costs
    rows_s, t_s = run(small)
    rows_l, t_l = run(large)
    print(
        f"people ×{large / small:.1f} → rows ×{rows_l / rows_s:.2f}, time ×{t_l / t_s:.2f}; "
        f"time per row large/small = {(t_l / rows_l) / (t_s / rows_s):.2f} (≈1 is linear)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
