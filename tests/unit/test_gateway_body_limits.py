"""gateway.body_limits.Inflater: gzip inflated up to the cap and no further, one member, complete."""

from __future__ import annotations

import gzip

import pytest

from gateway.body_limits import Inflater
from gateway.errors import ApiError
from tests.gateway.raw_http import gzip_bomb


def test_a_body_within_the_cap_inflates_whole_even_in_small_pieces() -> None:
    data = b'{"input": "' + b"x" * 100_000 + b'"}'
    packed = gzip.compress(data)
    inflater = Inflater(len(data))
    out = b"".join(inflater.feed(packed[i : i + 7]) for i in range(0, len(packed), 7))
    inflater.finish()
    assert out == data


def test_a_bomb_stops_at_the_cap() -> None:
    inflater = Inflater(1 << 20)
    with pytest.raises(ApiError) as raised:
        inflater.feed(gzip_bomb(256 << 20, chunk=1 << 20))
    assert raised.value.status == 413 and inflater.size == (1 << 20) + 1


@pytest.mark.parametrize("body", [b"plain text", gzip.compress(b"{}")[:-4], gzip.compress(b"{}") * 2])
def test_not_gzip_truncated_or_two_members_are_400(body: bytes) -> None:
    inflater = Inflater(1 << 20)
    with pytest.raises(ApiError) as raised:
        inflater.feed(body)
        inflater.finish()
    assert raised.value.status == 400
