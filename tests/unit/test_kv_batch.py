"""KV cache layers that append into spare columns hold exactly what DynamicLayer's concatenation holds, also
through KVBatch's merges, dropped rows and trimmed columns."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import DynamicCache, LlamaConfig
from transformers.cache_utils import DynamicLayer

from serving.generation.kv_batch import SPARE_COLUMNS, KVBatch, SpareColumnsLayer, new_cache

CONFIG = LlamaConfig(num_hidden_layers=2, hidden_size=8, num_attention_heads=2, num_key_value_heads=2)


def states(rows: int, columns: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 2, columns, 4, generator=generator), torch.randn(rows, 2, columns, 4, generator=generator)


def test_appended_columns_equal_concatenation_and_reuse_the_buffer_until_it_is_full() -> None:
    spare, plain = SpareColumnsLayer(), DynamicLayer()
    for step in range(SPARE_COLUMNS + 3):
        keys, values = states(3, 5 if step == 0 else 1, seed=step)
        spare_keys, spare_values = spare.update(keys, values)
        plain_keys, plain_values = plain.update(keys, values)
        assert torch.equal(spare_keys, plain_keys) and torch.equal(spare_values, plain_values)
        if step == 0:
            buffer = spare.key_buffer
        elif step < SPARE_COLUMNS:  # the first allocation left SPARE_COLUMNS columns to spare
            assert spare.key_buffer is buffer
    assert spare.key_buffer is not buffer  # full: a bigger one was made


def run_batch(make_cache: Callable[[], DynamicCache]) -> KVBatch:
    """Prefill two rows, decode 3 steps, merge a longer row, decode, drop it (trims 3 columns), decode."""

    def fill(cache: DynamicCache, rows: int, columns: int, seed: int) -> None:
        for index, layer in enumerate(cache.layers):
            layer.update(*states(rows, columns, seed=seed + index))

    def decode(batch: KVBatch, seed: int) -> None:
        for step in range(3):
            batch.extend_mask()
            assert batch.cache is not None
            fill(batch.cache, batch.rows, 1, seed=seed + 10 * step)

    batch = KVBatch()
    first = make_cache()
    fill(first, rows=2, columns=6, seed=0)
    batch.merge(first, torch.ones(2, 6, dtype=torch.long))
    decode(batch, seed=100)
    second = make_cache()
    fill(second, rows=1, columns=12, seed=200)
    batch.merge(second, torch.ones(1, 12, dtype=torch.long))
    decode(batch, seed=300)
    batch.keep([0, 1])
    decode(batch, seed=400)
    return batch


def test_a_kv_batch_of_spare_column_layers_matches_one_of_dynamic_layers_through_merge_keep_and_trim() -> None:
    spare, plain = run_batch(lambda: new_cache(CONFIG)), run_batch(lambda: DynamicCache(config=CONFIG))
    assert spare.cache is not None and plain.cache is not None
    assert {type(layer) for layer in spare.cache.layers} == {SpareColumnsLayer}
    assert torch.equal(spare.mask, plain.mask) and spare.columns == 12 + 3 + 3 - 3
    for ours, theirs in zip(spare.cache.layers, plain.cache.layers, strict=True):
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
