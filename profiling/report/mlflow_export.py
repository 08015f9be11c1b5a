"""Log a stored run to MLflow: one parent MLflow run with the environment, one nested child run per variant.

The parent run carries the machine (CPU model and instruction-set flags, cores, threads, package versions) and the
measurement settings as parameters and tags, and the run's HTML report and run bundle as artifacts. Each variant
becomes a child run (``mlflow.parentRunId``) with its chain and every step's options as parameters and every figure
of ``profiling.schema.METRICS`` it has as a metric; a failed variant is logged with its status and error.

mlflow is optional (``pip install mlflow-skinny``, see the README): it is imported only here, inside the functions,
so the CLI and the dashboard work without it and say what to install.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from compression.errors import UserError
from profiling import paths
from profiling.schema import FINISHED_STATUSES, METRICS, SETTING_METRICS, VariantStatus
from profiling.store.runs import RunStore, describe_dataset

INSTALL_HINT = "pip install mlflow-skinny==3.18.0 (the version requirements-dev.txt pins)"
DEFAULT_EXPERIMENT = "compression-explorer"
# MLflow caps a parameter value (6000 characters in MLflow 3); a longer one is cut and marked.
MAX_PARAM_CHARS = 6000
# An HTTP tracking server that does not answer is reported after one try instead of MLflow's minutes of retries.
PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class MlflowExportError(UserError):
    """The run cannot be logged to MLflow (mlflow missing, unknown run, unreachable tracking URI); the message says
    why, and nothing in the run store was changed."""


@dataclass(frozen=True)
class Logged:
    """What one export wrote: the parent MLflow run, its children (variant name -> MLflow run id), where."""

    parent_run_id: str
    child_run_ids: dict[str, str]
    experiment_id: str
    experiment_name: str
    tracking_uri: str


def available() -> bool:
    """Whether mlflow can be imported here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("mlflow") is not None


def default_tracking_uri() -> str:
    """A local MLflow file store under the data folder (``<data>/mlflow``), as a ``file:`` URI."""
    return (paths.data_dir() / "mlflow").resolve().as_uri()


def _local_folder(uri: str) -> Path | None:
    """The folder of a local file store URI (``file:///x`` or a plain path), None for any other kind of store."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and uri[1:3] in (":\\", ":/")):  # a path (or C:\ on Windows)
        return Path(uri).expanduser()
    return None


def normalize_uri(uri: str | None) -> str:
    """The tracking URI to use: the default local store when none is given; a plain path becomes a ``file:`` URI."""
    uri = (uri or "").strip()
    if not uri:
        return default_tracking_uri()
    folder = _local_folder(uri)
    if folder is not None and urlparse(uri).scheme != "file":
        return folder.resolve().as_uri()
    return uri


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _client(uri: str) -> Any:
    """An MlflowClient for ``uri``, checked to answer (MlflowExportError naming the URI when it does not)."""
    if not available():
        raise MlflowExportError(f"logging to MLflow needs the mlflow package, which is not installed: {INSTALL_HINT}")
    folder = _local_folder(uri)
    if folder is not None:
        # MLflow 3 keeps the file store in maintenance mode and refuses it unless this is set; it still reads and
        # writes it fully, and it is the store that needs no database or server.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MlflowExportError(f"cannot use the MLflow store at {uri}: {exc.strerror or exc}") from None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        with _env(PROBE_ENV):
            client.search_experiments(max_results=1)
    except (MlflowException, OSError, ImportError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise MlflowExportError(f"the MLflow tracking URI {uri} cannot be reached: {first}") from None
    return client


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 12] + " [truncated]"


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    """Nested dicts as dotted keys (``cpu_flags.avx2``); lists and scalars as they are."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}


def step_spec(step: dict[str, Any]) -> str:
    """One chain step as the CLI writes it: ``technique`` or ``technique:option=value,...``."""
    options = ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in step.items()
                       if k != "technique")
    return str(step.get("technique", "?")) + (f":{options}" if options else "")


def chain_spec(chain: list[dict[str, Any]]) -> str:
    """A variant's chain as one ``>``-joined spec (``onnx>onnx-int8:reduce_range=true``); "original" when empty."""
    return ">".join(step_spec(s) for s in chain) if chain else "original"


def environment_params(run: dict[str, Any]) -> dict[str, str]:
    """The parent run's parameters: the model, the dataset, the settings and the machine it was measured on."""
    req = run.get("request") or {}
    env = run.get("env") or {}
    params: dict[str, Any] = {
        "run_id": run["id"],
        "model": req.get("model"),
        "dataset": describe_dataset(req.get("dataset")),
        "n_variants": len(req.get("variants") or []),
    }
    params.update(_flat("settings", req.get("settings") or {}))
    if req.get("workloads"):
        params["workloads"] = ",".join(map(str, req["workloads"]))
    if req.get("executor"):
        params["executor"] = req["executor"]
    for key in ("cpu_model", "logical_cores", "physical_cores", "usable_cores", "ram_total_mib", "os", "python",
                "threads_requested", "omp_wait_policy"):
        if env.get(key) is not None:
            params[f"env.{key}"] = env[key]
    flags = env.get("cpu_flags") or {}
    if isinstance(flags, dict) and flags:
        params["env.cpu_flags"] = ",".join(sorted(f for f, on in flags.items() if on)) or "none"
    for name, version in (env.get("versions") or {}).items():
        if version:
            params[f"version.{name}"] = version
    return {k: _param_value(v) for k, v in params.items() if v is not None}


