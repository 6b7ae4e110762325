"""Session-wide artifacts: tiny CLIP, SigLIP, SigLIP2, LLaVA and LLaVA-NeXT checkpoints, one exported repository,
and one real tritonserver serving it for the whole run (tests/server/ and tests/gateway/ share it), with the Hugging
Face references.

The repository holds every family under its default name (``clip``, ``llava``, ``llava_next``, ``siglip``,
``siglip2``) and a second CLIP of another shape under the name ``NAMED_CLIP``: two checkpoints of one family, each
served by its name."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from export.parity import ParityReport
from serving.launcher import TritonServer, loopback_options
from tests.reference import ClipReference, LlavaReference, Siglip2Reference, SiglipReference

REPO_ROOT = Path(__file__).resolve().parent.parent
NAMED_CLIP = "clip-small.v2"  # `vlm-export model --name`: dashes and dots, as model ids often have


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checkpoints.presets import build_preset

    return build_preset("tiny-clip", tmp_path_factory.mktemp("checkpoints") / "tiny-clip")


@pytest.fixture(scope="session")
def tiny_clip_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, smaller CLIP (one layer per tower, 48 px, 24-dimensional embeddings to tiny-clip's 32, another
    seed): what the repository serves under ``NAMED_CLIP`` beside tiny-clip, cheap to load."""
    from checkpoints.presets import ClipPreset
    from checkpoints.tower_shape import TowerShape

    preset = ClipPreset(
        name="test-clip-b",
        image_size=48,
        patch_size=16,
        vision=TowerShape(hidden=32, layers=1, heads=2, intermediate=48),
        text=TowerShape(hidden=32, layers=1, heads=2, intermediate=48),
        projection_dim=24,
        vocab_size=1024,
        tokenizer_vocab_size=768,
        context_length=16,
        seed=7,
    )
    return preset.build(tmp_path_factory.mktemp("checkpoints") / "test-clip-b")


def _test_siglip_shape() -> dict[str, Any]:
    """The tests' SigLIP towers (not the presets'), and a logit scale and bias that keep the sigmoid scores away from
    0 and 1, so comparing them means something."""
    from checkpoints.tower_shape import TowerShape

    return {
        "patch_size": 16,
        "vision": TowerShape(hidden=32, layers=2, heads=4, intermediate=48),
        "text": TowerShape(hidden=32, layers=1, heads=2, intermediate=64),
        "vocab_size": 700,
        "tokenizer_vocab_size": 500,
        "logit_scale": 1.5,
        "logit_bias": -0.25,
    }


@pytest.fixture(scope="session")
def tiny_siglip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random SigLIP of the tests' own shape: another image size and context than the preset's."""
    from checkpoints.siglip_preset import SiglipPreset

    preset = SiglipPreset(name="test-siglip", image_size=48, context_length=12, seed=3, **_test_siglip_shape())
    return preset.build(tmp_path_factory.mktemp("checkpoints") / "test-siglip")


@pytest.fixture(scope="session")
def tiny_siglip2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random SigLIP2 NaFlex of the tests' SigLIP shape: a 4x4 position grid that images of up to 64 patches, of
    any aspect ratio, stretch."""
    from checkpoints.siglip2_preset import Siglip2Preset

    shape = _test_siglip_shape()
    preset = Siglip2Preset(name="test-siglip2", image_size=64, context_length=64, max_num_patches=64, seed=4, **shape)
    return preset.build(tmp_path_factory.mktemp("checkpoints") / "test-siglip2")


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checkpoints.presets import build_preset

    return build_preset("tiny-llava", tmp_path_factory.mktemp("checkpoints") / "tiny-llava")


@pytest.fixture(scope="session")
def tiny_llava_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-llava's second architecture: last vision layer with CLS kept, projector without biases, GQA 4:2."""
    from checkpoints.presets import build_preset

    return build_preset("tiny-llava-full", tmp_path_factory.mktemp("checkpoints") / "tiny-llava-full")


