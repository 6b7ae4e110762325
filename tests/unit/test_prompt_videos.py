"""serving.generation.prompt's video placeholders: each becomes its frames' image placeholders, and the request's
pictures (images first, then each video's frames) are put in the conversation's order."""

from __future__ import annotations

import json

import pytest

from serving.errors import InvalidInputError
from serving.generation.prompt import PromptRules, check_videos, count_videos, expand_videos, parse_messages

RULES = PromptRules(image_token="<image>", max_images=8, max_messages_bytes=65_536)


def parse(messages: list[dict]) -> list[dict]:
    return parse_messages(json.dumps(messages).encode(), RULES)


def test_video_items_are_accepted_and_counted() -> None:
    messages = parse([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}])
    assert count_videos(messages) == 1


def test_a_video_becomes_its_frames_in_place_and_the_pictures_follow_the_conversation() -> None:
    messages = parse(
        [
            {"role": "user", "content": [{"type": "video"}, {"type": "image"}, {"type": "text", "text": "a"}]},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "c"}]},
        ]
    )
    # Sent: 2 images (rows 0, 1), then video 0's 3 frames (rows 2-4) and video 1's 2 frames (rows 5, 6).
    expanded, order = expand_videos(messages, [3, 2], images=2)
    assert [item["type"] for item in expanded[0]["content"]] == ["image"] * 4 + ["text"]
    assert [item["type"] for item in expanded[2]["content"]] == ["image"] * 3 + ["text"]
    assert order == [2, 3, 4, 0, 1, 5, 6]


def test_videos_sent_must_match_the_placeholders() -> None:
    with pytest.raises(InvalidInputError, match=r'1 video placeholders \(\{"type": "video"\}\) but 0 videos'):
        check_videos(1, 0)


def test_an_unknown_item_names_the_three_kinds() -> None:
    with pytest.raises(InvalidInputError, match=r'or \{"type": "video"\}'):
        parse([{"role": "user", "content": [{"type": "audio"}]}])
