"""Images that vLLM encodes: tiny-idefics3 (no exported vision tower) exported with ``vlm-export model`` into a
repository of its own and served by the family server (tests/server/family_servers.py). The ensemble decodes and bounds
the images as LLaVA's does and hands their pixels to the decoder, whose vLLM tiles them by size (1 x 1 to 3 x 3 tiles
plus a global view) and encodes them. Greedy tokens equal Hugging Face ``generate`` token for token with 8 requests in
flight over gRPC and HTTP; bad images get LLaVA's errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from client import Completion, InvalidInputError, VLMClient
from export.cli import main as vlm_export
from export.families import family_for_checkpoint
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.reference import Idefics3Reference
from tests.server.family_servers import TEST_TIMEOUT_S, FamilyExport
from tests.server.test_bad_input import UNDECODABLE_IMAGES, assert_clean
from tests.server.test_llava_full import Case, assistant, user

MODEL = "idefics3"  # the checkpoint's name: its ensemble, and its decoder for text-only turns
# Exported into a repository of its own and served by the family server (tests/server/family_servers.py).
EXPORT = FamilyExport(MODEL, "tiny_idefics3")
pytestmark = [pytest.mark.timeout(TEST_TIMEOUT_S), EXPORT.mark]


# Sizes that pick different tile grids: 3 x 3 (landscape and square, small images are scaled up), 1 x 3, 3 x 1.
CASES: list[Case] = [
    (user("describe the image.", 1), [scene(96, 80, seed=61)], 20),
    (user("what colour is the circle?", 1), [scene(20, 20, seed=62)], 16),
    (user("what is on the left?", 1), [scene(150, 40, seed=63)], 18),
    (user("what is at the top?", 1), [scene(30, 100, seed=64)], 14),
    (user("compare the two images.", 2), [scene(64, 48, seed=65), scene(40, 120, seed=66)], 20),
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
def reference(tiny_idefics3: Path) -> Idefics3Reference:
    return Idefics3Reference(tiny_idefics3)


@pytest.fixture(scope="module")
def expected(reference: Idefics3Reference) -> list[list[int]]:
    return [reference.greedy(messages, images, max_tokens) for messages, images, max_tokens in CASES]


def test_the_export_says_vllm_encodes_the_images_and_writes_no_encoder(export_output: tuple[Path, str]) -> None:
    repository, printed = export_output
    assert "family: idefics3" in printed
    assert "images: encoded by vLLM inside the decoder" in printed
    assert sorted(path.name for path in repository.iterdir()) == [
        "idefics3",
        "idefics3_admission",
        "idefics3_decoder",
        "idefics3_preprocess",
    ]
    assert not list(repository.rglob("*.onnx"))
    assert (
        'key: "image_input"\n  value {\n    string_value: "pixels"'
        in (repository / "idefics3_decoder" / "config.pbtxt").read_text()
    )


def test_a_precision_for_encoders_it_does_not_export_is_refused(
    tiny_idefics3: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = tmp_path / "model_repository"
    arguments = ["model", "--checkpoint", str(tiny_idefics3), "--repository", str(repository), "--precision", "int8"]
    assert vlm_export(arguments) == 2
    assert "--precision int8: an Idefics3 checkpoint has no exported encoder" in capsys.readouterr().err
    assert not repository.exists() or not any(repository.iterdir())


def test_greedy_tokens_equal_hf_generate_for_8_concurrent_requests(
    server: TritonServer, url: str, protocol: str, reference: Idefics3Reference, expected: list[list[int]]
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
    prompt_lengths = {len(reference.inputs(m, i)["input_ids"][0]) for m, i, _ in CASES[:4]}
    assert len(prompt_lengths) >= 3, "the single-image cases should pick different tile grids"


def test_the_family_counts_each_images_tokens_as_the_processor_expands_it(
    tiny_idefics3: Path, reference: Idefics3Reference
) -> None:
    choice = family_for_checkpoint(tiny_idefics3)
    text_only = len(reference.inputs(user("what is it?", 0), [])["input_ids"][0])
    for image in (scene(96, 80), scene(20, 20), scene(150, 40), scene(30, 100)):
        with_image = len(reference.inputs(user("what is it?", 1), [image])["input_ids"][0])
        tokens = choice.family.image_tokens(reference.model.config, image.width, image.height)
        assert with_image - text_only == tokens > 0


@UNDECODABLE_IMAGES
def test_bad_images_get_llavas_errors_and_the_server_keeps_serving(
    server: TritonServer, payload: bytes, fragments: list[str]
) -> None:
    with VLMClient(server.grpc_url, chat_model=MODEL) as client:
        with pytest.raises(InvalidInputError) as caught:
            client.generate(user("compare them.", 2), [encode(scene()), payload], max_tokens=2)
        assert_clean(str(caught.value), *fragments)
        assert client.generate(user("what is it?", 1), [encode(scene(seed=70))], max_tokens=2).completion_tokens >= 1


def test_more_images_than_the_limit_are_refused_by_name(server: TritonServer) -> None:
    with VLMClient(server.grpc_url, chat_model=MODEL) as client, pytest.raises(InvalidInputError) as caught:
        client.generate(user("so many.", 5), [encode(scene(seed=i)) for i in range(5)], max_tokens=2)
    assert_clean(str(caught.value), "image", "at most 4")


def test_the_context_budget_counts_each_images_tokens_by_its_size(server: TritonServer) -> None:
    """tiny-idefics3's context is 1,024 tokens; a 96 x 80 image costs 65 of them, a 150 x 40 one 27."""
    with VLMClient(server.grpc_url, chat_model=MODEL) as client:
        for image, image_tokens in ((scene(96, 80, seed=71), 65), (scene(150, 40, seed=72), 27)):
            with pytest.raises(InvalidInputError) as caught:
                client.generate(user("what is it?", 1), [encode(image)], max_tokens=1000)
            assert_clean(str(caught.value), "max_tokens", f"({image_tokens} of them image tokens)", "1024")
