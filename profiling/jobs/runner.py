"""The sweep: validate a request, launch it in a detached process, build and profile every variant into the store."""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compression.errors import DiskWriteError, UserError
from profiling import paths
from profiling import settings as _settings
from profiling.inputs.models import is_hub_id
from profiling.jobs.executor import Executor, ExecutorError, Sweep, check_executor
from profiling.jobs.launcher import Stopped as _Stopped
from profiling.jobs.launcher import install_signal_handlers as _install_signal_handlers
from profiling.jobs.launcher import readable
from profiling.jobs.launcher import restore_signal_handlers as _restore_signal_handlers
from profiling.measure.timing import variant_timing
from profiling.settings import Settings, SettingsError
from profiling.store.runs import RunStore, StoreError, now_iso, process_alive

log = logging.getLogger(__name__)

# The settings themselves (defaults, limits, help, protocols) are described once in profiling.settings; these names
# stay for the CLI, the benchmarks and the tests that import them from here.
DEFAULT_SETTINGS: dict[str, int] = _settings.DEFAULTS.to_dict()
SETTING_LIMITS: dict[str, tuple[int, int]] = Settings.limits()
SETTING_HELP: dict[str, str] = Settings.help()
PROTOCOLS: dict[str, dict[str, int]] = _settings.PROTOCOLS
PROTOCOL_HELP: str = _settings.PROTOCOL_HELP
MAX_VARIANTS = 40
# A CSV up to this size is loaded (classes, rows per class) before a run is created; a bigger one is checked by its
# header only and loaded by the run itself (loading is cached per process, so the run does not read it twice).
PRECHECK_MAX_CSV_BYTES = 50 * 2**20
LATENCY_TEXTS = 64
UPDATE_EVERY_S = 0.3  # throttle of progress writes to the store
ORIGINAL_NAME = "Original"
_GENERIC_LABEL = re.compile(r"^label[_ ]?\d+$")

Update = Callable[[int | None, dict], None]


class RequestError(UserError):
    """A run request that cannot work; the message is shown to the user as is."""


# ---- validation -----------------------------------------------------------------------------------------


def validate_request(request: dict) -> None:
    """Raise RequestError with a user-facing message if the request cannot work; never loads a model."""
    normalize_request(request)


def normalize_request(request: dict, precheck: bool = True) -> dict:
    """A validated copy with default settings filled in, variant names set and the original as variant 0.

    ``precheck`` also loads a CSV that is cheap to load and matches a local folder's labels against it, so such
    input mistakes are refused before a run is created; the run itself re-validates without it (it loads both
    anyway, and records a mismatch on the original variant)."""
    if not isinstance(request, dict):
        raise RequestError("a run request must be a dict")
    model = _check_model(request.get("model"))
    dataset = _check_dataset(request.get("dataset"), precheck)
    settings = _check_settings(request.get("settings"))
    from profiling.inputs.spec_structure import spec_format

    variants = _check_variants(request.get("variants"), spec_format(model))
    finetune = _check_finetune(request.get("finetune"))
    if precheck:
        _check_labels_match(model, dataset)
    try:
        executor = check_executor(request)
    except ExecutorError as exc:
        raise RequestError(str(exc)) from None
    out = {key: value for key, value in request.items() if key not in ("executor", "ray_address")}
    out.update(model=model, dataset=dataset, settings=settings, variants=variants, **executor)
    if finetune is None:
        out.pop("finetune", None)
    else:
        out["finetune"] = finetune
    if request.get("workloads"):  # extra latency workloads: real texts, bucketed, fixed shapes (profiling.measure.workloads)
        from profiling.measure.workloads import normalize_workloads

        try:
            out["workloads"] = normalize_workloads(request["workloads"])
        except ValueError as exc:
            raise RequestError(str(exc)) from None
    return out


