"""Item-level results on disk, keyed by the hash of the full run spec.

Layout: ``results/<dataset>/<method>/<key>/seed-<s>.parquet`` and a ``spec.json`` beside it
saying what the key stands for; each seed file has its SHA-256 beside it (``seed-<s>.sha256``,
written first), checked whenever it is read, so a result changed after it was stored (a hand-edited
parquet that still reads) is an error, never a result. Files are written atomically, so an interrupted run leaves
either a complete file or none, and a rerun of the same spec reuses what is there. Several
processes may write the same key at once (two notebooks, two Slurm jobs): each write is a rename
of a whole file, and the temporary folders of writers that were killed are removed on the next
write (``atomic.clean_stale``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from e2h_utils import atomic, paths
from e2h_utils.keys import CorruptResult, spec_key  # noqa: F401 (the store's names for them)


class ResultStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.results_dir()
        self._writable = False

    def check_writable(self) -> None:
        """Fail before computing anything when results cannot be stored (read-only, disk full)."""
        if not self._writable:
            atomic.check_writable(self.root)
            self._writable = True

    def folder(self, payload: dict[str, Any]) -> Path:
        return self.root / str(payload["dataset"]) / str(payload["method"]) / spec_key(payload)

    def path(self, payload: dict[str, Any], seed: int) -> Path:
        return self.folder(payload) / f"seed-{int(seed)}.parquet"

    def load(self, payload: dict[str, Any], seed: int) -> pd.DataFrame | None:
        path = self.path(payload, seed)
        if not path.is_file():
            return None
        try:
            with atomic.locked(self.folder(payload) / LOCK, shared=True):  # a seed file and its digest, as a pair
                verify(path)
                frame = pd.read_parquet(path)
        except CorruptResult:
            raise
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise CorruptResult(
                f"stored result {path} cannot be read ({error}). Delete that one file to recompute "
                "it; other results are unaffected."
            ) from error
        for column in frame.columns:  # parquet gives list columns back as arrays: make them lists again
            if frame[column].dtype == object and len(frame) and hasattr(frame[column].iloc[0], "tolist"):
                frame[column] = frame[column].map(lambda value: value.tolist())
        return frame

    def save(self, payload: dict[str, Any], seed: int, frame: pd.DataFrame) -> Path:
        _check_finite(frame, payload)
        folder = self.folder(payload)
        atomic.clean_stale(folder)
        spec_file = folder / "spec.json"
        if not spec_file.is_file():
            atomic.write_text(spec_file, json.dumps(payload, sort_keys=True, indent=1, default=str))
        target = self.path(payload, seed)
        with atomic.locked(folder / LOCK), atomic.atomic_path(target) as tmp:  # one writer of the pair at a time
            frame.to_parquet(tmp, index=False)
            atomic.write_text(digest_path(target), _sha256(Path(tmp)) + "\n")  # before the file it vouches for
        return target

    def get_or_compute(self, payload: dict[str, Any], seed: int,
                       compute: Callable[[], pd.DataFrame]) -> tuple[pd.DataFrame, bool]:
        """(the stored result of ``payload`` and ``seed``, or ``compute()`` stored atomically first;
        whether it was computed now). Every kind of stored result goes through here: experiment
        seeds, MDL confidences, zero-shot item scores (hidden-state features, which grow by item,
        have ``methods.features.FeatureCache.get_or_compute``)."""
        stored = self.load(payload, seed)
        if stored is not None:
            return stored, False
        self.check_writable()  # before minutes of computing, not after
        result = compute()
        self.save(payload, seed, result)
        return result, True

    def rekey(self) -> int:
        """Move runs stored under the project's first keys (options as written, execution settings
        included) to the keys of their canonical spec, once per results folder; returns how many
        moved. Their seeds are reused, not recomputed. Two earlier keys of one run merge (the first
        seed file wins). Runs of other code versions are left alone."""
        return rekey_stored_runs(self)


# --- a digest per stored seed ----------------------------------------------------------------


LOCK = ".lock"  # in a run's folder: a seed file and its digest are written, and read, as one


def digest_path(seed_file: Path) -> Path:
    return seed_file.with_suffix(".sha256")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(seed_file: Path) -> None:
    """Raise ``CorruptResult`` when ``seed_file`` is not what was stored (its digest differs). A seed
    file stored before digests were written (none beside it) is taken as it is and given one."""
    digest_file, actual = digest_path(seed_file), _sha256(seed_file)
    if not digest_file.is_file():
        try:
            atomic.write_text(digest_file, actual + "\n")
        except OSError:  # a store this process may only read: the file is taken as it is, as before
            pass
        return
    expected = digest_file.read_text().strip()
    if expected != actual:
        raise CorruptResult(
            f"stored result {seed_file} was changed after it was stored (its SHA-256 is not the one in "
            f"{digest_file.name}). Delete that file and {digest_file.name} to recompute it; other results are "
            "unaffected.")


# --- stored keys of an earlier layout ------------------------------------------------------

KEYS_MARKER = ".keys-canonical"  # in results/: its runs are stored under canonical-option keys


def _check_finite(frame: pd.DataFrame, payload: dict[str, Any]) -> None:
    """A result whose choice probabilities are not finite (a NaN option, a diverged probe) is refused at
    write time: argmax would pick choice 0 and the NaN would be read as an accuracy."""
    import numpy as np

    if "probs" not in frame.columns or frame.empty:
        return
    values = [np.asarray(v, dtype=float) for v in frame["probs"]]
    bad = [i for i, v in enumerate(values) if not np.all(np.isfinite(v))]
    if "p_correct" in frame.columns:
        bad += [i for i, v in enumerate(frame["p_correct"].to_numpy(dtype=float)) if not np.isfinite(v)]
    if bad:
        what = f"{payload.get('dataset', '?')}/{payload.get('method', '?')}"
        raise ValueError(f"{what}: {len(set(bad))} of {len(frame)} items have non-finite probabilities (NaN or inf): "
                         "nothing was stored. A method option out of range (a learning rate, l2) or a diverged "
                         "training run gives this; check the run's method_options")


def canonical_payload(stored: dict[str, Any]) -> dict[str, Any] | None:
    """The payload a stored run (its ``spec.json``) has under canonical options, or None when the
    run is not an experiment or was computed by other code (another version)."""
    from e2h_utils.experiments.spec import from_stored

    if "options" not in stored:
        return None
    spec = from_stored(stored)
    if spec is None:
        return None
    payload = {**spec.canonical(), "model_identity": stored.get("model_identity")}
    payload.update({k: stored[k] for k in ("data_digest", "source_digest") if k in stored})
    same = json.loads(json.dumps(payload, default=str))
    if {k: v for k, v in same.items() if k != "options"} != {k: v for k, v in stored.items() if k != "options"}:
        return None  # not only the options differ: results of other code, never reused
    return payload


def rekey_stored_runs(store: ResultStore) -> int:
    """See ``ResultStore.rekey``."""
    root = store.root
    if (root / KEYS_MARKER).is_file() or not root.is_dir():
        return 0
    import fcntl
    import os
    import shutil

    moved = 0
    with open(root / ".rekey.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one migrating process at a time
        if (root / KEYS_MARKER).is_file():
            return 0
        for spec_file in sorted(root.glob("*/*/*/spec.json")):
            try:
                stored = json.loads(spec_file.read_text())
            except (OSError, ValueError):
                continue
            payload = canonical_payload(stored)
            if payload is None:
                continue
            old, new = spec_file.parent, store.folder(payload)
            if new == old:
                continue
            if not new.exists():
                os.replace(old, new)
            else:
                for seed_file in old.glob("seed-*.parquet"):
                    if not (new / seed_file.name).exists():
                        if digest_path(seed_file).is_file():  # its digest first, as a save writes them
                            os.replace(digest_path(seed_file), digest_path(new / seed_file.name))
                        os.replace(seed_file, new / seed_file.name)
                shutil.rmtree(old, ignore_errors=True)
            atomic.write_text(new / "spec.json", json.dumps(payload, sort_keys=True, indent=1, default=str))
            moved += 1
        atomic.write_text(root / KEYS_MARKER,
                          "runs are keyed by canonical options (experiments.store.canonical_payload)\n")
    if moved:
        print(f"results: {moved} stored run(s) moved to the keys of their canonical spec (defaults merged, "
              "execution settings left out); nothing is recomputed")
    return moved
