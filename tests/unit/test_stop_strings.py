"""serving.generation.stop: finding stop strings in a growing text and holding back their possible beginnings."""

from __future__ import annotations

import pytest

from serving.generation.stop import find_stop, holdback

# find_stop


def test_find_stop_returns_none_without_stop_strings() -> None:
    assert find_stop("anything at all", ()) is None


def test_find_stop_returns_none_when_no_stop_string_occurs() -> None:
    assert find_stop("hello world", ("STOP", "\n\n")) is None


def test_find_stop_returns_where_the_stop_string_begins() -> None:
    assert find_stop("hello\n\nworld", ("\n\n",)) == 5


def test_find_stop_returns_the_earliest_of_several_stop_strings() -> None:
    assert find_stop("a END b STOP c", ("STOP", "END")) == 2


def test_find_stop_returns_the_first_of_repeated_occurrences() -> None:
    assert find_stop("x.y.z", (".",)) == 1


def test_find_stop_prefers_the_earlier_start_when_stop_strings_overlap() -> None:
    assert find_stop("abcd", ("bcd", "cd")) == 1


def test_find_stop_ignores_occurrences_that_end_at_or_before_start() -> None:
    assert find_stop("old STOP new", ("STOP",), start=8) is None


def test_find_stop_catches_a_stop_string_straddling_the_start() -> None:
    # "ST" was scanned before, "OP" is new.
    assert find_stop("old STOP", ("STOP",), start=6) == 4


def test_find_stop_counts_an_occurrence_ending_one_past_start() -> None:
    assert find_stop("abSTOP", ("STOP",), start=5) == 2


def test_find_stop_finds_a_later_occurrence_when_an_earlier_one_ended_before_start() -> None:
    assert find_stop("STOP then STOP", ("STOP",), start=4) == 10


def test_find_stop_with_a_start_past_the_text_finds_nothing() -> None:
    assert find_stop("STOP", ("STOP",), start=10) is None


def test_find_stop_ignores_empty_stop_strings() -> None:
    assert find_stop("abc", ("",)) is None


def test_scanning_only_new_text_finds_the_same_stop_as_scanning_everything() -> None:
    pieces = ["The ans", "wer is", " 4", "2.\n", "\nMore"]
    stop_strings = ("\n\n", "answer is 7")
    text, scanned, found = "", 0, None
    for piece in pieces:
        text += piece
        found = find_stop(text, stop_strings, start=scanned)
        if found is not None:
            break
        scanned = len(text)
    assert found == find_stop(text, stop_strings) == text.index("\n\n")


# holdback


def test_holdback_is_zero_without_stop_strings() -> None:
    assert holdback("text ending in S", ()) == 0


def test_holdback_is_zero_for_empty_text() -> None:
    assert holdback("", ("STOP",)) == 0


def test_holdback_is_zero_when_the_tail_cannot_start_a_stop_string() -> None:
    assert holdback("hello world", ("STOP",)) == 0


@pytest.mark.parametrize(("text", "held"), [("abc S", 1), ("abc ST", 2), ("abc STO", 3)])
def test_holdback_keeps_a_tail_that_is_a_prefix_of_a_stop_string(text: str, held: int) -> None:
    assert holdback(text, ("STOP",)) == held


def test_holdback_does_not_count_a_complete_stop_string() -> None:
    # A whole stop string is find_stop's job; only proper prefixes are held back.
    assert holdback("abc STOP", ("STOP",)) == 0


def test_holdback_takes_the_longest_prefix_across_stop_strings() -> None:
    assert holdback("x <|en", ("<|endoftext|>", "<")) == 4


def test_holdback_takes_the_longest_matching_prefix_of_one_stop_string() -> None:
    # Both "a" and "aba" end the text; "aba" is the longer proper prefix of "abab!".
    assert holdback("xaba", ("abab!",)) == 3


def test_holdback_may_cover_the_whole_text() -> None:
    assert holdback("ST", ("STOP",)) == 2


def test_holdback_matches_repeated_characters_in_a_stop_string() -> None:
    assert holdback("text\n", ("\n\n",)) == 1


def test_holdback_never_exceeds_the_text_length() -> None:
    assert holdback("b", ("abbbb",)) == 0


def test_holdback_ignores_empty_stop_strings() -> None:
    assert holdback("abc", ("",)) == 0


def test_streaming_with_holdback_never_sends_part_of_a_stop_string() -> None:
    stop_strings = ("###",)
    text, sent = "", ""
    for piece in ["Hi", " #", "#", " there #", "##", "tail"]:
        text += piece
        found = find_stop(text, stop_strings)
        if found is not None:
            text = text[:found]
            sent += text[len(sent) :]
            break
        sent += text[len(sent) : len(text) - holdback(text, stop_strings)]
    assert sent == "Hi ## there "
