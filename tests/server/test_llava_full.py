"""A second LLaVA architecture served end to end: tiny-llava-full (the last vision layer's features with the CLS token
kept, a projector without biases, grouped-query attention with four query heads in two key/value groups, another image
size). It is exported with ``vlm-export llava`` into a repository of its own (model names are fixed per repository) and
served by the family server beside other families' models; greedy tokens equal Hugging Face ``generate`` token for token
with 8 requests in flight, over gRPC and HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import onnx
import pytest
from PIL import Image

from client import Completion, VLMClient
from export.families.llava.spec import LLAVA_DECODER
from export.triton_config import parse_pbtxt, to_pbtxt
from serving.launcher import TritonServer
from serving.manifest import ONNX_FILE, ComponentManifest
from tests.images import encode, scene
from tests.reference import LlavaReference
from tests.server.family_servers import TEST_TIMEOUT_S, Exported, FamilyExport
from tests.server.statistics import metric_total, steps_by_batch_size

IMAGE_TOKENS = 17  # 4 x 4 patches of 14 px in a 56 px image, plus CLS
# 1 KiB of keys and values a token (2 layers x 2 groups x 32 x float32 x K,V): 1 MiB holds 1,024 tokens, two full
# 512-token sequences. The 8 parity requests fit in it; 8 streams of FULL_CACHE_TOKENS do not.
KV_CACHE_MIB = 1
FULL_CACHE_TOKENS = 300


def user(text: str, images: int = 0) -> list[dict]:
    return [{"role": "user", "content": [*([{"type": "image"}] * images), {"type": "text", "text": text}]}]


def assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


Case = tuple[list[dict], list[Image.Image], int]
CASES: list[Case] = [
    (user("describe the image.", 1), [scene(seed=51)], 24),
    (user("what colour is the circle?", 1), [scene(90, 60, seed=52)], 16),
    (user("compare the two images.", 2), [scene(seed=53), scene(seed=54)], 20),
    (user("which one has more shapes?", 2), [scene(64, 100, seed=55), scene(seed=56)], 12),
    (user("how many shapes are there?"), [], 28),
    (user("name a colour."), [], 9),
    ([*user("what is it?", 1), *assistant("a star."), *user("what colour?")], [scene(seed=57)], 18),
    (
        [*user("what is above the square?", 1), *assistant("a red circle."), *user("and in this one?", 1)],
        [scene(seed=58), scene(70, 90, seed=59)],
        22,
    ),
]


def set_decoder_parameters(repository: Path, **parameters: str) -> None:
    """Overrides the exported decoder's config parameters (the engine's settings) in place."""
    path = repository / LLAVA_DECODER.name / "config.pbtxt"
    config = parse_pbtxt(path.read_text())
    for name, value in parameters.items():
        assert name in config.parameters, name
        config.parameters[name].string_value = value
    path.write_text(to_pbtxt(config))


def small_kv_cache(repository: Path) -> None:
    set_decoder_parameters(repository, cpu_kv_cache_mib=str(KV_CACHE_MIB))


# Only the LLaVA models, exported from tiny-llava-full the way a user would (``vlm-export llava``), into a
# repository of their own; served by the family server (tests/server/family_servers.py).
EXPORT = FamilyExport("llava_full", "tiny_llava_full", "llava", small_kv_cache)
pytestmark = [pytest.mark.timeout(TEST_TIMEOUT_S), EXPORT.mark]


@pytest.fixture(scope="module")
def repository(export_output: Exported) -> Path:
    return export_output[0]


@pytest.fixture(scope="module")
def server(family_server: TritonServer) -> TritonServer:
    """The family server (tests/server/family_servers.py), which serves this module's export."""
    return family_server


@pytest.fixture(scope="module")
def reference(tiny_llava_full: Path) -> LlavaReference:
    return LlavaReference(tiny_llava_full)


@pytest.fixture(scope="module")
def expected(reference: LlavaReference) -> list[list[int]]:
    return [reference.greedy(messages, images, max_tokens) for messages, images, max_tokens in CASES]


def test_the_repository_holds_only_the_llava_models(repository: Path) -> None:
    assert sorted(path.name for path in repository.iterdir()) == [
        "llava",
        "llava_admission",
        "llava_decoder",
        "llava_preprocess",
        "llava_projector",
        "llava_vision",
    ]


def test_the_manifests_pin_17_image_tokens_and_the_projector_has_no_biases(repository: Path) -> None:
    vision = ComponentManifest.read(repository / "llava_vision" / "1")
    projector = ComponentManifest.read(repository / "llava_projector" / "1")
    assert vision.inputs[0].shape == [3, 56, 56]
    assert vision.outputs[0].shape == projector.inputs[0].shape == [IMAGE_TOKENS, 48]
    assert projector.outputs[0].shape == [IMAGE_TOKENS, 128]
    graph = onnx.load(repository / "llava_projector" / "1" / ONNX_FILE, load_external_data=False).graph
    tensors = sorted(tuple(weight.dims) for weight in graph.initializer if weight.dims)  # scalars: GELU's constants
    assert tensors == [(48, 128), (128, 128)]  # the two linears' weights, no bias vectors


def test_greedy_tokens_equal_hf_generate_for_8_concurrent_requests(
    server: TritonServer, url: str, protocol: str, reference: LlavaReference, expected: list[list[int]]
) -> None:
    steps_before = steps_by_batch_size(server, LLAVA_DECODER.name)

    def generate(case: Case) -> Completion:
        messages, images, max_tokens = case
        with VLMClient(url, protocol=protocol) as client:
            return client.generate(messages, [encode(image) for image in images], max_tokens=max_tokens)

    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        completions = list(pool.map(generate, CASES))
    for completion, tokens, (messages, images, _) in zip(completions, expected, CASES, strict=True):
        assert completion.token_ids == tokens, messages
        prompt_ids = reference.inputs(messages, images)["input_ids"][0].tolist()
        assert prompt_ids.count(reference.model.config.image_token_id) == IMAGE_TOKENS * len(images)
        assert completion.prompt_tokens == len(prompt_ids)
        assert completion.completion_tokens == len(tokens)
    assert sum(map(len, expected)) > len(CASES), "the reference answered (nearly) nothing: a weak comparison"
    steps_after = steps_by_batch_size(server, LLAVA_DECODER.name)
    batched = sum(count - steps_before.get(size, 0) for size, count in steps_after.items() if size > 1)
    assert batched > 0, "no decode step ran more than one sequence"


def test_a_full_kv_cache_preempts_and_every_admitted_stream_still_finishes(
    server: TritonServer, url: str, protocol: str
) -> None:
    """8 streams that together need about twice the cache: vLLM preempts some (their blocks freed, recomputed when
    resumed); none fails, each streams all its tokens."""
    preempted_before = metric_total(server, "vlm_decoder_preemptions_total", LLAVA_DECODER.name)

    def stream(case: Case) -> tuple[str, Completion]:
        messages, images, _ = case
        with VLMClient(url, protocol=protocol) as client:
            *pieces, completion = client.generate_stream(
                messages, [encode(image) for image in images], max_tokens=FULL_CACHE_TOKENS, ignore_eos=True
            )
        assert isinstance(completion, Completion)
        return "".join(str(piece) for piece in pieces), completion

    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        results = list(pool.map(stream, CASES))
    for streamed, completion in results:
        assert (completion.finish_reason, completion.completion_tokens) == ("length", FULL_CACHE_TOKENS)
        assert streamed == completion.text
    assert metric_total(server, "vlm_decoder_preemptions_total", LLAVA_DECODER.name) > preempted_before, (
        "the cache never ran full"
    )
