"""profiling.measure.stats against hand-computed cases; adaptive stopping with injected clocks; the CPU-contention window."""

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from profiling.measure import latency, stats


def test_bootstrap_median_ci_degenerate_cases():
    assert stats.bootstrap_median_ci([5.0]) == (5.0, 5.0, 5.0)
    assert stats.bootstrap_median_ci([3.0] * 10) == (3.0, 3.0, 3.0)
    with pytest.raises(ValueError, match="no values"):
        stats.bootstrap_median_ci([])
    with pytest.raises(ValueError, match="level"):
        stats.bootstrap_median_ci([1.0, 2.0], level=1.5)


def test_bootstrap_median_ci_three_values_hand_computed():
    # Medians of 3 draws from {1, 2, 3}: P(1) = P(at least two 1s) = (3 * 2 + 1) / 27 = 7/27, P(3) = 7/27, P(2) = 13/27.
    # 7/27 = 26 % > 2.5 %, so the 2.5 % and 97.5 % quantiles of the bootstrap distribution are 1 and 3.
    median, low, high = stats.bootstrap_median_ci([1.0, 2.0, 3.0], resamples=4000)
    assert (median, low, high) == (2.0, 1.0, 3.0)


def test_bootstrap_median_ci_width_matches_theory():
    # The median of n normal values has standard error ~ sqrt(pi / 2) * sigma / sqrt(n): for n = 400, sigma = 1,
    # 0.0627, so a 95 % interval is ~ +-0.123 wide.
    x = np.random.default_rng(1).standard_normal(400) + 10.0
    median, low, high = stats.bootstrap_median_ci(x)
    assert low < median < high
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(math.pi / 2) / 20, rel=0.3)
    assert stats.bootstrap_median_ci(x) == (median, low, high)  # seeded: reproducible


def test_paired_bootstrap_diff_hand_computed():
    # 100 paired examples: 10 only b right (+1), 6 only a right (-1), 84 the same (0).
    a = [True] * 6 + [False] * 10 + [True] * 50 + [False] * 34
    b = [False] * 6 + [True] * 10 + [True] * 50 + [False] * 34
    diff, low, high = stats.paired_bootstrap_diff(a, b)
    assert diff == pytest.approx(0.04)
    # var(d) = E[d^2] - mean^2 = 0.16 - 0.0016 = 0.1584; se = sqrt(0.1584 / 100) = 0.0398; 95 %: +-0.078
    assert low == pytest.approx(0.04 - 0.078, abs=0.015) and high == pytest.approx(0.04 + 0.078, abs=0.015)
    assert stats.paired_bootstrap_diff([True, False], [True, False]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="pair"):
        stats.paired_bootstrap_diff([True], [True, False])


def test_mcnemar_exact_hand_computed():
    # b = 1, c = 9: two-sided exact p = 2 * P(X <= 1 | n = 10, p = 1/2) = 2 * (1 + 10) / 1024
    assert stats.mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert stats.mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert stats.mcnemar_exact(0, 6) == pytest.approx(2 / 64)  # 2 * (1/2)^6
    assert stats.mcnemar_exact(5, 5) == pytest.approx(1.0)
    assert stats.mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError, match="discordant"):
        stats.mcnemar_exact(-1, 3)
    with pytest.raises(ValueError, match="discordant"):
        stats.mcnemar_exact(1.5, 3)


def test_mcnemar_exact_matches_scipy_binomtest():
    binomtest = pytest.importorskip("scipy.stats").binomtest
    pairs = [(b, c) for b in range(25) for c in range(25) if b + c] + [(120, 180), (3000, 3300), (1, 400)]
    for b, c in pairs:
        expected = binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300), (b, c)


def test_mcnemar_exact_on_large_counts():
    # 2 * (1/2)^1000 = 2^-999: 2^1000 overflows a double, so this checks the tail is computed in exact integers
    assert stats.mcnemar_exact(0, 1000) == pytest.approx(2.0**-999, rel=1e-12)
    # b = 1, c = 1000: 2 * (1 + 1001) / 2^1001
    assert stats.mcnemar_exact(1, 1000) == pytest.approx(2 * 1002 * 2.0**-1001, rel=1e-12)


