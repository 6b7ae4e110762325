"""``make demo``: serve the exported repository. CLIP (``shapes-clip``, trained here on the shapes world):
embed a held-out shapes image and texts over gRPC and HTTP, classify its colour and shape zero-shot with
the expected answer beside each, and score the served model on held-out images. LLaVA: stream a caption
and an answer about the same image over gRPC and over HTTP (Triton's ``generate_stream``). Starts and stops
its own tritonserver on free ports."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from client import Completion, VLMClient
from export.shapes_eval import evaluate_served_clip, held_out_single_shapes
from export.shapes_world import COLOUR_PROMPT, COLOURS, KINDS, SHAPE_PROMPT, Sample
from serving.launcher import TritonServer, loopback_options

PROMPTS = (("caption", "Describe the image in one sentence."), ("question", "What colour is the shape?"))
MAX_TOKENS = 24
HELD_OUT = 100  # images the served model is scored on
SAMPLE_INDEX = 3  # which held-out image the demo shows


def sample_image(checkpoint: Path, path: Path) -> tuple[Sample, Path]:
    """A held-out shapes-world image at the checkpoint's image size, saved as the PNG that is sent."""
    image_size = json.loads((checkpoint / "config.json").read_text())["vision_config"]["image_size"]
    sample = held_out_single_shapes(SAMPLE_INDEX + 1, image_size)[SAMPLE_INDEX]
    path.parent.mkdir(parents=True, exist_ok=True)
    sample.image.save(path)
    return sample, path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--clip-checkpoint", type=Path, default=Path(".cache/checkpoints/shapes-clip"))
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    args = parser.parse_args()

    sample, image_path = sample_image(args.clip_checkpoint, args.out / "sample.png")
    options = loopback_options(args.repository, args.out / "tritonserver.log")
    started = time.monotonic()
    with TritonServer(options) as server:
        print(
            f"tritonserver ready in {time.monotonic() - started:.1f}s (gRPC {server.grpc_url}, HTTP {server.http_url})"
        )
        endpoints = (("grpc", server.grpc_url), ("http", server.http_url))
        same_embeddings = clip_demo(endpoints, sample, image_path)
        for protocol, url in endpoints:
            scores = evaluate_served_clip(args.clip_checkpoint, HELD_OUT, url, protocol)
            print(
                f"served zero-shot accuracy on {HELD_OUT} held-out images ({protocol}): "
                f"colour {scores['colour_accuracy']:.0%}, shape {scores['shape_accuracy']:.0%}"
            )
        print(f"\nLLaVA, streamed (greedy, at most {MAX_TOKENS} tokens; tiny-llava's weights are random, so the words")
        print("are noise: what the demo shows is the served path, the streaming and gRPC/HTTP agreement)")
        completions = {}
        for protocol, url in endpoints:
            with VLMClient(url, protocol=protocol) as client:
                for task, prompt in PROMPTS:
                    completions[protocol, task] = stream_reply(client, protocol, task, prompt, image_path)
    same_text = all(completions["grpc", task].token_ids == completions["http", task].token_ids for task, _ in PROMPTS)
    print(f"gRPC and HTTP generations identical: {same_text}")
    return 0 if same_embeddings and same_text else 1


def clip_demo(endpoints: tuple[tuple[str, str], ...], sample: Sample, image_path: Path) -> bool:
    (shape,) = sample.scene.shapes
    texts = [sample.scene.caption(), "a photo of a blue square"]
    rows = []
    for protocol, url in endpoints:
        with VLMClient(url, protocol=protocol) as client:
            image_embeds = client.embed_images([image_path])
            text_embeds = client.embed_texts(texts)
            colours = client.classify(image_path, list(COLOURS), COLOUR_PROMPT.replace("{colour}", "{}"))
            kinds = client.classify(image_path, list(KINDS), SHAPE_PROMPT.replace("{kind}", "{}"))
            rows.append((protocol, image_embeds, text_embeds, colours, kinds))
    print(f"\nsample image: {image_path} ({sample.scene.caption()}, a held-out image)")
    print(f"{'protocol':<9}{'image embedding':<18}{'text embeddings':<18}cosine(image, texts)")
    for protocol, image_embeds, text_embeds, _, _ in rows:
        cosines = ", ".join(f"{c:+.3f}" for c in (image_embeds @ text_embeds.T)[0])
        print(f"{protocol:<9}{image_embeds.shape!s:<18}{text_embeds.shape!s:<18}{cosines}")
    print(f"  texts: {texts}")
    same = np.allclose(rows[0][1], rows[1][1], atol=1e-6) and np.allclose(rows[0][2], rows[1][2], atol=1e-6)
    print(f"gRPC and HTTP embeddings identical: {same}")
    for title, index, expected in (("colour", 3, shape.colour), ("shape", 4, shape.kind)):
        print(f"\nzero-shot {title} (top 3; expected: {expected}):")
        print(f"{'label':<12}{'gRPC':>8}{'HTTP':>8}")
        grpc_probs, http_probs = rows[0][index], rows[1][index]
        for label in list(grpc_probs)[:3]:
            mark = "  <- expected" if label == expected else ""
            print(f"{label:<12}{grpc_probs[label]:>8.4f}{http_probs[label]:>8.4f}{mark}")
    return bool(same)


def stream_reply(client: VLMClient, protocol: str, task: str, prompt: str, image: Path) -> Completion:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    print(f"[{protocol} {task}] {prompt}\n  -> ", end="", flush=True)
    started = time.monotonic()
    for item in client.generate_stream(messages, [image], max_tokens=MAX_TOKENS):
        if isinstance(item, Completion):
            elapsed = time.monotonic() - started
            print(
                f"\n  ({item.completion_tokens} tokens in {elapsed:.2f}s, finish reason {item.finish_reason}, "
                f"confidence {item.confidence:.4f})"
            )
            return item
        print(item, end="", flush=True)
    raise RuntimeError("the stream ended without a final response")


if __name__ == "__main__":
    sys.exit(main())
