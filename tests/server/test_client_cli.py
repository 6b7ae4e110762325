"""``vlm-client`` against the real server: JSON output and streaming over both protocols, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from client import VLMClient
from serving.launcher import TritonServer, free_port
from tests.images import encode, scene
from tests.videos import encode_video


def _vlm_client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_classify_prints_every_label_as_json(url: str, protocol: str, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    image.write_bytes(encode(scene(seed=50)))
    result = _vlm_client("--url", url, "--protocol", protocol, "--json", "classify", str(image), "--labels", "a,b,c")
    assert result.returncode == 0, result.stderr
    probabilities = json.loads(result.stdout)["probabilities"]
    assert sorted(probabilities) == ["a", "b", "c"]
    assert abs(sum(probabilities.values()) - 1.0) < 1e-5


def test_embed_text_and_image_print_unit_vectors(server: TritonServer, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    image.write_bytes(encode(scene(seed=51)))
    texts = _vlm_client("--url", server.grpc_url, "--json", "embed-text", "a dog", "a cat")
    images = _vlm_client("--url", server.grpc_url, "--json", "embed-image", str(image))
    assert texts.returncode == 0 and images.returncode == 0, texts.stderr + images.stderr
    vectors = [e["embedding"] for e in json.loads(texts.stdout)["embeddings"] + json.loads(images.stdout)["embeddings"]]
    assert len(vectors) == 3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_bad_image_exits_1_with_a_one_line_message(server: TritonServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = _vlm_client("--url", server.grpc_url, "embed-image", str(bad))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not a decodable image" in result.stderr


def test_no_server_exits_1_saying_it_is_unavailable() -> None:
    result = _vlm_client("--url", f"127.0.0.1:{free_port()}", "--timeout", "5", "embed-text", "hello")
    assert result.returncode == 1
    assert result.stderr.startswith("vlm-client: ") and result.stderr.count("\n") == 1


def _images(folder: Path, seeds: range) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{seed}.png" for seed in seeds]
    for seed, path in zip(seeds, paths, strict=True):
        path.write_bytes(encode(scene(seed=seed)))
    return paths


def test_caption_streams_json_deltas_that_add_up_to_the_final_text(url: str, protocol: str, tmp_path: Path) -> None:
    (image,) = _images(tmp_path, range(120, 121))
    args = ("--url", url, "--protocol", protocol, "--json", "--stream", "caption", str(image), "--max-tokens", "8")
    result = _vlm_client(*args)
    assert result.returncode == 0, result.stderr
    *deltas, final = [json.loads(line) for line in result.stdout.splitlines()]
    assert deltas and "".join(d["delta"] for d in deltas) == final["text"]
    assert final["completion_tokens"] == 8 and final["finish_reason"] == "length"


def test_ask_chat_and_batch_ask_print_their_answers(url: str, protocol: str, tmp_path: Path) -> None:
    first, second = _images(tmp_path, range(121, 123))
    common = ("--url", url, "--protocol", protocol, "--json")
    ask = _vlm_client(*common, "ask", str(first), "what is it?", "--max-tokens", "6")
    chat = _vlm_client(*common, "chat", "--image", str(first), "what is it?", "and then?", "--max-tokens", "6")
    (tmp_path / "questions.jsonl").write_text(
        json.dumps({"image": first.name, "question": "what is it?"})
        + "\n"
        + json.dumps({"image": second.name, "question": "why?"})
        + "\n"
    )
    batch = _vlm_client(*common, "--no-progress", "batch-ask", str(tmp_path / "questions.jsonl"), "--max-tokens", "6")
    for result in (ask, chat, batch):
        assert result.returncode == 0, result.stderr
    answer = json.loads(ask.stdout)
    turns = [json.loads(line) for line in chat.stdout.splitlines()]
    answers = json.loads(batch.stdout)["answers"]
    assert [t["turn"] for t in turns] == [1, 2] and turns[0]["text"] == answer["text"]
    assert turns[1]["prompt_tokens"] > turns[0]["prompt_tokens"] + turns[0]["completion_tokens"]
    assert [a["question"] for a in answers] == ["what is it?", "why?"] and answers[0]["text"] == answer["text"]


def test_rank_index_and_search_agree_on_the_best_image(server: TritonServer, tmp_path: Path) -> None:
    paths = _images(tmp_path / "photos", range(123, 127))
    common = ("--url", server.grpc_url, "--json")
    rank = _vlm_client(*common, "rank", "--text", "a yellow square", *map(str, paths))
    index = _vlm_client(*common, "index", str(tmp_path / "photos"), "--index", str(tmp_path / "photos.npz"))
    search = _vlm_client(*common, "search", "a yellow square", "--index", str(tmp_path / "photos.npz"), "-k", "2")
    for result in (rank, index, search):
        assert result.returncode == 0, result.stderr
    best = json.loads(rank.stdout)["ranking"][0]["candidate"]
    hits = json.loads(search.stdout)["hits"]
    assert json.loads(index.stdout)["images"] == 4 and len(hits) == 2 and Path(best).name == hits[0]["name"]


def test_a_timeout_and_a_bad_questions_file_exit_1_with_one_line(server: TritonServer, tmp_path: Path) -> None:
    (image,) = _images(tmp_path, range(127, 128))
    (tmp_path / "questions.jsonl").write_text('{"image": "x.png"}\n')
    timeout = _vlm_client("--url", server.grpc_url, "--timeout", "0.001", "caption", str(image), "--max-tokens", "64")
    bad_file = _vlm_client("--url", server.grpc_url, "batch-ask", str(tmp_path / "questions.jsonl"))
    assert timeout.returncode == 1 and timeout.stderr == "vlm-client: no response within 0.001 s\n"
    assert bad_file.returncode == 1
    assert bad_file.stderr == "vlm-client: questions.jsonl: row 1 needs an image and a question\n"


def test_chat_takes_videos_with_their_sampling_and_reports_the_frames_used(
    url: str, protocol: str, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(encode_video([scene(64, 48, seed=130 + i) for i in range(8)], fps=2))  # 4 s at 2 fps
    common = ("--url", url, "--protocol", protocol, "--json")
    chat = _vlm_client(
        *common, "chat", "--video", str(clip), "--video-fps", "0.5", "what happens?", "--max-tokens", "6"
    )
    assert chat.returncode == 0, chat.stderr
    (turn,) = [json.loads(line) for line in chat.stdout.splitlines()]
    assert turn["video_frames"] == [2]  # instants 0 and 2 s
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "what happens?"}]}]
    with VLMClient(url, protocol=protocol) as client:
        expected = client.generate(messages, videos=[clip], video_fps=0.5, max_tokens=6)
    assert turn["text"] == expected.text and turn["prompt_tokens"] == expected.prompt_tokens
    over = _vlm_client(*common, "chat", "--video", str(clip), "--max-frames", "9", "hi", "--max-tokens", "2")
    assert over.returncode == 1 and "max_frames: must lie in [1, 4] for this model, got 9" in over.stderr
