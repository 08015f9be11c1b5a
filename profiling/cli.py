"""Command line: ``python -m profiling run|execute|list|show|delete|report|export|import|setup|techniques|...`` (the
engine without a browser)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from compression.errors import UserError

EXIT_BAD_INPUT = 2

log = logging.getLogger("profiling.cli")


class CliError(UserError):
    """Bad command-line input: printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    from profiling.jobs.executor import ADDRESS_HELP, EXECUTORS
    from profiling.jobs.runner import DEFAULT_SETTINGS, PROTOCOL_HELP, PROTOCOLS, SETTING_HELP

    p = argparse.ArgumentParser(prog="python -m profiling", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def store_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--store", help="run store file (default: $COMPRESSION_STORE or data/runs.sqlite)")

    run = sub.add_parser("run", help="run a sweep in the foreground and print the table")
    run.add_argument("--model", default="default",
                     help="'default' (the bundled classifier for the dataset), 'default:movie-reviews', "
                          "'default:tweets', 'preset:roberta-base' (random weights), 'path:/a/folder' or a Hub id")
    run.add_argument("--dataset", default="movie-reviews",
                     help="'movie-reviews', 'tweets' or a CSV file (with --text-column and --label-column)")
    run.add_argument("--text-column", default="text", help="CSV column holding the texts (default: text)")
    run.add_argument("--label-column", default="label", help="CSV column holding the labels (default: label)")
    run.add_argument("--techniques",
                     help="comma-separated techniques, e.g. 'onnx,onnx-int8,torch-int8,prune-heads:0.5'; a chain is "
                          "written with '>', e.g. 'distill>prune-heads:0.5>onnx>onnx-int8' (options: "
                          "'prune-heads:fraction=0.5,method=importance'); see 'python -m profiling techniques'")
    run.add_argument("--preset", choices=["seed", "quick"],
                     help="a ready-made sequence: 'seed' (the reference walk-through) or 'quick'; "
                          "combined with --techniques, the techniques are added after it (default: quick when "
                          "no --techniques)")
    run.add_argument("--workloads", help="extra latency workloads over the sampled test texts, comma-separated: "
                                         "'dynamic:8' (each batch padded to its longest text), 'bucketed:8' (sorted "
                                         "by length within 8 batches first), 'fixed:10x32' (batch x tokens)")
    for key, default in DEFAULT_SETTINGS.items():  # None: not given (the protocol's value, else the default)
        run.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                         help=f"{SETTING_HELP[key]} (default: {default})")
    run.add_argument("--protocol", choices=sorted(PROTOCOLS), help=PROTOCOL_HELP)
    run.add_argument("--finetune", choices=("full", "head"),
                     help="for a base encoder (a model with no classification head): fine-tune every weight but the "
                          "word embeddings (full, the default) or only the new head (head, much faster) on the "
                          "dataset's train split first; cached")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="where the variants are built and measured: 'local' (this machine, one at a time; the "
                          "default) or 'ray' (a Ray cluster, each variant alone on a node offering the 'bench_node' "
                          "resource)")
    run.add_argument("--ray-address", help=ADDRESS_HELP + " With --executor ray only.")
    store_arg(run)

    ex = sub.add_parser("execute", help="execute a stored queued run (used by the dashboard's background jobs)")
    ex.add_argument("run_id")
    store_arg(ex)

    ej = sub.add_parser("execute-job", help="execute a stored queued sweep or sensitivity job (used by the "
                                            "dashboard's background jobs)")
    ej.add_argument("job_id")
    store_arg(ej)

    ls = sub.add_parser("list", help="list stored runs, newest first")
    store_arg(ls)

    jobs = sub.add_parser("jobs", help="list stored sweeps and sensitivity maps, newest first")
    store_arg(jobs)

    rmj = sub.add_parser("delete-job", help="delete a stored sweep or sensitivity map (a finished one)")
    rmj.add_argument("job_id")
    store_arg(rmj)

    show = sub.add_parser("show", help="print a stored run's table, settings and environment")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="print the run's variants and metrics as JSON")
    store_arg(show)

    rm = sub.add_parser("delete", help="delete a stored run")
    rm.add_argument("run_id")
    store_arg(rm)

    rep = sub.add_parser("report", help="write a run's self-contained HTML report (charts inline, no network)")
    rep.add_argument("run_id")
    rep.add_argument("-o", "--output", help="HTML file to write (default: report-RUN_ID.html)")
    store_arg(rep)

    exp = sub.add_parser("export", help="export a finished run as a bundle (a zip of JSON files) for another install")
    exp.add_argument("run_id")
    exp.add_argument("-o", "--output", help="bundle file to write (default: run-RUN_ID.zip)")
    exp.add_argument("--mlflow", action="store_true",
                     help="log the run to MLflow instead: a parent run with the environment and the HTML report and "
                          "bundle as artifacts, a child run per variant with its chain as parameters and its figures "
                          "as metrics (needs mlflow: pip install mlflow-skinny, see the README)")
    exp.add_argument("--tracking-uri", help="with --mlflow: the MLflow tracking URI, e.g. http://host:5000 or a "
                                            "folder (default: a local file store in the data folder, data/mlflow)")
    exp.add_argument("--experiment", help="with --mlflow: the MLflow experiment (default: compression-explorer)")
    store_arg(exp)

    imp = sub.add_parser("import", help="import a run bundle (validated; a bad bundle is refused, nothing stored)")
    imp.add_argument("bundle", help="the .zip file written by 'export'")
    imp.add_argument("--on-collision", choices=["new", "refuse"], default="new",
                     help="when the run id is already stored: store under a new id (default) or refuse")
    imp.add_argument("--as-copy", action="store_true",
                     help="when the same run (same content digest) is already stored: import a second copy, "
                          "marked as a copy (without it, such a bundle is refused and the stored run named)")
    store_arg(imp)

    demo = sub.add_parser("demo-bundles", help="run the shipped demo scenarios on this machine and write their "
                          "bundles into profiling/demo_runs/ (what the Demo page shows on a fresh machine)")
    demo.add_argument("--scenario", action="append", help="a scenario's short name (default: every shipped one)")
    demo.add_argument("--folder", help="where to write the bundles (default: profiling/demo_runs/)")
    setup = sub.add_parser("setup", help="download the bundled datasets and build the default classifiers (cached; "
                           "one build at a time: a second setup waits for the first)")
    setup.add_argument("--background", action="store_true",
                       help="start the build as a detached process and return at once (its progress goes to "
                            "setup-status.json in the data folder, which the dashboard shows)")
    setup.add_argument("--plain", action="store_true", help="progress as plain log lines instead of a bar")
    sub.add_parser("techniques", help="list the techniques, their options and the presets")
    from profiling.jobs.sweep import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    from profiling.jobs.sensitivity import add_parser as add_sensitivity_parser

    add_sensitivity_parser(sub)
    from profiling.measure.timing import add_parser as add_timing_parser

    add_timing_parser(sub)
    return p


