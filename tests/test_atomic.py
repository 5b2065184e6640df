"""e2h_utils.atomic and the stores: whole files only, many writers, killed writers cleaned up."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pandas as pd
import pytest

from e2h_utils import atomic
from e2h_utils.experiments.store import ResultStore

DEAD_PID = 999_999_999  # no process has it


def _write_many(target: str, tag: str, n: int) -> None:
    for i in range(n):
        atomic.write_text(Path(target), f"{tag}:{i}:" + "x" * 100_000)


def test_concurrent_writers_of_one_file_leave_a_whole_file(tmp_path: Path):
    target = tmp_path / "shared.txt"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(str(target), tag, 30)) for tag in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    text = target.read_text()
    assert text.endswith("x" * 100_000) and text.count(":") == 2  # one writer's whole content
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]  # no temporary folder left


def _make_once(folder: str, log: str) -> None:
    import time

    def make(tmp: Path) -> None:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # the other process reaches the lock meanwhile
        tmp.mkdir()
        (tmp / "done").write_text("whole")

    atomic.made_once(Path(folder), lambda f: (f / "done").is_file(), make)


def test_a_folder_two_processes_want_is_made_once_and_the_waiter_uses_it(tmp_path: Path):
    folder, log = tmp_path / "model", tmp_path / "makers.log"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_make_once, args=(str(folder), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0]
    assert len(log.read_text().split()) == 1 and (folder / "done").read_text() == "whole"
    assert atomic.made_once(folder, lambda f: (f / "done").is_file(), lambda tmp: 1 / 0) == folder  # made: not again
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_clean_stale_removes_only_dead_writers(tmp_path: Path):
    dead = tmp_path / f".seed-0.parquet.{DEAD_PID}.abc.tmp"
    live = tmp_path / f".seed-0.parquet.{os.getpid()}.def.tmp"
    other = tmp_path / ".not-ours"
    for folder in (dead, live, other):
        folder.mkdir()
    assert atomic.clean_stale(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and other.exists()


def test_result_store_cleans_up_after_a_killed_writer(tmp_path: Path):
    store = ResultStore(tmp_path)
    payload = {"dataset": "arc", "method": "icl", "x": 1}
    folder = store.folder(payload)
    leftover = folder / f".seed-0.parquet.{DEAD_PID}.zzz.tmp"
    leftover.mkdir(parents=True)
    (leftover / "seed-0.parquet").write_bytes(b"half a file")
    store.save(payload, 0, pd.DataFrame({"a": [1, 2]}))
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "seed-0.parquet", "seed-0.sha256", "spec.json"]
    pd.testing.assert_frame_equal(store.load(payload, 0), pd.DataFrame({"a": [1, 2]}))


def test_read_only_store_fails_before_computing(tmp_path: Path):
    root = tmp_path / "results"
    root.mkdir()
    root.chmod(0o500)
    try:
        if os.access(root, os.W_OK):  # root ignores permissions
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(PermissionError) as info:
            ResultStore(root).check_writable()
        assert str(root) in str(info.value) and "nothing was computed" in str(info.value)
    finally:
        root.chmod(0o700)


def test_check_writable_names_the_folder_and_the_fix(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError) as info:
        atomic.check_writable(blocker / "results")
    message = str(info.value)
    assert str(blocker / "results") in message and "df -h" in message and "E2H_HOME" in message


def test_a_store_this_process_may_only_read_is_still_read(tmp_path: Path, monkeypatch):
    """Reading takes a shared lock and gives a digest to a seed file stored before digests existed;
    where neither can be written (a colleague's results, a read-only mount) the result is still read."""
    from e2h_utils import atomic
    from e2h_utils.experiments import store as store_module

    store = ResultStore(tmp_path)
    payload = {"dataset": "arc", "method": "icl", "x": 1}
    path = store.save(payload, 0, pd.DataFrame({"a": [1, 2]}))
    (path.parent / store_module.LOCK).unlink()
    store_module.digest_path(path).unlink()  # as stored before digests were written

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic, "write_text", refuse)
    # the lock file cannot be made or opened for writing (atomic's own name for open, so nothing else changes)
    monkeypatch.setattr(atomic, "open", lambda file, mode="r": refuse() if "a" in mode else open(file, mode),
                        raising=False)
    pd.testing.assert_frame_equal(store.load(payload, 0), pd.DataFrame({"a": [1, 2]}))
    assert not store_module.digest_path(path).exists()
