"""The running batch's KV cache, left-padded so every sequence's newest token is in the last column.

In-flight batching needs three operations Hugging Face's cache does not offer: merge newly prefilled
sequences into the running batch (pad the shorter side on the left), drop the rows of finished
sequences, and trim leading columns that are padding in every remaining row. The attention mask marks
padding with 0, so padded key/value slots never contribute to attention.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

SPARE_COLUMNS = 64  # room a layer's buffer keeps for the tokens to come, so most steps copy nothing


def new_cache(config: Any) -> DynamicCache:
    """A DynamicCache for ``config`` whose layers append into spare columns (``SpareColumnsLayer``)."""
    cache = DynamicCache(config=config)
    cache.layers = [SpareColumnsLayer() for _ in cache.layers]
    return cache


class SpareColumnsLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are the front of a buffer with spare columns behind them.

    DynamicLayer concatenates each step's new column onto the whole cache, a copy of every key and value the
    batch holds: a bench-llava decode step at batch 8 (about 600 tokens a row, two threads) took 33-43 ms with
    it and 28-29 ms without. Here a step writes one column in place; the buffer is copied only when it is full,
    or when KVBatch has put other tensors in ``keys`` and ``values`` (a merge, a dropped row, trimmed columns).
    """

    def __init__(self) -> None:
        super().__init__()
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.key_buffer = _append(self.keys, self.key_buffer, key_states)
        self.values, self.value_buffer = _append(self.values, self.value_buffer, value_states)
        return self.keys, self.values


def _append(front: torch.Tensor, buffer: torch.Tensor | None, new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``front`` then ``new`` along the sequence axis (-2), as a view of ``buffer`` when ``front`` is its
    front and there is room; else a new buffer with ``SPARE_COLUMNS`` to spare."""
    used = front.shape[-2] if front.numel() else 0
    needed = used + new.shape[-2]
    fits = (
        buffer is not None
        and used
        and front.data_ptr() == buffer.data_ptr()
        and front.stride() == buffer.stride()
        and front.shape[:-2] == buffer.shape[:-2]
        and needed <= buffer.shape[-2]
    )
    if not fits:
        buffer = new.new_empty((*new.shape[:-2], needed + SPARE_COLUMNS, new.shape[-1]))
        if used:
            buffer[..., :used, :] = front
    assert buffer is not None
    buffer[..., used:needed, :] = new
    return buffer[..., :needed, :], buffer


def _left_pad(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [columns, 0]
    return F.pad(tensor, pad)


class KVBatch:
    """Rows are sequences in the order the engine keeps them; ``mask`` is [rows, columns] of 0/1."""

    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        return 0 if self.mask is None else self.mask.shape[0]

    @property
    def columns(self) -> int:
        return 0 if self.mask is None else self.mask.shape[1]

    def merge(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        """Append another batch's rows (a fresh prefill) below this batch's rows."""
        if self.cache is None or self.mask is None:
            self.cache, self.mask = cache, mask
            return
        width = max(self.columns, mask.shape[1])
        for ours, theirs in zip(self.cache.layers, cache.layers, strict=True):
            ours.keys = torch.cat(
                [_left_pad(ours.keys, width - self.columns, -2), _left_pad(theirs.keys, width - mask.shape[1], -2)]
            )
            ours.values = torch.cat(
                [
                    _left_pad(ours.values, width - self.columns, -2),
                    _left_pad(theirs.values, width - mask.shape[1], -2),
                ]
            )
        self.mask = torch.cat(
            [_left_pad(self.mask, width - self.columns, 1), _left_pad(mask, width - mask.shape[1], 1)]
        )

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order); an empty list empties the batch."""
        if self.cache is None or self.mask is None:
            return
        if not rows:
            self.cache, self.mask = None, None
            return
        index = torch.tensor(rows, device=self.mask.device)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)
        self.mask = self.mask.index_select(0, index)
        self._trim()

    def _trim(self) -> None:
        """Drop leading columns that no remaining row uses (after the longest sequence left)."""
        assert self.cache is not None and self.mask is not None
        used = self.mask.any(dim=0)
        first = int(used.to(torch.int8).argmax())
        if first == 0:
            return
        for layer in self.cache.layers:
            layer.keys = layer.keys[:, :, first:]
            layer.values = layer.values[:, :, first:]
        self.mask = self.mask[:, first:]

    def extend_mask(self) -> torch.Tensor:
        """The mask for a decode step: one more real column for the token each row feeds."""
        assert self.mask is not None
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        return self.mask

    def next_positions(self) -> torch.Tensor:
        """Each row's position for its next token: the number of real tokens it already holds."""
        assert self.mask is not None
        return self.mask.sum(dim=1, keepdim=True)
