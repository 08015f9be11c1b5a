"""Demo mode: preset scenarios shown at once from their stored runs (large fonts), each re-runnable live."""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from dashboard import share, state
from profiling.report import figures as plots
from profiling.report import frames as rd
from profiling.schema import ACTIVE_STATUSES, FINISHED_STATUSES, VariantStatus

log = logging.getLogger(__name__)

MOVIE_REVIEWS = {"kind": "bundled", "name": "movie-reviews"}
# Scenario title -> (model, preset, what the audience should look at).
SCENARIOS: dict[str, tuple[str, str, str]] = {
    "Reference sequence \u00b7 default classifier": (
        "default", "seed",
        ("MiniLM-L6 fine-tuned on movie reviews, through every technique of the reference walk-through: real "
        "accuracy, so the accuracy cost of each speed-up is visible.")),
    "Reference sequence \u00b7 RoBERTa-base shape": (
        "preset:roberta-base", "seed",
        ("The same sequence on a 125M-parameter RoBERTa-base-shaped model (random weights): size, memory and speed "
        "at the scale of a production model; accuracy is not meaningful here.")),
    "Quick tour \u00b7 default classifier": (
        "default", "quick",
        "Five variants in a few minutes: the one to re-run live in front of an audience."),
}
# ?scenario=<short name> in the page address opens that scenario.
SHORT_NAMES = dict(zip(("reference", "roberta", "quick"), SCENARIOS, strict=True))
CSS = """<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 20px; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.15rem; }
[data-testid="stMetricValue"] { font-size: 2.6rem; }
h1 { font-size: 2.8rem !important; } h2, h3 { font-size: 2rem !important; }
[data-testid="stToolbar"], [data-testid="stDecoration"], [data-testid="stStatusWidget"] { display: none !important; }
</style>"""


def scenario_request(title: str) -> dict:
    """The run request of a scenario (model, bundled movie reviews, the preset's variants, default settings)."""
    model, preset, _ = SCENARIOS[title]
    from profiling.jobs.presets import PRESETS

    return {"model": model, "dataset": dict(MOVIE_REVIEWS), "variants": list(PRESETS[preset])}


def _signature(variants: list[Any]) -> tuple:
    """What identifies a scenario's sweep: each variant's technique names in order (names/options may be renamed)."""
    out = []
    for v in variants:
        chain = v.get("chain") if isinstance(v, dict) else None
        steps = tuple(str(c.get("technique")) for c in chain or [] if isinstance(c, dict))
        out.append(steps)
    while out and out[0] == ():  # the original, added by the runner when missing
        out.pop(0)
    return tuple(out)


def matching_run(runs: list[dict], store: Any, request: dict) -> dict | None:
    """The newest finished run with the scenario's model, dataset and technique chains (settings may differ)."""
    want = (request["model"], rd_dataset(request["dataset"]), _signature(request["variants"]))
    found = []
    for r in runs:  # newest first
        if r["status"] not in FINISHED_STATUSES or r.get("n_done", 0) < 2:
            continue
        run = store.get_run(r["id"])
        req = (run or {}).get("request") or {}
        if (req.get("model"), rd_dataset(req.get("dataset")), _signature(req.get("variants") or [])) == want:
            found.append(run)
    # a run measured here before one imported from a bundle (measured elsewhere), and never a marked copy first
    found.sort(key=lambda run: (bool((run.get("env") or {}).get("imported")),
                                bool(((run.get("env") or {}).get("imported") or {}).get("copy_of"))))
    return found[0] if found else None


def rd_dataset(spec: Any) -> str:
    from profiling.store.runs import describe_dataset

    return describe_dataset(spec)


def headline(variants: list[dict], predictions: dict, examples: dict) -> str | None:
    """The Results page's first sentence for the audience (no limits: within noise of the original assumed)."""
    from profiling.report.recommend import Limits, evaluate
    from profiling.report.recommend import headline as recommendation
    from profiling.report.uncertainty import accuracy_changes

    done = [v for v in variants if v.get("status") == VariantStatus.DONE]
    if len(done) < 2:
        return None
    labels = examples.get("labels") if examples.get("texts") else None
    return recommendation(evaluate(variants, Limits(), accuracy_changes(done, predictions, labels)), Limits())


def _first_to_show(runs: list[dict], store: Any) -> str:
    """The first scenario with a run on this machine, else the first with a shipped run, else the first."""
    from profiling.jobs.demo_runs import bundle_path

    for title in SCENARIOS:
        if matching_run(runs, store, scenario_request(title)) is not None:
            return title
    short = {title: name for name, title in SHORT_NAMES.items()}
    return next((t for t in SCENARIOS if bundle_path(short[t]).is_file()), next(iter(SCENARIOS)))


