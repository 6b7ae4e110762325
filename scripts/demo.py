"""``make demo``: serve the exported repository and call it with ``vlm-client``, over gRPC and HTTP.

CLIP (``shapes-clip``): classify a held-out shapes image's colour and shape zero-shot, with the expected
answer beside each, and score the served model on held-out images. LLaVA (``shapes-llava``): caption a
held-out scene (streamed), answer its questions, hold a two-turn chat, and score the served model's exact
answers on held-out scenes. Both checkpoints are trained here on the shapes world. Then the same server
behind ``vlm-gateway``: one OpenAI SDK call with the held-out scene and one ``curl`` upload to ``/analyze-image``,
each with the expected answer beside it. Starts and stops its own tritonserver and gateway on free ports; the
images it sends are saved as PNGs.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from checkpoints.shapes_eval import evaluate_served_clip, held_out_single_shapes, image_size
from checkpoints.shapes_vqa_eval import evaluate_served_llava, held_out_scenes
from checkpoints.shapes_world import COLOUR_PROMPT, COLOURS, KINDS, SHAPE_PROMPT, Sample
from client import VLMClient
from gateway.process import GatewayProcess
from serving.launcher import TritonServer, loopback_options

CLIP_HELD_OUT = 100  # images the served CLIP is scored on
LLAVA_HELD_OUT = 25  # scenes the served LLaVA is scored on (about 170 questions and 25 captions)
SAMPLE_INDEX = 3  # which held-out image the demo shows
VLM_CLIENT = str(Path(sys.executable).with_name("vlm-client"))


def save(sample: Sample, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sample.image.save(path)
    return path


def vlm_client(url: str, protocol: str, *args: str, show: bool = False) -> str:
    """Runs ``vlm-client``; with ``show``, prints the command and lets its output stream to the terminal."""
    command = [VLM_CLIENT, "--url", url, "--protocol", protocol, *args]
    if show:
        print("$ vlm-client " + " ".join(_quoted(a) for a in command[1:]), flush=True)
    result = subprocess.run(command, stdout=None if show else subprocess.PIPE, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"vlm-client {args[0]} failed with exit code {result.returncode}")
    return result.stdout or ""


def _quoted(arg: str) -> str:
    return f'"{arg}"' if " " in arg or "{" in arg else arg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--clip-checkpoint", type=Path, default=Path(".cache/checkpoints/shapes-clip"))
    parser.add_argument("--llava-checkpoint", type=Path, default=Path(".cache/checkpoints/shapes-llava"))
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    args = parser.parse_args()

    clip_sample = held_out_single_shapes(SAMPLE_INDEX + 1, image_size(args.clip_checkpoint))[SAMPLE_INDEX]
    llava_sample = next(s for s in held_out_scenes(20, image_size(args.llava_checkpoint)) if len(s.scene.shapes) == 2)
    clip_image = save(clip_sample, args.out / "clip_sample.png")
    llava_image = save(llava_sample, args.out / "llava_sample.png")
    options = loopback_options(args.repository, args.out / "tritonserver.log")
    started = time.monotonic()
    with TritonServer(options) as server:
        print(
            f"tritonserver ready in {time.monotonic() - started:.1f}s (gRPC {server.grpc_url}, HTTP {server.http_url})"
        )
        endpoints = {"grpc": server.grpc_url, "http": server.http_url}
        clip_agrees = clip_demo(endpoints, clip_sample, clip_image, args.clip_checkpoint)
        llava_agrees = llava_demo(endpoints, llava_sample, llava_image, args.llava_checkpoint)
        with GatewayProcess(server.grpc_url, args.out / "gateway.log", ready_path="/ready") as gateway:
            gateway_answers = gateway_demo(gateway.url, llava_sample, llava_image)
    print(f"\ngRPC and HTTP agree: CLIP {clip_agrees}, LLaVA {llava_agrees}; the gateway answers: {gateway_answers}")
    return 0 if clip_agrees and llava_agrees and gateway_answers else 1


def clip_demo(endpoints: dict[str, str], sample: Sample, image: Path, checkpoint: Path) -> bool:
    (shape,) = sample.scene.shapes
    print(f"\n== CLIP (shapes-clip) ==\nsample image: {image} ({sample.scene.caption()}; held out of training)")
    same = True
    for title, labels, template, expected in (
        ("colour", list(COLOURS), COLOUR_PROMPT.replace("{colour}", "{}"), shape.colour),
        ("shape", list(KINDS), SHAPE_PROMPT.replace("{kind}", "{}"), shape.kind),
    ):
        command = ("--json", "classify", str(image), "--labels", ",".join(labels), "--template", template)
        probs = {p: json.loads(vlm_client(url, p, *command))["probabilities"] for p, url in endpoints.items()}
        print(f"\nzero-shot {title} (top 3 of {len(labels)}; expected: {expected})")
        print(f"$ vlm-client classify {image} --labels {','.join(labels)} --template {_quoted(template)}")
        print(f"{'label':<12}{'gRPC':>8}{'HTTP':>8}")
        for label in list(probs["grpc"])[:3]:
            mark = "  <- expected" if label == expected else ""
            print(f"{label:<12}{probs['grpc'][label]:>8.4f}{probs['http'][label]:>8.4f}{mark}")
        same &= np.allclose([probs["grpc"][k] for k in labels], [probs["http"][k] for k in labels], atol=1e-6)
    for protocol, url in endpoints.items():
        scores = evaluate_served_clip(checkpoint, CLIP_HELD_OUT, url, protocol)
        print(
            f"served zero-shot accuracy on {CLIP_HELD_OUT} held-out images ({protocol}): "
            f"colour {scores['colour_accuracy']:.0%}, shape {scores['shape_accuracy']:.0%}"
        )
    with VLMClient(endpoints["grpc"]) as grpc, VLMClient(endpoints["http"], protocol="http") as http:
        same &= np.allclose(grpc.embed_images([image]), http.embed_images([image]), atol=1e-6)
    return bool(same)


def llava_demo(endpoints: dict[str, str], sample: Sample, image: Path, checkpoint: Path) -> bool:
    print(f"\n== LLaVA (shapes-llava) ==\nsample image: {image} (held out of training)")
    print(f"expected caption: {sample.scene.caption()}  (shapes may come in either order)")
    vlm_client(endpoints["grpc"], "grpc", "caption", str(image), "--style", "descriptive", "--stream", show=True)
    print(f"\n{'question':<30}{'gRPC':<10}{'HTTP':<10}expected")
    same = True
    for qa in sample.questions:
        answers = [
            json.loads(vlm_client(url, p, "--json", "ask", str(image), qa.question, "--max-tokens", "8"))["text"]
            for p, url in endpoints.items()
        ]
        mark = "" if answers[0].strip() == qa.answer else "  <- differs"
        print(f"{qa.question:<30}{answers[0]:<10}{answers[1]:<10}{qa.answer}{mark}")
        same &= answers[0] == answers[1]
    first, second = sample.questions[0], sample.questions[1]
    print(f"\ntwo-turn chat over HTTP (expected: {first.answer}, then {second.answer})")
    vlm_client(endpoints["http"], "http", "chat", "--image", str(image), first.question, second.question, show=True)
    for protocol, url in endpoints.items():
        scores = evaluate_served_llava(checkpoint, LLAVA_HELD_OUT, url, protocol)
        print(
            f"served accuracy on {LLAVA_HELD_OUT} held-out scenes ({protocol}): exact-match answers "
            f"{scores['exact_match_accuracy']:.1%} of {scores['questions']}, "
            f"caption attributes {scores['caption_attribute_accuracy']:.1%}"
        )
    return bool(same)


def gateway_demo(url: str, sample: Sample, image: Path) -> bool:
    from openai import OpenAI

    qa = sample.questions[0]
    print(f"\n== vlm-gateway (OpenAI-compatible and REST, in front of the same server) ==\n{url}  (playground: {url}/)")
    print(f"""
