"""Where a notebook's numbers came from, written beside its outputs (``provenance.json``).

Every notebook starts a ``Log`` in its setup cell, adds each experiment runner when it is done
with it (its model's identity, every run with its seconds and how many seeds it computed rather
than read from the store), and writes the log in its last cell (collapsed, out of the reading
path) with the files it wrote and its wall time. ``make reproduce`` adds its own
``fingerprint.json`` (what the notebook's inputs were).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Iterable

from e2h_utils.atomic import write_text

FILE = "provenance.json"


class Log:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.models: dict[str, dict[str, str]] = {}
        self.runs: list[dict[str, Any]] = []

    def add_model(self, lm: Any) -> None:
        self.models[lm.spec.name] = {"identity": lm.identity, "path": str(lm.path), "device": str(lm.device)}

    def add(self, runner: Any) -> None:
        """A runner's model and timings (call it before the runner and its model are freed)."""
        self.add_model(runner.lm)
        self.runs += [{"model": runner.lm.spec.name, "run": t.label, "seconds": round(t.seconds, 2),
                       "seeds computed": t.computed} for t in runner.timings]
        runner.timings.clear()

    def write(self, output_dir: Path | str, files: Iterable[Path] = (), **extra: Any) -> str:
        """Write ``<output_dir>/provenance.json``; returns one line for the notebook's last cell."""
        record = {"models": self.models, "seconds": round(time.perf_counter() - self.started, 1), "runs": self.runs,
                  "runs computed": sum(1 for run in self.runs if run["seeds computed"]),
                  "files": sorted(str(Path(f)) for f in files), "python": platform.python_version(), **extra}
        path = Path(output_dir) / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(record, indent=1, default=str) + "\n")
        return (f"{record['seconds']:.0f} s; {len(self.runs)} runs, {record['runs computed']} computed now (the rest "
                f"read from results/); {len(record['files'])} files written; details in {path}")
