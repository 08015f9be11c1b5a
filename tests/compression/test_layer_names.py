"""Readable Linear layer names, torch module -> ONNX node mapping, and onnx-int8's exclude_layers on tiny models."""

from __future__ import annotations

import pytest

from compression import TechniqueError, apply, parse_spec
from compression.layer_names import linear_layers, onnx_linear_nodes, parse_layer_list, readable
from compression.registry import make_config
from tests.helpers.tiny_architectures import tiny_model


def _graph(art):
    import onnx

    return onnx.load(str(art.path / "model.onnx"))


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("bert.encoder.layer.3.attention.self.query", "layer 3 · attention query"),
        ("roberta.encoder.layer.0.output.dense", "layer 0 · feed-forward out"),
        ("distilbert.transformer.layer.5.ffn.lin1", "layer 5 · feed-forward in"),
        ("bert.pooler.dense", "pooler"),
        ("classifier", "classifier"),
    ],
)
def test_readable_labels(name, label):
    assert readable(name) == label


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_linear_layers_from_model_and_from_folder(kind, tmp_path):
    model = tiny_model(kind, layers=2)
    layers = linear_layers(model)
    names = [n for n, _ in layers]
    assert len(names) == 2 * 6 + 2  # 6 per block + pooler (bert) or pre_classifier (distilbert) + classifier
    model.config.save_pretrained(tmp_path)
    assert linear_layers(tmp_path) == layers  # built on the meta device from config.json, same names
    assert linear_layers(model.config) == layers


@pytest.mark.parametrize("which", ["bert", "roberta"])
def test_every_linear_maps_to_one_onnx_node(which, tiny_bert, tiny_roberta, artifact_cache):
    src = {"bert": tiny_bert, "roberta": tiny_roberta}[which]
    art = apply(src, parse_spec("onnx"), artifact_cache)
    mapping = onnx_linear_nodes(_graph(art))
    torch_names = [n for n, _ in linear_layers(src.path)]
    assert sorted(mapping) == sorted(torch_names)
    assert all(len(nodes) == 1 for nodes in mapping.values())


def test_excluded_layer_stays_float_in_dynamic_int8(tiny_bert, artifact_cache):
    excluded = "bert.encoder.layer.0.attention.self.query+bert.encoder.layer.1.output.dense"
    art = apply(apply(tiny_bert, parse_spec("onnx"), artifact_cache), parse_spec(f"onnx-int8:exclude_layers={excluded}"),
                artifact_cache)
    graph = _graph(art).graph
    info = art.meta["onnx_int8"]
    assert info["excluded_layers"] == excluded.split("+") and len(info["excluded_nodes"]) == 2
    by_name = {n.name: n for n in graph.node}
    for node in info["excluded_nodes"]:
        assert by_name[node].op_type == "MatMul"  # float MatMul kept
    float_inits = {t.name for t in graph.initializer if t.data_type == 1}
    assert all(any(i in float_inits for i in by_name[n].input) for n in info["excluded_nodes"])  # float weight
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) >= 10  # the other Linears are int8


def test_bad_layer_names_refused(tiny_bert, artifact_cache):
    with pytest.raises(TechniqueError, match="not a module name"):
        parse_spec("onnx-int8:exclude_layers=layer 3 query")
    onnx_art = apply(tiny_bert, parse_spec("onnx"), artifact_cache)
    with pytest.raises(TechniqueError, match="no ONNX MatMul/Gemm comes from module 'bert.encoder.layer.9.output"):
        apply(onnx_art, parse_spec("onnx-int8:exclude_layers=bert.encoder.layer.9.output.dense"), artifact_cache)
    fused = apply(tiny_bert, parse_spec("onnx:optimize=true"), artifact_cache)
    with pytest.raises(TechniqueError, match="optimize=true"):
        apply(fused, parse_spec("onnx-int8:exclude_layers=bert.encoder.layer.0.output.dense"), artifact_cache)
    assert parse_layer_list(" a.b , c.d+a.b ;e ,") == ("a.b", "c.d", "e")
    cfg = make_config("onnx-int8", exclude_layers="a.b, c.d")  # commas from the API or the dashboard's text box
    assert cfg.exclude_layers == "a.b+c.d" and parse_spec(cfg.spec()) == cfg  # the spec string parses back
