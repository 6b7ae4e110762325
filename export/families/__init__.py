"""The family registry: a checkpoint's ``config.json`` -> the family that exports and serves it.

One line per family in ``FAMILIES``; a family's knowledge lives in its own folder (``export/families/<name>/``).
A checkpoint is matched by the first of its ``architectures`` that a family lists, else by its ``model_type``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.families.base import Family
from export.families.clip.family import CLIP_FAMILY
from export.families.idefics3.family import Idefics3Family
from export.families.llava.family import LlavaFamily
from export.families.llava_next.family import LlavaNextFamily
from export.families.qwen2_5_vl.family import Qwen2_5VLFamily
from export.families.qwen2_vl.family import Qwen2VLFamily
from export.families.siglip.family import SIGLIP_FAMILY
from export.families.siglip2.family import SIGLIP2_FAMILY

FAMILIES: tuple[Family, ...] = (
    CLIP_FAMILY,
    LlavaFamily(),
    LlavaNextFamily(),
    SIGLIP_FAMILY,
    SIGLIP2_FAMILY,
    Idefics3Family(),
    Qwen2VLFamily(),
    Qwen2_5VLFamily(),
)
CONFIG_FILE = "config.json"


class UnsupportedCheckpointError(ValueError):
    """The checkpoint names no architecture or model type of a registered family."""


@dataclass(frozen=True)
class Choice:
    family: Family
    reason: str  # what in config.json chose it, for the operator


def supported() -> str:
    return ", ".join(f"{arch} ({family.name})" for family in FAMILIES for arch in family.architectures)


def family_for_config(config: dict[str, Any]) -> Choice:
    architectures = config.get("architectures") or []
    for architecture in architectures:
        for family in FAMILIES:
            if architecture in family.architectures:
                return Choice(family, f"config.json architectures names {architecture}")
    model_type = config.get("model_type")
    for family in FAMILIES:
        if model_type in family.model_types:
            return Choice(family, f"config.json model_type is {model_type!r}")
    raise UnsupportedCheckpointError(
        f"config.json names architectures {architectures} and model_type {model_type!r}, which no family serves; "
        f"supported: {supported()}"
    )


def family_for_checkpoint(folder: Path) -> Choice:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise UnsupportedCheckpointError(f"{folder} is not a Hugging Face checkpoint folder (no {CONFIG_FILE})")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UnsupportedCheckpointError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(config, dict):
        raise UnsupportedCheckpointError(f"{path}: not a JSON object")
    return family_for_config(config)


def family_named(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise KeyError(f"no family named {name!r}; families: {', '.join(f.name for f in FAMILIES)}")
