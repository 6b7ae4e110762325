"""Errors whose message is safe to return to a client as-is."""


class InvalidInputError(ValueError):
    """Bad client input. The message names the field and the limit; it never holds a path or a repr."""