def test_accuracy_change_hand_computed():
    labels = [0] * 20
    original = [0] * 18 + [1, 1]  # 90 %
    variant = [0] * 17 + [1, 0, 1]  # 90 %, but different examples: 1 only-original-right, 1 only-variant-right
    ch = stats.accuracy_change(labels, original, variant)
    assert ch.n == 20 and ch.agreement == pytest.approx(18 / 20)
    assert (ch.only_original_right, ch.only_variant_right) == (1, 1)
    assert ch.diff_pts == pytest.approx(0.0) and ch.p_value == pytest.approx(1.0) and ch.within_noise
    assert ch.ci_low_pts < 0 < ch.ci_high_pts
    assert ch.text().startswith("+0.0 points (95 % CI \u2212") and ch.text().endswith("McNemar p=1: within noise")

    worse = [1] * 10 + [0] * 10  # 50 %: wrong on 0-9 (the original was right), right on 18-19 (it was not)
    ch = stats.accuracy_change(labels, original, worse)
    assert (ch.only_original_right, ch.only_variant_right) == (10, 2)
    # two-sided: 2 * P(X <= 2 | n = 12, p = 1/2) = 2 * (1 + 12 + 66) / 4096
    assert ch.p_value == pytest.approx(158 / 4096) and not ch.within_noise
    assert ch.diff_pts == pytest.approx(-40.0) and ch.ci_high_pts < 0
    assert "a real drop" in ch.text()

    # the paired interval excludes 0 but McNemar does not reject (b=4, c=0: p = 2/16): said as it is, not "noise"
    labels, original, small = [0] * 200, [0] * 200, [1] * 4 + [0] * 196
    ch = stats.accuracy_change(labels, original, small)
    assert ch.p_value == pytest.approx(0.125) and ch.within_noise and ch.ci_high_pts < 0
    assert ch.verdict == "a small drop, not significant by McNemar"
    assert ch.text().endswith("McNemar p=0.12: a small drop, not significant by McNemar")
    gain = stats.accuracy_change(labels, small, original)
    assert gain.ci_low_pts > 0 and gain.verdict == "a small gain, not significant by McNemar"
    with pytest.raises(ValueError):
        stats.accuracy_change([0, 1], [0], [0, 1])


def test_compare_intervals():
    assert stats.compare_intervals((8.0, 9.0), (10.0, 11.0)) == "faster"
    assert stats.compare_intervals((12.0, 13.0), (10.0, 11.0)) == "slower"
    assert stats.compare_intervals((10.5, 12.0), (10.0, 11.0)) == "within noise"
    assert stats.compare_intervals((11.0, 12.0), (10.0, 11.0)) == "within noise"  # touching counts as overlap
    assert stats.compare_intervals((math.nan, 1.0), (10.0, 11.0)) == "unknown"


