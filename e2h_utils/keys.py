"""Keys of stored things: a short, stable hash of what a result means (its canonical spec).

The result store (``experiments.store``) and the hidden-state cache (``methods.features``) both
name their files by ``spec_key`` of a JSON-serialisable payload, and both raise ``CorruptResult``
for a file they cannot read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


class CorruptResult(RuntimeError):
    """A stored result file cannot be read."""


def spec_key(payload: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable spec (keys sorted)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
