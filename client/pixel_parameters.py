"""Per-request pixel budget, defined once: ``min_pixels`` / ``max_pixels``, the area each image (and each video
frame) is resized to lie within, as transformers' Qwen2-VL processor takes them at call time and vLLM takes them in
``mm_processor_kwargs``. They trade detail for tokens: an image costs one token per merged patch of its resized area.

The preprocess step of a family whose resize has a pixel budget declares these inputs (``export/families/limits.py``
writes its caps); its validation is ``serving/pixel_budget.py``; the client's request tensors, the CLI's options and
the gateway's schema derive from here. Absent: the checkpoint's own values. The table's bounds are the ones every
model shares; each model checks its own floor (one merged patch) and cap. Pure data.
"""

from __future__ import annotations

from client.parameters import NumberParameter

MIN_PIXELS = NumberParameter(
    "min_pixels",
    "INT64",
    "Resize each image and video frame to at least this many pixels (default: the checkpoint's)",
    minimum=1,
)
MAX_PIXELS = NumberParameter(
    "max_pixels",
    "INT64",
    "Resize each image and video frame to at most this many pixels (default: the checkpoint's)",
    minimum=1,
)
PIXEL_PARAMETERS = (MIN_PIXELS, MAX_PIXELS)
PIXEL_PARAMETERS_BY_NAME = {parameter.name: parameter for parameter in PIXEL_PARAMETERS}
