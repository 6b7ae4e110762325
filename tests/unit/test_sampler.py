"""serving.generation.sampler: token selection matches Hugging Face generate, and seeds make it reproducible."""

from __future__ import annotations

import math

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from serving.generation.params import SamplingParams
from serving.generation.sampler import make_generator, process_logits, select_tokens

VOCAB = 64
NO_IDS = torch.empty(0, dtype=torch.long)


def random_logits(seed: int, rows: int = 1, vocab: int = VOCAB) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def hf_process(logits: torch.Tensor, params: SamplingParams, previous_ids: torch.Tensor) -> torch.Tensor:
    """The processors HF generate builds for these params, in its order, on a batch of one."""
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if not params.greedy:
        processors.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            processors.append(TopKLogitsWarper(params.top_k, min_tokens_to_keep=1))
        if params.top_p < 1.0:
            processors.append(TopPLogitsWarper(params.top_p, min_tokens_to_keep=1))
    return processors(previous_ids[None], logits[None].clone())[0]


def assert_same_processing(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    finite = torch.isfinite(theirs)
    torch.testing.assert_close(ours[finite], theirs[finite])


def select_one(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator, previous_ids: torch.Tensor = NO_IDS
) -> int:
    tokens, _ = select_tokens(logits[None], [params], [previous_ids], [generator])
    return int(tokens[0])


def draws(logits: torch.Tensor, params: SamplingParams, seed: int, count: int = 50) -> list[int]:
    generator = make_generator(seed)
    return [select_one(logits, params, generator) for _ in range(count)]


# make_generator


def test_make_generator_with_a_seed_is_seeded_with_it() -> None:
    assert make_generator(1234).initial_seed() == 1234


def test_make_generator_without_a_seed_draws_different_seeds_within_63_bits() -> None:
    seeds = {make_generator(None).initial_seed() for _ in range(4)}
    assert len(seeds) == 4
    assert all(0 <= seed < 2**63 for seed in seeds)


def test_make_generator_places_the_generator_on_the_requested_device() -> None:
    assert make_generator(0, torch.device("cpu")).device.type == "cpu"


# process_logits against the HF processors

HF_CASES = [
    SamplingParams(repetition_penalty=1.3),
    SamplingParams(repetition_penalty=0.7),
    SamplingParams(temperature=0.7),
    SamplingParams(temperature=1.0, top_k=5),
    SamplingParams(temperature=1.3, top_p=0.9),
    SamplingParams(temperature=0.8, top_k=20, top_p=0.5, repetition_penalty=1.2),
    SamplingParams(temperature=1.0, top_k=VOCAB * 4),  # larger than the vocabulary
    SamplingParams(temperature=1.0, top_k=1),
    SamplingParams(temperature=2.0, top_p=1e-6),
    SamplingParams(temperature=0.5, top_p=0.999),
]


@pytest.mark.parametrize("params", HF_CASES, ids=repr)
@pytest.mark.parametrize("seed", range(5))
def test_process_logits_matches_the_hf_processors_on_random_logits(params: SamplingParams, seed: int) -> None:
    logits = random_logits(seed)[0]
    previous_ids = torch.randint(0, VOCAB, (12,), generator=torch.Generator().manual_seed(seed + 100))
    assert_same_processing(process_logits(logits, params, previous_ids), hf_process(logits, params, previous_ids))


@pytest.mark.parametrize(
    "params",
    [SamplingParams(temperature=1.0, top_k=4), SamplingParams(temperature=1.0, top_p=0.7)],
    ids=repr,
)
def test_process_logits_matches_the_hf_processors_on_tied_logits(params: SamplingParams) -> None:
    # Ties straddle both cut-offs: HF keeps every token tied with the k-th best, and top-p follows its sort order.
    logits = torch.tensor([2.0, 1.0, 2.0, 1.0, 1.0, 0.0, 2.0, 1.0, -1.0, 1.0])
    ours = process_logits(logits, params, NO_IDS)
    assert_same_processing(ours, hf_process(logits, params, NO_IDS))


def test_top_k_keeps_every_token_tied_with_the_kth_best() -> None:
    logits = torch.tensor([3.0, 2.0, 2.0, 2.0, 1.0])
    kept = torch.isfinite(process_logits(logits, SamplingParams(temperature=1.0, top_k=2), NO_IDS))
    assert kept.tolist() == [True, True, True, True, False]


def test_repetition_penalty_matches_hf_with_repeated_and_out_of_vocabulary_ids() -> None:
    logits = random_logits(7)[0]
    previous_ids = torch.tensor([3, 3, 9, VOCAB + 5, 9, 0])
    params = SamplingParams(repetition_penalty=1.5)
    assert_same_processing(process_logits(logits, params, previous_ids), hf_process(logits, params, previous_ids))


def test_repetition_penalty_divides_positive_and_multiplies_negative_scores_of_seen_tokens_only() -> None:
    logits = torch.tensor([2.0, -2.0, 2.0, -2.0])
    processed = process_logits(logits, SamplingParams(repetition_penalty=2.0), torch.tensor([0, 1]))
    assert processed.tolist() == [1.0, -4.0, 2.0, -2.0]


def test_a_repetition_penalty_of_one_is_the_identity() -> None:
    logits = random_logits(3)[0]
    assert torch.equal(process_logits(logits, SamplingParams(), torch.arange(VOCAB)), logits)


def test_process_logits_leaves_its_input_untouched() -> None:
    logits = random_logits(4)[0]
    original = logits.clone()
    process_logits(logits, SamplingParams(temperature=0.5, top_k=3, top_p=0.5, repetition_penalty=2.0), torch.arange(8))
    assert torch.equal(logits, original)


def test_greedy_processing_ignores_temperature_top_k_and_top_p_fields() -> None:
    logits = random_logits(5)[0]
    assert torch.equal(process_logits(logits, SamplingParams(top_k=1, top_p=0.1), NO_IDS), logits)


def test_process_logits_returns_float32_for_half_precision_logits() -> None:
    assert process_logits(random_logits(6)[0].half(), SamplingParams(temperature=1.0), NO_IDS).dtype == torch.float32


def test_a_vanishing_temperature_samples_the_top_token_instead_of_producing_nan() -> None:
    # 2 / 1e-40 and 5 / 1e-40 both overflow float32; the limit is still the top token, never a tie or NaN.
    logits = torch.tensor([1.0, 5.0, 2.0, -math.inf])
    params = SamplingParams(temperature=1e-40)
    assert torch.isfinite(process_logits(logits, params, NO_IDS)).tolist() == [False, True, False, False]
    assert set(draws(logits, params, 0, count=10)) == {1}


def test_a_vanishing_repetition_penalty_favours_the_largest_seen_positive_score() -> None:
    logits = torch.tensor([9.0, 2.0, 4.0, -3.0])
    params = SamplingParams(repetition_penalty=1e-40)
    seen = torch.tensor([1, 2, 3])
    assert select_one(logits, params, make_generator(0), seen) == 2
    sampled = SamplingParams(temperature=1.0, repetition_penalty=1e-40)
    assert {select_one(logits, sampled, make_generator(seed), seen) for seed in range(10)} == {2}


# select_tokens: greedy


def test_greedy_rows_pick_the_argmax() -> None:
    logits = random_logits(10, rows=6)
    params = [SamplingParams()] * 6
    tokens, _ = select_tokens(logits, params, [NO_IDS] * 6, [make_generator(0) for _ in range(6)])
    assert torch.equal(tokens, logits.argmax(dim=-1))
    assert tokens.dtype == torch.int64


def test_greedy_with_a_repetition_penalty_picks_the_argmax_of_the_penalized_logits() -> None:
    logits = torch.tensor([4.0, 3.0, 1.0])
    assert select_one(logits, SamplingParams(repetition_penalty=2.0), make_generator(0), torch.tensor([0])) == 1


def test_greedy_breaks_ties_on_the_lowest_token_id_like_hf() -> None:
    assert select_one(torch.tensor([1.0, 3.0, 3.0]), SamplingParams(), make_generator(0)) == 1


# select_tokens: sampling


def test_the_same_seed_and_logits_give_the_same_samples_every_time() -> None:
    logits = random_logits(11)[0] / 3  # flatter, so draws vary
    params = SamplingParams(temperature=1.0, seed=42)
    first = draws(logits, params, 42)
    assert first == draws(logits, params, 42)
    assert len(set(first)) > 1


def test_different_seeds_give_different_samples() -> None:
    logits = random_logits(12)[0] / 3
    params = SamplingParams(temperature=1.0)
    assert draws(logits, params, 1) != draws(logits, params, 2)


def test_sampling_draws_like_hf_generate_from_the_same_generator_state() -> None:
    logits = random_logits(13)[0]
    params = SamplingParams(temperature=0.9, top_k=30, top_p=0.95, repetition_penalty=1.1)
    previous_ids = torch.arange(10)
    hf_probs = hf_process(logits, params, previous_ids).softmax(dim=-1)[None]
    reference = make_generator(99)
    expected = [int(torch.multinomial(hf_probs, 1, generator=reference)[0, 0]) for _ in range(20)]
    generator = make_generator(99)
    assert [select_one(logits, params, generator, previous_ids) for _ in range(20)] == expected


def test_top_k_of_one_always_picks_the_argmax() -> None:
    logits = random_logits(14)[0] / 3
    assert set(draws(logits, SamplingParams(temperature=1.5, top_k=1), 3)) == {int(logits.argmax())}


def test_a_tiny_top_p_keeps_only_the_top_token() -> None:
    logits = random_logits(15)[0] / 3
    processed = process_logits(logits, SamplingParams(temperature=1.0, top_p=1e-6), NO_IDS)
    assert torch.isfinite(processed).nonzero().flatten().tolist() == [int(logits.argmax())]
    assert set(draws(logits, SamplingParams(temperature=1.0, top_p=1e-6), 4)) == {int(logits.argmax())}


def test_sampling_never_picks_a_token_top_k_removed() -> None:
    logits = random_logits(16)[0] / 3
    allowed = set(torch.topk(logits, 3).indices.tolist())
    assert set(draws(logits, SamplingParams(temperature=2.0, top_k=3), 5, count=200)) <= allowed


# select_tokens: mixed batches and log-probabilities


def test_a_mixed_batch_treats_each_row_by_its_own_params() -> None:
    logits = random_logits(17, rows=3)
    params = [SamplingParams(), SamplingParams(temperature=1.0, top_k=1), SamplingParams(repetition_penalty=1e3)]
    previous_ids = [NO_IDS, NO_IDS, logits[2].argmax()[None]]
    tokens, _ = select_tokens(logits, params, previous_ids, [make_generator(0) for _ in range(3)])
    assert tokens[0] == logits[0].argmax()
    assert tokens[1] == logits[1].argmax()
    assert tokens[2] == process_logits(logits[2], params[2], previous_ids[2]).argmax()
    assert tokens[2] != logits[2].argmax()


def test_logprobs_are_the_raw_log_softmax_at_the_chosen_tokens() -> None:
    logits = random_logits(18, rows=4)
    params = [
        SamplingParams(),
        SamplingParams(temperature=0.5, top_k=4),
        SamplingParams(repetition_penalty=3.0),
        SamplingParams(temperature=1.0, top_p=0.3),
    ]
    previous_ids = [NO_IDS, NO_IDS, torch.arange(VOCAB), NO_IDS]
    tokens, logprobs = select_tokens(logits, params, previous_ids, [make_generator(i) for i in range(4)])
    expected = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None]).squeeze(1)
    assert logprobs.dtype == torch.float32
    torch.testing.assert_close(logprobs, expected)


