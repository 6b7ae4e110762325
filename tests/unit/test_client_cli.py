"""``vlm-client``'s batch input files and argument handling, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.cli import build_parser, read_questions
from client.errors import InvalidInputError


def test_questions_are_read_from_json_lines_and_csv_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_text(
        '{"image": "a.png", "question": "what?"}\n\n{"image": "b.png", "question": "why?"}\n'
    )
    (tmp_path / "q.csv").write_text('image,question\na.png,what?\nb.png,"why, then?"\n')
    assert read_questions(tmp_path / "q.jsonl") == [(tmp_path / "a.png", "what?"), (tmp_path / "b.png", "why?")]
    assert read_questions(tmp_path / "q.csv") == [(tmp_path / "a.png", "what?"), (tmp_path / "b.png", "why, then?")]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("q.jsonl", '{"image": "a.png"}\n', "row 1 needs an image and a question"),
        ("q.jsonl", "not json\n", "q.jsonl: not JSON lines"),
        ("q.csv", "picture,question\na.png,what?\n", "row 1 needs an image and a question"),
    ],
)
def test_a_bad_questions_file_names_the_file_and_row(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        read_questions(tmp_path / name)


def test_common_options_work_before_and_after_the_subcommand() -> None:
    parser = build_parser()
    before = parser.parse_args(["--json", "--protocol", "http", "caption", "x.png"])
    after = parser.parse_args(["caption", "x.png", "--json", "--protocol", "http", "--stream"])
    assert (before.json, before.protocol, before.stream) == (True, "http", False)
    assert (after.json, after.protocol, after.stream) == (True, "http", True)
