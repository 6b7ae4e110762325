"""``make demo``: serve the exported repository; with CLIP, embed an image and texts over gRPC and HTTP and
run a zero-shot classification; with LLaVA, stream a caption and an answer about the same image over
gRPC and over HTTP (Triton's ``generate_stream``). Starts and stops its own tritonserver on free ports."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from client import Completion, VLMClient
from serving.launcher import ServerOptions, TritonServer

LABELS = ("red circle", "blue square", "green triangle", "yellow star")
TEXTS = ("a photo of a red circle", "a diagram of a blue square")
PROMPTS = (("caption", "Describe the image in one sentence."), ("question", "What colour is the circle?"))
MAX_TOKENS = 24


def sample_image(path: Path) -> Path:
    image = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(image).ellipse((52, 52, 172, 172), fill=(220, 30, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    args = parser.parse_args()

    image_path = sample_image(args.out / "sample.png")
    options = ServerOptions(
        repository=args.repository,
        host="127.0.0.1",
        http_port=0,
        grpc_port=0,
        metrics_port=0,
        log_file=args.out / "tritonserver.log",
    )
    started = time.monotonic()
    with TritonServer(options) as server:
        print(
            f"tritonserver ready in {time.monotonic() - started:.1f}s (gRPC {server.grpc_url}, HTTP {server.http_url})"
        )
        endpoints = (("grpc", server.grpc_url), ("http", server.http_url))
        same_embeddings = clip_demo(endpoints, image_path)
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


def clip_demo(endpoints: tuple[tuple[str, str], ...], image_path: Path) -> bool:
    rows = []
    for protocol, url in endpoints:
        with VLMClient(url, protocol=protocol) as client:
            image_embeds = client.embed_images([image_path])
            text_embeds = client.embed_texts(list(TEXTS))
            rows.append((protocol, image_embeds, text_embeds, client.classify(image_path, list(LABELS))))
    print(f"\nsample image: {image_path}")
    print(f"{'protocol':<9}{'image embedding':<18}{'text embeddings':<18}cosine(image, texts)")
    for protocol, image_embeds, text_embeds, _ in rows:
        cosines = ", ".join(f"{c:+.3f}" for c in (image_embeds @ text_embeds.T)[0])
        print(f"{protocol:<9}{image_embeds.shape!s:<18}{text_embeds.shape!s:<18}{cosines}")
    same = np.allclose(rows[0][1], rows[1][1], atol=1e-6) and np.allclose(rows[0][2], rows[1][2], atol=1e-6)
    print(f"gRPC and HTTP embeddings identical: {same}")
    print("\nzero-shot classification (template 'a photo of a {}'):")
    print(f"{'label':<18}{'gRPC':>8}{'HTTP':>8}")
    grpc_probs, http_probs = rows[0][3], rows[1][3]
    for label in grpc_probs:
        print(f"{label:<18}{grpc_probs[label]:>8.4f}{http_probs[label]:>8.4f}")
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