# ---- request building ------------------------------------------------------------------------------------


def parse_techniques(text: str, start_format: str = "hf") -> list[dict[str, Any]]:
    """``onnx,onnx-int8,distill>prune-heads:0.5`` -> variant dicts. A chain that must start with an export
    (``onnx-int8`` on a PyTorch model; none on an ONNX one, ``start_format`` "onnx") gets it prepended. Commas inside a step's options (``prune-heads:fraction=0.5,method=random``)
    are kept with their step."""
    import compression
    from compression.registry import REGISTRY, TechniqueError
    from profiling.jobs.presets import complete_chain, variant_name

    # Split on commas, then glue back pieces that are options of the previous step (contain '=' and no known name).
    pieces: list[str] = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        head = piece.split(">")[0].split(":")[0].strip()
        if pieces and "=" in piece and head not in REGISTRY and not piece.startswith(">"):
            pieces[-1] += "," + piece
        else:
            pieces.append(piece)
    if not pieces:
        raise CliError("--techniques is empty; e.g. --techniques onnx,onnx-int8,prune-heads:0.5")
    variants = []
    for piece in pieces:
        steps = [s.strip() for s in piece.split(">")]
        if any(not s for s in steps):
            raise CliError(f"empty step in chain {piece!r}")
        try:
            configs = complete_chain([compression.parse_spec(s) for s in steps], start_format)
        except TechniqueError as exc:
            raise CliError(str(exc)) from None
        chain = [c.to_json() for c in configs]
        variants.append({"name": variant_name(chain), "chain": chain})
    return variants


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    from profiling.inputs.datasets import BUNDLED
    from profiling.jobs.presets import PRESETS
    from profiling.jobs.runner import DEFAULT_SETTINGS, PROTOCOLS

    if args.dataset in BUNDLED:
        dataset: dict[str, Any] = {"kind": "bundled", "name": args.dataset}
    elif args.dataset.lower().endswith((".csv", ".tsv", ".txt")) or Path(args.dataset).expanduser().exists():
        if not Path(args.dataset).expanduser().is_file():
            raise CliError(f"dataset file {args.dataset} does not exist")
        dataset = {"kind": "csv", "path": str(Path(args.dataset).expanduser().resolve()),
                   "text_column": args.text_column, "label_column": args.label_column}
    else:
        raise CliError(f"unknown dataset {args.dataset!r}: use {', '.join(BUNDLED)} or a path to a CSV file")
    variants: list[dict[str, Any]] = []
    if args.preset or not args.techniques:
        variants.extend(json.loads(json.dumps(PRESETS[args.preset or "quick"])))
    if args.techniques:
        from profiling.inputs.spec_structure import spec_format

        variants.extend(parse_techniques(args.techniques, spec_format(args.model)))
    protocol = PROTOCOLS.get(getattr(args, "protocol", None) or "", {})
    settings = {}
    for key, default in DEFAULT_SETTINGS.items():  # an explicit flag, else the protocol's value, else the default
        value = getattr(args, key, None)
        settings[key] = protocol.get(key, default) if value is None else value
    request = {"model": args.model, "dataset": dataset, "variants": variants, "settings": settings}
    if getattr(args, "finetune", None):
        request["finetune"] = args.finetune
    if getattr(args, "workloads", None):
        request["workloads"] = [w.strip() for w in args.workloads.split(",") if w.strip()]
    executor = getattr(args, "executor", None) or "local"
    if getattr(args, "ray_address", None) and executor != "ray":
        raise CliError("--ray-address is for --executor ray")
    if executor != "local":
        request["executor"] = executor
        request["ray_address"] = getattr(args, "ray_address", None)
    return request


