"""AppTests of the default-classifier build box (running, failed, done, from a status file the test writes) and of
the Run page while the build runs; and the Run page's latency protocol choice."""

from __future__ import annotations

import pytest

from profiling.filelock import file_lock
from tests.helpers.setup_status import mark_built, write_status


@pytest.fixture
def build_lock(app_env):
    """Hold the build lock as a running ``profiling setup`` does."""
    from profiling.jobs.defaults_build import LOCK_FILE

    with file_lock(app_env / LOCK_FILE):
        yield


def box_text(at) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "error", "info") for e in getattr(at, kind))


@pytest.mark.parametrize("page", [None, "pages/history.py", "pages/demo.py"])
def test_a_running_build_is_shown_on_every_page_with_progress_and_what_works_meanwhile(open_page, app_env,
                                                                                       build_lock, page):
    mark_built(app_env, ("movie-reviews",))
    write_status(app_env, state="running", fraction=0.83, eta_s=42.0, stage="fine-tuning tweets: step 40/105",
                 log=["downloading tweets_GroundTruth.txt from PyPI", "fine-tuning tweets: step 40/105"])
    at = open_page(page)
    bars = [p for p in at.get("progress")]
    assert len(bars) == 1
    assert bars[0].proto.value == 83 and "fine-tuning tweets: step 40/105" in bars[0].proto.text
    assert "42 s left" in bars[0].proto.text
    text = box_text(at)
    assert "Building the default classifiers" in text
    assert "Ready already: the default classifier for movie-reviews" in text
    assert "architecture preset" in text and "History" in text and "Demo" in text
    assert "shares the CPU with this build" in text  # figures measured meanwhile are disturbed: said
    assert not at.error


def test_the_run_page_blocks_a_default_classifier_still_being_built(open_page, app_env, build_lock):
    mark_built(app_env, ("movie-reviews",))
    write_status(app_env, state="running", fraction=0.5, stage="fine-tuning tweets: step 3/105")
    at = open_page()
    assert not at.button(key="launch").disabled  # movie reviews (the default dataset) is built
    assert "default:tweets (being built in the background)" in at.selectbox(key="model_default").options
    at.radio(key="dataset_choice").set_value("tweets").run()
    assert at.button(key="launch").disabled
    assert any("default classifier for tweets is still being built" in i.value for i in at.info)
    at.radio(key="model_source").set_value("Architecture preset").run()
    assert not at.button(key="launch").disabled  # a preset needs no build


def test_a_failed_build_shows_its_error_log_and_a_retry(open_page, app_env, monkeypatch):
    from profiling.jobs import defaults_build

    write_status(app_env, state="failed", error="pip download of vadersentiment==3.3.2 failed: no network",
                 log=["downloading tweets_GroundTruth.txt from PyPI"])
    started = []
    monkeypatch.setattr(defaults_build, "start_background", lambda: started.append(1) or {"started": True,
                                                                                          "why": "started"})
    at = open_page()
    assert any("failed: pip download of vadersentiment==3.3.2 failed: no network" in e.value for e in at.error)
    assert "downloading tweets_GroundTruth.txt from PyPI" in " ".join(c.value for c in at.code)
    retry = at.button(key="build_retry")
    assert not retry.disabled and retry.help.strip()
    retry.click().run()
    assert started == [1]


def test_retry_is_refused_in_read_only_mode(open_page, app_env, monkeypatch):
    from profiling.jobs import defaults_build

    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    write_status(app_env, state="failed", error="interrupted (Ctrl+C or a stop signal)")
    at = open_page("pages/history.py")
    assert at.button(key="build_retry").disabled
    assert "read-only" in at.button(key="build_retry").help
    with pytest.raises(Exception, match="read-only"):  # the engine refuses it too, not only the button
        defaults_build.start_background()


def test_no_box_once_everything_is_built_and_the_page_updates_when_the_build_finishes(open_page, app_env):
    from profiling.jobs.defaults_build import LOCK_FILE

    with file_lock(app_env / LOCK_FILE):
        write_status(app_env, state="running", fraction=0.9, stage="evaluating")
        at = open_page()
        assert at.get("progress")
        mark_built(app_env)
    write_status(app_env, state="done", fraction=1.0, stage="default classifiers ready")
    at.run()  # what the box's timer does
    assert not at.get("progress")
    assert "Building the default classifiers" not in box_text(at)
    assert not at.button(key="launch").disabled
    assert [t.value for t in at.toast] == ["The default classifiers are ready."]
    fresh = open_page("pages/history.py")
    assert not fresh.get("progress") and not [b for b in fresh.button if b.key in ("build_retry", "build_start")]


def test_a_damaged_status_file_is_not_trusted(open_page, app_env):
    (app_env / "setup-status.json").write_text("{not json")
    at = open_page()
    assert not at.exception
    assert at.button(key="build_start")  # nothing built, nothing running: offered, not crashed


# ---- latency protocol ------------------------------------------------------------------------------------


def test_choosing_the_quick_protocol_launches_with_its_settings(open_page, app_env, fake_launch):
    from profiling.settings import DEFAULTS, PROTOCOLS

    mark_built(app_env)
    at = open_page()
    protocol = at.radio(key="latency_protocol")
    assert protocol.value == "thorough"
    for word in ("repeats", "interval", "budget"):
        assert word in protocol.help
    assert " ms" not in protocol.help
    protocol.set_value("quick").run()
    shown = {w.key.removeprefix("set_"): w.value for w in at.number_input if w.key and w.key.startswith("set_")}
    assert {k: shown[k] for k in PROTOCOLS["quick"]} == PROTOCOLS["quick"]
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    settings = fake_launch[0]["settings"]
    assert {k: settings[k] for k in PROTOCOLS["quick"]} == PROTOCOLS["quick"]
    assert settings["eval_size"] == DEFAULTS.eval_size  # the other settings keep their values


def test_an_edited_value_wins_over_the_protocol(open_page, app_env, fake_launch):
    from profiling.settings import PROTOCOLS

    mark_built(app_env)
    at = open_page()
    at.radio(key="latency_protocol").set_value("quick").run()
    at.number_input(key="set_repeats").set_value(17).run()
    at.button(key="launch").click().run()
    assert fake_launch[0]["settings"]["repeats"] == 17
    assert fake_launch[0]["settings"]["ci_target_pct"] == PROTOCOLS["quick"]["ci_target_pct"]
