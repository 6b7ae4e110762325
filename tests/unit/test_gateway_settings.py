"""gateway.settings and gateway.cli: API keys from the environment and a file, settings that validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import build_parser, settings_from
from gateway.settings import GatewaySettings, load_api_keys


def test_keys_come_from_the_variable_and_the_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# operators\nfile-key-1\n\n  file-key-2  # the CI's\n")
    found = load_api_keys(keys, {"VLM_GATEWAY_API_KEYS": "env-1, env-2,,"})
    assert found == {"env-1", "env-2", "file-key-1", "file-key-2"}
    assert load_api_keys(None, {}) == frozenset()


def test_without_keys_no_authentication_is_required() -> None:
    assert not GatewaySettings().auth_required and GatewaySettings(api_keys=frozenset({"k"})).auth_required


@pytest.mark.parametrize(
    "change",
    [
        {"max_body_bytes": 0},
        {"max_concurrency": -1},
        {"chat_model": "x", "embedding_model": "x"},
        {"chat_model": "a b"},
        {"catalog_cache_s": 0},
        {"api_keys": frozenset({"a b"})},
    ],
)
def test_impossible_settings_are_refused(change: dict) -> None:
    with pytest.raises(ValueError):
        GatewaySettings(**change)


def test_the_command_line_sets_every_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLM_GATEWAY_API_KEYS", "k1")
    args = build_parser().parse_args(
        ["--triton-url", "triton:8001", "--allow-image-host", "a.com", "--allow-image-host", "b.com",
         "--max-body-mib", "1", "--max-concurrency-per-key", "3", "--chat-model", "vlm", "--body-timeout", "5",
         "--models-cache", "3"]
    )  # fmt: skip
    settings = settings_from(args)
    assert settings.triton_url == "triton:8001" and settings.allowed_image_hosts == {"a.com", "b.com"}
    assert settings.max_body_bytes == 1024 * 1024 and settings.max_concurrency_per_key == 3
    assert settings.chat_model == "vlm" and settings.api_keys == {"k1"} and settings.body_timeout_s == 5
    assert settings.embedding_model is None and settings.catalog_cache_s == 3  # None: clip, or the only one
