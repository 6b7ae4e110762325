"""Per-request ``min_pixels`` / ``max_pixels`` on tiny-qwen2-vl (its own budget: 3,136 to 50,176 pixels, 4 to 64
merged tokens an image): the preprocess step resizes images and video frames within the request's budget, so the
served greedy tokens and prompt token counts equal Hugging Face's when its processor is given the same values (which
change the grids), over gRPC, HTTP and the gateway's OpenAI route (vLLM's ``mm_processor_kwargs``); bad values are
refused naming the field and the limit while the server keeps answering.

The server is the family server of ``test_qwen2_vl``'s export (shared when both modules run); the HF reference and the
gateway are ``test_qwen2_vl``'s fixtures."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import torch
from PIL import Image

from client import Completion, InvalidInputError, VLMClient, prompts
from export.families.limits import MAX_PIXELS_CAP
from gateway.process import GatewayProcess
from serving.launcher import TritonServer
from serving.video import Sampling, decode_video
from tests.gateway.conftest import API_KEY, data_url
from tests.images import encode, scene
from tests.reference import Qwen2VLReference
from tests.server import test_qwen2_vl as qwen2_vl
from tests.server.family_servers import TEST_TIMEOUT_S
from tests.server.test_bad_input import assert_clean
from tests.server.test_client_cli import _vlm_client
from tests.server.test_llava_full import user
from tests.videos import encode_video

# Served by the family server with test_qwen2_vl's export (tests/server/family_servers.py): no server of its own.
server, reference, gateway = qwen2_vl.server, qwen2_vl.reference, qwen2_vl.gateway
MODEL = qwen2_vl.MODEL
pytestmark = [
    pytest.mark.timeout(TEST_TIMEOUT_S),
    qwen2_vl.EXPORT.mark,
    pytest.mark.filterwarnings("ignore:Passing `min_pixels` and `max_pixels`:FutureWarning"),
]

TOKEN = 28 * 28  # one merged token's pixels: the floor of either value
# (messages, images, budget, max_tokens), grids in merged tokens: fewer than the checkpoint's budget gives (300 x 300:
# 7 x 7 -> 3 x 3), more than its minimum gives a small image (20 x 20: 2 x 2 -> 5 x 5), more than its maximum allows
# (600 x 400: 6 x 9 -> 10 x 15), and two images under one budget.
Budget = dict[str, int]
CASES: list[tuple[list[dict], list[Image.Image], Budget, int]] = [
    (user("describe the image.", 1), [scene(300, 300, seed=40)], {"max_pixels": 16 * TOKEN}, 16),
    (user("what colour is it?", 1), [scene(20, 20, seed=41)], {"min_pixels": 20 * TOKEN}, 14),
    (user("what is on the left?", 1), [scene(600, 400, seed=42)], {"max_pixels": 150 * TOKEN}, 12),
    (
        user("compare the two images.", 2),
        [scene(96, 80, seed=43), scene(40, 120, seed=44)],
        {"min_pixels": 30 * TOKEN, "max_pixels": 40 * TOKEN},
        18,
    ),
]


def hf_inputs(
    ref: Qwen2VLReference,
    messages: list[dict],
    images: list[Image.Image],
    budget: Budget,
    videos: list[list[np.ndarray]] | None = None,
    fps: float = 1.0,
) -> dict[str, torch.Tensor]:
    """As transformers' processor feeds the model when a call gives it ``min_pixels`` / ``max_pixels`` (it applies
    them to the images and the video frames alike); videos as ``Qwen2VLReference.video_inputs`` gives them."""
    from transformers.video_utils import VideoMetadata

    prompt = ref.processor.apply_chat_template(messages, add_generation_prompt=True)
    media: dict[str, Any] = {}
    if videos:
        metadata = [
            VideoMetadata(total_num_frames=len(f), fps=fps, frames_indices=list(range(len(f))), duration=len(f) / fps)
            for f in videos
        ]
        media = {
            "videos": [np.stack(frames) for frames in videos],
            "video_metadata": metadata,
            "do_sample_frames": False,
            "cap_pixels_per_frame": False,
        }
    return ref.processor(images=images or None, text=prompt, return_tensors="pt", **media, **budget)


def hf_greedy(ref: Qwen2VLReference, inputs: dict[str, torch.Tensor], max_new_tokens: int) -> list[int]:
    with torch.inference_mode():
        output = ref.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return output[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.fixture(scope="module")
def expected(reference: Qwen2VLReference) -> list[tuple[list[int], int]]:
    """Per case, HF's greedy tokens and prompt length under the case's budget (which changes every grid)."""
    answers = []
    for messages, images, budget, max_tokens in CASES:
        inputs = hf_inputs(reference, messages, images, budget)
        default = hf_inputs(reference, messages, images, {})
        assert inputs["image_grid_thw"].tolist() != default["image_grid_thw"].tolist(), budget
        answers.append((hf_greedy(reference, inputs, max_tokens), inputs["input_ids"].shape[1]))
    return answers


def test_served_greedy_tokens_equal_hf_given_the_same_pixel_budget_4_in_flight(
    server: TritonServer,
    url: str,
    protocol: str,
    expected: list[tuple[list[int], int]],
) -> None:
    def generate(case: tuple[list[dict], list[Image.Image], Budget, int]) -> Completion:
        messages, images, budget, max_tokens = case
        with VLMClient(url, protocol=protocol, chat_model=MODEL) as client:
            return client.generate(messages, [encode(image) for image in images], max_tokens=max_tokens, **budget)

    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        completions = list(pool.map(generate, CASES))
    for completion, (tokens, prompt_tokens), case in zip(completions, expected, CASES, strict=True):
        assert completion.token_ids == tokens, case[2]
        assert completion.prompt_tokens == prompt_tokens, case[2]  # the decoder counts the resized grids' tokens
    assert sum(len(tokens) for tokens, _ in expected) > len(CASES), "the reference answered (nearly) nothing"


def test_a_video_gets_the_same_budget_as_transformers_applies_to_its_frames(
    server: TritonServer,
    reference: Qwen2VLReference,
) -> None:
    clip = encode_video([scene(160, 120, seed=50 + i) for i in range(4)], fps=1)
    frames = decode_video(clip, "video", Sampling(1.0, 32)).frames
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "what happens?"}]}]
    budget = {"max_pixels": 6 * TOKEN}
    inputs = hf_inputs(reference, messages, [], budget, [frames])
    assert (
        inputs["video_grid_thw"].tolist() != hf_inputs(reference, messages, [], {}, [frames])["video_grid_thw"].tolist()
    )
    with VLMClient(server.grpc_url, chat_model=MODEL) as client:
        completion = client.generate(messages, videos=[clip], video_fps=1.0, max_tokens=12, **budget)
    assert completion.video_frames == [4]
    assert completion.prompt_tokens == inputs["input_ids"].shape[1]
    assert completion.token_ids == hf_greedy(reference, inputs, 12)


BAD_BUDGETS = [
    ({"min_pixels": TOKEN - 1}, "min_pixels", f"must lie in [{TOKEN}, {MAX_PIXELS_CAP}] for this model, got 783"),
    ({"max_pixels": MAX_PIXELS_CAP + 1}, "max_pixels", f"must lie in [{TOKEN}, {MAX_PIXELS_CAP}] for this model"),
    ({"min_pixels": 8000, "max_pixels": 4000}, "min_pixels", "must be at most max_pixels (4000), got 8000"),
    ({"max_pixels": 2000}, "max_pixels", "at least the image processor's min_pixels (3136) unless min_pixels is given"),
    ({"max_pixels": 0}, "max_pixels", "got 0"),
]


@pytest.mark.parametrize(("budget", "field", "fragment"), BAD_BUDGETS)
def test_a_bad_budget_is_refused_naming_the_field_and_the_limit_and_the_server_keeps_serving(
    server: TritonServer,
    url: str,
    protocol: str,
    budget: Budget,
    field: str,
    fragment: str,
) -> None:
    with VLMClient(url, protocol=protocol, chat_model=MODEL) as client:
        with pytest.raises(InvalidInputError) as caught:
            client.generate(user("what is it?", 1), [encode(scene(seed=45))], max_tokens=2, **budget)
        assert caught.value.field == field
        assert_clean(str(caught.value), fragment)
        assert client.generate(user("what is it?", 1), [encode(scene(seed=46))], max_tokens=2).completion_tokens >= 1


def test_a_non_integer_budget_sent_raw_to_tritons_http_port_is_refused_before_the_model_runs(
    server: TritonServer,
) -> None:
    """The client refuses a non-integer itself and the gateway with a 400 naming the field (below); Triton's internal
    HTTP port gets one only from a hand-made body, which its own JSON parser refuses before the model runs, with a 500
    that names no input (as it answers malformed JSON: DESIGN.md, gotchas). The server keeps serving."""
    body = {"messages": json.dumps(user("what is it?", 1)), "image": [data_url(encode(scene()))], "max_pixels": 3136.5}
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{MODEL}/generate", json.dumps(body).encode(), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    message = caught.value.read().decode()
    assert caught.value.code == 500 and "Unable to parse 'data'" in message, message
    with VLMClient(server.grpc_url, chat_model=MODEL) as client:
        assert client.generate(user("what is it?", 1), [encode(scene(seed=47))], max_tokens=2).completion_tokens >= 1


def test_the_openai_route_takes_vllms_mm_processor_kwargs_and_answers_hf_generates_tokens(
    server: TritonServer,
    gateway: GatewayProcess,
    reference: Qwen2VLReference,
    expected: list[tuple[list[int], int]],
) -> None:
    """The real openai SDK: the budget in ``extra_body={"mm_processor_kwargs": ...}`` as vLLM's server takes it, and
    top-level; a bad value is a 400 naming the parameter, and the next request is answered."""
    messages, images, budget, max_tokens = CASES[0]
    content = [{"type": "image_url", "image_url": {"url": data_url(encode(images[0]))}}]
    content.append({"type": "text", "text": "describe the image."})
    chat = [{"role": "user", "content": content}]
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=120) as sdk:
        for extra in ({"mm_processor_kwargs": budget}, budget):
            reply = sdk.chat.completions.create(
                model=MODEL,
                messages=chat,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                logprobs=True,
                extra_body=extra,
            )
            with VLMClient(server.grpc_url, chat_model=MODEL) as direct:
                served = direct.generate(messages, [encode(images[0])], max_tokens=max_tokens, **budget)
            assert served.token_ids == expected[0][0]
            assert reply.choices[0].message.content == served.text
            assert reply.usage is not None and reply.usage.prompt_tokens == expected[0][1]
        for extra, param in (
            ({"mm_processor_kwargs": {"min_pixels": 8000, "max_pixels": 4000}}, "mm_processor_kwargs.min_pixels"),
            ({"max_pixels": 2000}, "max_pixels"),
            ({"max_pixels": 3136.5}, "max_pixels"),
            ({"mm_processor_kwargs": {"fps": 2}}, "mm_processor_kwargs.fps"),
        ):
            with pytest.raises(openai.BadRequestError) as caught:
                sdk.chat.completions.create(model=MODEL, messages=chat, max_tokens=2, extra_body=extra)  # type: ignore[arg-type]
            assert caught.value.status_code == 400
            error = caught.value.body
            assert isinstance(error, dict) and error.get("param") == param, error
        reply = sdk.chat.completions.create(model=MODEL, messages=chat, max_tokens=2)  # type: ignore[arg-type]
        assert reply.usage is not None and reply.usage.completion_tokens >= 1


def test_the_cli_chat_takes_min_and_max_pixels(server: TritonServer, tmp_path: Path) -> None:
    """``vlm-client chat --max-pixels``: the answer and prompt size the client gets with the same budget (whose tokens
    equal HF's above), fewer prompt tokens than without it; a bad value exits 1 with one line naming the field."""
    image = tmp_path / "scene.png"
    image.write_bytes(encode(scene(300, 300, seed=48)))
    common = ("--url", server.grpc_url, "--model", MODEL, "--json")
    budget = ("--max-pixels", str(16 * TOKEN), "--max-tokens", "8")
    chat = _vlm_client(*common, "chat", "--image", str(image), *budget, "what is it?")
    assert chat.returncode == 0, chat.stderr
    (turn,) = [json.loads(line) for line in chat.stdout.splitlines()]
    messages = [prompts.user_turn("what is it?", 1, 0)[0]]
    with VLMClient(server.grpc_url, chat_model=MODEL) as client:
        budgeted = client.generate(messages, [image], max_pixels=16 * TOKEN, max_tokens=8)
        default = client.generate(messages, [image], max_tokens=8)
    assert turn["text"] == budgeted.text and turn["prompt_tokens"] == budgeted.prompt_tokens
    assert default.prompt_tokens - budgeted.prompt_tokens == 7 * 7 - 3 * 3  # merged tokens of 300 x 300
    bad = _vlm_client(*common, "chat", "--image", str(image), "--min-pixels", "100", "hi", "--max-tokens", "2")
    assert bad.returncode == 1 and f"min_pixels: must lie in [{TOKEN}, {MAX_PIXELS_CAP}]" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
