"""A notebook's output folder: each table and figure written there once, and recorded.

``out = outputs.Outputs(output_dir)`` in a notebook's setup cell; ``out.table(frame, "claims")``
writes ``tables/claims.csv`` and ``.tex``, ``out.figure(fig, "sgr")`` writes ``figures/sgr.pdf`` and
``.png`` (through the style helper), ``out.parquet(frame, "samples")`` an item-level table. Each
returns what it was given, so that a cell can write and show in one line, and remembers the files,
which the provenance log lists (``provenance.Log.write(out)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, TypeVar

import pandas as pd
from matplotlib.figure import Figure

from e2h_utils.analysis import plots, tables

T = TypeVar("T", pd.DataFrame, Figure)


class Outputs:
    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.files: list[Path] = []

    def table(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """``tables/<name>.csv`` and ``.tex``."""
        self.files += tables.write_table(frame, self.folder / "tables" / name)
        return frame

    def tables(self, frames: Mapping[str, pd.DataFrame]) -> None:
        """Several tables, one per name."""
        for name, frame in frames.items():
            self.table(frame, name)

    def parquet(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """``tables/<name>.parquet``: an item-level table too large for CSV."""
        self.files += tables.write_parquet(frame, self.folder / "tables" / name)
        return frame

    def figure(self, fig: Figure, name: str) -> Figure:
        """``figures/<name>.pdf`` and ``.png``."""
        self.files += plots.save_figure(fig, self.folder / "figures" / name)
        return fig

    def figures(self, figs: Mapping[str, Figure]) -> list[Figure]:
        """Several figures, one per name; returns them in order (``display(*out.figures(...))``)."""
        return [self.figure(fig, name) for name, fig in figs.items()]
