"""Qwen2-VL: tiny-qwen2-vl exported with ``vlm-export model`` into a repository of its own and served by the family
server (tests/server/family_servers.py). The preprocess step resizes each image within the checkpoint's pixel budget (a
grid of 2 x 2 to 8 x 8 merged tokens by its size and aspect ratio) and cuts it into patches, the exported vision tower
(ONNX) encodes a request's images in one call, and the decoder hands vLLM the embeddings with each image's grid, which
it places with M-RoPE. Greedy tokens equal Hugging Face ``generate`` token for token with 9 requests in flight over gRPC
and HTTP; bad images get LLaVA's errors. Videos go natively: a clip longer than ``max_frames`` is sampled by the
documented rule (the answer is HF's on exactly the kept frames), and bad clips are refused naming the video and the
limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from functools import cache
from pathlib import Path

import openai
import psutil
import pytest

from benchmarks.cli import main as vlm_bench
from client import Completion, InvalidInputError, VLMClient
from client.video_parameters import MAX_VIDEO_FRAMES, MAX_VIDEO_SECONDS
from export.families import family_for_checkpoint
from gateway.process import GatewayProcess
from serving.launcher import TritonServer
from serving.video import Sampling, decode_video
from tests.gateway.conftest import API_KEY, data_url
from tests.images import encode, scene
from tests.reference import Qwen2VLReference
from tests.server.family_servers import TEST_TIMEOUT_S, FamilyExport
from tests.server.test_bad_input import UNDECODABLE_IMAGES, assert_clean
from tests.server.test_llava_full import Case, assistant, user
from tests.videos import coloured_frames, encode_video, repeated_keyframe_video

MODEL = "qwen2_vl"  # the checkpoint's name: its ensemble, and its decoder for text-only turns
# Exported into a repository of its own and served by the family server (tests/server/family_servers.py).
EXPORT = FamilyExport(MODEL, "tiny_qwen2_vl")
pytestmark = [pytest.mark.timeout(TEST_TIMEOUT_S), EXPORT.mark]

# Sizes that make different grids (in merged tokens, height x width): 3 x 3, 2 x 2 (scaled up to the minimum),
# 1 x 5, 4 x 1, 7 x 7 (scaled down to the maximum), and 1 x 36 for a 50:1 strip (LLaVA's preprocessing would crop it
# to 20:1 first).
CASES: list[Case] = [
    (user("what is in the strip?", 1), [scene(1000, 20, seed=60)], 12),
    (user("describe the image.", 1), [scene(96, 80, seed=61)], 20),
    (user("what colour is the circle?", 1), [scene(20, 20, seed=62)], 16),
    (user("what is on the left?", 1), [scene(150, 40, seed=63)], 18),
    (user("what is at the top?", 1), [scene(30, 110, seed=64)], 14),
    (user("compare the two images.", 2), [scene(300, 300, seed=65), scene(40, 120, seed=66)], 20),
    (user("how many shapes are there?"), [], 24),
    ([*user("what is it?", 1), *assistant("a star."), *user("what colour?")], [scene(70, 70, seed=67)], 18),
    (
        [*user("what is above the square?", 1), *assistant("a red circle."), *user("and in this one?", 1)],
        [scene(seed=68), scene(120, 60, seed=69)],
        22,
    ),
]


@pytest.fixture(scope="module")
def server(family_server: TritonServer) -> TritonServer:
    """The family server (tests/server/family_servers.py), which serves this module's export."""
    return family_server


@pytest.fixture(scope="module")
def reference(tiny_qwen2_vl: Path) -> Qwen2VLReference:
    return Qwen2VLReference(tiny_qwen2_vl)


@pytest.fixture(scope="module")
def expected(reference: Qwen2VLReference) -> list[list[int]]:
    return [reference.greedy(messages, images, max_tokens) for messages, images, max_tokens in CASES]


def test_the_export_writes_the_vision_tower_to_onnx_after_its_parity_check(export_output: tuple[Path, str]) -> None:
    """The parity report's "batch sizes" are the patch counts of its calls: one to three images of several grids
    each, and a two-frame clip."""
    repository, printed = export_output
    assert "family: qwen2_vl" in printed
    assert "PASS qwen2_vl_vision: onnxruntime vs pytorch, batch sizes [4, 68, 144, 216]" in printed
    models = ["qwen2_vl", "qwen2_vl_admission", "qwen2_vl_decoder", "qwen2_vl_preprocess", "qwen2_vl_vision"]
    assert sorted(path.name for path in repository.iterdir()) == models
    assert (repository / "qwen2_vl_vision" / "1" / "model.onnx").is_file()
    assert 'string_value: "qwen2_vl"' in (repository / "qwen2_vl" / "config.pbtxt").read_text()