def _check_model(spec: Any) -> str:
    if not isinstance(spec, str) or not spec.strip():
        raise RequestError("choose a model (e.g. 'default', 'preset:roberta-base', 'path:/a/folder' or a Hub id)")
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    if spec == "default":
        return spec
    if sep and kind == "default":
        from profiling.inputs.datasets import BUNDLED

        if rest not in BUNDLED:
            raise RequestError(f"unknown default classifier {spec!r}; use one of "
                               + ", ".join(f"default:{n}" for n in BUNDLED))
        return spec
    from profiling.inputs.packaged_encoders import ENCODERS

    if sep and kind in ENCODERS:
        choices = [k for k in _model_choices() if k.startswith(kind + ":")]
        if spec not in choices:
            raise RequestError(f"unknown {kind} classifier {spec!r}; use one of {', '.join(choices)}")
        return spec
    if sep and kind == "preset":
        presets = [k for k in _model_choices() if k.startswith("preset:")]
        if presets and spec not in presets:
            raise RequestError(f"unknown architecture preset {spec!r}; use one of {', '.join(presets)}")
        return spec
    if sep and kind == "path":
        from profiling.inputs.model_roots import FolderNotAllowed, allowed_folder

        try:  # $COMPRESSION_MODEL_ROOTS first: a refused folder is not looked at (existence included)
            folder = allowed_folder(rest)
        except FolderNotAllowed as exc:
            raise RequestError(str(exc)) from None
        if not folder.is_dir():
            raise RequestError(f"model folder {rest!r} does not exist")
        from profiling.inputs.models import ModelError, encoder_folder

        try:  # a sentence-transformers folder: its transformer may sit in a subfolder
            folder = encoder_folder(folder)
        except ModelError as exc:
            raise RequestError(str(exc)) from None
        if not any((folder / f).is_file() for f in ("config.json", "artifact.json", "model.onnx")):
            raise RequestError(f"{rest!r} is not a model folder (no config.json)")
        if not (folder / "artifact.json").is_file():  # a Hugging Face folder: pickles, custom code (no torch)
            from profiling.inputs.models import check_local_folder

            try:
                check_local_folder(folder)
            except ModelError as exc:
                raise RequestError(str(exc)) from None
        return spec
    hub_id = rest if sep and kind == "hub" else spec
    if not is_hub_id(hub_id):
        raise RequestError(f"{spec!r} is not a model: use 'default', 'preset:<name>', 'path:<folder>' or a Hub id "
                           "like 'org/name'")
    return spec


def _check_finetune(mode: Any) -> str | None:
    """How a base encoder (a model with no classification head) is fine-tuned first: None (the default, "full"),
    "full" or "head"."""
    from profiling.inputs.finetune import FINETUNE_MODES

    if mode is None:
        return None
    if mode not in FINETUNE_MODES:
        raise RequestError(f"unknown fine-tuning mode {mode!r}: choose one of {', '.join(FINETUNE_MODES)}")
    return mode


def _model_choices() -> dict[str, str]:
    try:
        from profiling.inputs.models import MODEL_CHOICES
    except ImportError:  # models module not importable: skip the name check, resolve_model will judge
        return {}
    return MODEL_CHOICES


def _check_dataset(spec: Any, precheck: bool = True) -> dict:
    from profiling.inputs.datasets import BUNDLED, DatasetError, read_csv_columns

    if not isinstance(spec, dict):
        raise RequestError("choose a dataset: a bundled one (" + ", ".join(BUNDLED) + ") or a CSV file")
    kind = spec.get("kind")
    if kind == "bundled":
        if spec.get("name") not in BUNDLED:
            raise RequestError(f"unknown bundled dataset {spec.get('name')!r}; choose one of {', '.join(BUNDLED)}")
        return {"kind": "bundled", "name": spec["name"]}
    if kind != "csv":
        raise RequestError(f"unknown dataset kind {kind!r}; use 'bundled' or 'csv'")
    path, text_col, label_col = spec.get("path"), spec.get("text_column"), spec.get("label_column")
    if not path:
        raise RequestError("a CSV dataset needs a file path")
    if not text_col or not label_col:
        raise RequestError("a CSV dataset needs a text column and a label column")
    if text_col == label_col:
        raise RequestError(f"the text column and the label column are the same ({text_col!r}); pick two columns")
    try:
        columns = read_csv_columns(path)
    except DatasetError as exc:
        raise RequestError(str(exc)) from None
    missing = [c for c in (text_col, label_col) if c not in columns]
    if missing:
        raise RequestError(f"{Path(str(path)).name} has no column {' or '.join(map(repr, missing))}; "
                           f"its columns are: {', '.join(columns) or 'none'}")
    out = {"kind": "csv", "path": str(Path(str(path)).expanduser().resolve()), "text_column": str(text_col),
           "label_column": str(label_col)}
    if precheck:
        _precheck_csv(out)
    return out


