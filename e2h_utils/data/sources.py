"""Upstream data sources: one loading path, two roots.

With ``E2H_MIRROR`` set, every source is read from the offline mirror, which keeps the
upstream layout (``hf/ORG/NAME`` for Hub dataset repos, ``github/OWNER/REPO/PATH`` for raw
files of a GitHub repo). Without it, the same calls go to the Hugging Face Hub and to GitHub
at the pinned revisions below, cached under ``paths.downloads_cache_dir()``. Parsing happens
downstream (``data``) and is the same either way.

A mirror split is read straight from its parquet file (the Hub's own layout), not through the
``datasets`` cache: a changed or damaged mirror file is read as it is now, never served from a
cache built from its earlier contents. Every read error names the file and the fix.
``mirror_digest`` fingerprints the mirror files the project reads, for ``reproduce``.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from e2h_utils import atomic, paths


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
# MATH (Hendrycks et al. 2021) and the MATH-500 subset of Lightman et al. (Sun et al.'s test set):
# revisions seen in public material; the Hub cannot be reached from the project's machines to check them
MATH = HubDataset("EleutherAI/hendrycks_math", "21a5633873b6a120296cce3e2df9d5550074f4a3")
MATH500 = HubDataset("HuggingFaceH4/MATH-500", "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be")

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


class CorruptSource(RuntimeError):
    """A source file exists but cannot be read."""


def _missing(path: Path, what: str) -> MirrorFileMissing:
    return MirrorFileMissing(
        f"{what} is not in the offline mirror: expected {path}. Check that "
        f"{paths.MIRROR_ENV} points at the mirror folder (its README lists the contents), "
        f"or unset {paths.MIRROR_ENV} to load from the network."
    )


def hub_split_path(source: HubDataset, config: str, split: str) -> Path:
    """Where one split of a Hub dataset lies in the mirror (``E2H_MIRROR`` must be set)."""
    mirror = paths.mirror_root()
    assert mirror is not None, "hub_split_path needs the offline mirror"
    return mirror / "hf" / source.repo / config / f"{split}-00000-of-00001.parquet"


def load_hub_split(source: HubDataset, config: str, split: str) -> pd.DataFrame:
    """One split of one config of a Hub dataset, as a DataFrame."""
    if paths.mirror_root() is not None:
        path = hub_split_path(source, config, split)
        if not path.is_file():
            raise _missing(path, f"{source.repo} config {config!r} split {split!r}")
        try:
            return pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise CorruptSource(
                f"{path} cannot be read ({type(error).__name__}: {error}). The mirror file is damaged: restore "
                f"it from the mirror's source, or unset {paths.MIRROR_ENV} to load from the network."
            ) from error
    import datasets  # heavy import, only when data is actually loaded

    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(source.repo, config, split=split, revision=source.revision)
    except Exception as error:  # noqa: BLE001 - offline, gated, renamed: all need the same hint
        raise ConnectionError(
            f"could not load {source.repo} ({config}/{split}) from the Hugging Face Hub "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Without network "
            f"access, set {paths.MIRROR_ENV} to the offline mirror (e.g. export {paths.MIRROR_ENV}=../shared/"
            "offline-mirror from the project root)."
        ) from error
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


def mirror_digest(files: Iterable[Path]) -> str:
    """A digest of the content of the mirror ``files`` (by their path inside the mirror; a missing
    one counts as missing), so that a run's fingerprint changes when a mirror file does, and not
    when the mirror moves."""
    root = paths.mirror_root()
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in files):
        name = path.relative_to(root) if root is not None and path.is_relative_to(root) else path
        digest.update(str(name).encode() + b"\x00")
        digest.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"missing")
    return digest.hexdigest()[:16]


def hub_file(source: HubDataset, filename: str) -> Path:
    """A file of a Hub dataset repo that is not a parquet split (MATH-500's ``test.jsonl``): in
    the mirror, or downloaded once at the pinned revision into the cache."""
    mirror = paths.mirror_root()
    if mirror is not None:
        path = mirror / "hf" / source.repo / filename
        if not path.is_file():
            raise _missing(path, f"{source.repo}/{filename}")
        return path
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(source.repo, filename, repo_type="dataset", revision=source.revision,
                                    cache_dir=str(paths.downloads_cache_dir() / "hub")))
    except Exception as error:  # noqa: BLE001 - offline, renamed: all need the same hint
        raise ConnectionError(
            f"could not download {source.repo}/{filename} from the Hugging Face Hub ({type(error).__name__}). "
            f"Without network access, set {paths.MIRROR_ENV} to the offline mirror.") from error


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a damaged line is an error naming the file and line."""
    import json

    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as error:
                    raise CorruptSource(f"{path} line {number} is not valid JSON ({error}); restore the file, or "
                                        f"unset {paths.MIRROR_ENV} to load from the network.") from error
    return records


def read_json(source: GitHubFile):
    """A raw GitHub JSON file, parsed; a damaged file is an error naming it."""
    import json

    path = github_file(source)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        where = "the mirror" if paths.mirror_root() is not None else "the download cache"
        fix = (f"restore it in the mirror, or unset {paths.MIRROR_ENV} to load from the network"
               if paths.mirror_root() is not None else f"delete it ({path}) to download it again")
        raise CorruptSource(f"{path} in {where} is not valid JSON ({error}); {fix}.") from error