def test_greedy_tokens_equal_hf_generate_for_9_concurrent_requests(
    server: TritonServer, url: str, protocol: str, reference: Qwen2VLReference, expected: list[list[int]]
) -> None:
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
    grids = {tuple(reference.inputs(m, i)["image_grid_thw"][0].tolist()) for m, i, _ in CASES[:6]}
    assert len(grids) == 6, "the single-image cases should make different grids"


def test_the_family_counts_each_images_tokens_as_the_processor_expands_it(
    tiny_qwen2_vl: Path, reference: Qwen2VLReference
) -> None:
    choice = family_for_checkpoint(tiny_qwen2_vl)
    assert choice.family.name == "qwen2_vl"
    text_only = len(reference.inputs(user("what is it?", 0), [])["input_ids"][0])
    # What the placeholder costs besides its image's tokens: <|vision_start|> and <|vision_end|> around it.
    markers = 2
    for image in (scene(96, 80), scene(20, 20), scene(150, 40), scene(30, 110), scene(300, 300), scene(1000, 20)):
        with_image = len(reference.inputs(user("what is it?", 1), [image])["input_ids"][0])
        tokens = choice.family.image_tokens(reference.model.config, image.width, image.height)
        assert with_image - text_only - markers == tokens > 0


@UNDECODABLE_IMAGES
def test_bad_images_get_llavas_errors_and_the_server_keeps_serving(
    server: TritonServer, payload: bytes, fragments: list[str]
) -> None:
    with VLMClient(server.grpc_url, chat_model=MODEL) as client:
        with pytest.raises(InvalidInputError) as caught:
            client.generate(user("compare them.", 2), [encode(scene()), payload], max_tokens=2)
        assert_clean(str(caught.value), *fragments)
        assert client.generate(user("what is it?", 1), [encode(scene(seed=70))], max_tokens=2).completion_tokens >= 1


def test_the_context_budget_counts_each_images_tokens_by_its_size(server: TritonServer) -> None:
    """tiny-qwen2-vl's context is 1,024 tokens; a 96 x 80 image costs 9 of them, a 300 x 300 one 49."""
    with VLMClient(server.grpc_url, chat_model=MODEL) as client:
        for image, image_tokens in ((scene(96, 80, seed=71), 9), (scene(300, 300, seed=72), 49)):
            with pytest.raises(InvalidInputError) as caught:
                client.generate(user("what is it?", 1), [encode(image)], max_tokens=1000)
            assert_clean(str(caught.value), "max_tokens", f"({image_tokens} of them image tokens)", "1024")


@pytest.mark.long  # two vLLM engines (this server's decoder and vllm serve): minutes on 2 cores
@pytest.mark.timeout(900)
def test_the_vllm_peer_serves_qwen2_vl_by_name_on_images_of_mixed_sizes(
    server: TritonServer, export_output: tuple[Path, str], tiny_qwen2_vl: Path, tmp_path: Path
) -> None:
    args = ["chat", "--model", "qwen2_vl", "--url", server.grpc_url, "--repository", str(export_output[0])]
    args += ["--no-baselines", "--vllm-peer", "--checkpoint", str(tiny_qwen2_vl), "--image-sizes", "64x48,300x200"]
    args += ["--concurrency", "1,2", "--window-seconds", "0.2", "--window-requests", "1", "--max-windows", "3"]
    args += ["--warmup-requests", "1", "--alternations", "1", "--input-count", "64", "--prompt-tokens", "8"]
    args += ["--output-tokens", "4", "--results", str(tmp_path), "--name", "peer"]
    assert vlm_bench(args) == 0
    peer = json.loads((tmp_path / "peer" / "report.json").read_text())["vllm_peer"]
    assert peer["settings"]["served_model_name"] == "qwen2_vl"
    assert all(counts["equal"] for counts in peer["prompt_tokens"].values()), peer["prompt_tokens"]
    for kind in ("image", "text"):
        for side in ("project", "peer"):
            points = peer["workloads"][kind][side]
            assert all(p["errors"] == 0 for p in points), [p["first_error"] for p in points]
            assert all(p["metrics"]["output_sequence_length"]["avg"] == 4 for p in points)

    # The image requests alternate sizes: 64x48 is 2 x 2 merged tokens, 300x200 (252 x 168 within 64 tokens) 9 x 6;
    # the questions' own lengths vary by as much as the text-only requests' do.
    def spread(kind: str) -> float:
        lengths = peer["workloads"][kind]["peer"][0]["metrics"]["input_sequence_length"]
        return float(lengths["max"] - lengths["min"])

    assert abs(spread("image") - (9 * 6 - 2 * 2)) <= spread("text")
    split = {(row["workload"], row["value"]): row for row in peer["time_split"]}
    assert "qwen2_vl_vision" in split[("image", 1)]["project_steps"]
    assert split[("image", 1)]["peer"]["ttft_ms"] > 0 and split[("image", 1)]["peer"]["decode_ms"] > 0
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if {"benchmarks.vllm_serve", str(tiny_qwen2_vl)} <= set(p.info["cmdline"] or [])
    ]
    assert not left, "vllm serve outlived the run"


