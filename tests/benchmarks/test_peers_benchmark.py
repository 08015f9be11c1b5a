"""benchmarks/peers.py's pure logic: the CPU-flags -> Optimum preset rule (recorded cpuinfo texts) and the ratios."""

import importlib.util

import pytest

from profiling.measure.hardware import parse_cpuinfo
from tests.helpers import REPO

_SPEC = importlib.util.spec_from_file_location(
    "peers_benchmark", REPO / "benchmarks" / "peers.py"
)
peers = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(peers)

# Recorded "flags" lines of /proc/cpuinfo (first processor) of three cloud CPUs.
AMD_EPYC_ZEN3_AVX2 = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx "
    "mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid "
    "tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave "
    "avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext ssbd "
    "ibrs ibpb stibp vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb "
    "sha_ni xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr wbnoinvd arat umip pku ospke vaes vpclmulqdq rdpid fsrm"
)
XEON_SKYLAKE_AVX512 = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall "
    "nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni "
    "pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand "
    "hypervisor lahf_lm abm 3dnowprefetch invpcid_single pti fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms "
    "invpcid rtm mpx avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec "
    "xgetbv1 xsaves ida arat pku ospke"
)
XEON_CASCADE_LAKE_VNNI = XEON_SKYLAKE_AVX512 + " avx512_vnni md_clear flush_l1d arch_capabilities"
ALDER_LAKE_AVX_VNNI = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall "
    "nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology tsc_reliable nonstop_tsc cpuid pni pclmulqdq ssse3 fma "
    "cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm "
    "3dnowprefetch fsgsbase bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec "
    "xgetbv1 xsaves avx_vnni umip gfni vaes vpclmulqdq rdpid movdiri movdir64b fsrm serialize"
)


def cpuinfo(model: str, flags: str) -> str:
    return f"processor\t: 0\nvendor_id\t: Test\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"


@pytest.mark.parametrize(
    ("model", "flags", "preset"),
    [
        ("AMD EPYC 7R13", AMD_EPYC_ZEN3_AVX2, "avx2"),
        ("Intel Xeon Platinum 8175M", XEON_SKYLAKE_AVX512, "avx512"),
        ("Intel Xeon Platinum 8259CL", XEON_CASCADE_LAKE_VNNI, "avx512_vnni"),
        ("12th Gen Intel Core i7-12700", ALDER_LAKE_AVX_VNNI, "avx512_vnni"),  # AVX-VNNI: VNNI without AVX-512
        ("Intel Xeon Platinum 8480+", XEON_CASCADE_LAKE_VNNI + " amx_tile amx_int8 amx_bf16", "avx512_vnni"),
    ],
)
def test_optimum_preset_follows_the_cpu_flags(model, flags, preset):
    assert peers.optimum_preset(parse_cpuinfo(cpuinfo(model, flags))) == preset


def test_optimum_preset_without_any_vector_flags_is_avx2():
    assert peers.optimum_preset(parse_cpuinfo(cpuinfo("QEMU Virtual CPU", "fpu sse sse2"))) == "avx2"


def _row(b1: float, b8: float, bucketed: float, agreement: float) -> dict:
    return {"ms_per_batch": {"fixed 1x128": b1, "fixed 8x128": b8, "bucketed b8 w8": bucketed},
            "agreement": agreement}


WORKLOADS = ["fixed 1x128", "fixed 8x128", "bucketed b8 w8"]


def test_ratios_against_the_fastest_peer_per_workload_and_targets():
    rows = {
        peers.ORIGINAL: _row(20, 100, 60, 1.0),
        peers.ENGINE_BEST: _row(8, 40, 20, 0.99),
        "optimum O2 + int8 (avx2)": _row(10, 38, 30, 0.97),
        "openvino + nncf int8": _row(9, 50, 28, 0.995),
    }
    r = peers.ratio_figures(rows, WORKLOADS)
    assert r["fixed 1x128"]["fastest_peer"] == "openvino + nncf int8"
    assert r["fixed 1x128"]["engine_over_fastest_peer"] == pytest.approx(8 / 9)
    assert r["fixed 8x128"]["fastest_peer"] == "optimum O2 + int8 (avx2)"
    assert r["bucketed b8 w8"]["engine_over_fastest_peer"] == pytest.approx(20 / 28)
    assert r["agreement"]["optimum O2 + int8 (avx2)"]["engine_ge_peer"]
    assert not r["agreement"]["openvino + nncf int8"]["engine_ge_peer"]
    t = peers.targets(r, WORKLOADS[:2], WORKLOADS[2])
    assert t == {"fixed_shapes_ratio_le_1": False, "bucketed_1_3x_faster": True, "agreement_ge_peers": False,
                 "bucketed_1_3x_faster_than_peer_dynamic": None}


def test_engine_bucketed_against_the_peers_with_dynamic_padding():
    rows = {peers.ENGINE_BEST: _row(8, 40, 20, 0.99), "openvino + nncf int8": _row(9, 50, 24, 0.98)}
    rows[peers.ENGINE_BEST]["ms_per_batch"]["dynamic b8"] = 25
    rows["openvino + nncf int8"]["ms_per_batch"]["dynamic b8"] = 30
    r = peers.ratio_figures(rows, [*WORKLOADS, "dynamic b8"], cross=("bucketed b8 w8", "dynamic b8"))
    assert r["bucketed b8 w8 vs peer dynamic b8"]["engine_over_fastest_peer"] == pytest.approx(20 / 30)
    t = peers.targets(r, WORKLOADS[:2], WORKLOADS[2], "dynamic b8")
    assert t["bucketed_1_3x_faster_than_peer_dynamic"] and not t["bucketed_1_3x_faster"]  # 1.5x, 1.2x


def test_failed_peers_are_left_out_and_no_peer_means_no_ratios():
    rows = {peers.ENGINE_BEST: _row(8, 40, 20, 0.99), "optimum O2 + int8 (avx2)": {"error": "build failed: x"},
            "openvino + nncf int8": _row(9, 50, 28, 0.98)}
    r = peers.ratio_figures(rows, WORKLOADS)
    assert {v["fastest_peer"] for k, v in r.items() if k != "agreement"} == {"openvino + nncf int8"}
    assert list(r["agreement"]) == ["openvino + nncf int8"]
    none = peers.ratio_figures({peers.ENGINE_BEST: _row(8, 40, 20, 0.99)}, WORKLOADS)
    assert "error" in none and peers.targets(none, WORKLOADS[:2], WORKLOADS[2]) == {}


def test_the_engines_best_is_its_int8_variant_fastest_at_batch_8():
    ov = "engine openvino>openvino-int8"
    assert ov in peers.ENGINE_INT8
    rows = {peers.ENGINE_BEST: _row(8, 40, 20, 0.99), ov: _row(9, 30, 25, 0.995),
            "openvino + nncf int8": _row(9, 32, 24, 0.995)}
    assert peers.choose_engine_best(rows, "fixed 8x128") == ov
    r = peers.ratio_figures(rows, WORKLOADS)
    assert r["fixed 8x128"]["engine_over_fastest_peer"] == pytest.approx(30 / 32)
    assert r["fixed 1x128"]["engine_over_fastest_peer"] == pytest.approx(9 / 9)  # one variant for every workload
    assert r["agreement"]["openvino + nncf int8"]["engine_ge_peer"]
    rows[ov]["error"] = "build failed: x"  # a failed candidate is never the best
    assert peers.choose_engine_best(rows, "fixed 8x128") == peers.ENGINE_BEST