# ---- progress bars ---------------------------------------------------------------------------------------


class _Bars:
    """One tqdm bar per variant: building fills the first 30 %, profiling the rest."""

    def __init__(self, names: dict[int, str]):
        self.names = names
        self.bars: dict[int, Any] = {}
        self.status: dict[int, str] = {}
        self.started: dict[int, float] = {}
        self.lock = threading.Lock()
        self.width = max((len(n) for n in names.values()), default=10)

    def __call__(self, idx: int | None, fields: dict) -> None:
        from tqdm import tqdm

        with self.lock:
            if idx is None:
                stage = fields.get("stage", "")
                if stage and not stage.startswith(("building", "profiling", "done")):
                    tqdm.write(f"· {stage}", file=sys.stderr)
                return
            status = fields.get("status", self.status.get(idx, "pending"))
            self.status[idx] = status
            bar = self.bars.get(idx)
            if bar is None and status in ("building", "profiling"):
                self.started[idx] = time.monotonic()
                bar = tqdm(total=100, desc=self.names.get(idx, str(idx)).ljust(self.width), file=sys.stderr,
                           bar_format="{desc} {percentage:3.0f}%|{bar:24}| {elapsed} {postfix}", leave=True)
                self.bars[idx] = bar
            if bar is None:
                if status == "failed":
                    tqdm.write(f"✗ {self.names.get(idx)}: {fields.get('error')}", file=sys.stderr)
                return
            if "progress" in fields:
                p = float(fields["progress"] or 0.0)
                value = 30 * p if status == "building" else 30 + 70 * p if status == "profiling" else 100 * p
                bar.n = max(0, min(100, int(value)))
            if fields.get("stage"):
                bar.set_postfix_str(str(fields["stage"])[:48], refresh=False)
            if status in ("done", "failed"):
                if status == "done":
                    bar.n = 100
                    bar.set_postfix_str("done", refresh=False)
                else:
                    bar.set_postfix_str("FAILED", refresh=False)
                bar.refresh()
                bar.close()
                if status == "failed":
                    tqdm.write(f"✗ {self.names.get(idx)}: {fields.get('error')}", file=sys.stderr)
                del self.bars[idx]
            else:
                bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


