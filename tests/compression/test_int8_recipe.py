"""The int8 recipe rule on recorded /proc/cpuinfo texts (AVX2 only, AVX-512 without VNNI, AVX-512 VNNI)."""

from __future__ import annotations

import pytest

from compression import int8_recipe, parse_spec
from compression.cpu import CpuInfo, parse_cpuinfo
from compression.int8_recipe import default_recipe, resolve, saturation_warning
from profiling.measure.hardware import advice_for
from tests.helpers import REPO

CPUINFO = REPO / "tests" / "helpers" / "cpuinfo"
RECORDED = {
    "avx2": "avx2_amd_epyc.txt",  # this project's AVX2-only build machine, as read from its /proc/cpuinfo
    "avx512": "avx512_intel_skylake.txt",
    "vnni": "avx512_vnni_intel_cascadelake.txt",
}


def recorded(kind: str) -> CpuInfo:
    return parse_cpuinfo((CPUINFO / RECORDED[kind]).read_text())


@pytest.mark.parametrize(
    ("kind", "kernel", "reduce_range"),
    [("avx2", "AVX2 (no VNNI)", True), ("avx512", "AVX-512 (no VNNI)", True), ("vnni", "VNNI", False)],
)
def test_default_recipe_per_cpu_never_saturates(kind, kernel, reduce_range):
    cpu = recorded(kind)
    recipe = default_recipe(cpu)
    assert (recipe.kernel, recipe.weight_type, recipe.reduce_range) == (kernel, "qint8", reduce_range)
    assert not recipe.saturates() and saturation_warning(recipe) is None
    assert recipe.reason and recipe.forced == ()
    assert resolve(cpu=cpu) == recipe  # nothing forced: the CPU's choice


@pytest.mark.parametrize("kind", ["avx2", "avx512", "vnni"])
def test_forced_fields_win_and_saturation_is_named(kind):
    cpu = recorded(kind)
    forced = resolve(int8_recipe.AUTO, False, cpu)
    assert forced.reduce_range is False and forced.forced == ("reduce_range",)
    # Only the int16 pair-sum kernels (every path but VNNI) can saturate with full 8-bit signed weights.
    assert forced.saturates() == (kind != "vnni")
    warning = saturation_warning(forced)
    assert (warning is not None) == (kind != "vnni")
    if warning:
        assert "saturating int16" in warning and forced.kernel in warning
    unsigned = resolve("quint8", int8_recipe.AUTO, cpu)  # the u8 x u8 kernel cannot saturate: keeps 8 bits
    assert (unsigned.weight_type, unsigned.reduce_range, unsigned.saturates()) == ("quint8", False, False)
    assert resolve("qint8", True, cpu).saturates() is False


def test_no_avx2_cpu_gets_the_safe_recipe():
    old = CpuInfo(model="old", flags=frozenset())
    recipe = default_recipe(old)
    assert recipe.kernel == "generic" and recipe.reduce_range and not recipe.saturates()


@pytest.mark.parametrize("kind", ["avx2", "avx512", "vnni"])
def test_onnx_configs_resolve_per_cpu_and_salt_the_cache_key(monkeypatch, kind):
    cpu = recorded(kind)
    monkeypatch.setattr(int8_recipe, "detect", lambda: cpu)
    dyn = parse_spec("onnx-int8")
    static = parse_spec("onnx-static-int8")
    assert dyn.spec() == "onnx-int8" and static.spec() == "onnx-static-int8"  # auto is the default: not shown
    assert dyn.recipe(cpu).reduce_range == static.recipe(cpu).reduce_range == (kind != "vnni")
    assert dyn.build_salt() == f"qint8/rr={kind != 'vnni'}"
    assert parse_spec("onnx-int8:reduce_range=false").spec() == "onnx-int8:reduce_range=false"
    # Stored configs from before the recipe rule held a bool: it still reads, as a forced value.
    assert parse_spec("onnx-int8").__class__(reduce_range=False).reduce_range == "false"


def test_salt_differs_between_cpus(monkeypatch):
    salts = {}
    for kind in RECORDED:
        cpu = recorded(kind)
        monkeypatch.setattr(int8_recipe, "detect", lambda cpu=cpu: cpu)
        salts[kind] = (parse_spec("onnx-int8").build_salt(), parse_spec("qat").build_salt())
    assert salts["avx2"] == salts["avx512"] != salts["vnni"]


def test_qat_model_keeps_its_grid_and_a_mismatch_is_refused():
    avx2, vnni = recorded("avx2"), recorded("vnni")
    trained_7bit = {"qat": {"target": "onnx-int8", "reduce_range": True}}
    trained_8bit = {"qat": {"target": "onnx-int8"}}  # models trained before the rule: 8-bit grid
    cfg = parse_spec("onnx-int8")
    assert cfg.recipe(vnni, trained_7bit).reduce_range is True  # auto follows the grid it was trained on
    assert cfg.recipe(avx2, trained_8bit).reduce_range is False
    cfg.check(trained_7bit)
    with pytest.raises(ValueError, match=r"7-bit \(reduce_range\) weights"):
        parse_spec("onnx-int8:reduce_range=false").check(trained_7bit)
    with pytest.raises(ValueError, match="signed per-channel 8-bit"):
        parse_spec("onnx-int8:weight_type=quint8").check(trained_8bit)


def test_bad_values_are_refused():
    from compression import TechniqueError

    with pytest.raises(TechniqueError, match="reduce_range must be auto, true or false"):
        parse_spec("onnx-int8:reduce_range=maybe")
    with pytest.raises(TechniqueError, match="weight_type must be one of auto, qint8, quint8"):
        parse_spec("onnx-int8:weight_type=int4")


def test_cli_advice_names_a_forced_saturating_recipe():
    avx2, vnni = recorded("avx2"), recorded("vnni")
    text = advice_for("onnx-int8", avx2, {"technique": "onnx-int8", "reduce_range": "false"})
    assert text and "saturating int16" in text
    assert "saturating" not in (advice_for("onnx-int8", vnni, {"reduce_range": "false"}) or "")
    assert "saturating" not in (advice_for("onnx-int8", avx2, {}) or "")


@pytest.mark.parametrize(("kind", "fix"), [("avx2", "enable"), ("avx512", "enable"), ("vnni", "first_layer")])
def test_openvino_overflow_fix_follows_the_cpu_and_salts_the_cache_key(monkeypatch, kind, fix):
    from compression import openvino_int8

    cpu = recorded(kind)
    monkeypatch.setattr(openvino_int8, "detect", lambda: cpu)
    cfg = parse_spec("openvino-int8")
    assert cfg.spec() == "openvino-int8"  # auto is the default: not shown
    assert cfg.resolved_overflow_fix()[0] == fix and cfg.build_salt() == f"overflow_fix={fix}"
    assert parse_spec("openvino-int8:mode=weights").build_salt() == ""  # weight-only: no activations, no fix
    forced = parse_spec("openvino-int8:overflow_fix=enable")
    assert forced.resolved_overflow_fix() == ("enable", "set in the technique's options")
    # NNCF's 8-bit weights are named as saturating only where the kernel sums pairs in int16
    warning = advice_for("openvino-int8", cpu, {"overflow_fix": "first_layer"})
    assert (warning is not None and "saturating int16" in warning) == (kind != "vnni")
    assert "saturat" not in str(advice_for("openvino-int8", cpu, {"overflow_fix": "enable"}))
    assert "saturat" not in str(advice_for("openvino-int8", cpu, {}))  # auto never saturates
