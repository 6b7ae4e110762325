"""benchmarks.exported: a served model found by its tags in a repository's configs written by the real export
generator, what a task loads, and a dual encoder's layout read back (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.exported import DualEncoderLayout, repository_readings, served_model, task_models
from export.families import family_named
from export.families.base import ExportOptions
from export.repository import write_repository

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repository's configs holding CLIP, SigLIP (as ``sig``), SigLIP2 and LLaVA-NeXT, as vlm-export writes
    them."""
    root = tmp_path_factory.mktemp("repository")
    specs = [
        *family_named("clip").models(ExportOptions()),
        *family_named("siglip").models(ExportOptions(name="sig")),
        *family_named("siglip2").models(ExportOptions()),
        *family_named("llava_next").models(ExportOptions()),
    ]
    write_repository(root, specs)
    return root


def test_a_model_is_found_by_its_name_and_loads_only_its_tasks_ensemble(repository: Path) -> None:
    readings = repository_readings(repository)
    sig = served_model(readings, "sig", "image_embed", "here")
    assert (sig.family, task_models(sig, "image_embed")) == ("siglip", ("sig_image_embed",))
    chat = served_model(readings, "llava_next", "chat", "here")
    assert task_models(chat, "chat") == ("llava_next", "llava_next_decoder")  # text-only turns go to the decoder


def test_an_unknown_name_or_a_model_of_the_wrong_kind_is_refused_naming_the_flag(repository: Path) -> None:
    readings = repository_readings(repository)
    with pytest.raises(ValueError, match=r"--model: here serves no model named 'siglip'; it serves: .*sig \(an "):
        served_model(readings, "siglip", "rank", "here")
    with pytest.raises(ValueError, match=r"'llava_next' is a chat model .*needs an embedding model"):
        served_model(readings, "llava_next", "text_embed", "here")
    with pytest.raises(ValueError, match=r"'clip' is an embedding model .*needs a chat model"):
        served_model(readings, "clip", "chat", "here")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("clip", ("clip_preprocess", "clip_vision", "clip_tokenize", "clip_text", "clip_similarity", "image",
                  "longest", "softmax")),
        ("sig", ("sig_preprocess", "sig_vision", "sig_tokenize", "sig_text", "sig_similarity", "image",
                 "max_length", "sigmoid")),
        ("siglip2", ("siglip2_preprocess", "siglip2_vision", "siglip2_tokenize", "siglip2_text",
                     "siglip2_similarity", "patches", "max_length", "sigmoid")),
    ],
)  # fmt: skip
def test_a_dual_encoders_layout_is_what_its_family_exported(
    repository: Path, name: str, expected: tuple[str, ...]
) -> None:
    readings = repository_readings(repository)
    layout = DualEncoderLayout.read(served_model(readings, name, "rank", "here"), readings)
    assert (
        layout.preprocess,
        layout.vision,
        layout.tokenize,
        layout.text,
        layout.similarity,
        layout.pixel_layout,
        layout.padding,
        layout.scoring,
    ) == expected
