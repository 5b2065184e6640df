"""Where a notebook's numbers came from, written beside its outputs (``provenance.json``).

Every notebook starts a ``Log`` in its setup cell, adds each experiment runner when it is done
with it (its model's identity, every run with its seconds and how many seeds it computed rather
than read from the store), and writes the log in its last cell (collapsed, out of the reading
path) with the files it wrote (``outputs.Outputs``), its wall time and the machine it ran on (``host``: wall times from
two machines compare only with their speeds beside them). ``make reproduce`` adds its own
``fingerprint.json`` (what the notebook's inputs were).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable

from e2h_utils.analysis.outputs import Outputs
from e2h_utils.atomic import write_text

FILE = "provenance.json"


class Log:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.models: dict[str, dict[str, str]] = {}
        self.runs: list[dict[str, Any]] = []
        self._status: dict[str, tuple[str, Any]] = {}  # model -> (identity, its LoadStatus)

    def add_model(self, lm: Any) -> None:
        """Record a model: where it was loaded from and onto which device, or that it was never loaded
        (every result it was asked for was stored), as it stands when the record is written."""
        self._status[lm.spec.name] = (lm.identity, lm.status)

    def add(self, runner: Any) -> None:
        """A runner's model and timings (call it before the runner and its model are freed)."""
        self.add_model(runner.lm)
        self.runs += [{"model": runner.lm.spec.name, "run": t.label, "seconds": round(t.seconds, 2),
                       "seeds computed": t.computed} for t in runner.timings]
        runner.timings.clear()

    def write(self, output_dir: Outputs | Path | str, files: Iterable[Path] = (), **extra: Any) -> str:
        """Write ``<output_dir>/provenance.json``; returns one line for the notebook's last cell.
        ``output_dir`` may be the notebook's ``outputs.Outputs``: its folder, and the files it wrote."""
        if isinstance(output_dir, Outputs):
            files = [*output_dir.files, *files]
            output_dir = output_dir.folder
        for name, (identity, status) in self._status.items():
            self.models[name] = {"identity": identity, "path": status.path or "not loaded (results read back)",
                                 "device": status.device or "none", "architecture": status.architecture or "none"}
        record = {"models": self.models, "seconds": round(time.perf_counter() - self.started, 1), "runs": self.runs,
                  "runs computed": sum(1 for run in self.runs if run["seeds computed"]),
                  "files": sorted(str(Path(f)) for f in files), "python": platform.python_version(), "host": host(),
                  **extra}
        path = Path(output_dir) / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(record, indent=1, default=str) + "\n")
        return (f"{record['seconds']:.0f} s; {len(self.runs)} runs, {record['runs computed']} computed now (the rest "
                f"read from results/); {len(record['files'])} files written; details in {path}")


def host() -> dict[str, Any]:
    """The machine, as far as wall times depend on it: CPU model, cores, torch's threads, the float32
    matrix-product rate it reaches (``matmul_gflops`` on 1024 x 1024 matrices: the same
    2-core machine type has been measured at ~90 and ~380), and the GPU, if any."""
    import torch

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "matmul_gflops": round(matmul_gflops(1024), 1),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The float32 rate of this CPU on a ``size`` x ``size`` matrix product, best of ``repeats``
    (GFLOP/s; also the benchmarks' arithmetic floor)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