def show_scenario(store: Any, run: dict) -> None:
    """A run of the scenario made on this machine (stored): figures, charts and a link to its full results."""
    from profiling.jobs.demo_runs import machine_label

    variants = store.variants(run["id"])
    imported = (run.get("env") or {}).get("imported")
    where = "imported from a bundle, measured on" if imported else "measured on this machine \u00b7"
    st.caption(f"Stored run {run['id']} \u00b7 {str(run.get('created_at', ''))[:16].replace('T', ' ')} \u00b7 "
               f"{sum(v['status'] == 'done' for v in variants)} of {len(variants)} variants {where} "
               f"{machine_label(run.get('env') or {}, run.get('finished_at'))}")
    preds = {v["idx"]: store.predictions(run["id"], v["idx"]) for v in variants}
    _figures(run, variants, link=True, line=headline(variants, preds, store.examples(run["id"])))


def show_shipped(shipped: Any) -> None:
    """The run this project measured and ships (nothing has been run here yet): labelled with where it was measured."""
    with st.container(key="demo_shipped"):
        st.info(f"Showing the run this project measured and ships with the app (run {shipped.run['id']}), "
                f"**not a run made here**: {shipped.label}. A live run here replaces it when it is done.",
                icon=":material/inventory_2:")
    _figures(shipped.run, shipped.variants, link=False,
             line=headline(shipped.variants, shipped.predictions, shipped.examples))


def _figures(run: dict, variants: list[dict], link: bool, line: str | None) -> None:
    run_id = run["id"]
    df = rd.metrics_frame(variants)
    if line:
        st.markdown(f"### {line}")
    done = df[df["status"] == VariantStatus.DONE]
    left, right = st.columns(2)
    with left:
        st.plotly_chart(plots.tradeoff_scatter(done, "latency_b1_median_ms", title="Accuracy vs latency"),
                        key=f"demo_lat_{run_id}", config={"displaylogo": False})
    with right:
        st.plotly_chart(plots.tradeoff_scatter(done, "disk_mib", title="Accuracy vs size on disk"),
                        key=f"demo_disk_{run_id}", config={"displaylogo": False})
    cols = ["variant", "disk_mib", "peak_rss_mib", "latency_b1_median_ms", "accuracy", "disk_ratio",
            "latency_b1_ratio", "accuracy_delta_pts"]
    table = rd.table_frame(df)
    heads = rd.display_columns(df)
    with st.container(key="demo_table"):
        st.dataframe(table[[heads[c] for c in cols if heads.get(c) in table.columns]], hide_index=True)
    if link:
        st.page_link("pages/results.py", label="Open the full results (memory, changed predictions, report, A/B)",
                     icon=":material/insights:", query_params={"run": run_id})


def relaunch(request: dict) -> None:
    from profiling.jobs import runner
    try:
        run_id = runner.launch(request)
    except (ValueError, RuntimeError) as exc:  # RequestError; ReadOnlyError (a StoreError)
        st.error(f"Cannot launch: {exc}", icon=":material/block:")
        return
    st.session_state["run_id"] = run_id
    st.switch_page("pages/run.py", query_params={"run": run_id})


def render() -> None:
    st.html(CSS)
    st.title("Demo")
    st.markdown("What compression does to a text classifier on this CPU: pick a scenario.")
    store = state.get_store()
    runs = store.list_runs()
    wanted = SHORT_NAMES.get(str(st.query_params.get("scenario", "")))
    if wanted and "demo_scenario" not in st.session_state:  # ?scenario=quick opens that scenario (a bookmark)
        st.session_state["demo_scenario"] = wanted
    if "demo_scenario" not in st.session_state:  # open on something to show: run here, else shipped, else the first
        st.session_state["demo_scenario"] = _first_to_show(runs, store)
    title = st.radio("Scenario", list(SCENARIOS), key="demo_scenario", horizontal=True, label_visibility="collapsed")
    st.markdown(SCENARIOS[title][2])
    request = scenario_request(title)
    run = matching_run(runs, store, request)
    active = any(r["status"] in ACTIVE_STATUSES for r in runs)
    short = next((k for k, v in SHORT_NAMES.items() if v == title), "")
    from profiling.jobs.demo_runs import shipped as shipped_run

    ship = shipped_run(short) if run is None else None
    if run is not None:
        show_scenario(store, run)
    elif ship is not None:
        show_shipped(ship)
    else:
        st.info("This scenario has not been run on this machine yet." + ("" if share.locked() else
                " Run it live below (the reference sequence takes a while; the quick tour a few minutes)."),
                icon=":material/info:")
    if share.locked():
        return
    label = "Run it again live" if run is not None else ("Run it live on this machine" if ship else "Run it live")
    if st.button(label, icon=":material/rocket_launch:", key="demo_launch", disabled=active,
                 help="Launches this scenario in the background and opens the Run page to follow it live."
                 + (" Another run is in progress: wait for it to finish." if active else "")):
        relaunch(request)
