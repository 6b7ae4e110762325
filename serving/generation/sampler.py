"""Next-token selection that reproduces Hugging Face ``generate``: same logits processors, same order, same sampling.

The processors are re-implemented with plain torch ops (transformers is not needed at run time); the unit tests
check them against ``transformers.generation.logits_process``.
"""

from __future__ import annotations

import math
import os

import torch

from serving.generation.params import SamplingParams


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for one request, on the device its logits live on; seeded from OS entropy when seed is None."""
    generator = torch.Generator(device=device)
    # 63 bits keeps a random seed inside the range a client may send, so a request can be replayed.
    generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    return generator


def process_logits(logits: torch.Tensor, params: SamplingParams, previous_ids: torch.Tensor) -> torch.Tensor:
    """One sequence's next-token logits (1-D) after HF's processors, in HF's order. Never modifies ``logits``."""
    scores = logits.to(torch.float32)
    if params.repetition_penalty != 1.0:
        scores = _tame_overflow(scores, _penalize_repetition(scores, previous_ids, params.repetition_penalty))
    if params.greedy:
        return scores
    scores = _tame_overflow(scores, scores / params.temperature)
    if params.top_k > 0:
        scores = _keep_top_k(scores, params.top_k)
    if params.top_p < 1.0:
        scores = _keep_top_p(scores, params.top_p)
    return scores


def select_tokens(
    logits: torch.Tensor,
    params: list[SamplingParams],
    previous_ids: list[torch.Tensor],
    generators: list[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row of raw next-token logits [B, V].

    Returns the token ids (int64 [B]) and each token's log-probability under the raw model distribution
    (float32 [B]). ``generators`` must live on the logits' device (see ``make_generator``).
    """
    if logits.dim() != 2 or not len(params) == len(previous_ids) == len(generators) == logits.shape[0]:
        raise ValueError(
            f"select_tokens: expected logits [B, V] and B params, ids and generators, got logits of shape "
            f"{list(logits.shape)} and {len(params)}, {len(previous_ids)}, {len(generators)}"
        )
    scores = logits.to(torch.float32)
    # One vectorised argmax already answers every plain greedy row; only the other rows are redone one by one.
    tokens = scores.argmax(dim=-1)
    for row, (row_params, ids, generator) in enumerate(zip(params, previous_ids, generators, strict=True)):
        if not (row_params.greedy and row_params.repetition_penalty == 1.0):
            tokens[row] = _select_one(scores[row], row_params, ids, generator)
    logprobs = scores.gather(1, tokens[:, None]).squeeze(1) - torch.logsumexp(scores, dim=-1)
    return tokens, logprobs


def _select_one(
    scores: torch.Tensor, params: SamplingParams, previous_ids: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    processed = process_logits(scores, params, previous_ids)
    if params.greedy:
        return processed.argmax()
    probs = processed.softmax(dim=-1)
    if not bool(torch.isfinite(probs).all()):
        # A vanishing temperature can send every score to -inf; its limit is the most likely token.
        return scores.argmax()
    return torch.multinomial(probs, 1, generator=generator)[0]


def _penalize_repetition(scores: torch.Tensor, previous_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """HF's RepetitionPenaltyLogitsProcessor: divide positive scores of seen tokens, multiply negative ones."""
    vocab_size = scores.shape[-1]
    ids = previous_ids.to(device=scores.device, dtype=torch.long).reshape(-1)
    # Ids the lm_head cannot produce are parked on one padded slot that is dropped afterwards (as HF does).
    ids = torch.where((ids < 0) | (ids >= vocab_size), vocab_size, ids)
    padded = torch.nn.functional.pad(scores, (0, 1))
    seen = padded.gather(0, ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return padded.scatter(0, ids, seen)[:vocab_size]


def _tame_overflow(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """``after`` as is, unless dividing by a vanishing temperature or penalty overflowed some scores to +inf.

    Softmax turns +inf into NaN (HF would fail); the limit of such a division is a point mass on the largest of the
    overflowed scores, which is what this returns then. The check stays on the device: no host sync.
    """
    overflowed = torch.isposinf(after) & torch.isfinite(before)
    top = torch.where(overflowed, before, -math.inf).argmax()
    point_mass = torch.full_like(after, -math.inf).scatter(0, top[None], 0.0)
    return torch.where(overflowed.any(), point_mass, after)


def _keep_top_k(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    """HF's TopKLogitsWarper: tokens tied with the k-th best are kept too."""
    threshold = torch.topk(scores, min(top_k, scores.shape[-1])).values[-1]
    return scores.masked_fill(scores < threshold, -math.inf)


def _keep_top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """HF's TopPLogitsWarper: drop the least likely tokens whose total probability is at most 1 - top_p."""
    sorted_scores, sorted_indices = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[-1] = False  # the most likely token always stays
    remove = remove_sorted.scatter(0, sorted_indices, remove_sorted)
    return scores.masked_fill(remove, -math.inf)
