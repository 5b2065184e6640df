"""e2h_utils.data.sources / paths / atomic: mirror resolution, clear errors, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2h_utils import atomic
from e2h_utils import paths
from e2h_utils.data import sources


@pytest.fixture
def empty_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "mirror"
    root.mkdir()
    monkeypatch.setenv(paths.MIRROR_ENV, str(root))
    return root


def test_github_file_missing_in_mirror(empty_mirror: Path):
    with pytest.raises(sources.MirrorFileMissing) as info:
        sources.github_file(sources.STRATEGYQA_TRAIN)
    message = str(info.value)
    expected = empty_mirror.resolve() / "github" / "eladsegal" / "strategyqa" / "data" / "strategyqa" / "train.json"
    assert str(expected) in message
    assert paths.MIRROR_ENV in message
    assert isinstance(info.value, FileNotFoundError)


def test_load_hub_split_missing_in_mirror(empty_mirror: Path):
    with pytest.raises(sources.MirrorFileMissing) as info:
        sources.load_hub_split(sources.ARC, "ARC-Easy", "train")
    message = str(info.value)
    expected = empty_mirror.resolve() / "hf" / "allenai" / "ai2_arc" / "ARC-Easy" / "train-00000-of-00001.parquet"
    assert str(expected) in message
    assert paths.MIRROR_ENV in message


def test_github_file_found_in_mirror(empty_mirror: Path):
    target = empty_mirror / "github" / sources.ARC_ANNOTATIONS.repo / sources.ARC_ANNOTATIONS.path
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"ARCEZ_x": {"grade": "Grade 03"}}))
    assert sources.github_file(sources.ARC_ANNOTATIONS) == target.resolve()


def test_mirror_root_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(paths.MIRROR_ENV, str(tmp_path / "does-not-exist"))
    with pytest.raises(FileNotFoundError, match=paths.MIRROR_ENV):
        paths.mirror_root()


def test_mirror_root_unset_means_online(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(paths.MIRROR_ENV, raising=False)
    assert paths.mirror_root() is None
    monkeypatch.setenv(paths.MIRROR_ENV, "")
    assert paths.mirror_root() is None


def test_cache_dirs_follow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("E2H_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("E2H_CACHE", raising=False)
    assert paths.project_root() == (tmp_path / "home").resolve()
    assert paths.cache_dir() == (tmp_path / "home" / ".cache").resolve()
    monkeypatch.setenv("E2H_CACHE", str(tmp_path / "cache"))
    assert paths.models_cache_dir() == (tmp_path / "cache" / "models").resolve()
    assert paths.outputs_dir("smoke") == (tmp_path / "home" / "outputs" / "smoke").resolve()


def test_github_file_url_is_pinned():
    url = sources.STRATEGYQA_DEV.url
    assert url.startswith("https://raw.githubusercontent.com/eladsegal/strategyqa/")
    assert "1ba1e97452e189569357876f2854b01357ffbe37" in url and url.endswith("data/strategyqa/dev.json")


# --- atomic ------------------------------------------------------------------------------


def test_atomic_path_failure_leaves_nothing(tmp_path: Path):
    target = tmp_path / "out" / "file.txt"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_failure_keeps_old_file(tmp_path: Path):
    target = atomic.write_text(tmp_path / "file.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_atomic_path_writes_file_and_folder(tmp_path: Path):
    target = atomic.write_text(tmp_path / "a.txt", "hello")
    assert target.read_text() == "hello"
    atomic.write_bytes(target, b"again")
    assert target.read_bytes() == b"again"

    folder = tmp_path / "model"
    for content in ("one", "two"):  # a second write replaces the folder
        with atomic.atomic_path(folder) as tmp:
            tmp.mkdir()
            (tmp / "weights").write_text(content)
    assert (folder / "weights").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "model"]


def test_atomic_path_nothing_written_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic.atomic_path(tmp_path / "x"):
            pass
    assert list(tmp_path.iterdir()) == []


# --- issue 12: what a user with a broken or missing mirror sees -----------------------------------


def test_relative_mirror_is_resolved_against_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project, mirror = tmp_path / "project", tmp_path / "shared" / "offline-mirror"
    (project / "notebooks").mkdir(parents=True)
    mirror.mkdir(parents=True)
    monkeypatch.setenv("E2H_HOME", str(project))
    monkeypatch.setenv(paths.MIRROR_ENV, "../shared/offline-mirror")  # as the README says, from the root
    monkeypatch.chdir(project / "notebooks")  # where JupyterLab runs a notebook
    assert paths.mirror_root() == mirror.resolve()
    monkeypatch.setenv(paths.MIRROR_ENV, "../shared/no-such-mirror")
    with pytest.raises(FileNotFoundError) as info:
        paths.mirror_root()
    message = str(info.value)
    assert f"resolved against the project root {project}" in message and "no-such-mirror" in message
    assert "realpath" in message  # the fix names an absolute path, which works from anywhere


def test_a_missing_split_of_a_config_names_that_file(empty_mirror: Path):
    """Only the split asked for is read: a missing MMLU `dev` file (never used) does not matter,
    a missing `test` file is named (not a list of ~300 file extensions)."""
    folder = empty_mirror / "hf" / "cais" / "mmlu" / "college_physics"
    folder.mkdir(parents=True)
    import pandas as pd

    pd.DataFrame({"question": ["q"], "subject": ["college_physics"], "choices": [["a", "b"]],
                  "answer": [0]}).to_parquet(folder / "validation-00000-of-00001.parquet")
    assert len(sources.load_hub_split(sources.MMLU, "college_physics", "validation")) == 1
    with pytest.raises(sources.MirrorFileMissing) as info:
        sources.load_hub_split(sources.MMLU, "college_physics", "test")
    message = str(info.value)
    assert str(folder.resolve() / "test-00000-of-00001.parquet") in message and paths.MIRROR_ENV in message
    assert len(message) < 600


def test_a_damaged_mirror_file_is_named(empty_mirror: Path):
    folder = empty_mirror / "hf" / "openai" / "gsm8k" / "main"
    folder.mkdir(parents=True)
    (folder / "test-00000-of-00001.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(sources.CorruptSource) as info:
        sources.load_hub_split(sources.GSM8K, "main", "test")
    assert "test-00000-of-00001.parquet cannot be read" in str(info.value) and "damaged" in str(info.value)
    target = empty_mirror / "github" / sources.STRATEGYQA_DEV.repo / sources.STRATEGYQA_DEV.path
    target.parent.mkdir(parents=True)
    target.write_text('[{"qid": "a", "question": "q?"')  # truncated JSON
    with pytest.raises(sources.CorruptSource) as info:
        sources.read_json(sources.STRATEGYQA_DEV)
    assert str(target.resolve()) in str(info.value) and "not valid JSON" in str(info.value)


def test_no_network_and_no_mirror_says_set_the_mirror(monkeypatch: pytest.MonkeyPatch):
    import datasets

    monkeypatch.delenv(paths.MIRROR_ENV, raising=False)

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'allenai/ai2_arc' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConnectionError) as info:
        sources.load_hub_split(sources.ARC, "ARC-Easy", "train")
    assert paths.MIRROR_ENV in str(info.value) and "allenai/ai2_arc" in str(info.value)
