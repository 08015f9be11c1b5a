"""The sensitivity heatmap's colour scale fits the quantity it shows."""

from __future__ import annotations

from dashboard.sensitivity import heatmap_figure


def _result(values: list[float], metric: str) -> dict:
    rows = [{"layer": i // 2, "column": f"head {i % 2}", "unit": f"u{i}", metric: v} for i, v in enumerate(values)]
    return {"rows": rows, "technique": "int8", "samples": 8, "split": "train"}


def test_agreement_of_an_unchanged_map_is_drawn_light_on_a_0_to_1_scale():
    heat = heatmap_figure(_result([1.0, 1.0, 1.0, 1.0], "agreement"), "agreement").data[0]
    assert heat.zmax == 1.0 and 0.0 <= heat.zmin < 1.0  # never a colour bar above 1 for an agreement
    assert heat.reversescale  # Reds reversed: the top of the scale (1 = unchanged) is the light end
    low = heatmap_figure(_result([1.0, 0.5, 0.9, 0.2], "agreement"), "agreement").data[0]
    assert (low.zmin, low.zmax) == (0.2, 1.0)


def test_change_in_accuracy_is_centred_at_zero():
    heat = heatmap_figure(_result([0.0, -0.04, 0.01, 0.0], "delta_accuracy"), "delta_accuracy").data[0]
    assert heat.zmid == 0.0 and (heat.zmin, heat.zmax) == (-0.04, 0.04)
    assert heat.colorscale[0][1] != heat.colorscale[-1][1]  # a diverging scale, not one hue
    still = heatmap_figure(_result([0.0] * 4, "delta_accuracy"), "delta_accuracy").data[0]
    assert still.zmin < 0 < still.zmax


def test_logit_changes_start_at_zero():
    heat = heatmap_figure(_result([0.5, 0.1, 0.2, 0.3], "mean_logit_change"), "mean_logit_change").data[0]
    assert (heat.zmin, heat.zmax) == (0.0, 0.5) and not heat.reversescale