# ---- commands --------------------------------------------------------------------------------------------


def _store(args: argparse.Namespace):
    from profiling.store.recovery import describe
    from profiling.store.runs import RunStore

    store = RunStore(Path(args.store).expanduser() if getattr(args, "store", None) else None)
    notice = store.recovery or (store.recovery_notice() if args.command == "list" else None)
    if notice:  # this command found the store damaged (or `list`: an earlier one did): say what happened
        print(f"warning: {describe(notice)}", file=sys.stderr)
    return store


def cmd_run(args: argparse.Namespace) -> int:
    from profiling.jobs.runner import RequestError, normalize_request
    from profiling.report.tables import format_table, results_frame

    try:
        request = normalize_request(build_request(args))
    except RequestError as exc:
        raise CliError(str(exc)) from None
    if request["dataset"]["kind"] == "csv":  # loaded (and cached) by the check above: say how it was read
        from profiling.inputs.datasets import load_dataset

        print(f"dataset: {load_dataset(request['dataset']).note}", file=sys.stderr)
    from profiling.measure.hardware import advice_for, detect, recipe_line

    cpu = detect()
    from compression.registry import REGISTRY

    if any(hasattr(REGISTRY[step["technique"]].config_cls, "recipe") for v in request["variants"]
           for step in v["chain"] if step["technique"] in REGISTRY):
        print(recipe_line(cpu), file=sys.stderr)
    for v in request["variants"]:
        for step in v["chain"]:
            if advice := advice_for(step["technique"], cpu, step):
                print(f"warning: {v['name']}: {advice}", file=sys.stderr)
    store = _store(args)
    store.reap_dead_runs()
    run_id = store.create_run(request)
    print(f"run {run_id}: {len(request['variants'])} variants of {request['model']} on "
          f"{_dataset_name(request['dataset'])}; store {store.path}", file=sys.stderr)
    wall = execute_with_bars(store, run_id)
    run = store.get_run(run_id) or {}
    print(format_table(results_frame(store, run_id)))
    from profiling.measure.timing import format_timing

    print(f"\nwhere the time went (seconds; 'python -m profiling timing {run_id} --legend' says what each covers):\n"
          + format_timing(store.variants(run_id)))
    print(f"\nrun {run_id}: {run.get('status')} in {wall:.1f} s" + (f" ({run['error']})" if run.get("error") else ""))
    return 0 if run.get("status") == "done" else 1


