"""The inference engine's shared pieces: padding, the batch packer and the prefix key/value cache.

Scoring, hidden states, generation and QLoRA's losses all use these, so there is one way to pad
a batch, one way to group rows into forward passes under a token budget, and one way to reuse a
shared prefix (BOS and the in-context examples):

- ``pad(sequences, pad_id, side)``: token ids and attention mask, padded right or left;
- ``pack(lengths, budget, max_rows, kv_budget, context)``: row indices grouped so that rows x
  longest row fits ``budget`` tokens (and rows x (``context`` + longest) fits ``kv_budget``
  cached tokens), longest rows first;
- ``prefix_layers(decoder, prefix_ids)``: the prefix encoded once, its keys and values per layer;
  ``expand(layers, rows)``: a cache holding that prefix for ``rows`` rows (views, no copies until
  a row writes after it); ``buffered(layers, room)``: a cache that writes new tokens in place
  (generation: no re-copying of the whole cache at every step).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

Layers = list[tuple[torch.Tensor, torch.Tensor]]


def pad(sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of shape (rows, longest), padded on ``side`` with ``pad_id`` (mask 0 there)."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        start = 0 if side == "right" else width - len(seq)
        ids[row, start:start + len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, start:start + len(seq)] = 1
    return ids, mask


def pack(lengths: Sequence[int], budget: int, max_rows: int, kv_budget: int | None = None,
         context: int = 0) -> list[list[int]]:
    """Row indices grouped into forward passes, longest rows first: a group grows while its rows
    x its longest row stay within ``budget`` tokens, its rows x (``context`` + longest) within
    ``kv_budget`` cached tokens (when given) and it has at most ``max_rows`` rows."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        rows = len(current) + 1
        full = (rows * longest > budget or rows > max_rows
                or (kv_budget is not None and rows * (context + longest) > kv_budget))
        if current and full:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def prefix_layers(decoder: Any, prefix_ids: Sequence[int], device: torch.device) -> Layers:
    """The prefix encoded once: (keys, values) of every layer, one row each."""
    ids = torch.tensor([list(prefix_ids)], device=device)
    cache = decoder(input_ids=ids, use_cache=True).past_key_values
    return [(layer.keys, layer.values) for layer in cache.layers]


def expand(layers: Layers | None, rows: int) -> DynamicCache | None:
    """A cache holding the prefix ``layers`` for ``rows`` rows (None when there is no prefix)."""
    if not layers:
        return None
    return DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in layers])


class _BufferLayer(DynamicLayer):
    """One layer's key/value cache in a buffer allocated once: each step writes its new token
    in place and attention reads a view of the filled part. (The default layer concatenates,
    copying the whole cache, the in-context prefix included, at every step: on a CPU that copy
    took more time than the model's arithmetic.)"""

    keys: torch.Tensor  # always set here (``_view``); the base class also allows None
    values: torch.Tensor

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        super().__init__()
        rows, heads, length, dim = keys.shape
        self._k = keys.new_empty((rows, heads, length + room, dim))
        self._v = values.new_empty((rows, heads, length + room, dim))
        self._k[:, :, :length] = keys
        self._v[:, :, :length] = values
        self.length = length
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self._view()

    def _view(self) -> None:
        self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        end = self.length + key_states.shape[-2]
        if end > self._k.shape[2]:  # more tokens than the room asked for: grow
            grown = (*self._k.shape[:2], max(end, 2 * self._k.shape[2]), self._k.shape[3])
            k, v = self._k.new_empty(grown), self._v.new_empty(grown)
            k[:, :, :self.length], v[:, :, :self.length] = self.keys, self.values
            self._k, self._v = k, v
        self._k[:, :, self.length:end] = key_states
        self._v[:, :, self.length:end] = value_states
        self.length = end
        self._view()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows ``indices`` (rows that finished generating are dropped)."""
        self._k = self._k.index_select(0, indices.to(self._k.device))
        self._v = self._v.index_select(0, indices.to(self._v.device))
        self._view()


def buffered(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], room: int) -> DynamicCache:
    """A cache holding ``layers`` (keys and values per layer), with room for ``room`` more tokens
    per row written in place."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = None
    cache.layers = [_BufferLayer(k, v, room) for k, v in layers]
    return cache