from openai import OpenAI
client = OpenAI(base_url="{url}/v1", api_key="unused")
image = "data:image/png;base64," + base64.b64encode(open("{image}", "rb").read()).decode()
reply = client.chat.completions.create(model="llava", max_tokens=8, messages=[{{"role": "user", "content": [
    {{"type": "image_url", "image_url": {{"url": image}}}}, {{"type": "text", "text": "{qa.question}"}}]}}])""")
    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    data_url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    content = [{"type": "image_url", "image_url": {"url": data_url}}, {"type": "text", "text": qa.question}]
    reply = client.chat.completions.create(model="llava", max_tokens=8, messages=[{"role": "user", "content": content}])
    answer = reply.choices[0].message.content.strip()
    print(f"reply.choices[0].message.content: {answer!r}  (expected: {qa.answer!r})")
    form = ["-F", f"file=@{image}", "-F", "task=vqa", "-F", f"query={qa.question}"]
    curl = ["curl", "-s", "--noproxy", "127.0.0.1", *form, f"{url}/analyze-image"]
    print("\n$ " + " ".join(_quoted(a) for a in curl))
    body = json.loads(subprocess.run(curl, capture_output=True, text=True, check=True).stdout)
    print(f"{json.dumps(body)}\n(expected result: {qa.answer!r})")
    return answer == qa.answer and body["result"] == qa.answer


if __name__ == "__main__":
    sys.exit(main())