def _precheck_csv(spec: dict) -> Any:
    """Load a CSV that is cheap to load (classes, rows per class, labels), so an unusable one is refused before a
    run is created; returns the LabeledData, or None for a file too big to load here."""
    from profiling.inputs.datasets import DatasetError, load_dataset

    try:
        if Path(spec["path"]).stat().st_size > PRECHECK_MAX_CSV_BYTES:
            return None
        return load_dataset(spec)
    except OSError:
        return None  # vanished since its header was read: the run reports it
    except DatasetError as exc:
        raise RequestError(str(exc)) from None


def _check_labels_match(model: str, dataset: dict) -> None:
    """A local folder's labels (config.json) against a cheap CSV's classes, with the runner's own rule."""
    import json

    if not model.startswith("path:") or dataset.get("kind") != "csv":
        return
    config_path = Path(model.removeprefix("path:")).expanduser() / "config.json"
    data = _precheck_csv(dataset)
    if data is None or not config_path.is_file():
        return
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or []):
            return  # a base encoder: fine-tuned on the dataset's own classes, nothing to match
        id2label = {str(k): str(v) for k, v in (config.get("id2label") or {}).items()}
        n_labels = int(config.get("num_labels") or len(id2label) or 2)
    except (OSError, ValueError, TypeError, AttributeError):
        return  # an odd config: the run's full check judges it
    try:
        match_labels({"num_labels": n_labels, "id2label": id2label}, data)
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def _check_settings(settings: Any) -> dict:
    try:
        return Settings.from_dict(settings).to_dict()
    except SettingsError as exc:
        raise RequestError(str(exc)) from None


def _check_variants(variants: Any, start_format: str = "hf") -> list[dict]:
    """The variants' chains checked from the original's format (an ONNX original takes only ONNX techniques)."""
    import compression
    from compression.registry import TechniqueError
    from profiling.jobs.presets import variant_name

    if variants is None:
        variants = []
    if not isinstance(variants, list):
        raise RequestError("variants must be a list")
    out: list[dict] = []
    for i, v in enumerate(variants):
        if not isinstance(v, dict) or not isinstance(v.get("chain", []), list):
            raise RequestError(f"variant {i + 1} must be a dict with a 'chain' list of technique configs")
        chain = v.get("chain") or []
        label = v.get("name") or f"variant {i + 1}"
        try:
            configs = [_step_config(c) for c in chain]
            compression.check_chain(start_format, configs)
        except TechniqueError as exc:
            raise RequestError(f"{label}: {exc}") from None
        json_chain = [c.to_json() for c in configs]
        name = str(v.get("name") or (ORIGINAL_NAME if not json_chain else variant_name(json_chain)))
        out.append({"name": name, "chain": json_chain, "lineage": [c.spec() for c in configs]})
    if not out or out[0]["chain"]:
        out.insert(0, {"name": ORIGINAL_NAME, "chain": [], "lineage": []})
    if len(out) > MAX_VARIANTS:
        raise RequestError(f"{len(out)} variants is too many for one run (at most {MAX_VARIANTS})")
    return out


def _step_config(step: Any) -> Any:
    """A config from its JSON, refusing options the technique does not have (config_from_json ignores them)."""
    import dataclasses

    import compression
    from compression.registry import REGISTRY, TechniqueError

    if not isinstance(step, dict):
        raise TechniqueError(f"a chain step must be a technique config dict, got {step!r}")
    tech = REGISTRY.get(step.get("technique"))  # type: ignore[arg-type]
    if tech is not None:
        names = {f.name for f in dataclasses.fields(tech.config_cls)}
        unknown = sorted(set(step) - names - {"technique"})
        if unknown:
            raise TechniqueError(f"{step['technique']} has no option {', '.join(unknown)}; options: "
                                 f"{', '.join(sorted(names)) or 'none'}")
    return compression.config_from_json(step)


# ---- launching ------------------------------------------------------------------------------------------


def launch(request: dict, store_path: Path | str | None = None) -> str:
    """Validate, store a queued run and start ``python -m profiling execute RUN_ID`` detached (own session), so the
    run survives the browser session; returns the run id. It waits for the store's measuring lock
    (profiling.jobs.launcher) like every other job."""
    from profiling.jobs import launcher

    request = normalize_request(request)
    store = RunStore(store_path)
    store.reap_dead_runs()
    run_id = store.create_run(request)
    try:
        proc = launcher.spawn(store, ["execute", run_id], run_id)
    except OSError as exc:
        store.fail_run(run_id, f"could not start the run's process: {exc}")
        raise RequestError(f"could not start the run: {exc}") from None
    store.set_run_pid(run_id, proc.pid)
    log.info("launched run %s in process %d", run_id, proc.pid)
    return run_id


