"""The decoder engine on CUDA in bfloat16 with torch alone (no TensorRT): image embeddings handed over on
the GPU, requests batched in flight, and every generated token's log-probability within bfloat16's reach
of the same model's float32 log-probability for that token (greedy ties may break differently in bf16, so
the tokens themselves are not compared)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from serving.generation.checkpoint import load_language_model, load_tokenizer, read_checkpoint, resolve_dtype
from serving.generation.engine import Engine, EngineConfig, GenerationRequest, GenerationResult
from serving.generation.params import SamplingParams
from serving.generation.prompt import PromptRules, parse_messages, prompt_ids
from tests.images import scene
from tests.reference import LlavaReference

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")
LOGPROB_TOLERANCE = 0.1  # nats; bf16 logits carry about 2-3 significant digits


class Sink:
    def __init__(self) -> None:
        self.result: GenerationResult | None = None
        self.done = threading.Event()

    def is_cancelled(self) -> bool:
        return False

    def send_text(self, text: str) -> None:
        pass

    def send_final(self, result: GenerationResult) -> None:
        self.result = result
        self.done.set()

    def send_cancelled(self) -> None:
        self.done.set()

    def send_error(self, message: str) -> None:
        self.done.set()


def test_auto_dtype_is_bfloat16_on_cuda() -> None:
    assert resolve_dtype("auto", CUDA) == torch.bfloat16


def test_bf16_decoding_on_cuda_matches_float32_logprobs_for_batched_image_requests(tiny_llava: Path) -> None:
    tokenizer = load_tokenizer(tiny_llava)
    checkpoint = read_checkpoint(tiny_llava, tokenizer)
    rules = PromptRules("<image>", checkpoint.image_tokens_per_image, 4, 65536)
    reference = LlavaReference(tiny_llava)
    model = load_language_model(tiny_llava, torch.bfloat16, CUDA)
    assert next(model.parameters()).dtype == torch.bfloat16 and next(model.parameters()).is_cuda
    config = EngineConfig(checkpoint.image_token_id, checkpoint.eos_token_ids, 16, 8192)
    engine = Engine(model, tokenizer, config, on_step=lambda _: None, on_finish=lambda *_: None, log_error=print)
    engine.start()
    cases = []
    try:
        for seed in range(4):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"image {seed}?"}]}]
            ids = prompt_ids(tokenizer, parse_messages(json.dumps(messages).encode(), rules), rules)
            embeds = reference.image_embeds([scene(seed=seed)]).flatten(0, 1).to(CUDA, torch.bfloat16)
            sink = Sink()
            engine.submit(GenerationRequest(ids, embeds, SamplingParams(), 16, sink, f"cuda-{seed}"))
            cases.append((ids, embeds, sink))
        for _, _, sink in cases:
            assert sink.done.wait(120) and sink.result is not None
    finally:
        engine.stop()

    float_model = load_language_model(tiny_llava, torch.float32, CUDA)
    for ids, embeds, sink in cases:
        result = sink.result
        assert result is not None and result.completion_tokens == len(result.token_ids) > 0
        sequence = torch.tensor(ids + result.token_ids[:-1], device=CUDA)
        with torch.inference_mode():
            inputs = float_model.get_input_embeddings()(sequence)
            inputs[sequence == checkpoint.image_token_id] = embeds.float()
            logits = float_model(inputs_embeds=inputs[None]).logits[0, len(ids) - 1 :]
            expected = logits.log_softmax(-1).gather(1, torch.tensor(result.token_ids, device=CUDA)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(result.logprobs, device=CUDA), expected, atol=LOGPROB_TOLERANCE)
