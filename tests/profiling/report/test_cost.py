"""Cost translation: hand-computed replicas, machines and cost per million predictions."""

from __future__ import annotations

import pytest

from profiling.report.cost import CostInputs, estimate


def test_hand_computed_estimate():
    x = CostInputs(throughput_per_s=100.0, peak_ram_mib=512.0, threads=2, load_per_s=1000.0, price_core_hour=0.04,
                   price_gib_hour=0.005, utilisation=0.5, ram_headroom=0.5, machine_cores=8, machine_ram_gib=4.0)
    e = estimate(x)
    assert e.capacity_per_replica == pytest.approx(50.0)  # 100/s x 0.5
    assert e.replicas == 20  # 1000 / 50
    assert e.cores == 40  # 20 x 2 threads
    assert e.ram_gib_per_replica == pytest.approx(0.75)  # 512 MiB x 1.5 = 768 MiB
    assert e.ram_gib == pytest.approx(15.0)
    # per machine: 8 cores / 2 = 4 by cores, 4 GiB / 0.75 = 5 by RAM -> 4, limited by cores; 20 / 4 = 5 machines
    assert (e.replicas_per_machine, e.limited_by, e.machines) == (4, "cores", 5)
    assert e.cost_per_hour == pytest.approx(40 * 0.04 + 15 * 0.005)  # 1.675
    # 1000/s = 3.6 million per hour -> 1.675 / 3.6
    assert e.cost_per_million == pytest.approx(1.675 / 3.6)
    assert e.machine_cost_per_hour == pytest.approx(5 * (8 * 0.04 + 4 * 0.005))  # 1.7
    assert e.machine_cost_per_million == pytest.approx(1.7 / 3.6)


def test_ram_bound_machines_and_a_replica_that_does_not_fit():
    base = {"throughput_per_s": 10.0, "threads": 1, "load_per_s": 25.0, "price_core_hour": 1.0, "price_gib_hour": 0.0,
                "utilisation": 1.0, "ram_headroom": 0.0, "machine_cores": 16}
    e = estimate(CostInputs(peak_ram_mib=3072.0, machine_ram_gib=8.0, **base))
    assert e.replicas == 3  # ceil(25 / 10)
    assert (e.replicas_per_machine, e.limited_by, e.machines) == (2, "RAM", 2)  # 8 GiB / 3 GiB = 2
    e = estimate(CostInputs(peak_ram_mib=10240.0, machine_ram_gib=8.0, **base))
    assert e.machines is None and e.limited_by == "does not fit" and e.machine_cost_per_million is None
    assert e.cost_per_million == pytest.approx(3 * 1.0 / (25 * 3600) * 1e6)


def test_exact_capacity_needs_no_extra_replica():
    e = estimate(CostInputs(throughput_per_s=100.0, peak_ram_mib=100.0, threads=1, load_per_s=70.0,
                            price_core_hour=0.0, price_gib_hour=0.0, utilisation=0.7))
    assert e.replicas == 1 and e.cost_per_million == 0.0


@pytest.mark.parametrize(("field", "value", "match"), [
    ("throughput_per_s", 0.0, "throughput_per_s must be positive"),
    ("load_per_s", float("inf"), "load_per_s must be a finite number"),
    ("threads", 0, "threads must be a whole number of at least 1"),
    ("utilisation", 1.5, "utilisation must be between 0.05 and 1"),
    ("price_core_hour", -1.0, "price_core_hour must not be negative"),
])
def test_bad_inputs_are_refused(field, value, match):
    args = {"throughput_per_s": 100.0, "peak_ram_mib": 100.0, "threads": 1, "load_per_s": 10.0, "price_core_hour": 0.1,
                "price_gib_hour": 0.01}
    args[field] = value
    with pytest.raises(ValueError, match=match):
        CostInputs(**args)