def execute_with_bars(store, run_id: str) -> float:
    """Run ``run_id`` in this process with a progress bar per variant; returns the wall time in seconds."""
    from profiling.jobs.runner import execute

    bars = _Bars({v["idx"]: v["name"] for v in store.variants(run_id)})
    t0 = time.monotonic()
    try:
        execute(run_id, store, on_update=bars)
    finally:
        bars.close()
    return time.monotonic() - t0


def _dataset_name(spec: dict) -> str:
    from profiling.store.runs import describe_dataset

    return describe_dataset(spec)


def cmd_execute(args: argparse.Namespace) -> int:
    from profiling.jobs.runner import RequestError, execute

    store = _store(args)
    try:
        execute(args.run_id, store)
    except RequestError as exc:
        raise CliError(str(exc)) from None
    run = store.get_run(args.run_id) or {}
    log.info("run %s finished: %s %s", args.run_id, run.get("status"), run.get("error") or "")
    return 0 if run.get("status") == "done" else 1


def cmd_execute_job(args: argparse.Namespace) -> int:
    from profiling.jobs.launcher import execute_job

    job = execute_job(args.job_id, _store(args))
    log.info("job %s finished: %s %s", args.job_id, job.get("status"), job.get("error") or "")
    return 0 if job.get("status") == "done" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    store = _store(args)
    store.reap_dead_jobs()
    from profiling.jobs.launcher import import_json_results

    import_json_results(store)
    jobs = store.list_jobs()
    if not jobs:
        print(f"no jobs in {store.path}")
        return 0
    for j in jobs:
        line = f"{j['id']}  {j['created_at']}  {j['kind']:<11}  {j['status']:<7}"
        if j["run_id"]:
            line += f"  run {j['run_id']}"
        if j["status"] in ("queued", "running") and j["stage"]:
            line += f"  now: {j['stage']}"
        if j["error"]:
            line += f"  [{j['error']}]"
        print(line)
    return 0