def variant_params(variant: dict[str, Any]) -> dict[str, str]:
    """A child run's parameters: the chain spec, then each step's technique and options (``step1.technique``...),
    and the numeric settings stored with its figures (threads, batch size)."""
    chain = list(variant.get("chain") or [])
    params: dict[str, Any] = {"variant": variant.get("name"), "chain": chain_spec(chain), "n_steps": len(chain)}
    for i, step in enumerate(chain, start=1):
        for key, value in step.items():
            params[f"step{i}.{key}"] = value
    metrics = variant.get("metrics") or {}
    for key in SETTING_METRICS:
        if metrics.get(key) is not None:
            params[key] = metrics[key]
    return {k: _param_value(v) for k, v in params.items() if v is not None}


def variant_metrics(variant: dict[str, Any]) -> dict[str, float]:
    """Every figure of the metrics registry the variant has, as a finite float (others are left out)."""
    out = {}
    metrics = variant.get("metrics") or {}
    for m in METRICS:
        value = metrics.get(m.key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            out[m.key] = float(value)
    return out


def _experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage != "active":
            raise MlflowExportError(f"the MLflow experiment {name!r} is deleted in that store: restore it or pick "
                                    "another experiment name")
        return found.experiment_id
    return client.create_experiment(name)


def log_run(store: RunStore, run_id: str, tracking_uri: str | None = None,
            experiment: str | None = None) -> Logged:
    """Log ``run_id`` of ``store`` to MLflow at ``tracking_uri`` (default: ``<data>/mlflow``), into ``experiment``.

    Raises MlflowExportError with a clear message for a missing mlflow, an unknown or unfinished run, or a tracking
    URI that does not answer. The store is only read."""
    run = store.get_run(run_id)
    if run is None:
        raise MlflowExportError(f"no run {run_id!r} in the store {store.path}; see 'python -m profiling list'")
    if run["status"] not in FINISHED_STATUSES:
        raise MlflowExportError(f"run {run_id} is still {run['status']}: log it to MLflow once it has finished")
    uri = normalize_uri(tracking_uri)
    name = (experiment or "").strip() or DEFAULT_EXPERIMENT
    client = _client(uri)
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.utils.time import get_current_time_millis

    from profiling.report.html import build_html
    from profiling.store.bundle import export_bytes

    exp_id = _experiment_id(client, name)
    variants = store.variants(run_id)
    req = run.get("request") or {}
    tags = {
        "compression.run_id": run_id,
        "compression.status": str(run["status"]),
        "compression.created_at": str(run.get("created_at")),
        "compression.finished_at": str(run.get("finished_at")),
        "mlflow.note.content": f"Compression Explorer run {run_id}: {len(variants)} variants of "
                               f"{req.get('model')} on {describe_dataset(req.get('dataset'))}.",
    }
    if run.get("error"):
        tags["compression.error"] = _param_value(str(run["error"]))
    env = run.get("env") or {}
    if env.get("cpu_model"):
        tags["compression.cpu_model"] = str(env["cpu_model"])
    imported = env.get("imported") or {}
    if imported:  # measured elsewhere and imported from a bundle: say so, as every page does
        tags["compression.imported_from_run"] = str(imported.get("from_run"))
        if imported.get("copy_of"):
            tags["compression.copy_of"] = str(imported["copy_of"])
    parent = client.create_run(exp_id, run_name=f"run {run_id}", tags=tags)
    pid = parent.info.run_id
    children: dict[str, str] = {}
    try:
        client.log_batch(pid, params=[Param(k, v) for k, v in environment_params(run).items()])
        now = get_current_time_millis()
        for v in variants:
            status = str(v.get("status"))
            child_tags = {"mlflow.parentRunId": pid, "compression.status": status,
                          "compression.variant_idx": str(v["idx"])}
            if v.get("error"):
                child_tags["compression.error"] = _param_value(str(v["error"]))
            if v.get("notes"):
                child_tags["mlflow.note.content"] = _param_value("\n".join(map(str, v["notes"])))
            child = client.create_run(exp_id, run_name=str(v.get("name")), tags=child_tags)
            cid = child.info.run_id
            children[str(v.get("name"))] = cid
            client.log_batch(cid, params=[Param(k, val) for k, val in variant_params(v).items()],
                             metrics=[Metric(k, val, now, 0) for k, val in variant_metrics(v).items()],
                             tags=[RunTag("compression.chain", chain_spec(list(v.get("chain") or [])))])
            client.set_terminated(cid, "FINISHED" if status == VariantStatus.DONE else "FAILED")
        with tempfile.TemporaryDirectory(prefix="mlflow-export-") as tmp:
            report = Path(tmp) / f"report-{run_id}.html"
            report.write_text(build_html(store, run_id), encoding="utf-8")
            bundle = Path(tmp) / f"run-{run_id}.zip"
            bundle.write_bytes(export_bytes(store, run_id))
            client.log_artifact(pid, str(report))
            client.log_artifact(pid, str(bundle))
        client.set_terminated(pid, "FINISHED" if run["status"] == "done" else "FAILED")
    except BaseException as exc:
        with contextlib.suppress(Exception):  # a half-logged parent is marked as such in MLflow, never "finished"
            client.set_terminated(pid, "KILLED")
        if isinstance(exc, MlflowException | OSError):
            first = " ".join(str(exc).split())[:300]
            raise MlflowExportError(f"logging run {run_id} to {uri} stopped part-way (MLflow run {pid} is marked "
                                    f"killed): {first}") from None
        raise
    return Logged(pid, children, exp_id, name, uri)
