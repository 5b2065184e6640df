"""Write-then-rename helpers: an interrupted write never leaves a half-written file or folder.

A write goes to a temporary folder beside its target, named ``.<target>.<pid>.<random>.tmp``,
and is renamed into place only when complete (``os.replace`` is atomic, so two processes writing
the same target both leave a whole file, the later one's). A process killed mid-write leaves its
temporary folder behind; ``clean_stale`` removes those whose process is gone (never one a live
process is still writing), and the stores call it before they write.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

_TMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(folder: Path) -> list[Path]:
    """Remove the temporary folders in ``folder`` left by writers that no longer run; returns them."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TMP.match(entry.name)
        if match and entry.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds.

    Works for a file or a folder written at the yielded path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written at {tmp}")
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.{os.getpid()}.old.tmp")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


@contextlib.contextmanager
def locked(lock_file: Path, shared: bool = False) -> Iterator[None]:
    """Hold an advisory lock on ``lock_file`` (made if missing) for the block: exclusive for
    writers, shared for readers that need a writer's files as one consistent set."""
    import fcntl

    if shared:  # a reader of a folder it may not write to (a colleague's results, a read-only mount)
        try:
            handle = open(lock_file, "a")
        except OSError:
            if not lock_file.is_file():
                yield  # nobody can write there either: nothing to wait for
                return
            handle = open(lock_file)  # a shared lock needs only a read handle
        with handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def made_once(folder: Path, done: Callable[[Path], bool], make: Callable[[Path], None]) -> Path:
    """``folder``, made by ``make(tmp)`` at a temporary path and moved into place unless ``done(folder)``
    already holds: one maker at a time, under a lock beside it, and a process that waited for that
    lock uses what the first one made (parallel tests and jobs converting or building one model)."""
    if done(folder):
        return folder
    with locked(folder.parent / f".{folder.name}.lock"):
        if not done(folder):
            with atomic_path(folder) as tmp:
                make(tmp)
    return folder


def write_bytes(target: Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: Path, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def check_writable(folder: Path, env: str | None = None) -> None:
    """Raise ``PermissionError`` naming ``folder`` (and the fix) unless a file can be created in it;
    ``env``: the variable that chose the folder, named when it is set."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check.", delete=True):
            pass
    except OSError as error:
        what = f"{folder} is a file, not a folder" if folder.is_file() else f"cannot write in {folder}"
        fix = (f"point {env} (now {os.environ[env]!r}) at a folder you can write to, or unset it"
               if env and os.environ.get(env) else "set E2H_HOME to a project folder you can write to")
        raise PermissionError(
            f"{what} ({error.strerror or error}). Make it writable (and check the disk is not full: `df -h`), "
            f"or {fix}; nothing was computed."
        ) from error
