"""Measures the RSS sampler's overhead on latency: a fixed numpy matmul loop, with the sampler switched on and off.

One process runs the loop for the whole measurement while this process samples its RSS (20 Hz, as the engine does)
during alternate blocks of ``--block`` seconds; each call is attributed to the block it ran in. Interleaving short
blocks in one process cancels the drift in machine load that makes separate runs incomparable on a shared machine.
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

from profiling.memory import RssSampler, backend

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
    backend()
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
    return {
        "calls": len(calls),
        "median_on_ms": statistics.median(on_ms),
        "median_off_ms": statistics.median(off_ms),
        "paired_ratio_median": statistics.median(ratios),
        "n_pairs": len(ratios),
        "sampler_cpu_share": cpu / span if span else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measurement")
    parser.add_argument("--block", type=float, default=1.0, help="seconds per on/off block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--matmuls", type=int, default=10, help="256x256 float32 matmuls per call")
    args = parser.parse_args()
    r = measure(args.duration, args.block, args.threads, args.matmuls)
    print(
        f"{r['calls']} calls, {args.threads} thread(s): median {r['median_on_ms']:.3f} ms with the sampler,"
        f" {r['median_off_ms']:.3f} ms without ({100 * (r['median_on_ms'] / r['median_off_ms'] - 1):+.2f} %);"
        f" median of {r['n_pairs']} paired block ratios {r['paired_ratio_median']:.4f}"
        f" ({100 * (r['paired_ratio_median'] - 1):+.2f} %); sampler CPU {100 * r['sampler_cpu_share']:.2f} % of one"
        f" core; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
