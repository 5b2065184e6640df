"""Upstream data sources: one loading path, two roots.

With ``E2H_MIRROR`` set, every source is read from the offline mirror, which keeps the
upstream layout (``hf/ORG/NAME`` for Hub dataset repos, ``github/OWNER/REPO/PATH`` for raw
files of a GitHub repo). Without it, the same calls go to the Hugging Face Hub and to GitHub
at the pinned revisions below, cached under ``paths.downloads_cache_dir()``. Parsing happens
downstream (``data``) and is the same either way.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import atomic, paths


@dataclass(frozen=True)
class HubDataset:
    """A Hugging Face dataset repo at a pinned revision."""

    repo: str
    revision: str


@dataclass(frozen=True)
class GitHubFile:
    """A raw file of a GitHub repo at a pinned commit."""

    repo: str
    commit: str
    path: str

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


ARC = HubDataset("allenai/ai2_arc", "210d026faf9955653af8916fad021475a3f00453")
MMLU = HubDataset("cais/mmlu", "c30699e8356da336a370243923dbaf21066bb9fe")
GSM8K = HubDataset("openai/gsm8k", "cc7b047b6e5bb11b4f1af84efc572db110a51b3c")

_STRATEGYQA_COMMIT = "1ba1e97452e189569357876f2854b01357ffbe37"
STRATEGYQA_TRAIN = GitHubFile("eladsegal/strategyqa", _STRATEGYQA_COMMIT, "data/strategyqa/train.json")
STRATEGYQA_DEV = GitHubFile("eladsegal/strategyqa", _STRATEGYQA_COMMIT, "data/strategyqa/dev.json")
ARC_ANNOTATIONS = GitHubFile(
    "allenai/easy-to-hard-generalization",
    "ad8358e42904da169e8a3e3f70b64290d739b37a",
    "data/arc-challenge-easy-annotations.json",
)


class MirrorFileMissing(FileNotFoundError):
    """A file the project needs is not in the offline mirror."""


def _missing(path: Path, what: str) -> MirrorFileMissing:
    return MirrorFileMissing(
        f"{what} is not in the offline mirror: expected {path}. Check that "
        f"{paths.MIRROR_ENV} points at the mirror folder (its README lists the contents), "
        f"or unset {paths.MIRROR_ENV} to load from the network."
    )


def load_hub_split(source: HubDataset, config: str, split: str) -> pd.DataFrame:
    """One split of one config of a Hub dataset, as a DataFrame."""
    import datasets  # heavy import, only when data is actually loaded

    mirror = paths.mirror_root()
    if mirror is not None:
        folder = mirror / "hf" / source.repo
        expected = folder / config / f"{split}-00000-of-00001.parquet"
        if not expected.is_file():
            raise _missing(expected, f"{source.repo} config {config!r} split {split!r}")
        where, revision = str(folder), None
    else:
        where, revision = source.repo, source.revision
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(where, config, split=split, revision=revision)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    return ds.to_pandas()


def github_file(source: GitHubFile) -> Path:
    """Local path of a raw GitHub file: in the mirror, or downloaded once into the cache."""
    mirror = paths.mirror_root()
    if mirror is not None:
        path = mirror / "github" / source.repo / source.path
        if not path.is_file():
            raise _missing(path, f"{source.repo}/{source.path}")
        return path
    cached = paths.downloads_cache_dir() / "github" / source.repo / source.commit / source.path
    if not cached.is_file():
        try:
            with urllib.request.urlopen(source.url, timeout=60) as response:
                data = response.read()
        except (urllib.error.URLError, TimeoutError) as error:
            raise ConnectionError(
                f"could not download {source.url} ({error}). Without network access, set "
                f"{paths.MIRROR_ENV} to the offline mirror."
            ) from error
        atomic.write_bytes(cached, data)
    return cached