def cmd_delete_job(args: argparse.Namespace) -> int:
    store = _store(args)
    job = store.get_job(args.job_id)
    if job is None:
        raise CliError(f"no job {args.job_id!r} in {store.path}; see 'python -m profiling jobs'")
    if job["status"] in ("queued", "running"):
        raise CliError(f"job {args.job_id} is {job['status']}; it can be deleted once it has finished")
    store.delete_job(args.job_id)
    print(f"deleted job {args.job_id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    store.reap_dead_runs()
    runs = store.list_runs()
    if not runs:
        print(f"no runs in {store.path}")
        return 0
    for r in runs:
        techniques = ", ".join(r["techniques"]) or "original only"
        line = (f"{r['id']}  {r['created_at']}  {r['status']:<7}  {r['n_done']}/{r['n_variants']}  "
                f"{r['model']} on {r['dataset']}: {techniques}")
        if r["error"]:
            line += f"  [{r['error']}]"
        print(line)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from profiling.report.tables import format_table, results_frame

    store = _store(args)
    store.reap_dead_runs()
    run = store.get_run(args.run_id)
    if run is None:
        raise CliError(f"no run {args.run_id!r} in {store.path}; see 'python -m profiling list'")
    if args.json:
        print(json.dumps({"run": run, "variants": store.variants(args.run_id)}, indent=2, default=str))
        return 0
    req = run["request"]
    print(f"run {run['id']}  created {run['created_at']}  status {run['status']}"
          + (f"  finished {run['finished_at']}" if run["finished_at"] else ""))
    if run["error"]:
        print(f"error: {run['error']}")
    elif run["status"] in ("queued", "running") and run.get("stage"):
        print(f"now: {run['stage']}")
    print(f"model {req.get('model')} on {_dataset_name(req.get('dataset'))}; settings {req.get('settings')}")
    env = run["env"]
    if env:
        versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v)
        print(f"machine: {env.get('cpu_model')}, {env.get('usable_cores')} usable cores; {versions}")
    print()
    print(format_table(results_frame(store, args.run_id)))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    store = _store(args)
    if store.get_run(args.run_id) is None:
        raise CliError(f"no run {args.run_id!r} in {store.path}")
    store.delete_run(args.run_id)
    print(f"deleted run {args.run_id}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from profiling.jobs import defaults_build

    if getattr(args, "background", False):
        started = defaults_build.start_background()
        if started["started"]:
            print(f"building the default classifiers in the background (process {started['pid']}); "
                  f"progress: {defaults_build.status_path()}, log: {defaults_build.log_path()}")
        else:
            print(f"not started: {started['why']}")
        return 0

    def waiting() -> None:
        print("another setup is building the default classifiers; waiting for it to finish", flush=True)

    if getattr(args, "plain", False):
        result = defaults_build.run_setup(progress=_plain_progress(), on_wait=waiting)
    else:
        from tqdm import tqdm

        bar = tqdm(total=100, desc="setup", bar_format="{desc} {percentage:3.0f}%|{bar:24}| {elapsed} {postfix}")

        def progress(frac: float, msg: str) -> None:
            bar.n = max(0, min(100, int(100 * frac)))
            bar.set_postfix_str(msg[:60], refresh=False)
            bar.refresh()

        try:
            result = defaults_build.run_setup(progress=progress, on_wait=waiting)
        finally:
            bar.close()
    for name, art in (result or {}).items():
        print(f"{name}: {getattr(art, 'path', art)}")
    return 0


def _plain_progress(every_s: float = 15.0):
    """A progress callback printing one line per stage, and the current line at most every ``every_s`` seconds."""
    import re
    import time

    last = {"kind": None, "t": 0.0}

    def report(frac: float, msg: str) -> None:
        kind, now = re.sub(r"[0-9.]+", "#", msg.split(":", 1)[0]), time.monotonic()
        if kind != last["kind"] or now - last["t"] >= every_s:
            last.update(kind=kind, t=now)
            print(f"[{100 * frac:3.0f}%] {msg}", flush=True)

    return report


def cmd_techniques(args: argparse.Namespace) -> int:
    import dataclasses

    from compression.registry import REGISTRY
    from profiling.jobs.presets import PRESET_HELP, PRESETS
    from profiling.measure.hardware import advice_for, detect, recipe_line

    cpu = detect()
    print(f"this CPU: {cpu.summary()}\n{recipe_line(cpu)}\n")
    groups: dict[str, list] = {}
    for name, tech in sorted(REGISTRY.items()):
        groups.setdefault(tech.config_cls.group or "other", []).append((name, tech.config_cls))
    for group, items in groups.items():
        print(f"[{group}]")
        for name, cls in items:
            print(f"  {name}: {cls.label}  (takes {'/'.join(cls.accepts)}, makes {cls.produces})")
            print(f"      {cls.help}")
            if cls.deprecated:
                print(f"      deprecated: {cls.deprecated}")
            if cls.warning:
                print(f"      note: {cls.warning}")
            if advice := advice_for(name, cpu):
                print(f"      this CPU: {advice}")
            for f in dataclasses.fields(cls):
                extra = f" (one of {', '.join(map(str, f.metadata['choices']))})" if f.metadata.get("choices") else ""
                option = f"{name}:{f.name}={f.default}"
                print(f"      {option:<36} {f.metadata.get('help', '').rstrip('.')}{extra}")
        print()
    for name, variants in PRESETS.items():
        print(f"preset {name}: " + "; ".join(v["name"] for v in variants))
        print(f"      {PRESET_HELP[name]}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from profiling.jobs.sweep import cmd_sweep as run_sweep

    return run_sweep(args)


COMMANDS = {"run": cmd_run, "execute": cmd_execute, "list": cmd_list, "show": cmd_show, "delete": cmd_delete,
            "setup": cmd_setup, "techniques": cmd_techniques, "sweep": cmd_sweep}


def cmd_report(args: argparse.Namespace) -> int:
    from profiling.report.html import write_html

    store = _store(args)
    if store.get_run(args.run_id) is None:
        raise CliError(f"no run {args.run_id!r} in {store.path}; see 'python -m profiling list'")
    path = write_html(store, args.run_id, args.output or f"report-{args.run_id}.html")
    print(f"wrote {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.mlflow:
        return _export_mlflow(args)
    if args.tracking_uri or args.experiment:
        raise CliError("--tracking-uri and --experiment only apply with --mlflow")
    from profiling.store.bundle import export_run

    path = export_run(_store(args), args.run_id, args.output or f"run-{args.run_id}.zip")
    print(f"wrote {path}")
    return 0


def _export_mlflow(args: argparse.Namespace) -> int:
    from profiling.report.mlflow_export import MlflowExportError, log_run, normalize_uri

    if args.output:
        raise CliError("-o/--output writes a bundle file; with --mlflow the run goes to the tracking URI instead")
    store = _store(args)
    uri = normalize_uri(args.tracking_uri)
    print(f"logging run {args.run_id} to MLflow at {uri} ...", file=sys.stderr)
    try:
        logged = log_run(store, args.run_id, uri, args.experiment)
    except MlflowExportError as exc:
        raise CliError(str(exc)) from None
    print(f"logged run {args.run_id} to MLflow: parent run {logged.parent_run_id} with "
          f"{len(logged.child_run_ids)} child runs, experiment {logged.experiment_name!r} "
          f"(id {logged.experiment_id}) at {logged.tracking_uri}")
    if logged.tracking_uri.startswith("file:"):
        print(f"browse it with: mlflow ui --backend-store-uri {logged.tracking_uri} (the UI needs the full mlflow "
              "package; set MLFLOW_ALLOW_FILE_STORE=true)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from profiling.store.bundle import import_bundle

    store = _store(args)
    run_id = import_bundle(store, Path(args.bundle), on_collision=args.on_collision,
                           duplicate="copy" if args.as_copy else "refuse")
    copy_of = ((store.get_run(run_id) or {}).get("env") or {}).get("imported", {}).get("copy_of")
    print(f"imported run {run_id} into {store.path}" + (f", a marked copy of run {copy_of}" if copy_of else ""))
    return 0


COMMANDS.update({"report": cmd_report, "export": cmd_export, "import": cmd_import, "execute-job": cmd_execute_job,
                 "jobs": cmd_jobs, "delete-job": cmd_delete_job})


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from profiling.jobs.sensitivity import cmd_sensitivity as run_sensitivity

    return run_sensitivity(args)


COMMANDS["sensitivity"] = cmd_sensitivity


def cmd_demo_bundles(args: argparse.Namespace) -> int:
    from profiling.jobs.demo_runs import SCENARIOS, refresh, shipped

    wanted = args.scenario or list(SCENARIOS)
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        raise CliError(f"unknown demo scenario {', '.join(unknown)}: use {', '.join(SCENARIOS)}")
    folder = Path(args.folder).expanduser() if args.folder else None
    for short in wanted:
        print(f"running the {short} scenario on this machine (a few minutes)...", file=sys.stderr)
        path = refresh(short, folder)
        info = shipped(short, folder)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB): {info.label if info else '?'}")
    return 0


COMMANDS["demo-bundles"] = cmd_demo_bundles


def cmd_timing(args: argparse.Namespace) -> int:
    from profiling.measure.timing import cmd_timing as timing_text

    try:
        print(timing_text(args, _store(args)))
    except LookupError as exc:
        raise CliError(str(exc)) from None
    return 0


COMMANDS["timing"] = cmd_timing


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.INFO if args.verbose or args.command in ("execute", "execute-job") else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from profiling.store.runs import StoreError

    try:
        return COMMANDS[args.command](args)
    except (CliError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UserError as exc:  # the user's mistake with a clear message (dataset, model, technique): no traceback
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