class FakeClock:
    """A clock that only moves when a fake call 'runs' for a chosen duration."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_adaptive_noiseless_stops_at_min_repeats():
    clock = FakeClock()

    def call(i):
        clock.now += 0.010  # exactly 10 ms every time

    res = stats.adaptive_repeat_ms(call, min_repeats=7, max_repeats=500, target_rel=0.02, budget_s=60, clock=clock)
    assert len(res.raw) == 7 and res.stopped_by == "target" and res.target_reached
    assert res.median == pytest.approx(10.0) and res.ci_low == pytest.approx(10.0) and res.ci_high == pytest.approx(10.0)
    assert res.checks == [(7, pytest.approx(0.0))]


def test_adaptive_noisy_runs_to_the_budget():
    clock, rng = FakeClock(), np.random.default_rng(0)

    def call(i):
        clock.now += 0.1 * float(rng.lognormal(0.0, 1.0))  # +-1% would take ~60 000 calls; the budget is ~120

    res = stats.adaptive_repeat_ms(call, min_repeats=5, max_repeats=10_000, target_rel=0.01, budget_s=20, clock=clock)
    assert res.stopped_by == "budget" and not res.target_reached
    assert 20 <= res.elapsed_s <= 22 and len(res.raw) > 5
    assert res.rel_half_width > 0.01
    assert [n for n, _ in res.checks] == sorted(n for n, _ in res.checks) and res.checks[0][0] == 5


def test_adaptive_limits_and_fixed_mode():
    clock, rng = FakeClock(), np.random.default_rng(1)

    def noisy(i):
        clock.now += float(rng.uniform(0.01, 0.02))

    res = stats.adaptive_repeat_ms(noisy, min_repeats=5, max_repeats=12, target_rel=0.0001, budget_s=0, clock=clock)
    assert res.stopped_by == "max-repeats" and len(res.raw) == 12
    seen = []
    res = stats.adaptive_repeat_ms(noisy, 9, 100, target_rel=0, on_each=lambda i, ms: seen.append(i), clock=clock)
    assert res.stopped_by == "fixed" and len(res.raw) == 9 and seen == list(range(9)) and res.checks == []
    assert res.ci_low <= res.median <= res.ci_high
    # the minimum always runs, even when the budget is spent at once
    res = stats.adaptive_repeat_ms(noisy, 6, 100, target_rel=0.0001, budget_s=1e-9, clock=clock)
    assert len(res.raw) == 6 and res.stopped_by == "budget"
    m = res.metrics("latency_b1_")
    assert m["latency_b1_n"] == 6 and m["latency_b1_stopped_by"] == "budget" and m["latency_b1_target_reached"] is False
    with pytest.raises(ValueError, match="max_repeats"):
        stats.adaptive_repeat_ms(noisy, 5, 4)
    with pytest.raises(ValueError, match="min_repeats"):
        stats.adaptive_repeat_ms(noisy, 0, 4)


def test_adaptive_times_a_known_sleep():
    res = stats.adaptive_repeat_ms(lambda i: time.sleep(0.01), 5, 40, target_rel=0.05, budget_s=3)
    assert 9.9 <= res.median <= 14.0 and res.ci_low <= res.median <= res.ci_high
    assert len(res.raw) >= 5


def test_read_proc_stat_hand_computed(tmp_path):
    f = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    f.write_text("cpu  100 10 50 1000 20 5 5 30 7 0\ncpu0 50 5 25 500 10 2 3 15 3 0\n")
    hz = __import__("os").sysconf("SC_CLK_TCK")
    busy, steal = latency.read_proc_stat(str(f))
    assert busy == pytest.approx((100 + 10 + 50 + 5 + 5 + 30) / hz) and steal == pytest.approx(30 / hz)
    f.write_text("intr 1 2 3\n")
    assert latency.read_proc_stat(str(f)) is None
    assert latency.read_proc_stat(str(tmp_path / "missing")) is None
    window = latency.CpuWindow(stat_path=str(tmp_path / "missing"))
    assert window.stop() == {"other_cpu_frac": None, "steal_frac": None, "noisy": None}


BUSY = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass\n"


def test_cpu_window_sees_a_busy_neighbour_but_not_itself():
    if latency.read_proc_stat() is None:
        pytest.skip("no /proc/stat on this OS")
    # a neighbour busy on one core for most of the window: at least ~1/cores of the machine's time is taken
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY])
    time.sleep(0.3)  # let it start
    window = latency.CpuWindow()
    time.sleep(1.0)
    got = window.stop()
    neighbour.wait()
    cores = window.cores
    assert got["other_cpu_frac"] >= 0.8 / cores and got["noisy"] is True
    assert 0 <= got["steal_frac"] <= 1
    # this process's own busy work is not counted as other processes'
    own = latency.CpuWindow()
    end = time.perf_counter() + 0.8
    while time.perf_counter() < end:
        pass
    mine = own.stop()
    assert mine["other_cpu_frac"] < got["other_cpu_frac"] + 0.5 / cores


def test_the_adaptive_settings_reach_the_cli_help():
    from profiling.cli import _parser
    from profiling.jobs.runner import DEFAULT_SETTINGS, SETTING_HELP, SETTING_LIMITS

    assert DEFAULT_SETTINGS["ci_target_pct"] == 2 and SETTING_LIMITS["latency_budget_s"][0] == 0
    assert all("%" not in text for text in SETTING_HELP.values())  # argparse %-formats help strings
    sub = next(a for a in _parser()._actions if a.choices and "run" in a.choices).choices["run"]
    assert "--ci-target-pct" in sub.format_help()
