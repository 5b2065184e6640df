"""Item-level results on disk, keyed by the hash of the full run spec.

Layout: ``results/<dataset>/<method>/<key>/seed-<s>.parquet`` and a ``spec.json`` beside it
saying what the key stands for. Files are written atomically, so an interrupted run leaves
either a complete file or none, and a rerun of the same spec reuses what is there. Several
processes may write the same key at once (two notebooks, two Slurm jobs): each write is a rename
of a whole file, and the temporary folders of writers that were killed are removed on the next
write (``atomic.clean_stale``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from . import atomic, paths


class CorruptResult(RuntimeError):
    """A stored result file cannot be read."""


def spec_key(payload: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable spec."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
            frame = pd.read_parquet(path)
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
        folder = self.folder(payload)
        atomic.clean_stale(folder)
        spec_file = folder / "spec.json"
        if not spec_file.is_file():
            atomic.write_text(spec_file, json.dumps(payload, sort_keys=True, indent=1, default=str))
        target = self.path(payload, seed)
        with atomic.atomic_path(target) as tmp:
            frame.to_parquet(tmp, index=False)
        return target
