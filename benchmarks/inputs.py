"""What the load generator and the baselines send: images, texts and prompts, made once from a seed.

The served ensembles have Triton's response cache on, so a repeated request would be answered from memory.
``unique`` gives each sent image a distinct serial number in a metadata segment (a JPEG comment, a PNG text
chunk): the pixels, and so the work, stay the same while the bytes, and so the cache key, differ.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_FORMATS = ("jpeg", "png")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_WORDS = (
    *("red", "green", "blue", "yellow", "small", "large", "circle", "square", "triangle", "star", "left", "right"),
    *("above", "below", "near", "far", "photo", "picture", "cat", "dog", "car", "tree", "house", "street"),
    *("river", "mountain", "sky", "cloud", "person", "bicycle", "window", "table", "chair"),
)
_JPEG_START, _PNG_SIGNATURE = b"\xff\xd8", b"\x89PNG\r\n\x1a\n"
_PNG_IHDR_END = len(_PNG_SIGNATURE) + 25  # the IHDR chunk always comes first and is 25 bytes long


MAX_IMAGE_SIZES = 16  # distinct synthetic sizes a run cycles through


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"320x240,1920x1080"``: the sizes synthetic images cycle through (image ``i`` has size ``i % len``)."""
    sizes = [parse_size(part.strip()) for part in text.split(",") if part.strip()]
    if not 1 <= len(sizes) <= MAX_IMAGE_SIZES:
        raise ValueError(f"--image-size: expected 1..{MAX_IMAGE_SIZES} comma-separated sizes, got {text!r}")
    return sizes


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` or ``"224"`` (square) -> (width, height)."""
    parts = text.lower().split("x")
    try:
        width, height = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        width = height = 0
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise ValueError(f"--image-size: expected WIDTHxHEIGHT or SIZE, each 1..8192, got {text!r}")
    return width, height


def synthetic_images(
    count: int, size: tuple[int, int] | list[tuple[int, int]], image_format: str, seed: int
) -> list[bytes]:
    """Smooth random colour fields with noise: they compress like photographs, not like flat colour. With a list of
    sizes, image ``i`` has the ``i % len``-th: mixed sizes in turn, as requests draw images in turn."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"--image-format: expected one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    rng = np.random.default_rng(seed)
    sizes = size if isinstance(size, list) else [size]
    images = []
    for index in range(count):
        size = sizes[index % len(sizes)]
        width, height = size
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        noise = rng.normal(0, 12, (height, width, 3))
        pixels = np.clip(np.asarray(coarse, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(
            buffer, format=image_format.upper(), **({"quality": 90} if image_format == "jpeg" else {})
        )
        images.append(buffer.getvalue())
    return images


MAX_VIDEO_FRAMES = 256  # frames of one synthetic clip (the server samples by fps and max_frames in any case)
VIDEO_FPS = 1  # synthetic clips' frame rate: one frame a second, as the server samples by default


def synthetic_videos(count: int, frames: int, size: tuple[int, int] | list[tuple[int, int]], seed: int) -> list[bytes]:
    """``count`` MPEG-4 clips of ``frames`` frames at ``VIDEO_FPS``, each frame a synthetic image (PyAV encodes). With
    a list of sizes, clip ``i``'s frames have the ``i % len``-th, as images take mixed sizes in turn."""
    import av  # the bench extra's; only video workloads need it

    if not 1 <= frames <= MAX_VIDEO_FRAMES:
        raise ValueError(f"--video-frames: must be 1..{MAX_VIDEO_FRAMES}, got {frames}")
    sizes = size if isinstance(size, list) else [size]
    for width, height in sizes:
        if width % 2 or height % 2:
            raise ValueError(
                f"--image-size: video frames need an even width and height (yuv420p): got {width}x{height}"
            )
    rng = np.random.default_rng(seed)
    clips = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format="mp4") as output:
            stream = output.add_stream("mpeg4", rate=VIDEO_FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for image in synthetic_images(frames, (width, height), "png", int(rng.integers(2**31))):
                frame = av.VideoFrame.from_image(Image.open(io.BytesIO(image)).convert("RGB"))
                for packet in stream.encode(frame):
                    output.mux(packet)
            for packet in stream.encode():
                output.mux(packet)
        clips.append(buffer.getvalue())
    return clips


def folder_images(folder: Path) -> list[bytes]:
    """Every image file directly in ``folder``, in name order."""
    if not folder.is_dir():
        raise ValueError("--images: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"--images: the folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return [p.read_bytes() for p in files]


def unique(image: bytes, serial: int) -> bytes:
    """The same image with ``serial`` in a metadata segment; formats other than JPEG and PNG as they are."""
    note = f"vlm-bench {serial}".encode()
    if image.startswith(_JPEG_START):
        return _JPEG_START + b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note + image[2:]
    if image.startswith(_PNG_SIGNATURE):
        body = b"tEXt" + b"Comment\x00" + note
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        return image[:_PNG_IHDR_END] + chunk + image[_PNG_IHDR_END:]
    return image


def captions(count: int, seed: int, words: int = 8) -> list[str]:
    """Short captions of ``words`` words, as CLIP's text side sees them."""
    rng = np.random.default_rng(seed)
    return ["a photo of " + " ".join(rng.choice(_WORDS, words)) for _ in range(count)]


def prompts(count: int, tokens: int, seed: int, tokenizer: object | None = None) -> list[str]:
    """Questions of ``tokens`` tokens when a tokenizer is given (words otherwise, about one token each)."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(count):
        words = list(rng.choice(_WORDS, tokens))
        text = " ".join(words)
        if tokenizer is not None:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            while len(ids) < tokens:  # a word may be one token or several; add until there are enough
                text += " " + str(rng.choice(_WORDS))
                ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            text = tokenizer.decode(ids[:tokens])
        texts.append(text)
    return texts
