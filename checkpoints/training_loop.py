"""Pieces every training recipe here shares: reproducible settings, batch order, schedule and optimiser."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from transformers import set_seed


@contextmanager
def deterministic(threads: int, seed: int) -> Iterator[None]:
    """Seeded, deterministic kernels on a fixed number of threads; the process's settings come back after."""
    previous_threads, strict = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)  # float sums are split across threads: another count, other bits
    torch.use_deterministic_algorithms(True)
    set_seed(seed)  # python, numpy and torch
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(strict)


def batches(count: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices of full batches, reshuffled every epoch, forever."""
    while True:
        order = rng.permutation(count)
        for start in range(0, count - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def warmup_cosine(step: int, warmup_steps: int, steps: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / (steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))


def adamw(
    modules: Iterable[tuple[torch.nn.Module, float]], learning_rate: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW with CLIP's betas over (module, learning-rate scale) pairs; gains, biases and scalars (vectors and
    below) are not decayed."""
    groups = []
    for module, scale in modules:
        parameters = list(module.parameters())
        decayed = {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay}
        kept = {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0}
        groups += [{**group, "lr": learning_rate * scale} for group in (decayed, kept)]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.98), eps=1e-6)


def scheduled(optimiser: torch.optim.Optimizer, warmup_steps: int, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: warmup_cosine(step, warmup_steps, steps))
