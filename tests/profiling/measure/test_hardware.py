"""profiling.measure.hardware: instruction-set detection against sample /proc/cpuinfo texts and the real file; advice."""

import os
from pathlib import Path

import pytest

from profiling.measure import hardware
from profiling.measure.hardware import CpuInfo, advice_for, parse_cpuinfo


def block(i: int, model: str, flags: str, physical: int | None = 0, core: int | None = None) -> str:
    lines = [f"processor\t: {i}", "vendor_id\t: Test", f"model name\t: {model}"]
    if physical is not None:
        lines += [f"physical id\t: {physical}", f"core id\t\t: {i if core is None else core}"]
    lines.append(f"flags\t\t: {flags}")
    return "\n".join(lines) + "\n\n"


HASWELL = "fpu sse sse2 avx f16c fma avx2 bmi2"
ZEN4 = HASWELL + " avx512f avx512dq avx512_bf16 avx512_vnni avx512vl"
SAPPHIRE = ZEN4 + " avx512_fp16 avx_vnni amx_bf16 amx_tile amx_int8"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n\n"


def test_parse_an_avx2_only_cpu_with_hyperthreads():
    # 4 logical CPUs on 2 physical cores (core ids 0, 1 each listed twice)
    text = "".join(block(i, "Intel Core i7-4770", HASWELL, core=i % 2) for i in range(4))
    cpu = parse_cpuinfo(text, usable_threads=3)
    assert cpu.model == "Intel Core i7-4770"
    assert cpu.flags == {"avx2", "fma", "f16c"}  # only the flags of interest are kept
    assert (cpu.logical_cpus, cpu.physical_cores, cpu.usable_threads) == (4, 2, 3)
    assert not cpu.vnni and not cpu.native_bf16 and not cpu.native_fp16
    assert cpu.isa_names() == ["AVX2", "FMA", "F16C"]
    assert cpu.summary() == "Intel Core i7-4770 \u00b7 3 thread(s) usable (2 core(s)) \u00b7 AVX2, FMA, F16C"


def test_parse_avx512_and_amx_cpus():
    zen4 = parse_cpuinfo(block(0, "AMD EPYC 9654", ZEN4) + block(1, "AMD EPYC 9654", ZEN4))
    assert {"avx512f", "avx512_vnni", "avx512_bf16"} <= zen4.flags and "avx512_fp16" not in zen4.flags
    assert zen4.vnni and zen4.native_bf16 and not zen4.native_fp16 and zen4.physical_cores == 2
    spr = parse_cpuinfo(block(0, "Intel Xeon Platinum 8480+", SAPPHIRE))
    assert {"amx_tile", "amx_int8", "amx_bf16", "avx512_fp16", "avx_vnni"} <= spr.flags
    assert spr.vnni and spr.native_bf16 and spr.native_fp16
    assert spr.isa_names()[-3:] == ["AMX", "AMX-INT8", "AMX-BF16"]


def test_parse_arm_and_empty_texts():
    arm = parse_cpuinfo(ARM)
    assert arm.model is None and arm.flags == frozenset() and arm.logical_cpus == 1 and arm.physical_cores is None
    assert "no AVX2 or newer" in arm.summary()
    empty = parse_cpuinfo("")
    assert empty.logical_cpus is None and empty.flags == frozenset()


def test_detect_matches_the_real_proc_cpuinfo():
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        pytest.skip("no /proc/cpuinfo on this OS")
    text = path.read_text()
    first = text.split("\n\n")[0]
    flags = set(next(line.split(":", 1)[1] for line in first.splitlines() if line.startswith("flags")).split())
    cpu = hardware.detect()
    assert cpu.flags == flags & set(hardware.ISA_FLAGS)
    for flag in hardware.ISA_FLAGS:  # each flag of interest, present or absent, as the kernel lists it
        assert cpu.has(flag) == (flag in flags), flag
    assert cpu.logical_cpus == text.count("processor\t:") == os.cpu_count()
    assert cpu.usable_threads == len(os.sched_getaffinity(0))
    assert CpuInfo.from_json(cpu.to_json()) == cpu
    assert hardware.detect("/nonexistent/cpuinfo").flags == frozenset()


