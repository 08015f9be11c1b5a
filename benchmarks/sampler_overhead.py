"""Measures the RSS sampler's overhead on latency: a fixed numpy matmul loop, with the sampler switched on and off.

One process runs the loop for the whole measurement while this process samples its RSS (20 Hz, as the engine does)
during alternate blocks of ``--block`` seconds; each call is attributed to the block it ran in. Interleaving short
blocks in one process cancels the drift in machine load that makes separate runs incomparable on a shared machine.
The overhead is the median of the paired (on / preceding off) block-median ratios, with a bootstrap 95 % interval
over the pairs; the target is < 3 %. Prints a table and writes ``<data>/benchmarks/sampler_overhead.json`` with the
load average before and after (numbers measured under load are inflated).

Usage: ``python benchmarks/sampler_overhead.py [--duration 60] [--block 1] [--threads 2] [--matmuls 10]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiling import paths
from profiling.measure.memory import RssSampler
from profiling.measure.stats import bootstrap_median_ci

TARGET = 0.03

LOOP = """
import json, sys, time
import numpy as np
duration, matmuls = float(sys.argv[1]), int(sys.argv[2])
a = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)
print("ready", flush=True)
calls, end = [], time.time() + duration
while time.time() < end:
    t = time.time(); s = time.perf_counter()
    x = a
    for _ in range(matmuls):
        x = np.tanh(x @ a)
    calls.append((t, (time.perf_counter() - s) * 1000))
print(json.dumps(calls))
"""


def measure(duration: float, block: float, threads: int, matmuls: int) -> dict:
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(duration), str(matmuls)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "ready"
    blocks, cpu, span, on = [], 0.0, 0.0, False
    t_end = time.time() + duration
    while time.time() < t_end:
        start = time.time()
        sampler = RssSampler(proc.pid, 0.05).start() if on else None
        time.sleep(min(block, max(0.0, t_end - start)))
        if sampler:
            sampler.stop()
            cpu += sampler.cpu_s
            span += time.time() - start
        blocks.append((start, time.time(), on))
        on = not on
    calls = json.loads(proc.stdout.read())
    proc.wait()
    per_block = []
    for start, end, state in blocks:
        ms = [c[1] for c in calls if start <= c[0] and c[0] + c[1] / 1000 <= end]
        if ms:
            per_block.append((state, statistics.median(ms), ms))
    ratios = [b[1] / a[1] for a, b in itertools.pairwise(per_block) if not a[0] and b[0]]
    on_ms = [m for state, _, ms in per_block if state for m in ms]
    off_ms = [m for state, _, ms in per_block if not state for m in ms]
    ratio, ratio_low, ratio_high = bootstrap_median_ci(ratios)
    on = bootstrap_median_ci(on_ms)
    off = bootstrap_median_ci(off_ms)
    return {
        "calls": len(calls),
        "median_on_ms": on[0],
        "median_on_ci_ms": [on[1], on[2]],
        "median_off_ms": off[0],
        "median_off_ci_ms": [off[1], off[2]],
        "paired_ratio_median": ratio,
        "paired_ratio_ci": [ratio_low, ratio_high],
        "overhead_pct": 100 * (ratio - 1),
        "overhead_ci_pct": [100 * (ratio_low - 1), 100 * (ratio_high - 1)],
        "below_target": ratio_high < 1 + TARGET,
        "n_pairs": len(ratios),
        "sampler_cpu_share": cpu / span if span else None,
        "mean_call_ms": statistics.fmean(c[1] for c in calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measurement")
    parser.add_argument("--block", type=float, default=1.0, help="seconds per on/off block")
    parser.add_argument("--threads", type=int, default=2, help="threads of the loop (2: as the engine's default)")
    parser.add_argument("--matmuls", type=int, default=10, help="256x256 float32 matmuls per call")
    parser.add_argument("--out", help="JSON output (default: <data>/benchmarks/sampler_overhead.json)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    r = measure(args.duration, args.block, args.threads, args.matmuls)
    load_after = os.getloadavg()
    rows = [
        ("calls timed", f"{r['calls']} ({args.threads} thread(s), {r['mean_call_ms']:.2f} ms each on average)"),
        ("median with the sampler", (f"{r['median_on_ms']:.3f} ms (95 % CI {r['median_on_ci_ms'][0]:.3f}"
                                    f" \u2013 {r['median_on_ci_ms'][1]:.3f})")),
        ("median without", (f"{r['median_off_ms']:.3f} ms (95 % CI {r['median_off_ci_ms'][0]:.3f}"
                           f" \u2013 {r['median_off_ci_ms'][1]:.3f})")),
        ("overhead (paired blocks)", (f"{r['overhead_pct']:+.2f} % (95 % CI {r['overhead_ci_pct'][0]:+.2f} to"
                                     f" {r['overhead_ci_pct'][1]:+.2f} %, {r['n_pairs']} pairs)")),
        (f"below the {100 * TARGET:.0f} % target", "yes" if r["below_target"] else "no (or not shown at this noise)"),
        ("sampler CPU", f"{100 * r['sampler_cpu_share']:.2f} % of one core"),
        ("load average before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f} (1 min)"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    out = Path(args.out) if args.out else paths.data_dir() / "benchmarks" / "sampler_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {**r, "settings": vars(args), "target": TARGET, "loadavg_before": load_before,
              "loadavg_after": load_after, "cpu_count": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                                  time.gmtime())}
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