@pytest.fixture(scope="session")
def tiny_idefics3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The family served with vLLM encoding the images (no exported tower)."""
    from checkpoints.presets import build_preset

    return build_preset("tiny-idefics3", tmp_path_factory.mktemp("checkpoints") / "tiny-idefics3")


@pytest.fixture(scope="session")
def tiny_qwen2_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checkpoints.presets import build_preset

    return build_preset("tiny-qwen2-vl", tmp_path_factory.mktemp("checkpoints") / "tiny-qwen2-vl")


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checkpoints.presets import build_preset

    return build_preset("tiny-qwen2.5-vl", tmp_path_factory.mktemp("checkpoints") / "tiny-qwen2.5-vl")


@pytest.fixture(scope="session")
def tiny_llava_next(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checkpoints.presets import build_preset

    return build_preset("tiny-llava-next", tmp_path_factory.mktemp("checkpoints") / "tiny-llava-next")


@pytest.fixture(scope="session")
def repository_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checked-in repository that the session's exports fill (the tree stays clean)."""
    repository = tmp_path_factory.mktemp("repo") / "model_repository"
    shutil.copytree(REPO_ROOT / "model_repository", repository)
    return repository


@pytest.fixture(scope="session")
def exported_clip(tiny_clip: Path, repository_copy: Path) -> list[ParityReport]:
    from export.families.base import ExportOptions
    from export.families.clip.family import CLIP_FAMILY

    return CLIP_FAMILY.export(tiny_clip, repository_copy, ExportOptions())


@pytest.fixture(scope="session")
def exported_llava(tiny_llava: Path, repository_copy: Path) -> list[ParityReport]:
    from export.families.llava.exporter import export_llava

    return export_llava(tiny_llava, repository_copy)


@pytest.fixture(scope="session")
def exported_llava_next(tiny_llava_next: Path, repository_copy: Path) -> list[ParityReport]:
    from export.families.llava_next.exporter import export_llava_next

    return export_llava_next(tiny_llava_next, repository_copy)


@pytest.fixture(scope="session")
def exported_siglip(tiny_siglip: Path, repository_copy: Path) -> list[ParityReport]:
    from export.families.base import ExportOptions
    from export.families.siglip.family import SIGLIP_FAMILY

    return SIGLIP_FAMILY.export(tiny_siglip, repository_copy, ExportOptions())


@pytest.fixture(scope="session")
def exported_siglip2(tiny_siglip2: Path, repository_copy: Path) -> list[ParityReport]:
    from export.families.base import ExportOptions
    from export.families.siglip2.family import SIGLIP2_FAMILY

    return SIGLIP2_FAMILY.export(tiny_siglip2, repository_copy, ExportOptions())


@pytest.fixture(scope="session")
def exported_named_clip(tiny_clip_b: Path, repository_copy: Path, exported_clip: list[ParityReport]) -> list[str]:
    """tiny_clip_b exported as `vlm-export model --name NAMED_CLIP` (after the default CLIP, whose names it must
    not take); the command's output lines."""
    import contextlib
    import io

    from export.cli import main as vlm_export

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = vlm_export(
            ["model", "--checkpoint", str(tiny_clip_b), "--repository", str(repository_copy), "--name", NAMED_CLIP]
        )
    assert code == 0, out.getvalue()
    return out.getvalue().splitlines()


@pytest.fixture(scope="session")
def model_repository(
    repository_copy: Path,
    exported_clip: list[ParityReport],
    exported_llava: list[ParityReport],
    exported_llava_next: list[ParityReport],
    exported_siglip: list[ParityReport],
    exported_siglip2: list[ParityReport],
    exported_named_clip: list[str],
) -> Path:
    """The repository the test server serves: every family exported from its tiny checkpoint under its default
    name, and a second CLIP under NAMED_CLIP."""
    return repository_copy


@pytest.fixture(scope="session")
def server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    options = loopback_options(model_repository, tmp_path_factory.mktemp("logs") / "tritonserver.log", exit_timeout_s=2)
    with TritonServer(options) as running:
        yield running


@pytest.fixture(scope="session")
def reference(tiny_clip: Path) -> ClipReference:
    return ClipReference(tiny_clip)


@pytest.fixture(scope="session")
def named_clip_reference(tiny_clip_b: Path) -> ClipReference:
    return ClipReference(tiny_clip_b)


@pytest.fixture(scope="session")
def siglip_reference(tiny_siglip: Path) -> SiglipReference:
    return SiglipReference(tiny_siglip)


@pytest.fixture(scope="session")
def siglip2_reference(tiny_siglip2: Path) -> Siglip2Reference:
    return Siglip2Reference(tiny_siglip2)


@pytest.fixture(scope="session")
def llava_reference(tiny_llava: Path) -> LlavaReference:
    return LlavaReference(tiny_llava)


@pytest.fixture(scope="session")
def llava_next_reference(tiny_llava_next: Path) -> LlavaReference:
    return LlavaReference(tiny_llava_next)
