"""benchmarks.cli: the vLLM peer's options, and the order in which one alternation measures the direct path, the
gateway and the peer (on workloads that only take time: no server)."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from benchmarks import cli
from benchmarks.exported import ConfigReading
from benchmarks.load import LoadPoint, WindowSettings
from benchmarks.workloads import Llava, Payload, Sample, Workload
from export.families.tags import served_tags
from tests.unit.test_bench_gateway import FakeOpenAI

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    repository, checkpoint = tmp_path / "repository", tmp_path / "checkpoint"
    repository.mkdir()
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    return repository, checkpoint


def arguments(folders: tuple[Path, Path], *extra: str, benchmark: str = "llava") -> list[str]:
    repository, checkpoint = folders
    return [benchmark, "--serve", "--repository", str(repository), "--checkpoint", str(checkpoint), *extra]


def check(argv: list[str]) -> None:
    cli.check_arguments(cli.build_parser().parse_args(argv))


def test_the_vllm_peer_is_off_unless_asked(folders: tuple[Path, Path]) -> None:
    args = cli.build_parser().parse_args(arguments(folders))
    assert not cli.uses_peer(args)
    assert cli.uses_peer(cli.build_parser().parse_args(arguments(folders, "--vllm-peer")))
    check(arguments(folders, "--vllm-peer"))


@pytest.mark.parametrize(
    ("extra", "benchmark", "message"),
    [
        (("--vllm-peer",), "clip-image", "peer of chat models, not of clip-image"),
        (("--vllm-peer",), "rank", "peer of chat models, not of clip-rank"),
        (("--vllm-peer", "--vllm-peer-url", "http://127.0.0.1:8000"), "llava", "either --vllm-peer"),
        (("--vllm-peer", "--protocol", "http"), "llava", "through vlm-gateway, which calls Triton over gRPC"),
    ],
)
def test_peer_options_that_cannot_work_are_refused(
    folders: tuple[Path, Path], extra: tuple[str, ...], benchmark: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check(arguments(folders, *extra, benchmark=benchmark))


def test_the_peer_needs_the_checkpoint_even_without_baselines(folders: tuple[Path, Path]) -> None:
    repository, _ = folders
    with pytest.raises(ValueError, match="vllm serve needs --checkpoint"):
        check(["llava", "--serve", "--repository", str(repository), "--no-baselines", "--vllm-peer"])
    check(["llava", "--serve", "--repository", str(repository), "--no-baselines", "--vllm-peer-url", "http://h:1"])


class _Logs(Workload):
    """Takes 5 ms a request and notes which workload ran."""

    log: ClassVar[list[str]] = []

    def __init__(self, name: str) -> None:
        super().__init__("unused", "grpc", Payload())
        self.name = name

    def send(self, n: int) -> Sample:
        if not self.log or self.log[-1] != self.name:
            self.log.append(self.name)
        start = time.perf_counter()
        time.sleep(0.005)
        return Sample(start, time.perf_counter())


class _NoCost:
    def snapshot(self) -> None:
        return None


def test_each_alternation_measures_this_project_then_the_peer_at_every_point(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "read_statistics", lambda url, protocol: None)
    _Logs.log = []
    direct, gateway = _Logs("direct"), _Logs("gateway")
    peer = {"image": (gateway, _Logs("peer image")), "text": (_Logs("gateway text"), _Logs("peer text"))}
    args = cli.build_parser().parse_args(arguments(folders, "--no-baselines", "--alternations", "2", "--vllm-peer"))
    settings = WindowSettings(window_s=0.05, window_requests=1, max_windows=3, warmup_requests=0)
    points = [LoadPoint("concurrency", 1), LoadPoint("concurrency", 2)]
    rounds = cli.measure(args, direct, gateway, _NoCost(), points, settings, Payload(), peer)  # type: ignore[arg-type]
    assert len(rounds) == 2  # the peer is something to alternate with, baselines or not
    one_point = ["direct", "gateway", "peer image", "gateway text", "peer text"]  # the gateway's image run is shared
    assert _Logs.log == one_point * 4
    for round_ in rounds:
        assert [mine for mine, _ in round_.peer["image"]] == [result for result, _ in round_.through]
        assert [theirs.point.value for _, theirs in round_.peer["text"]] == [1, 2]
    pooled, each = cli.peer_reports(rounds, len(points), Llava)
    assert set(pooled) == {"image", "text"} and len(each) == 2
    assert [p["value"] for p in pooled["text"]["peer"]] == [1, 2]
    assert pooled["image"]["project"][0]["windows"] == sum(r.through[0][0].window_count for r in rounds)


class _TakesTime(Llava):
    """The direct path, without Triton: 5 ms a request of max_tokens tokens."""

    def send(self, n: int) -> Sample:
        self.request(n)
        start = time.perf_counter()
        time.sleep(0.005)
        end = time.perf_counter()
        return Sample(start, end, 1, start + 0.001, self.payload.max_tokens, 40)


def test_the_peer_serves_the_checkpoint_under_the_measured_models_name(
    folders: tuple[Path, Path], tiny_qwen2_vl: Path
) -> None:
    repository, _ = folders
    for extra, name in [((), "llava"), (("--model", "qwen2_vl"), "qwen2_vl")]:
        args = cli.build_parser().parse_args(arguments((repository, tiny_qwen2_vl), *extra, "--vllm-peer"))
        settings = cli.peer_settings(args)
        command = settings.command()
        assert command[command.index("--served-model-name") + 1] == name
        assert settings.max_model_len == 1024  # tiny-qwen2-vl's context length


@pytest.mark.parametrize(("model", "family"), [("llava", "llava"), ("qwen2_vl", "qwen2_vl")])
def test_a_run_with_a_peer_reports_it_beside_the_direct_and_gateway_figures(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, family: str
) -> None:
    monkeypatch.setattr(cli, "read_statistics", lambda url, protocol: None)
    # No Triton here: its model configs as a server tagged by the export would answer them (a chat model).
    tags = served_tags(model, family, "chat", probe="chat", text_model=f"{model}_decoder")
    monkeypatch.setattr(cli, "server_readings", lambda url, protocol: {model: ConfigReading(tags)})
    monkeypatch.setitem(cli.WORKLOADS, "llava", _TakesTime)
    monkeypatch.setattr(FakeOpenAI, "bodies", [])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)  # stands in for vlm-gateway and vLLM
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    argv = ["chat", "--model", model, "--url", "127.0.0.1:1", "--no-baselines", "--gateway-url", url]
    argv += ["--vllm-peer-url", url]
    argv += ["--concurrency", "1,8", "--window-seconds", "0.05", "--window-requests", "1", "--max-windows", "3"]
    argv += ["--alternations", "2", "--output-tokens", "4", "--input-count", "4", "--image-size", "64x48"]
    argv += ["--warmup-requests", "0", "--results", str(tmp_path), "--name", "run"]
    args = cli.build_parser().parse_args(argv)
    try:
        cli.check_arguments(args)
        report = cli.run(args)
    finally:
        httpd.shutdown()
        httpd.server_close()
    peer = report["vllm_peer"]
    assert peer["url"] == url and not peer["started_by_bench"]
    assert (report["server"]["model"], report["server"]["served_model"]) == (model, model)
    assert peer["prompt_tokens"]["image"] == {"project": 55, "vllm_serve": 55, "equal": True}
    assert [len(r["image"]["peer"]) for r in peer["rounds"]] == [2, 2]
    assert len(peer["headline"]) == 4 and all(row["values"] for row in peer["headline"])
    assert [p["value"] for p in report["gateway"]["points"]] == [1, 8]  # the image workload, through the gateway
    sent = [body for body in FakeOpenAI.bodies if body["stream"]]
    assert {body["max_tokens"] for body in sent} == {4} and all(body["ignore_eos"] for body in sent)
    assert sum("add_special_tokens" in body for body in sent) > 0  # the peer's requests
    assert {body["model"] for body in sent} == {model}  # both sides are asked for the model by its name
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "Against vLLM's own OpenAI server" in summary and "| text | concurrency 8 |" in summary
    metrics = (tmp_path / "run" / "metrics.csv").read_text()
    assert "vlm-gateway/vllm-serve:text" in metrics and "vllm-serve:image" in metrics


@pytest.mark.parametrize(
    ("given", "first"),
    [("image-embed", "clip-image"), ("text-embed", "clip-text"), ("rank", "clip-rank"), ("chat", "llava")],
)
def test_each_benchmark_answers_to_its_task_name_and_to_its_first_name(
    folders: tuple[Path, Path], given: str, first: str
) -> None:
    assert cli.build_parser().parse_args(arguments(folders, benchmark=given)).benchmark == first
    assert cli.build_parser().parse_args(arguments(folders, benchmark=first)).benchmark == first


def test_an_unknown_benchmark_is_refused_with_both_kinds_of_names(
    folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(arguments(folders, benchmark="clip"))
    err = capsys.readouterr().err
    assert "choose one of image-embed, text-embed, rank, chat, clip-image" in err and "'clip'" in err


def test_the_model_defaults_to_the_benchmarks_own_and_names_the_results_folder_otherwise(
    folders: tuple[Path, Path],
) -> None:
    def parsed(*extra: str, benchmark: str) -> tuple[str, str]:
        args = cli.build_parser().parse_args(arguments(folders, *extra, benchmark=benchmark))
        return cli.model_name(args), cli.results_name(args)

    assert parsed(benchmark="image-embed") == ("clip", "clip-image")
    assert parsed(benchmark="llava") == ("llava", "llava")
    assert parsed("--model", "siglip", benchmark="clip-image") == ("siglip", "image-embed-siglip")
    assert parsed("--model", "llava_next", benchmark="chat") == ("llava_next", "chat-llava_next")
    assert parsed("--model", "siglip", "--name", "mine", benchmark="rank") == ("siglip", "mine")


@pytest.mark.parametrize("name", ["../up", "a b", "_under", "x" * 65])
def test_a_model_name_that_no_export_can_give_is_refused_naming_the_rule(folders: tuple[Path, Path], name: str) -> None:
    with pytest.raises(ValueError, match="not a valid model name"):
        check(arguments(folders, "--model", name, benchmark="chat"))