def stop(run_id: str, store_path: Path | str | None = None) -> bool:
    """Ask a running run to stop (SIGTERM: it marks itself failed "stopped by signal 15 during ..."); returns
    whether it was stopped. A run whose process is gone is reaped instead; a queued run with no process yet is
    marked failed at once."""
    from profiling.jobs.launcher import stop_recorded

    store = RunStore(store_path)
    return stop_recorded(store.get_run(run_id), lambda: store.process_is_alive(run_id),
                         lambda why: store.fail_run(run_id, why), store.reap_dead_runs)


# ---- executing ------------------------------------------------------------------------------------------


class _Reporter:
    """Writes a variant's status/stage/progress to the store (throttled) and forwards it to an optional hook."""

    def __init__(self, store: RunStore, run_id: str, on_update: Update | None):
        self.store, self.run_id, self.on_update = store, run_id, on_update
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()

    def variant(self, idx: int, force: bool = True, **fields: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last.get(idx, 0.0) < UPDATE_EVERY_S:
                return
            self._last[idx] = now
        self.store.upsert_variant(self.run_id, idx, **fields)
        self._hook(idx, fields)

    def stage(self, text: str) -> None:
        self.store.set_run_stage(self.run_id, text)
        self._hook(None, {"stage": text})

    def _hook(self, idx: int | None, fields: dict) -> None:
        if self.on_update is not None:
            try:
                self.on_update(idx, fields)
            except Exception:  # a display hook must never break the run
                log.exception("update hook failed")


def execute(run_id: str, store: RunStore, on_update: Update | None = None) -> None:
    """Run a stored queued run in this process: every variant built, profiled in a child, written to the store.

    Failures never raise: a variant failure is recorded and the sweep goes on; anything else fails the run with a
    readable reason. SIGTERM/SIGINT mark the run failed ("stopped by signal N during ...") and exit.
    ``on_update(idx, fields)`` (idx None for run-level stage changes) lets a CLI draw progress.
    """
    run = store.get_run(run_id)
    if run is None:
        raise RequestError(f"no run {run_id!r} in {store.path}")
    if run["status"] in ("done", "failed"):
        raise RequestError(f"run {run_id} has already {'finished' if run['status'] == 'done' else 'failed'}")
    if run["status"] == "running" and run["pid"] != os.getpid():
        if process_alive(run["pid"], None):
            raise RequestError(f"run {run_id} is already running in process {run['pid']}")
        raise RequestError(f"run {run_id} was interrupted (its process ended); start a new run instead")
    reporter = _Reporter(store, run_id, on_update)
    state = {"where": "start-up"}
    previous = _install_signal_handlers()
    try:
        store.set_run_pid(run_id, os.getpid())
        with _exclusive(store, run_id, reporter):
            store.set_run_status(run_id, "running")
            _sweep(run_id, run["request"], store, reporter, state)
        store.set_run_status(run_id, "done")
        reporter.stage("done")
    except _Stopped as stop:
        reason = f"stopped by signal {stop.signum} during {state['where']}"
        log.warning("run %s %s", run_id, reason)
        store.fail_run(run_id, reason)
        raise SystemExit(128 + stop.signum) from None
    except _RunFailed as exc:
        _record_failure(store, run_id, str(exc))
    except Exception as exc:
        if isinstance(exc, UserError | StoreError):  # the user's input or the store's disk: the message says it all
            log.warning("run %s failed during %s: %s", run_id, state["where"], readable(exc))
        else:
            log.exception("run %s failed during %s", run_id, state["where"])
        _record_failure(store, run_id, f"failed during {state['where']}: {readable(exc)}")
    finally:
        _restore_signal_handlers(previous)


def _record_failure(store: RunStore, run_id: str, reason: str) -> None:
    """Mark the run failed; when the store itself cannot be written (full disk, read-only, locked), raise one
    StoreError with both reasons: the run stays as stored and is reaped as failed once this process has ended."""
    try:
        store.fail_run(run_id, reason)
    except StoreError as exc:
        if str(exc) in reason:  # the same store error that failed the run: say it once
            raise StoreError(f"run {run_id} {reason} (so it could not be marked failed either: it is once this "
                             "process has ended and the store can be written)") from None
        raise StoreError(f"run {run_id} could not be marked failed ({reason}): {exc}") from None


class _RunFailed(Exception):
    """The run cannot go on (message already readable)."""


class _exclusive:
    """One job measures at a time per store (two sweeps on the same cores would distort each other's figures):
    a queued run waits its turn for the store's measuring lock (profiling.jobs.launcher.exclusive), showing what
    it waits for. The run's env records the time it held the lock (``measure_window_epoch_s``: [start, end] in
    seconds since the epoch), so that no two runs measured at once can be checked."""

    def __init__(self, store: RunStore, run_id: str, reporter: _Reporter):
        from profiling.jobs import launcher

        self._store, self._run_id = store, run_id
        self._lock = launcher.exclusive(store, lambda what: reporter.stage(f"waiting for {what} to finish"), run_id)
        self._start = 0.0

    def __enter__(self) -> None:
        self._lock.__enter__()
        self._start = time.time()

    def __exit__(self, *exc: object) -> None:
        try:
            run = self._store.get_run(self._run_id) or {}
            env = {**(run.get("env") or {}), "measure_window_epoch_s": [self._start, time.time()]}
            self._store.set_run_env(self._run_id, env)
        except Exception:  # the window is a record: never keep the lock for it
            log.exception("could not record the measurement window of run %s", self._run_id)
        finally:
            self._lock.__exit__(*exc)


def _sweep(run_id: str, request: dict, store: RunStore, rep: _Reporter, state: dict) -> None:
    try:
        request = normalize_request(request, precheck=False)
    except RequestError as exc:
        raise _RunFailed(f"the stored request is not valid: {exc}") from None
    settings = {**request["settings"], "workloads": request.get("workloads") or []}
    state["t0"] = time.perf_counter()  # each variant's run_offset_s counts from here (profiling.measure.timing)
    _record_env(run_id, settings["threads"], store)
    base, data = _load_inputs(request, rep, state)
    eval_texts, eval_labels, latency_texts = _sample_examples(run_id, data, settings, store, rep, state)

    sweep = Sweep(run_id, store.variants(run_id), base, data, settings, eval_texts, eval_labels, latency_texts,
                  store, rep, state)
    executor_for(request).run(sweep)


def executor_for(request: dict) -> Executor:
    """The request's executor: local unless it asks for a Ray cluster (ray is imported only then)."""
    if request.get("executor", "local") == "local":
        return LocalExecutor()
    from profiling.jobs.ray_executor import RayExecutor

    return RayExecutor(request["ray_address"])


class LocalExecutor:
    """This machine, one variant at a time, each profiled in a fresh child process; the original first."""

    def run(self, sweep: Sweep) -> None:
        run_id, store, variants = sweep.run_id, sweep.store, sweep.variants
        original_preds: list[int] | None = None
        for v in variants:
            where = f"variant {v['idx'] + 1}/{len(variants)} {v['name']!r}"
            preds = _run_variant(run_id, v, sweep.base, sweep.data, sweep.settings, sweep.eval_texts,
                                 sweep.eval_labels, sweep.latency_texts, original_preds, store, sweep.rep,
                                 sweep.state, where)
            if v["idx"] == 0:
                if preds is None:
                    error = next(x["error"] for x in store.variants(run_id) if x["idx"] == 0)
                    raise _RunFailed(f"the original model could not be profiled: {error}")
                original_preds = preds


def _record_env(run_id: str, threads: int, store: RunStore) -> None:
    """Fix the OpenMP wait policy for this process and its children, and store the machine's fingerprint."""
    from profiling.measure.env import fingerprint

    # OpenMP threads that spin while waiting make torch 5-20x slower as soon as another process shares the cores
    # (measured here: MiniLM batch-1 median 210-510 ms spinning vs 29-55 ms passive with one busy neighbour);
    # the profiling children inherit this. Set OMP_WAIT_POLICY yourself to measure with spinning.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env = fingerprint(threads)
    env["omp_wait_policy"] = os.environ["OMP_WAIT_POLICY"]
    store.set_run_env(run_id, env)


def _load_inputs(request: dict, rep: _Reporter, state: dict) -> tuple[Any, Any]:
    """The dataset, then the base model resolved for it; returns (model artifact, dataset in the model's order)."""
    from profiling.inputs.datasets import load_dataset
    from profiling.inputs.models import resolve_model

    state["where"] = "loading the dataset"
    rep.stage(state["where"])
    data = load_dataset(request["dataset"])

    state["where"] = "preparing the model"
    rep.stage(state["where"])
    last = [0.0]

    def model_progress(frac: float, msg: str) -> None:
        if time.monotonic() - last[0] >= UPDATE_EVERY_S or frac >= 1.0:
            last[0] = time.monotonic()
            rep.stage(f"preparing the model: {msg} ({frac:.0%})")

    base = resolve_model(request["model"], data, progress=model_progress, finetune=request.get("finetune"))
    return base, match_labels(base.meta, data)


def _sample_examples(run_id: str, data: Any, settings: dict, store: RunStore, rep: _Reporter,
                     state: dict) -> tuple[list[str], list[int], list[str]]:
    """The seeded evaluation sample (stored with the run) and the latency texts."""
    state["where"] = "sampling the test split"
    rep.stage(state["where"])
    eval_idx, lat_idx = sample_indices(len(data.test_texts), settings["eval_size"], settings["seed"])
    eval_texts = [data.test_texts[i] for i in eval_idx]
    eval_labels = [data.test_labels[i] for i in eval_idx]
    latency_texts = [data.test_texts[i] for i in lat_idx]
    store.set_examples(run_id, eval_texts, eval_labels, data.label_names)
    return eval_texts, eval_labels, latency_texts


def match_labels(meta: dict, data: Any) -> Any:
    """Check the model's labels against the dataset's; reorder the dataset's labels to the model's order when the
    names match in another order. Raises ValueError (user-facing) when they cannot match."""
    from dataclasses import replace

    from profiling.inputs.datasets import DatasetError

    n_model = meta.get("num_labels")
    names = list(data.label_names)
    id2label = meta.get("id2label") or {}
    model_names = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(int(n_model or 0))]
    if n_model is not None and int(n_model) != len(names):
        raise DatasetError(
            f"the model predicts {n_model} labels ({', '.join(model_names)}) but the dataset has {len(names)} "
            f"classes ({', '.join(names)}); pick a model trained for these labels or a preset with random weights"
        )
    meaningful = model_names and not all(_GENERIC_LABEL.match(n.lower()) for n in model_names)
    if meta.get("random_weights") or not meaningful:
        return data
    lower_model = [n.lower() for n in model_names]
    if sorted(lower_model) != sorted(n.lower() for n in names):
        raise DatasetError(
            f"the model's labels ({', '.join(model_names)}) do not match the dataset's ({', '.join(names)})"
        )
    if lower_model == [n.lower() for n in names]:
        return data
    remap = [lower_model.index(n.lower()) for n in names]  # dataset index -> model index
    by_lower = {n.lower(): n for n in names}
    log.info("reordering the dataset's labels %s to the model's order %s", names, model_names)
    return replace(data, label_names=[by_lower[m] for m in lower_model],
                   train_labels=[remap[y] for y in data.train_labels],
                   test_labels=[remap[y] for y in data.test_labels])


