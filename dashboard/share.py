"""Sharing on the Results and History pages: read-only mode, share links, the HTML report and run bundles."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import streamlit as st

from profiling.store.runs import READ_ONLY_ENV, read_only

log = logging.getLogger(__name__)

SHARED = "shared"

_HIDE_CHROME = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stSidebarNav"],
[data-testid="stToolbar"], [data-testid="stMainMenu"] { display: none !important; }
</style>"""


def shared_view() -> bool:
    """Whether this session opened a share link (``?view=shared``): a view of one run, no navigation, no controls."""
    return st.query_params.get("view") == SHARED


def locked() -> bool:
    """No launching, importing or deleting here: the app is read-only or this is a share link."""
    return read_only() or shared_view()


def hide_chrome() -> None:
    """Hide the sidebar (navigation) and the toolbar: the share view is just the run."""
    st.html(_HIDE_CHROME)


def share_path(run_id: str) -> str:
    """The share link's path and query (relative to the app's address)."""
    return f"results?run={quote(run_id, safe='')}&view={SHARED}"


def _app_base() -> str:
    """The app's address as the browser sees it (without the page path), or "" when unknown (tests)."""
    try:
        url = st.context.url or ""
    except Exception:  # noqa: BLE001 - an older Streamlit or no browser session
        url = ""
    if not url:
        return ""
    base = url.split("?", 1)[0].rstrip("/")
    for page in ("/results", "/history", "/run", "/demo"):
        base = base.removesuffix(page)
    return base + "/"


def _report_html(store_path: str, run_id: str) -> bytes:
    from profiling.report.html import build_html
    from profiling.store.runs import RunStore

    return build_html(RunStore(store_path), run_id).encode("utf-8")


def _bundle_bytes(store_path: str, run_id: str) -> bytes:
    from profiling.store.bundle import export_bytes
    from profiling.store.runs import RunStore

    return export_bytes(RunStore(store_path), run_id)


def render(store: Any, run: dict) -> None:
    """The "Share and export" section of a run: share link, HTML report, bundle."""
    run_id = run["id"]
    finished = run.get("status") in ("done", "failed")
    st.subheader("Share and export")
    cols = st.columns(3)
    with cols[0]:
        st.download_button(
            "Download the HTML report",
            data=lambda: _report_html(str(store.path), run_id),
            file_name=f"compression-report-{run_id}.html",
            mime="text/html",
            icon=":material/description:",
            key=f"report_{run_id}",
            on_click="ignore",
            disabled=not finished,
            help="One self-contained file: table, tradeoffs with the Pareto frontier, memory timelines, prediction "
            "changes, environment and methodology. Interactive charts, opens offline in any browser.",
        )
    with cols[1]:
        st.download_button(
            "Download the run bundle",
            data=lambda: _bundle_bytes(str(store.path), run_id),
            file_name=f"run-{run_id}.zip",
            mime="application/zip",
            icon=":material/archive:",
            key=f"bundle_{run_id}",
            on_click="ignore",
            disabled=not finished,
            help="A zip of JSON files (figures, timelines, predictions, configs, environment; no model files) "
            "that a colleague imports on the History page or with `python -m profiling import`.",
        )
    if not finished:
        st.caption("The report and the bundle are available once the run has finished.")
    if shared_view():
        return
    with cols[2], st.popover("Copy a share link", icon=":material/share:"):
        st.caption(
            "Anyone who can reach this dashboard opens this run with the link: no Run page, no launching, "
            "no deleting. Copy it with the icon at the right of the box."
        )
        st.code(_app_base() + share_path(run_id), language=None)
        st.caption(f"For a fully read-only deployment, start the app with `{READ_ONLY_ENV}=1`.")


