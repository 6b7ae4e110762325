"""``<family>_similarity``: image embeddings [n, d] x text embeddings [m, d] -> logits and probabilities [n, m],
scored as the config's ``scoring`` parameter says (softmax over the texts, or a sigmoid per pair)."""

from __future__ import annotations

import numpy as np

from serving.errors import InvalidInputError
from serving.similarity import SCORINGS, image_text_scores, read_logit_bias, read_logit_scale
from serving.triton_models.base import PythonModel
from serving.validators import require_count, require_finite

SCORING_PARAMETER, DEFAULT_SCORING = "scoring", SCORINGS[0]  # the config parameter, and its value when absent


class Similarity(PythonModel):
    def setup(self) -> None:
        self.logit_scale = read_logit_scale(self.artifacts)
        self.logit_bias = read_logit_bias(self.artifacts)
        self.scoring = self.parameters.get(SCORING_PARAMETER, DEFAULT_SCORING)
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")
        self.max_images = self.int_parameter("max_images")
        self.max_texts = self.int_parameter("max_texts")

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images, texts = inputs["image_embeds"], inputs["text_embeds"]
        require_count("image_embeds", images.shape[0], self.max_images)
        require_count("text_embeds", texts.shape[0], self.max_texts)
        require_finite("image_embeds", images)
        require_finite("text_embeds", texts)
        if images.shape[1] != texts.shape[1]:
            raise InvalidInputError(
                "text_embeds", f"embedding size {texts.shape[1]} differs from image_embeds' {images.shape[1]}"
            )
        return image_text_scores(images, texts, self.logit_scale, self.logit_bias, self.scoring)
