"""Text-to-image search over a folder: the images are embedded once into an index file (numpy ``.npz``)
and each query is one text embedding and a dot product.

The index keeps, next to the image embeddings, the embedding of a fixed probe text; a query embeds the
probe again in the same request, so an index built by another model (or another checkpoint) is refused
instead of answering with meaningless scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from client.errors import InvalidInputError, VLMError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
PROBE_TEXT = "a photo of something"
BATCH_SIZE = 16  # images per request (the server takes at most 32)
_SAME_MODEL_COSINE = 0.999  # the probe's embeddings agree to float precision when the model is the same


class IndexMismatchError(VLMError):
    """The index was built by a different model than the one the server serves now."""


@dataclass(frozen=True)
class SearchHit:
    name: str  # the image's path relative to the indexed folder
    score: float  # cosine similarity between the query and the image


@dataclass(frozen=True)
class SearchIndex:
    names: list[str]
    embeddings: np.ndarray  # [len(names), d], L2-normalised
    probe: np.ndarray  # [d]: PROBE_TEXT's embedding by the model that built the index

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:  # np.savez would append .npz to a name without it
            np.savez(file, names=np.array(self.names), embeddings=self.embeddings, probe=self.probe)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SearchIndex:
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                return cls([str(n) for n in data["names"]], data["embeddings"], data["probe"])
        except (KeyError, ValueError) as error:
            raise VLMError(f"{Path(path).name}: not a search index ({error})") from None

    def check_model(self, probe: np.ndarray) -> None:
        if probe.shape != self.probe.shape:
            raise IndexMismatchError(
                f"the index holds {self.probe.shape[0]}-dimensional embeddings, the server's model makes "
                f"{probe.shape[0]}: rebuild the index"
            )
        if float(probe @ self.probe) < _SAME_MODEL_COSINE:
            raise IndexMismatchError("the index was built by a different model than the server's: rebuild the index")

    def top_k(self, query: np.ndarray, k: int) -> list[SearchHit]:
        if k < 1:
            raise InvalidInputError(f"k: must be at least 1, got {k}")
        scores = self.embeddings @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return [SearchHit(self.names[i], float(scores[i])) for i in order]


def images_in(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VLMError(f"{folder.name}: not a folder")
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise VLMError(f"{folder.name}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def batches(items: list[Path], size: int = BATCH_SIZE) -> list[list[Path]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