def test_select_tokens_accepts_half_precision_logits() -> None:
    logits = random_logits(19, rows=2).half()
    tokens, logprobs = select_tokens(logits, [SamplingParams()] * 2, [NO_IDS] * 2, [make_generator(0)] * 2)
    assert tokens.dtype == torch.int64 and logprobs.dtype == torch.float32


def test_select_tokens_rejects_a_batch_size_mismatch() -> None:
    with pytest.raises(ValueError, match="select_tokens: expected logits"):
        select_tokens(random_logits(20, rows=2), [SamplingParams()], [NO_IDS], [make_generator(0)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_select_tokens_runs_on_cuda_with_cuda_generators() -> None:
    logits = random_logits(21, rows=3).cuda()
    params = [
        SamplingParams(),
        SamplingParams(temperature=1.0, top_p=0.9, seed=5),
        SamplingParams(repetition_penalty=2.0),
    ]
    previous_ids = [NO_IDS, NO_IDS, torch.arange(4)]
    generators = [make_generator(p.seed, logits.device) for p in params]
    tokens, logprobs = select_tokens(logits, params, previous_ids, generators)
    assert tokens.device == logits.device and logprobs.device == logits.device
    assert tokens[0] == logits[0].argmax()


def test_a_vanishing_temperature_on_all_negative_logits_picks_the_most_likely_token() -> None:
    logits = -torch.rand(1, 50) - 1.0
    params = SamplingParams(temperature=1e-40, top_p=0.9, seed=1)
    tokens, _ = select_tokens(logits, [params], [torch.tensor([0])], [make_generator(1)])
    assert int(tokens[0]) == int(logits[0].argmax())
