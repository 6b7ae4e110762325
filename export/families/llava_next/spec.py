"""The LLaVA-NeXT family's served models: anyres preprocessing (base image + tiles), LLaVA's vision tower and
projector run on every tile (the batch axis carries a request's base images and tiles), the packing step, the
python-backend decoder, and the ensemble that chains them, all named after the checkpoint (``llava_next``,
``llava_next_preprocess``, ... by default; ``vlm-export model --name`` picks another name).

Pure data (no torch). The decoder is LLaVA's, handed each image's packed embeddings padded to the request's longest
image with their lengths (``image_tokens``): an image's token count depends on its size here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from export.families.limits import STEP_QUEUE, VISION_CPU_BATCH, image_limits
from export.families.llava.spec import (
    EMBEDS,
    FEATURES,
    GENERATION_INPUTS,
    GENERATION_OUTPUTS,
    MAX_IMAGES,
    MESSAGES,
    PIXELS,
    LlavaComponents,
    image_preprocess,
    llava_components,
    vlm_encoder,
)
from export.families.tags import served_tags
from export.specs import EnsembleSpec, EnsembleStep, ModelSpec, PythonModelSpec, TensorSpec

FAMILY = "llava_next"
ENSEMBLE = FAMILY  # the default name
# Tiles the vision tower sees for one request: llava-v1.6's largest grids (2x2, 3x1, 1x3) make 5 tiles with the
# base image, so 4 images fit. One request's tiles go to the tower in one execution, so this is its batch bound too.
MAX_TILES = 20

_IMAGE_SIZES = TensorSpec("image_sizes", "int64", (-1, 2))  # each image's (height, width) as decoded
_TILE_EMBEDS = TensorSpec("tile_embeds", "float32", (-1, "image_tokens", "text_hidden"))
_PACKED = TensorSpec("image_embeds", "float32", (-1, -1, "text_hidden"))  # per image, padded to the longest
_LENGTHS = TensorSpec("image_tokens", "int32", (-1,))


@dataclass(frozen=True)
class LlavaNextComponents(LlavaComponents):
    """LLaVA's models under another family's names, plus ``pack``: the step between the projector and the decoder."""

    pack: PythonModelSpec

    def ensemble(self, fuse_projector: bool) -> EnsembleSpec:
        pixels, sizes = {"pixel_values": "pixel_values"}, {"image_sizes": "image_sizes"}
        if fuse_projector:
            encoders = [EnsembleStep(self.vision_fused.name, pixels, {"image_embeds": "tile_embeds"})]
        else:
            encoders = [
                EnsembleStep(self.vision.name, pixels, {"image_features": "image_features"}),
                EnsembleStep(
                    self.projector.name, {"image_features": "image_features"}, {"image_embeds": "tile_embeds"}
                ),
            ]
        packed = {"image_embeds": "image_embeds", "image_tokens": "image_tokens"}
        passthrough = {t.name: t.name for t in (MESSAGES, *GENERATION_INPUTS)}
        return EnsembleSpec(
            name=self.name,
            inputs=(TensorSpec("image", "bytes", (-1,)), MESSAGES, *GENERATION_INPUTS),
            outputs=GENERATION_OUTPUTS,
            steps=(
                EnsembleStep(self.preprocess.name, {"image": "image"}, {**pixels, **sizes}),
                *encoders,
                EnsembleStep(self.pack.name, {"tile_embeds": "tile_embeds", **sizes}, packed),
                EnsembleStep(
                    self.decoder.name, {**passthrough, **packed}, {t.name: t.name for t in GENERATION_OUTPUTS}
                ),
            ),
            # Text-only turns and cancellations go to the decoder itself (client.generation).
            parameters=served_tags(FAMILY, self.name, "chat", probe="chat", text_model=self.decoder.name),
        )

    def models(self, fuse_projector: bool) -> tuple[ModelSpec, ...]:
        encoders = (self.vision_fused,) if fuse_projector else (self.vision, self.projector)
        return (self.preprocess, *encoders, self.pack, self.decoder, self.ensemble(fuse_projector))


@cache  # one set of specs per name, as LLaVA's
def llava_next_components(name: str) -> LlavaNextComponents:
    """The models of the LLaVA-NeXT checkpoint ``name`` (``vlm-export model --name``; default ``llava_next``)."""
    llava = llava_components(name)
    decoder_inputs = (
        *(replace(t, dims=_PACKED.dims) if t.name == "image_embeds" else t for t in llava.decoder.inputs),
        replace(_LENGTHS, optional=True),
    )
    return LlavaNextComponents(
        name=name,
        preprocess=replace(
            image_preprocess(name),
            outputs=(*image_preprocess(name).outputs, _IMAGE_SIZES),
            entry_point="serving.triton_models.anyres_preprocess:AnyresPreprocess",
            parameters={**image_limits(MAX_IMAGES), "max_tiles": str(MAX_TILES)},
        ),
        vision=vlm_encoder(f"{name}_vision", (PIXELS,), (FEATURES,), VISION_CPU_BATCH, MAX_TILES),
        projector=vlm_encoder(f"{name}_projector", (FEATURES,), (EMBEDS,), max_batch=MAX_TILES),
        vision_fused=vlm_encoder(f"{name}_vision", (PIXELS,), (EMBEDS,), VISION_CPU_BATCH, MAX_TILES),
        decoder=replace(llava.decoder, inputs=decoder_inputs),
        pack=PythonModelSpec(
            name=f"{name}_pack",
            inputs=(_TILE_EMBEDS, _IMAGE_SIZES),
            outputs=(_PACKED, _LENGTHS),
            entry_point="serving.triton_models.anyres_pack:AnyresPack",
            queue=STEP_QUEUE,
        ),
    )


LLAVA_NEXT = llava_next_components(ENSEMBLE)
