"""Qwen2.5-VL: tiny-qwen2.5-vl exported with ``vlm-export model`` (its vision tower with window attention to ONNX,
checked against transformers') and served by the family server (tests/server/family_servers.py) through Qwen2-VL's
models. Greedy tokens equal Hugging Face ``generate`` token for token for Qwen2-VL's cases (images of six grids, some
spanning several windows, two images together, text only, multi-turn) with 9 requests in flight over gRPC and HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from client import Completion, VLMClient
from serving.launcher import TritonServer
from serving.video import Sampling, decode_video
from tests.images import encode, scene
from tests.reference import Qwen2VLReference
from tests.server.family_servers import TEST_TIMEOUT_S, FamilyExport
from tests.server.test_llava_full import Case
from tests.server.test_qwen2_vl import CASES, video_turn
from tests.videos import encode_video

MODEL = "qwen2_5_vl"
# Exported into a repository of its own and served by the family server (tests/server/family_servers.py).
EXPORT = FamilyExport(MODEL, "tiny_qwen2_5_vl")
pytestmark = [pytest.mark.timeout(TEST_TIMEOUT_S), EXPORT.mark]


@pytest.fixture(scope="module")
def server(family_server: TritonServer) -> TritonServer:
    """The family server (tests/server/family_servers.py), which serves this module's export."""
    return family_server


@pytest.fixture(scope="module")
def reference(tiny_qwen2_5_vl: Path) -> Qwen2VLReference:
    return Qwen2VLReference(tiny_qwen2_5_vl)


def test_the_export_checks_the_windowed_tower_against_transformers(export_output: tuple[Path, str]) -> None:
    repository, printed = export_output
    assert "family: qwen2_5_vl" in printed
    assert "PASS qwen2_5_vl_vision: onnxruntime vs pytorch" in printed
    assert (repository / "qwen2_5_vl_vision" / "1" / "model.onnx").is_file()
    assert 'string_value: "qwen2_5_vl"' in (repository / "qwen2_5_vl" / "config.pbtxt").read_text()


def test_greedy_tokens_equal_hf_generate_for_9_concurrent_requests(
    server: TritonServer, url: str, protocol: str, reference: Qwen2VLReference
) -> None:
    expected = [reference.greedy(messages, images, max_tokens) for messages, images, max_tokens in CASES]

    def generate(case: Case) -> Completion:
        messages, images, max_tokens = case
        with VLMClient(url, protocol=protocol, chat_model=MODEL) as client:
            return client.generate(messages, [encode(image) for image in images], max_tokens=max_tokens)

    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        completions = list(pool.map(generate, CASES))
    for completion, tokens, (messages, images, _) in zip(completions, expected, CASES, strict=True):
        assert completion.token_ids == tokens, messages
        assert completion.prompt_tokens == len(reference.inputs(messages, images)["input_ids"][0])
    assert sum(map(len, expected)) > len(CASES), "the reference answered (nearly) nothing: a weak comparison"


def test_a_short_clip_answers_hf_generates_tokens_with_its_real_time_spacing(
    server: TritonServer, url: str, protocol: str, reference: Qwen2VLReference
) -> None:
    """4 frames of a 1 fps clip at 1 fps: 2 frame groups 2 s apart (second_per_grid_ts 2.0, not vLLM's default 1.0).
    The tiny model's greedy tokens do not change with the spacing, its logprobs do (about 1e-3 at 1 s or 4 s a
    group): the served ones are those of the real spacing.
    Kept short of transformers' divergence from vLLM (README): (2 - 1) x tokens_per_second 4 x 2.0 = 8 is under the
    grid's larger merged side, 10 (280 x 168 frames)."""
    clip = encode_video([scene(280, 168, seed=100 + i) for i in range(4)], fps=1)
    messages = video_turn("what happens in the video?")
    frames = decode_video(clip, "video", Sampling(1.0, 32)).frames
    inputs = reference.video_inputs(messages, [], [frames], 1.0)
    assert inputs["video_grid_thw"].tolist() == [[2, 12, 20]]
    assert inputs["second_per_grid_ts"].tolist() == [2.0]
    expected = reference.video_greedy(messages, [], [frames], 1.0, 16)
    with VLMClient(url, protocol=protocol, chat_model=MODEL) as client:
        completions = [client.generate(messages, videos=[clip], video_fps=1.0, max_tokens=16) for _ in range(2)]
    for completion in completions:
        assert completion.video_frames == [4]
        assert completion.prompt_tokens == inputs["input_ids"].shape[1]
        assert completion.token_ids == expected
    real = reference.video_logprobs(messages, [frames], 1.0, expected)
    other = reference.video_logprobs(messages, [frames], 0.5, expected)
    assert max(abs(a - b) for a, b in zip(real, other, strict=True)) > 5e-4
    assert completions[0].logprobs == pytest.approx(real, abs=2e-4)