def sample_indices(n_test: int, eval_size: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded sample of the test split for evaluation, and a seeded sample of texts for latency."""
    if n_test == 0:
        raise _RunFailed("the dataset's test split is empty")
    rng = random.Random(seed)
    eval_idx = sorted(rng.sample(range(n_test), min(eval_size, n_test)))
    lat_idx = random.Random(seed + 1).sample(range(n_test), min(LATENCY_TEXTS, n_test))
    return eval_idx, lat_idx


def _notes(configs: list, art: Any) -> list[str]:
    notes: list[str] = []
    for cfg in configs:
        if cfg.deprecated:
            notes.append(f"{cfg.label or cfg.name}: deprecated: {cfg.deprecated}")
        if cfg.warning:
            notes.append(f"{cfg.label or cfg.name}: {cfg.warning}")
    notes.extend(str(n) for n in art.meta.get("notes") or [])
    if art.meta.get("random_weights"):
        notes.append("random weights: accuracy not meaningful")
    return list(dict.fromkeys(notes))


def _run_variant(run_id: str, v: dict, base: Any, data: Any, settings: dict, eval_texts: list[str],
                 eval_labels: list[int], latency_texts: list[str], original_preds: list[int] | None,
                 store: RunStore, rep: _Reporter, state: dict, where: str) -> list[int] | None:
    """Build and profile one variant; returns its predictions, or None when it failed (recorded in the store)."""
    idx = v["idx"]
    t_build = time.perf_counter()
    timing: dict[str, Any] = {"run_offset_s": t_build - state.get("t0", t_build)}
    try:
        state["where"] = f"building {where}"
        rep.stage(state["where"])
        rep.variant(idx, status="building", stage="building", progress=0.0, started_at=now_iso(), error=None)
        configs, art = _build(v, base, data, settings, rep)
        build_time_s = time.perf_counter() - t_build
        timing["build_time_s"] = build_time_s
        notes = _notes(configs, art)
        rep.variant(idx, lineage=list(art.lineage), artifact=str(art.path), notes=notes)

        state["where"] = f"profiling {where}"
        rep.stage(state["where"])
        rep.variant(idx, status="profiling", stage="starting a fresh process", progress=0.0)
        t_profile = time.perf_counter()
        result = _profile(run_id, idx, art, settings, eval_texts, latency_texts, store, rep)
        profile_s = time.perf_counter() - t_profile
        if not result.ok:
            timing["timing_s"] = variant_timing(result.metrics, result.phases, build_time_s, profile_s)
            rep.variant(idx, status="failed", error=result.error, metrics=_plain({**result.metrics, **timing}),
                        finished_at=now_iso())
            return None
        t_after = time.perf_counter()
        metrics = dict(result.metrics)
        metrics.update(_figures(result.preds, eval_labels, len(data.label_names), original_preds))
        metrics["param_count"] = art.meta.get("param_count") or param_count(art)
        metrics["random_weights"] = bool(art.meta.get("random_weights"))
        metrics["format"] = art.format
        metrics["build_time_s"] = build_time_s
        store.set_predictions(run_id, idx, result.preds, result.probs)
        metrics["run_offset_s"] = timing["run_offset_s"]
        # the final store write is the only part not counted: one small UPDATE
        metrics["timing_s"] = variant_timing(metrics, result.phases, build_time_s, profile_s,
                                             time.perf_counter() - t_after)
        rep.variant(idx, status="done", stage="done", progress=1.0, metrics=_plain(metrics), finished_at=now_iso())
        return list(result.preds)
    except _Stopped:
        raise
    except Exception as exc:
        if not isinstance(exc, UserError):  # a bug or an environment problem: keep its traceback in the log
            log.exception("variant %s failed", where)
        if "build_time_s" not in timing:  # failed while building: the time it took still counts
            timing["build_time_s"] = time.perf_counter() - t_build
            timing["timing_s"] = {"build": timing["build_time_s"]}
        rep.variant(idx, status="failed", error=readable(exc), finished_at=now_iso(), **_failed_metrics(store, run_id,
                    idx, timing))
        if isinstance(exc, DiskWriteError):  # a full or read-only disk fails every later variant too: stop here
            raise _RunFailed(readable(exc)) from None
        return None


def _failed_metrics(store: RunStore, run_id: str, idx: int, timing: dict) -> dict:
    """The variant's stored metrics with the timing added (a failure after profiling keeps what it measured)."""
    if "timing_s" not in timing:
        return {}
    stored = next((v["metrics"] for v in store.variants(run_id) if v["idx"] == idx), {})
    return {"metrics": _plain({**stored, **timing})}


def ram_estimate_of(chain: list[dict], base: Any) -> tuple[int, str | None] | None:
    """(estimated peak bytes of building and profiling ``chain`` on ``base``, why it would not fit here or None);
    None when the base's parameter count is unknown (compression.ram_estimate)."""
    from compression import ram_estimate
    from compression.registry import REGISTRY

    params = base.meta.get("param_count") or param_count(base)
    if not params:
        return None
    names = [str(c.get("technique")) for c in chain]
    final = REGISTRY[names[-1]].config_cls.produces if names and names[-1] in REGISTRY else base.format
    return (ram_estimate.chain_estimate(int(params), names, final),
            ram_estimate.refusal(int(params), names, final, ram_estimate.available_bytes()))


def check_ram(chain: list[dict], base: Any) -> None:
    """RamError (a UserError: the variant fails with the estimate and the available figure) when ``chain`` would
    not fit in the RAM available now."""
    from compression.ram_estimate import RamError

    estimate = ram_estimate_of(chain, base)
    if estimate and estimate[1]:
        raise RamError(estimate[1])


def _build(v: dict, base: Any, data: Any, settings: dict, rep: _Reporter) -> tuple[list, Any]:
    import compression
    from compression.registry import Context
    from profiling.jobs.presets import step_name

    configs = [compression.config_from_json(c) for c in v["chain"]]
    compression.check_chain(base.format, configs, base.meta)
    check_ram(v["chain"], base)  # refused before any work when its estimated peak would not fit on this machine
    art = base
    n = len(configs)
    for i, cfg in enumerate(configs):
        label = step_name(cfg.to_json())

        def progress(frac: float, msg: str, i: int = i, label: str = label) -> None:
            rep.variant(v["idx"], force=False, stage=f"{label}: {msg}" if msg else label,
                        progress=min(max((i + float(frac)) / n, 0.0), 1.0))

        ctx = Context(train_texts=data.train_texts, train_labels=data.train_labels, label_names=data.label_names,
                      progress=progress, seed=settings["seed"], threads=settings["threads"])
        rep.variant(v["idx"], stage=f"{label}: starting", progress=i / n)
        art = compression.apply(art, cfg, paths.artifacts_dir(), ctx)
    return configs, art


def _profile(run_id: str, idx: int, art: Any, settings: dict, eval_texts: list[str], latency_texts: list[str],
             store: RunStore, rep: _Reporter) -> Any:
    from profiling.measure.monitor import profile_in_child

    live = {"samples": False, "phases": False}

    def on_samples(samples: list) -> None:
        live["samples"] = True
        store.append_timeline(run_id, idx, samples, [])

    def on_phase(name: str, t: float) -> None:
        live["phases"] = True
        store.append_timeline(run_id, idx, [], [(name, t)])
        rep.variant(idx, stage=name)

    def on_progress(frac: float, msg: str) -> None:
        rep.variant(idx, force=False, stage=msg, progress=float(frac))

    workload = measurement_workload(settings, eval_texts, latency_texts)
    result = profile_in_child(art.path, workload, on_samples=on_samples, on_phase=on_phase, on_progress=on_progress)
    # Whatever the callbacks did not deliver live is stored now, so the timeline is always complete.
    missing_samples = [] if live["samples"] else list(result.samples)
    missing_phases = [] if live["phases"] else list(result.phases)
    store.append_timeline(run_id, idx, missing_samples, missing_phases)
    return result


def measurement_workload(settings: dict, eval_texts: list[str], latency_texts: list[str]) -> Any:
    """What the profiling child runs for a variant under these settings (the same for every executor)."""
    from profiling.measure.monitor import Workload

    workload = Workload(eval_texts=eval_texts, latency_texts=latency_texts, batch_size=settings["batch_size"],
                        ci_target_pct=settings.get("ci_target_pct", 0),
                        latency_budget_s=settings.get("latency_budget_s", 0),
                        repeats=settings["repeats"], warmup=settings["warmup"], threads=settings["threads"])
    if settings.get("workloads"):  # the request's extra workloads, timed in the same child
        from profiling.jobs.sweep import ShapedWorkload
        from profiling.measure.workloads import MAX_RUN_PASSES

        workload = ShapedWorkload(**vars(workload), workloads=settings["workloads"],
                                  workload_repeats=min(settings["repeats"], MAX_RUN_PASSES))
    return workload


def _figures(preds: list[int], labels: list[int], n_labels: int, original: list[int] | None) -> dict:
    from profiling.measure.evaluation import agreement, classification_metrics

    out: dict[str, Any] = {}
    if preds and len(preds) == len(labels):
        out.update(classification_metrics(labels, preds, n_labels))
    if original is None:  # this is the original
        out["agreement"] = 1.0 if preds else None
    else:
        out["agreement"] = agreement(preds, original) if preds and len(original) == len(preds) else None
    return out


def param_count(art: Any) -> int | None:
    """Parameters of an hf artifact read from the safetensors header (no torch needed); None for other formats."""
    import json
    import math
    import struct

    path = Path(art.path) / "model.safetensors"
    if art.format != "hf" or not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        return sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    except (OSError, ValueError, KeyError, struct.error):
        return None


def _plain(metrics: dict) -> dict:
    """JSON-ready copy (numpy scalars and arrays to Python)."""
    out = {}
    for k, v in metrics.items():
        if hasattr(v, "tolist"):
            v = v.tolist()
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out
