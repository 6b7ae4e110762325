"""serving.control without a server: the operator's key, where it comes from, and the flags that use it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from serving.control import check_control_key, read_or_create_control_key, restriction_flags


def test_a_missing_key_file_gets_a_new_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "control-key"
    key = read_or_create_control_key(path)
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_control_key(path) == key  # the next run reads the same key


def test_an_existing_key_file_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "control-key"
    path.write_text("operator-chosen-key-0123456789\n")
    assert read_or_create_control_key(path) == "operator-chosen-key-0123456789"


@pytest.mark.parametrize("key", ["short", "has:colon-and-more", "has=equals-and-more", "white space key 12"])
def test_a_key_triton_cannot_carry_in_its_flag_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="16 to 256 characters"):
        check_control_key(key)


def test_the_restriction_covers_every_api_that_changes_the_server_and_no_read_only_one() -> None:
    flags = restriction_flags("k" * 32)
    assert len(flags) == 2
    for flag in flags:
        apis = flag.split("=", 1)[1].split(":", 1)[0].split(",")
        assert apis == ["model-repository", "shared-memory", "trace", "logging"]
