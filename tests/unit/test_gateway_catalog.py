"""gateway.catalog's choice of model for a request, on catalogs as Triton's configs describe them (the real gateway
against the real server is tests/gateway/test_models.py): a request without a model gets its kind's default, the
configured one, else the family's default name, else the only one; otherwise a 400 that says why."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from client.catalog import PRECISION_PARAMETER, ServedModel, collect, from_configs
from export.families import family_named
from export.families.base import ExportOptions
from export.repository import write_repository
from gateway.catalog import ModelCatalog
from gateway.errors import ApiError
from gateway.settings import GatewaySettings
from serving.served import model_configs


def _tags(name: str, family: str, task: str) -> tuple[str, dict[str, str]]:
    kind = "chat" if task == "chat" else "embedding"
    ensemble = name if task == "chat" else f"{name}_{task}"
    return ensemble, {"vlm_family": family, "vlm_model": name, "vlm_kind": kind, "vlm_task": task}


class Served:
    """What ``AsyncVLMClient.served_models`` returns for a server with these models."""

    def __init__(self, *models: tuple[str, str, str]) -> None:
        self.models = collect(_tags(*model) for model in models)

    async def served_models(self) -> dict[str, ServedModel]:
        return self.models


def _resolve(served: Served, name: str | None, kind: str, **settings: str) -> str:
    catalog = ModelCatalog(served, GatewaySettings(**settings))  # type: ignore[arg-type]
    return asyncio.run(catalog.resolve(name, kind)).name  # type: ignore[arg-type]


def test_a_request_without_a_model_gets_the_configured_then_the_family_default_then_the_only_one() -> None:
    both = Served(("clip", "clip", "rank"), ("clip-b", "clip", "rank"), ("team-vlm", "llava", "chat"))
    assert _resolve(both, None, "embedding") == "clip"
    assert _resolve(both, None, "embedding", embedding_model="clip-b") == "clip-b"
    assert _resolve(both, None, "chat") == "team-vlm"  # no llava: the only chat model
    assert _resolve(both, "clip-b", "embedding") == "clip-b"


@pytest.mark.parametrize(
    ("served", "settings", "message"),
    [
        (Served(("a", "clip", "rank"), ("b", "siglip", "rank")), {}, "required (several are served)"),
        (Served(("a", "llava", "chat")), {}, "required (none is served): no embedding model is served here"),
        (Served(("a", "clip", "rank")), {"embedding_model": "b"}, "the default, 'b', is not served"),
    ],
)
def test_without_a_default_a_request_that_names_no_model_is_a_400_saying_why(
    served: Served, settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ApiError) as raised:
        _resolve(served, None, "embedding", **settings)
    assert raised.value.status == 400 and raised.value.code == "model_required" and message in raised.value.message


def test_a_models_precision_is_what_the_encoders_its_ensembles_run_record(tmp_path: Path) -> None:
    """Configs as Triton answers them (JSON of the configs vlm-export writes), three encoders set to int8."""
    specs = [
        *family_named("clip").models(ExportOptions()),
        *family_named("siglip").models(ExportOptions(name="sig")),
        *family_named("llava_next").models(ExportOptions()),
    ]
    write_repository(tmp_path, specs)
    configs = {m: MessageToDict(c, preserving_proto_field_name=True) for m, c in model_configs(tmp_path).items()}
    for encoder in ("sig_vision", "sig_text", "clip_vision"):
        configs[encoder]["parameters"][PRECISION_PARAMETER] = {"string_value": "int8"}
    models = from_configs(configs)
    assert models["sig"].precisions == (("sig_text", "int8"), ("sig_vision", "int8"))
    assert models["sig"].precision == "int8"
    assert models["clip"].precisions == (("clip_text", "fp32"), ("clip_vision", "int8"))
    assert models["clip"].precision == "mixed"
    assert models["llava_next"].precisions == (("llava_next_projector", "fp32"), ("llava_next_vision", "fp32"))
    assert models["llava_next"].precision == "fp32"
    assert ServedModel("x", "clip", "embedding", ()).precision is None  # nothing exported, or no steps read
