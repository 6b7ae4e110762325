"""Does the decoder's in-flight batching pay? Aggregate output tokens/s of the served ``llava`` ensemble at
concurrency 1 and at concurrency N, in one run, on the same requests; the ratio is the result (absolute
times on shared machines are noise).

    python -m benchmarks.decoder_batching --repository model_repository       # starts its own server
    python -m benchmarks.decoder_batching --url localhost:8001                 # or uses a running one

Writes ``benchmarks/results/decoder_batching/summary.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from client import Completion, VLMClient
from serving.launcher import TritonServer, loopback_options

QUESTIONS = ("Describe the image.", "What colour is the shape?", "How many shapes are there?", "What is on the left?")


@dataclass(frozen=True)
class Sample:
    latency_s: float
    time_to_first_token_s: float
    completion_tokens: int


@dataclass(frozen=True)
class Level:
    concurrency: int
    requests: int
    wall_s: float
    output_tokens: int
    output_token_throughput: float  # tokens/s over the whole level
    time_to_first_token_p50_s: float
    request_latency_p50_s: float


def sample_images(count: int) -> list[bytes]:
    images = []
    for i in range(count):
        image = Image.new("RGB", (96, 96), "white")
        ImageDraw.Draw(image).ellipse((10 + i % 40, 20, 70, 80), fill=(40 * i % 255, 80, 200))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def one_request(url: str, image: bytes, question: str, max_tokens: int) -> Sample:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    started = time.perf_counter()
    first = None
    with VLMClient(url) as client:
        for item in client.generate_stream(messages, [image], max_tokens=max_tokens):
            if first is None:
                first = time.perf_counter() - started
            if isinstance(item, Completion):
                return Sample(time.perf_counter() - started, first, item.completion_tokens)
    raise RuntimeError("the stream ended without a final response")


def run_level(url: str, concurrency: int, requests: int, max_tokens: int) -> Level:
    images = sample_images(requests)  # distinct images: no response-cache hits
    jobs = [(url, images[i], QUESTIONS[i % len(QUESTIONS)], max_tokens) for i in range(requests)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        samples = list(pool.map(lambda job: one_request(*job), jobs))
    wall = time.perf_counter() - started
    tokens = sum(s.completion_tokens for s in samples)
    return Level(
        concurrency=concurrency,
        requests=requests,
        wall_s=wall,
        output_tokens=tokens,
        output_token_throughput=tokens / wall,
        time_to_first_token_p50_s=statistics.median(s.time_to_first_token_s for s in samples),
        request_latency_p50_s=statistics.median(s.latency_s for s in samples),
    )


def measure(url: str, concurrency: int, requests: int, max_tokens: int) -> list[Level]:
    run_level(url, concurrency, concurrency, max_tokens)  # warm-up, excluded
    return [run_level(url, level, requests, max_tokens) for level in (1, concurrency)]


def report(levels: list[Level], out: Path) -> float:
    ratio = levels[1].output_token_throughput / levels[0].output_token_throughput
    out.mkdir(parents=True, exist_ok=True)
    summary = {"levels": [asdict(level) for level in levels], "throughput_ratio": ratio}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'concurrency':>11} {'requests':>8} {'tokens':>7} {'wall s':>7} {'tokens/s':>9} {'TTFT p50':>9}")
    for level in levels:
        print(
            f"{level.concurrency:>11} {level.requests:>8} {level.output_tokens:>7} {level.wall_s:>7.2f} "
            f"{level.output_token_throughput:>9.1f} {level.time_to_first_token_p50_s:>8.3f}s"
        )
    print(f"output tokens/s at concurrency {levels[1].concurrency} / at 1: {ratio:.2f}x  ({out / 'summary.json'})")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="gRPC address of a running server")
    source.add_argument("--repository", type=Path, help="serve this exported repository for the run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=32, help="requests per level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/decoder_batching"))
    args = parser.parse_args()
    if args.url:
        report(measure(args.url, args.concurrency, args.requests, args.max_tokens), args.out)
        return 0
    options = loopback_options(args.repository, args.out / "tritonserver.log")
    args.out.mkdir(parents=True, exist_ok=True)
    with TritonServer(options) as server:
        report(measure(server.grpc_url, args.concurrency, args.requests, args.max_tokens), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
