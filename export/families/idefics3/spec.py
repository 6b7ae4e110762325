"""The Idefics3 family's served models: no exported encoder. ``idefics3_preprocess`` decodes and bounds the images
(LLaVA's limits and errors) and hands their pixels on; ``idefics3_decoder`` (LLaVA's decoder, in its ``pixels``
image input mode) gives them to vLLM as images, whose own processor tiles them, expands the prompt's image
placeholders and runs the vision tower inside the engine. The ``idefics3`` ensemble chains the two.

Pure data (no torch).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from export.families.limits import ENTRY_STEP, STEP_QUEUE, image_limits
from export.families.llava.spec import GENERATION_INPUTS, GENERATION_OUTPUTS, MAX_IMAGES, llava_components
from export.families.tags import served_tags
from export.specs import EnsembleSpec, EnsembleStep, ModelSpec, PythonModelSpec, TensorSpec

FAMILY = "idefics3"
IMAGE_INPUT_PARAMETER = "image_input"  # the decoder's: "embeds" (LLaVA's, the default) or "pixels" (vLLM encodes)

# Every image's RGB bytes (row-major, height x width x 3), one image after another, and each image's size.
_PIXELS = TensorSpec("pixels", "uint8", (-1,))
_IMAGE_SIZES = TensorSpec("image_sizes", "int32", (-1, 2))  # [images, (height, width)]
_MESSAGES = TensorSpec("messages", "bytes", (1,))
_IMAGES = {tensor.name: tensor.name for tensor in (_PIXELS, _IMAGE_SIZES)}


@cache  # one set of specs per name
def idefics3_models(name: str = FAMILY) -> tuple[ModelSpec, ...]:
    """The models of the Idefics3 checkpoint ``name`` (``vlm-export model --name``; default ``idefics3``):
    ``<name>_preprocess``, ``<name>_decoder`` and the ensemble ``<name>``."""
    preprocess = PythonModelSpec(
        name=f"{name}_preprocess",
        inputs=(TensorSpec("image", "bytes", (-1,)),),
        outputs=(_PIXELS, _IMAGE_SIZES),
        entry_point="serving.triton_models.image_preprocess:DecodedImages",
        resources=ENTRY_STEP,  # SINGLE_INSTANCE_STALL in export/families/limits.py
        queue=STEP_QUEUE,
        parameters=image_limits(MAX_IMAGES),
    )
    llava_decoder = llava_components(name).decoder
    decoder = replace(
        llava_decoder,
        inputs=(
            *(tensor for tensor in llava_decoder.inputs if tensor.name != "image_embeds"),
            replace(_PIXELS, optional=True),
            replace(_IMAGE_SIZES, optional=True),
        ),
        parameters={**llava_decoder.parameters, IMAGE_INPUT_PARAMETER: "pixels"},
    )
    ensemble = EnsembleSpec(
        name=name,
        inputs=(TensorSpec("image", "bytes", (-1,)), _MESSAGES, *GENERATION_INPUTS),
        outputs=GENERATION_OUTPUTS,
        steps=(
            EnsembleStep(preprocess.name, {"image": "image"}, _IMAGES),
            EnsembleStep(
                decoder.name,
                {**{t.name: t.name for t in (_MESSAGES, *GENERATION_INPUTS)}, **_IMAGES},
                {t.name: t.name for t in GENERATION_OUTPUTS},
            ),
        ),
        # Text-only turns and cancellations go to the decoder itself (client.generation).
        parameters=served_tags(FAMILY, name, "chat", probe="chat", text_model=decoder.name),
    )
    return (preprocess, decoder, ensemble)
