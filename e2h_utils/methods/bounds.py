"""Each method option declares its type and range where it is defined (``bounded``), and the option's
dataclass checks them when it is built (``check``): the YAML check (``pipeline.validate``, which builds
every ``method_options`` entry) and any code that makes a config get the same refusal, naming the
option, its value and its range. A NaN or an infinity is never in range, and an integer option
always has a ceiling: its own (a count of epochs, refits or updates far above any recipe's, so a typo
of 10^9 is refused instead of running for months) or, when it declares none, ``INT32_MAX``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any


FLOAT32_MAX = 3.4028234663852886e38
INT32_MAX = 2**31 - 1  # an integer option's ceiling when it declares none (torch and numpy index in 32 bits)


@dataclass(frozen=True)
class Bounds:
    """An option's type (``integer`` or a real number) and its range (``low``/``high``, open or closed)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        def show(x: float) -> str:
            return str(int(x)) if self.integer else f"{x:g}"

        parts = ([f"{'>' if self.open_low else '>='} {show(self.low)}"] if self.low is not None else []) + \
                ([f"{'<' if self.open_high else '<='} {show(self.high)}"] if self.high is not None else [])
        return kind + (f" {' and '.join(parts)}" if parts else "")

    def check(self, name: str, value: Any) -> None:
        wanted = numbers.Integral if self.integer else numbers.Real
        ok = not isinstance(value, bool) and isinstance(value, wanted) and math.isfinite(float(value))
        if ok and self.low is not None:
            ok = value > self.low if self.open_low else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.open_high else value <= self.high
        if not ok:
            raise ValueError(f"{name} must be {self.describe()}, not {value!r}")
        if not self.integer and abs(float(value)) > FLOAT32_MAX:  # torch computes options in 32 bits: inf there
            raise ValueError(f"{name} must be {self.describe()} that a 32-bit float holds (at most {FLOAT32_MAX:.3g}), "
                             f"not {value!r}")


def bounded(default: Any, low: float | None = None, high: float | None = None, *, open_low: bool = False,
            open_high: bool = False, integer: bool = False) -> Any:
    """A dataclass field with its range (``check`` reads it); an integer's ``high`` is ``INT32_MAX``
    unless given."""
    if integer and high is None:
        high = INT32_MAX
    return field(default=default, metadata={"bounds": Bounds(low, high, open_low, open_high, integer)})


def check(config: Any) -> None:
    """Every bounded field of ``config`` in its range (a ``ValueError`` naming the first that is not)."""
    for item in fields(config):
        bounds = item.metadata.get("bounds")
        if bounds is not None:
            bounds.check(item.name, getattr(config, item.name))
