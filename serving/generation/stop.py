"""Stop strings on a growing generated text: where one matches, and how much of the tail to hold back from a stream.

Empty stop strings are ignored: they would match everywhere (the request parser rejects them anyway).
"""

from __future__ import annotations


def find_stop(text: str, stops: tuple[str, ...], start: int = 0) -> int | None:
    """Where the earliest stop string begins, among occurrences that end after ``start``; None if there is none.

    Passing the length of the text already scanned as ``start`` scans only new text, while still catching a
    stop string that straddles the old/new boundary.
    """
    found = [text.find(stop, max(0, start - len(stop) + 1)) for stop in stops if stop]
    matches = [index for index in found if index != -1]
    return min(matches) if matches else None


def holdback(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` may still grow into a stop string, so must not be streamed yet."""
    if not text:
        return 0
    return max((_partial_match(text, stop) for stop in stops), default=0)


def _partial_match(text: str, stop: str) -> int:
    """The length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
    last = text[-1]
    # A prefix can only match where it ends in the text's last character; try those ends, longest first.
    end = stop.rfind(last, 0, min(len(stop) - 1, len(text)))
    while end != -1:
        if text.endswith(stop[: end + 1]):
            return end + 1
        end = stop.rfind(last, 0, end)
    return 0
