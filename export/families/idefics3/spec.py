"""The Idefics3 family's served models: no exported encoder. ``idefics3_preprocess`` decodes and bounds the images
(LLaVA's limits and errors) and hands their pixels on; ``idefics3_decoder`` (LLaVA's decoder, in its ``pixels``
image input mode) gives them to vLLM as images, whose own processor tiles them, expands the prompt's image
placeholders and runs the vision tower inside the engine. The ``idefics3`` ensemble chains the two.

Pure data (no torch).
"""

from __future__ import annotations

from dataclasses import replace

from export.families.limits import ENTRY_STEP, STEP_QUEUE, image_limits
from export.families.llava.spec import GENERATION_INPUTS, GENERATION_OUTPUTS, LLAVA_DECODER, MAX_IMAGES
from export.specs import EnsembleSpec, EnsembleStep, PythonModelSpec, TensorSpec

ENSEMBLE = "idefics3"
IMAGE_INPUT_PARAMETER = "image_input"  # the decoder's: "embeds" (LLaVA's, the default) or "pixels" (vLLM encodes)

# Every image's RGB bytes (row-major, height x width x 3), one image after another, and each image's size.
_PIXELS = TensorSpec("pixels", "uint8", (-1,))
_IMAGE_SIZES = TensorSpec("image_sizes", "int32", (-1, 2))  # [images, (height, width)]
_MESSAGES = TensorSpec("messages", "bytes", (1,))

IDEFICS3_PREPROCESS = PythonModelSpec(
    name="idefics3_preprocess",
    inputs=(TensorSpec("image", "bytes", (-1,)),),
    outputs=(_PIXELS, _IMAGE_SIZES),
    entry_point="serving.triton_models.image_preprocess:DecodedImages",
    resources=ENTRY_STEP,  # SINGLE_INSTANCE_STALL in export/families/limits.py
    queue=STEP_QUEUE,
    parameters=image_limits(MAX_IMAGES),
)

IDEFICS3_DECODER = replace(
    LLAVA_DECODER,
    name="idefics3_decoder",
    inputs=(
        *(tensor for tensor in LLAVA_DECODER.inputs if tensor.name != "image_embeds"),
        replace(_PIXELS, optional=True),
        replace(_IMAGE_SIZES, optional=True),
    ),
    parameters={**LLAVA_DECODER.parameters, IMAGE_INPUT_PARAMETER: "pixels"},
)

_IMAGES = {tensor.name: tensor.name for tensor in (_PIXELS, _IMAGE_SIZES)}
IDEFICS3_ENSEMBLE = EnsembleSpec(
    name=ENSEMBLE,
    inputs=(TensorSpec("image", "bytes", (-1,)), _MESSAGES, *GENERATION_INPUTS),
    outputs=GENERATION_OUTPUTS,
    steps=(
        EnsembleStep(IDEFICS3_PREPROCESS.name, {"image": "image"}, _IMAGES),
        EnsembleStep(
            IDEFICS3_DECODER.name,
            {**{t.name: t.name for t in (_MESSAGES, *GENERATION_INPUTS)}, **_IMAGES},
            {t.name: t.name for t in GENERATION_OUTPUTS},
        ),
    ),
)

IDEFICS3_MODELS = (IDEFICS3_PREPROCESS, IDEFICS3_DECODER, IDEFICS3_ENSEMBLE)