def video_cases() -> list[tuple[list[dict], list, list[bytes], int]]:
    """A 4-frame clip at 1 fps alone, and a 3-frame clip (padded to 4 by its last frame) after an image."""
    alone = encode_video([scene(64, 48, seed=90 + i) for i in range(4)], fps=1)
    beside = encode_video([scene(80, 60, seed=94 + i) for i in range(3)], fps=1)
    return [
        (video_turn("what happens in the video?"), [], [alone], 16),
        (video_turn("compare the image and the video.", ("image", "video")), [scene(96, 80, seed=98)], [beside], 16),
    ]


def video_turn(text: str, before: tuple[str, ...] = ("video",)) -> list[dict]:
    return [{"role": "user", "content": [*({"type": kind} for kind in before), {"type": "text", "text": text}]}]


def test_videos_go_natively_and_equal_hf_generate_on_the_sampled_frames_8_in_flight(
    server: TritonServer, url: str, protocol: str, reference: Qwen2VLReference
) -> None:
    """The frames the server samples (1 fps of a 1 fps clip: all of them) as HF's video input at that rate: the same
    video grid and tokens; each case 4 times, 8 requests in flight."""
    cases = video_cases()

    def generate(case: tuple[list[dict], list, list[bytes], int]) -> Completion:
        messages, images, videos, max_tokens = case
        with VLMClient(url, protocol=protocol, chat_model=MODEL) as client:
            return client.generate(
                messages, [encode(image) for image in images], videos=videos, video_fps=1.0, max_tokens=max_tokens
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        completions = list(pool.map(generate, cases * 4))
    expected = []
    for messages, images, videos, max_tokens in cases:
        frames = [decode_video(clip, "video", Sampling(1.0, 32)).frames for clip in videos]
        prompt_tokens = reference.video_inputs(messages, images, frames, 1.0)["input_ids"].shape[1]
        tokens = reference.video_greedy(messages, images, frames, 1.0, max_tokens)
        expected.append(([len(f) for f in frames], prompt_tokens, tokens))
    for index, completion in enumerate(completions):
        video_frames, prompt_tokens, tokens = expected[index % len(cases)]
        assert completion.video_frames == video_frames
        assert completion.prompt_tokens == prompt_tokens
        assert completion.token_ids == tokens, cases[index % len(cases)][0]
    assert len(expected[0][2]) > 1, "the reference answered (nearly) nothing: a weak comparison"
    assert completions[0].video_frames == [4] and completions[1].video_frames == [3]


@cache
def bad_videos() -> dict[str, tuple[bytes, str]]:
    """Clips the native video path must refuse before decoding them, and what the refusal names (the hours-long
    and 100,000-frame clips are one intra frame repeated: made in a moment, refused from their headers)."""
    corrupt = bytearray(encode_video(coloured_frames(20)))
    corrupt[600:1400] = bytes(800)
    return {
        "corrupt": (bytes(corrupt), "corrupt"),
        "an image": (encode(scene(seed=80)), "is an image, not a video; send it as an image"),
        "hours long": (repeated_keyframe_video(3, Fraction(1, 1), 3600), f"the limit is {MAX_VIDEO_SECONDS:g} s"),
        "100,000 frames": (
            repeated_keyframe_video(100_000, Fraction(1, 1000), 1),
            f"video declares 100000 frames, the limit is {MAX_VIDEO_FRAMES}",
        ),
    }


def test_each_bad_video_is_refused_naming_it_and_its_limit_and_the_next_request_is_answered(
    server: TritonServer, url: str, protocol: str
) -> None:
    """Each bad clip second after a good one: INVALID_ARGUMENT (gRPC) or 400 (HTTP) naming ``video[1]`` and the
    limit; then the good clip alone is answered."""
    good = encode_video([scene(64, 48, seed=81 + i) for i in range(2)], fps=1)
    with VLMClient(url, protocol=protocol, chat_model=MODEL) as client:
        for case, (clip, reason) in bad_videos().items():
            with pytest.raises(InvalidInputError) as caught:
                client.generate(video_turn("compare them.", ("video", "video")), videos=[good, clip], max_tokens=2)
            assert (caught.value.field, caught.value.index) == ("video", 1), case
            assert_clean(str(caught.value), reason)
        completion = client.generate(video_turn("what happens?"), videos=[good], max_tokens=2)
        assert completion.video_frames == [2] and completion.completion_tokens >= 1


def test_a_longer_clip_is_sampled_by_the_rule_and_answers_hf_on_exactly_those_frames(
    server: TritonServer, url: str, protocol: str, reference: Qwen2VLReference
) -> None:
    """20 different frames at 1 fps. At 1 fps with at most 4 kept, the rule keeps 4 evenly spaced instants, frames 0,
    5, 10 and 15 (0.2 fps): the served tokens are HF's on those frames, taken from a whole decode of the clip, and
    not its answer on the first four. At 30 fps (more instants than frames, under the 32-frame cap) the clip goes
    whole: HF's tokens on all 20 frames at 1 fps."""
    clip = encode_video([scene(64, 48, seed=110 + i) for i in range(20)], fps=1, gop=3)
    every = decode_video(clip, "video", Sampling(30.0, 32)).frames
    assert len(every) == 20
    messages = video_turn("what changes?")
    kept = [every[i] for i in (0, 5, 10, 15)]
    expected = reference.video_greedy(messages, [], [kept], 0.2, 12)
    assert reference.video_greedy(messages, [], [every[:4]], 0.2, 12) != expected, "frames that do not tell apart"
    whole = reference.video_greedy(messages, [], [every], 1.0, 12)
    with VLMClient(url, protocol=protocol, chat_model=MODEL) as client:
        sampled = client.generate(messages, videos=[clip], video_fps=1.0, max_frames=4, max_tokens=12)
        passed_whole = client.generate(messages, videos=[clip], video_fps=30.0, max_tokens=12)
    assert sampled.video_frames == [4]
    assert sampled.prompt_tokens == reference.video_inputs(messages, [], [kept], 0.2)["input_ids"].shape[1]
    assert sampled.token_ids == expected
    assert passed_whole.video_frames == [20]
    assert passed_whole.prompt_tokens == reference.video_inputs(messages, [], [every], 1.0)["input_ids"].shape[1]
    assert passed_whole.token_ids == whole


@pytest.fixture(scope="module")
def gateway(server: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway in front of this module's server (the cheapest way to put the family behind the OpenAI route)."""
    log = tmp_path_factory.mktemp("gateway") / "gateway-qwen2_vl.log"
    with GatewayProcess(server.grpc_url, log, "--ready-cache", "0", api_keys=API_KEY) as running:
        yield running


def test_image_and_video_chats_through_the_gateways_openai_route_answer_hf_generates_tokens(
    server: TritonServer, gateway: GatewayProcess, reference: Qwen2VLReference
) -> None:
    """The real openai SDK naming qwen2_vl: an image chat and a video chat (a data URL at 1 fps) answer with the text
    and tokens of the server's own answer, whose token ids are HF generate's."""
    image, clip = scene(96, 80, seed=99), encode_video([scene(64, 48, seed=90 + i) for i in range(4)], fps=1)
    frames = decode_video(clip, "video", Sampling(1.0, 32)).frames
    chats = [
        ("image_url", {"url": data_url(encode(image))}, {"images": [encode(image)]}, {}),
        ("video_url", {"url": data_url(clip, "video/mp4")}, {"videos": [clip], "video_fps": 1.0}, {"video_fps": 1.0}),
    ]
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=120) as sdk:
        for kind, url, direct_media, extra in chats:
            content = [{"type": kind, kind: url}, {"type": "text", "text": "what is shown?"}]
            reply = sdk.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
                max_tokens=12,
                logprobs=True,
                extra_body=extra,
            )
            item = {"type": "image" if kind == "image_url" else "video"}
            messages = [{"role": "user", "content": [item, {"type": "text", "text": "what is shown?"}]}]
            with VLMClient(server.grpc_url, chat_model=MODEL) as direct:
                expected = direct.generate(messages, max_tokens=12, **direct_media)
            if kind == "image_url":
                hf = reference.greedy(messages, [image], 12)
            else:
                hf = reference.video_greedy(messages, [], [frames], 1.0, 12)
                assert reply.model_extra is not None and reply.model_extra["video_frames"] == [4]
            assert expected.token_ids == hf, kind
            assert reply.choices[0].message.content == expected.text, kind
            assert reply.choices[0].logprobs is not None
            assert [t.token for t in reply.choices[0].logprobs.content or []] == expected.tokens, kind
            assert reply.usage is not None and reply.usage.prompt_tokens == expected.prompt_tokens, kind
