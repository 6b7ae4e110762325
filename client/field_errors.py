"""The one wire form of a rejection that names its field: the server encodes it, the client decodes it.

Triton carries an error as a message and a code only (``pb_utils.TritonError``), the code is lost inside a stream,
and an ensemble prefixes its step's message with ``in ensemble 'llava', ``. So the field travels inside the message,
as a trailer that no human-readable reason can produce by accident, after the text a person reads::

    image[1]: not a decodable image (supported formats: PNG, JPEG) [field=image index=1]
    messages[0].content[1].text: expected a string [field=messages index=0 member=.content[1].text]
    max_tokens: must lie in [1, 2048], got 0 [field=max_tokens]

``field`` is the request input (the Triton tensor) the rejection is about, ``index`` which of its elements,
``member`` where inside that element. The trailer is always the message's last part, so a reason that quotes
client text (a JSON schema's keys) cannot forge it. Pure: the server, the client and the gateway import it alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_MEMBER = rf"(?:\.{_NAME}|\[\d+\])+"
_TRAILER = re.compile(
    rf" \[field=(?P<field>{_NAME})(?: index=(?P<index>\d+))?(?: member=(?P<member>{_MEMBER}))?\]\Z", re.DOTALL
)


@dataclass(frozen=True)
class FieldRef:
    """Where in a request a rejection points: an input, one of its elements, a member inside that element."""

    name: str
    index: int | None = None
    member: str = ""  # e.g. ".content[1].text"

    def __post_init__(self) -> None:
        if not re.fullmatch(_NAME, self.name):
            raise ValueError(f"a field name is an identifier, got {self.name!r}")
        if self.index is not None and self.index < 0:
            raise ValueError(f"a field index is not negative, got {self.index}")
        if self.member and not re.fullmatch(_MEMBER, self.member):
            raise ValueError(f"a field member is .key and [index] parts, got {self.member!r}")

    def item(self, index: int) -> FieldRef:
        """Element ``index`` of this input (``messages`` -> ``messages[2]``), or of this member."""
        if self.index is None and not self.member:
            return FieldRef(self.name, index)
        return FieldRef(self.name, self.index, f"{self.member}[{index}]")

    def key(self, key: str) -> FieldRef:
        """Member ``key`` inside this element (``messages[2]`` -> ``messages[2].content``)."""
        return FieldRef(self.name, self.index, f"{self.member}.{key}")

    def __str__(self) -> str:
        index = "" if self.index is None else f"[{self.index}]"
        return f"{self.name}{index}{self.member}"


def as_ref(field: str | FieldRef) -> FieldRef:
    """A bare input name (``"max_tokens"``) or a ``FieldRef``; a name is never parsed for indices."""
    return field if isinstance(field, FieldRef) else FieldRef(field)


def encode(field: FieldRef, reason: str) -> str:
    """The message a server sends: the readable ``<field>: <reason>``, then the machine-readable trailer."""
    parts = [f"field={field.name}"]
    if field.index is not None:
        parts.append(f"index={field.index}")
    if field.member:
        parts.append(f"member={field.member}")
    return f"{field}: {reason} [{' '.join(parts)}]"


def decode(message: str) -> tuple[FieldRef, str] | None:
    """The field and the reason from a server's message (any prefix Triton added ignored); None without a trailer."""
    trailer = _TRAILER.search(message)
    if trailer is None:
        return None
    index = int(trailer["index"]) if trailer["index"] is not None else None
    field = FieldRef(trailer["field"], index, trailer["member"] or "")
    readable, location = message[: trailer.start()], f"{field}: "
    start = readable.find(location)  # after "in ensemble 'llava', " and the like
    return field, readable[start + len(location) :] if start >= 0 else readable