def test_from_a_runs_environment_fingerprint():
    env = {"cpu_model": "X", "cpu_flags": {"avx2": True, "avx512_vnni": False}, "logical_cores": 2, "usable_cores": 2}
    cpu = CpuInfo.from_json(env)
    assert cpu.model == "X" and cpu.flags == {"avx2"} and cpu.usable_threads == 2 and not cpu.vnni


def test_advice_follows_detection():
    haswell = CpuInfo("old", frozenset({"avx2", "fma", "f16c"}))
    zen4 = CpuInfo("zen4", frozenset({"avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16"}))
    spr = CpuInfo("spr", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16"}))
    bare = CpuInfo("bare", frozenset())
    # int8: small gains without VNNI, nothing to say with it
    for name in ("onnx-int8", "torch-int8", "onnx-static-int8", "qat"):  # the registry's int8 techniques
        assert "VNNI" in advice_for(name, haswell), name
        assert advice_for(name, zen4) is None, name
    assert "neither AVX2 nor AVX-512" in advice_for("onnx-int8", bare)
    # bf16: emulated without AVX512-BF16 / AMX-BF16
    assert "no native bf16" in advice_for("torch-bf16", haswell)
    assert "no AMX-BF16" in advice_for("torch-bf16", zen4)  # native dot products, but no large gain to expect
    assert advice_for("torch-bf16", spr) is None
    # fp16: only AVX512-FP16 / AMX-FP16 compute it natively
    assert "F16C only converts" in advice_for("torch-fp16", zen4) and "no native fp16" in advice_for("onnx-fp16", zen4)
    assert advice_for("torch-fp16", spr) is None
    # a name the registry does not know: nothing guessed from it
    assert advice_for("bf16", haswell) is None and advice_for("my-int8", haswell) is None
    # fp32 techniques: nothing to warn about
    for name in ("onnx", "prune-heads", "distill", "low-rank", "torchscript"):
        assert advice_for(name, bare) is None, name
    assert hardware.advice_lines(["onnx", "onnx-int8", "onnx-int8", "torch-bf16"], haswell) == [
        ("onnx-int8", advice_for("onnx-int8", haswell)),
        ("torch-bf16", advice_for("torch-bf16", haswell)),
    ]


# Every registered technique's numeric format, written out: a new technique must be added here (and declare
# ``numeric`` on its config) or this test fails.
EXPECTED_KIND = {
    "distill": None,
    "low-rank": None,
    "onnx": None,
    "onnx-optimize": None,
    "onnx-fp16": "fp16",
    "onnx-int8": "int8",
    "onnx-static-int8": "int8",
    "openvino": None,
    "openvino-int8": "int8",
    "prune-heads": None,
    "prune-magnitude": None,
    "prune-movement": None,
    "qat": "int8",
    "torch-bf16": "bf16",
    "torch-compile": None,
    "torch-export": None,
    "torch-fp16": "fp16",
    "torch-int8": "int8",
    "torchscript": None,
}


def test_every_registered_technique_declares_its_numeric_kind():
    import compression.techniques  # noqa: F401 - every technique registers itself
    from compression.registry import REGISTRY

    assert set(REGISTRY) == set(EXPECTED_KIND), (
        f"registered but not in EXPECTED_KIND: {sorted(set(REGISTRY) - set(EXPECTED_KIND))}; "
        f"in EXPECTED_KIND but not registered: {sorted(set(EXPECTED_KIND) - set(REGISTRY))}"
    )
    for name, technique in REGISTRY.items():
        assert technique.config_cls.numeric_kind({}) == EXPECTED_KIND[name], name
        assert hardware._kind(name, {}) == EXPECTED_KIND[name], name
