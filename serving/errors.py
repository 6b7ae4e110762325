"""Errors whose message is safe to return to a client as-is."""

from __future__ import annotations

from client.field_errors import FieldRef, as_ref, encode


class InvalidInputError(ValueError):
    """Bad client input: the field it is about (data, not text) and a reason that names the limit. The reason never
    holds a path or a repr. ``str()`` is the readable ``<field>: <reason>``; ``wire_message()`` is what Triton sends,
    with the field in the trailer that ``client.field_errors`` defines."""

    def __init__(self, field: str | FieldRef, reason: str) -> None:
        self.field = as_ref(field)
        self.reason = reason
        super().__init__(f"{self.field}: {reason}")

    def wire_message(self) -> str:
        return encode(self.field, self.reason)


def busy_message(model: str, reason: str) -> str:
    """A refusal for capacity, sent with UNAVAILABLE: clients read ``: busy: `` as a retryable busy error
    (client/errors.py)."""
    return f"{model}: busy: {reason}"