def render_import(store: Any) -> None:
    """History page: import a run bundle (hidden in read-only mode)."""
    if locked():
        return
    st.markdown("#### Import a run bundle")
    done = st.session_state.pop("bundle_imported", None)
    if done:
        copy_of = (((store.get_run(done) or {}).get("env") or {}).get("imported") or {}).get("copy_of")
        st.success(f"Imported as run {done}" + (f", a marked copy of run {copy_of}." if copy_of else "."),
                   icon=":material/task_alt:")
        st.page_link("pages/results.py", label="Open it", icon=":material/insights:", query_params={"run": done})
    up = st.file_uploader(
        "Run bundle (.zip)",
        type=["zip"],
        key="bundle_upload",
        help="A bundle exported from another installation (Results page, or `python -m profiling export`). It is "
        "checked before anything is stored: a damaged, oversized or hostile file is refused.",
    )
    if up is None:
        return
    from profiling.store.bundle import AlreadyStored, BundleError, import_bundle
    from profiling.store.runs import StoreError

    duplicate = st.session_state.get("bundle_duplicate")
    as_copy = False
    if duplicate and duplicate.get("file") == up.file_id:  # this very upload was recognised as already stored
        with st.container(key="bundle_already_stored"):
            st.info(f"This bundle is already in the store as run **{duplicate['run']}** (same content, digest "
                    f"`{duplicate['digest'][:12]}`): nothing was imported.", icon=":material/content_copy:")
            st.page_link("pages/results.py", label="Open the stored run", icon=":material/insights:",
                         query_params={"run": duplicate["run"]})
            as_copy = st.button("Import as a copy", icon=":material/library_add:", key="bundle_import_copy",
                                help="Store a second copy anyway; it is marked as an imported copy of the stored "
                                "run in every run list.")
    if st.button("Import", icon=":material/upload:", key="bundle_import", type="primary") or as_copy:
        try:
            run_id = import_bundle(store, up.getvalue(), duplicate="copy" if as_copy else "refuse")
        except AlreadyStored as exc:
            st.session_state["bundle_duplicate"] = {"file": up.file_id, "run": exc.run_id, "digest": exc.digest}
            st.rerun()  # show the notice and the explicit copy choice
        except (BundleError, StoreError) as exc:
            st.error(f"Not imported: {exc}. Nothing was stored.", icon=":material/block:")
            return
        st.session_state.pop("bundle_duplicate", None)
        st.session_state["bundle_imported"] = run_id
        st.rerun()  # redraw the page with the new run in its tables


# Pages that only show stored results; in read-only mode the others (launching, analyses that start jobs) are hidden.
READ_ONLY_PAGES = ("results", "history", "demo")


def _home() -> None:
    """The default page when the Run page is left out: go to Results (so /results keeps its own address)."""
    st.switch_page("pages/results.py", query_params=st.query_params.to_dict())  # a share link stays one


def allowed_pages(pages: list[Any]) -> list[Any]:
    """The st.Page list app.py registers: only Results for a share link, only viewing pages when read-only.

    The Run page is the app's default (served at "/"). Whenever it is left out, a hidden default page forwards "/"
    to Results: Streamlit serves its default page at "/" only (its url_path is ""), so were Results the default,
    its own address /results (the share link) would answer with a "Page not found" pop-up over the run.
    """
    if shared_view():  # Results alone (with the hidden home page that keeps /results its own address)
        kept = [p for p in pages if p.url_path == "results"]
    elif not read_only():
        return list(pages)
    else:
        kept = [p for p in pages if p.url_path in READ_ONLY_PAGES]
    if not kept:
        return list(pages)
    home = st.Page(_home, title="Home", url_path="home", default=True, visibility="hidden")
    return [home, *kept]


def nav_position() -> str:
    """No navigation at all on a share link."""
    return "hidden" if shared_view() else "sidebar"


def shared_run(runs: list[dict]) -> str | None:
    """Share link: the linked run only (no picker); a clear message when it is not in this store."""
    hide_chrome()
    wanted = st.query_params.get("run")
    if wanted and any(r["id"] == wanted for r in runs):
        st.caption("A shared, read-only view of one run.")
        return wanted
    st.error(f"This share link points to run `{wanted or '?'}`, which is not in this dashboard's store (deleted, or "
             "the link is mistyped).")
    return None


def run_extras(store: Any, run: dict, variants: list[dict], changes: dict | None = None) -> None:
    """Under a run: recommendation, cost, live A/B (finished runs) and share/export."""
    from dashboard import ab_box, cost, recommend
    if run.get("status") in ("done", "failed"):
        recommend.render(variants, run["id"], changes)
        cost.render(variants, run)
        ab_box.render(store, run, variants)
    render(store, run)
