"""gateway.json_depth: the nesting depth of JSON text without parsing it, equal to the parsed depth."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.json_depth import json_depth


def parsed_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((parsed_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((parsed_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize(
    "text",
    [
        '"x"',
        "3",
        "[]",
        '{"a": [1, {"b": "[[[["}]}',
        r'["a\"[[", [] ]',
        r'["a\\", [[]] ]',
        '{"k[": {"}}": []}}',
        r'[[],[[{}]],"\\\"]"]',
        '{"messages": [{"content": [{"image_url": {"url": "data:image/png;base64,iVBOR{{{["}}]}]}',
    ],
)
def test_the_depth_equals_the_parsed_depth_whatever_the_strings_hold(text: str) -> None:
    assert json_depth(text.encode()) == parsed_depth(json.loads(text))


def test_150000_levels_are_measured_and_a_large_base64_body_too() -> None:
    assert json_depth(b"[" * 150_000 + b"]" * 150_000) == 150_000
    url = "data:image/png;base64," + base64.b64encode(bytes(range(256)) * 40_000).decode()  # ~13 MB
    body = json.dumps({"messages": [{"content": [{"image_url": {"url": url}}]}]}).encode()
    assert json_depth(body) == 6


def test_depth_carries_across_the_scan_chunks() -> None:
    deep = b'{"a": "' + b"x" * (5 << 20) + b'", "b": ' + b"[" * 40 + b"]" * 40 + b"}"
    assert json_depth(deep) == 41
