"""Hidden-state features for linear probes, extracted once and cached on disk.

Keyed like results (model identity, dataset, prompt format, layers): one ``.npz`` file per
key under ``results/<dataset>/features/``. Each call extracts only the items the cache does
not have yet, so after the first extraction every probe run, hardness measure and seed
reuses the same features. Every item's features are stored with a digest of the text they were
extracted from (prompt and choices): an item whose text has changed since (a changed source
file) is extracted again rather than served stale.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from e2h_utils import atomic, paths
from e2h_utils.data import prompts
from e2h_utils.engine import scoring
from e2h_utils.keys import CorruptResult, spec_key

FEATURE_VERSION = 3  # 3: the authors' prompts and middle layer


def default_layers(model: Any) -> tuple[int, int]:
    """The authors' middle and last layer, as indices into ``hidden_states`` (which counts the
    embeddings as layer 0): ``LM_utils.get_last_token_hidden_states`` takes
    ``ceil(num_states / 2)`` and ``num_states - 1`` of the ``num_hidden_layers + 1`` states
    (Llama-2-70b: 41 and 80; SmolLM2-135M: 16 and 30)."""
    n = int(model.config.num_hidden_layers)
    return (math.ceil((n + 1) / 2), n)


class FeatureCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.results_dir()

    def path(self, payload: dict[str, Any]) -> Path:
        return self.root / str(payload["dataset"]) / "features" / f"{spec_key(payload)}.npz"

    def load(self, payload: dict[str, Any]) -> dict[str, tuple[str, np.ndarray]]:
        """``{id: (text digest, features)}`` of the cached items."""
        path = self.path(payload)
        if not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as stored:
                ids, digests, offsets, data = stored["ids"], stored["digests"], stored["offsets"], stored["data"]
        except Exception as error:
            raise CorruptResult(f"cached features {path} cannot be read ({error}); delete that file to "
                                "re-extract them") from error
        return {str(i): (str(digests[k]), data[offsets[k]:offsets[k + 1]]) for k, i in enumerate(ids)}

    def save(self, payload: dict[str, Any], features: dict[str, tuple[str, np.ndarray]]) -> Path:
        ids = sorted(features)
        sizes = [len(features[i][1]) for i in ids]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        data = np.concatenate([features[i][1] for i in ids]).astype(np.float32)
        target = self.path(payload)
        atomic.clean_stale(target.parent)
        with atomic.atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, ids=np.array(ids), digests=np.array([features[i][0] for i in ids]),
                         offsets=offsets, data=data)
        return target

    def merge(self, payload: dict[str, Any], new: dict[str, tuple[str, np.ndarray]]) -> Path:
        """Add ``new`` items to the stored file under an exclusive lock: the file is read again inside
        the lock, so two processes extracting different items of one cache both keep theirs (a plain
        ``save`` of what one process loaded earlier would drop what the other wrote meanwhile)."""
        target = self.path(payload)
        with atomic.locked(target.with_name(target.name + ".lock")):
            stored = self.load(payload)
            stored.update(new)
            return self.save(payload, stored)


def text_digest(prompt: str, continuations: Sequence[str]) -> str:
    """What an item's features are extracted from: its prompt and its choices."""
    return hashlib.sha256("\x00".join([prompt, *continuations]).encode()).hexdigest()[:16]


def features_for(lm: Any, rows: pd.DataFrame, dataset: str, *, prompt_format: str | None = None,
                 layers: Sequence[int] | None = None, cache: FeatureCache | None = None,
                 progress: bool = True) -> dict[str, np.ndarray]:
    """Features (choices x features) of every row, by id; extracts only what is not cached."""
    fmt = prompts.get_format(prompt_format, dataset)
    layers = tuple(int(x) for x in (layers or default_layers(lm.model)))
    payload = {"kind": "hidden_states", "dataset": dataset, "prompt_format": fmt.name, "layers": list(layers),
               "model_identity": lm.identity, "version": FEATURE_VERSION}
    records = rows.drop_duplicates("id").to_dict("records")
    texts = {r["id"]: (fmt.prompt(r), fmt.continuations(r)) for r in records}
    have = cached_states(lm, payload, texts, layers, cache=cache, progress=progress, desc=f"{dataset} hidden states")
    return {i: have[i] for i in rows["id"]}


def cached_states(lm: Any, payload: dict[str, Any], texts: Mapping[str, tuple[str, Sequence[str]]],
                  layers: Sequence[int], *, cache: FeatureCache | None = None, progress: bool = True,
                  desc: str = "hidden states") -> dict[str, np.ndarray]:
    """Hidden states (choices x features) of ``texts`` (``{id: (prompt, choices)}``) at the last
    token of prompt + each choice, from ``layers``, cached under ``payload`` (which must hold the
    dataset, the model identity and the layers); only ids missing from the cache, or whose text
    changed, are extracted."""
    cache = cache or FeatureCache()
    have = cache.load(payload)
    digests = {i: text_digest(prompt, choices) for i, (prompt, choices) in texts.items()}
    missing = [i for i in texts if i not in have or have[i][0] != digests[i]]
    if missing:
        items = [scoring.make_item(lm.tokenizer, texts[i][0], texts[i][1]) for i in missing]
        extracted = scoring.choice_hidden_states(lm.model, items, tuple(layers), pad_id=lm.tokenizer.pad_token_id,
                                                 prefix_ids=lm.bos_ids(), progress=progress, desc=desc,
                                                 **lm.budget.kwargs())
        new = {i: (digests[i], f) for i, f in zip(missing, extracted)}
        have.update(new)
        cache.merge(payload, new)
    return {i: have[i][1] for i in texts}
