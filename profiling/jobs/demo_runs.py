"""Run bundles this project measured itself, shipped in ``profiling/demo_runs/`` so that the Demo page shows a
complete run on a fresh machine before anything was run there. Each is labelled with the machine, CPU flags and
date it was measured on; ``python -m profiling demo-bundles`` refreshes them by running the scenario here."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiling.schema import RunStatus

log = logging.getLogger(__name__)

FOLDER = Path(__file__).resolve().parents[1] / "demo_runs"
# Short name -> (model, preset, latency protocol): the scenarios a bundle is shipped for (the quick tour: a few
# minutes of CPU; the reference sequence is long and is shown once it has been run on the machine).
SCENARIOS: dict[str, tuple[str, str, str]] = {"quick": ("default", "quick", "quick")}
MOVIE_REVIEWS = {"kind": "bundled", "name": "movie-reviews"}
_FLAG_NAMES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
               "avx512_bf16": "AVX-512 BF16", "avx512_fp16": "AVX-512 FP16", "amx_int8": "AMX-INT8",
               "amx_bf16": "AMX-BF16"}


def bundle_path(short: str, folder: Path | None = None) -> Path:
    return (folder or FOLDER) / f"{short}.zip"


def scenario_request(short: str) -> dict[str, Any]:
    """The run request of a shipped scenario: its model, the bundled movie reviews, the preset, the protocol."""
    from profiling.jobs.presets import PRESETS
    from profiling.jobs.runner import DEFAULT_SETTINGS, PROTOCOLS

    model, preset, protocol = SCENARIOS[short]
    settings = {key: PROTOCOLS[protocol].get(key, default) for key, default in DEFAULT_SETTINGS.items()}
    return {"model": model, "dataset": dict(MOVIE_REVIEWS), "variants": json.loads(json.dumps(PRESETS[preset])),
            "settings": settings}


def machine_label(env: dict[str, Any], measured_at: str | None) -> str:
    """"AMD EPYC, 2 cores (AVX2, AVX-512, AVX-512 VNNI, AVX-512 BF16), measured 2026-12-02": where the figures
    come from, as the run recorded it."""
    flags = env.get("cpu_flags") or {}
    names = [label for key, label in _FLAG_NAMES.items() if flags.get(key)]
    cores = env.get("usable_cores") or env.get("logical_cores")
    cpu = str(env.get("cpu_model") or "an unrecorded CPU") + (f", {cores} cores" if cores else "")
    return f"{cpu} ({', '.join(names) or 'no AVX2 or newer'}), measured {str(measured_at or '?')[:10]}"


@dataclass(frozen=True)
class ShippedRun:
    """A shipped bundle, read and validated: the run record, its variants (as store.variants gives them), where
    it was measured."""

    short: str
    path: Path
    run: dict[str, Any]
    variants: list[dict[str, Any]]
    examples: dict[str, Any]
    predictions: dict[int, Any]

    @property
    def label(self) -> str:
        return machine_label(self.run.get("env") or {}, self.run.get("finished_at") or self.run.get("created_at"))


def shipped(short: str, folder: Path | None = None) -> ShippedRun | None:
    """The shipped run of a scenario, or None when no bundle is shipped for it (or it cannot be read: logged)."""
    from profiling.store.bundle import BundleError, read_bundle

    path = bundle_path(short, folder)
    if short not in SCENARIOS or not path.is_file():
        return None
    try:
        content = read_bundle(path)
    except BundleError as exc:
        log.warning("shipped demo bundle %s cannot be read: %s", path, exc)
        return None
    return ShippedRun(short, path, content["run"], content["variants"], content["examples"], content["predictions"])


def refresh(short: str, folder: Path | None = None, store_path: Path | None = None) -> Path:
    """Run the scenario on this machine (in a scratch store unless one is given) and write its bundle into the
    shipped folder; returns the bundle's path. The figures are this machine's: the label says which it is."""
    from profiling.jobs.runner import execute, normalize_request
    from profiling.store.bundle import export_run
    from profiling.store.runs import RunStore

    scratch = None
    if store_path is None:
        scratch = Path(tempfile.mkdtemp(prefix="demo-bundle-"))
        store_path = scratch / "runs.sqlite"
    try:
        store = RunStore(store_path)
        run_id = store.create_run(normalize_request(scenario_request(short)))
        execute(run_id, store)
        run = store.get_run(run_id) or {}
        if run.get("status") != RunStatus.DONE:
            raise RuntimeError(f"the {short} scenario did not finish ({run.get('status')}: {run.get('error')}); "
                               "the shipped bundle is unchanged")
        out = bundle_path(short, folder)
        tmp = out.with_suffix(".zip.part")
        export_run(store, run_id, tmp)
        tmp.replace(out)  # a reader never sees half a bundle
        return out
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
