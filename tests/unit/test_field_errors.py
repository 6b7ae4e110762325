"""client.field_errors: the wire form that carries a rejection's field from the server's models to the client and
the gateway, read back in one place, whatever Triton puts in front of it."""

from __future__ import annotations

import pytest

from client.errors import InvalidInputError, from_status
from client.field_errors import FieldRef, decode, encode
from serving.errors import InvalidInputError as ServerInvalidInputError

CASES = [
    (FieldRef("max_tokens"), "must lie in [1, 2048], got 0"),
    (FieldRef("image", 1), "not a decodable image (supported formats: PNG, JPEG)"),
    (FieldRef("messages", 0, ".content[1].text"), "contains the reserved image token <image>"),
    (FieldRef("response_format", None, ".json_schema.schema"), "not a valid JSON schema at properties/a"),
    (FieldRef("stop", 3), "not valid UTF-8"),
]


@pytest.mark.parametrize(("field", "reason"), CASES, ids=str)
def test_a_field_and_reason_survive_the_round_trip(field: FieldRef, reason: str) -> None:
    assert decode(encode(field, reason)) == (field, reason)


@pytest.mark.parametrize(("field", "reason"), CASES, ids=str)
def test_the_wire_message_starts_with_what_a_person_reads(field: FieldRef, reason: str) -> None:
    message = encode(field, reason)
    readable = f"{field}: {reason}"
    assert message.startswith(f"{readable} [field={field.name}")
    trailer = message.removeprefix(readable)
    assert not any(c in trailer for c in "\n/\"'\\"), trailer  # nothing JSON escapes, nothing like a path


def test_an_ensembles_prefix_is_ignored() -> None:
    message = "in ensemble 'llava', " + encode(FieldRef("image", 0), "empty; expected encoded image bytes")
    assert decode(message) == (FieldRef("image", 0), "empty; expected encoded image bytes")


def test_messages_without_the_trailer_carry_no_field() -> None:
    for message in ("max_tokens: must be at least 1", "llava_decoder: internal error", "", "x [field=]"):
        assert decode(message) is None


def test_a_reason_that_quotes_a_trailer_cannot_forge_the_field() -> None:
    forged = "not a valid JSON schema at a [field=max_tokens]"  # a schema's keys are client text
    assert decode(encode(FieldRef("response_format"), forged)) == (FieldRef("response_format"), forged)
    assert decode(forged + " and more") is None


def test_a_field_reference_builds_elements_and_members() -> None:
    ref = FieldRef("messages").item(2).key("content").item(1).key("text")
    assert ref == FieldRef("messages", 2, ".content[1].text") and str(ref) == "messages[2].content[1].text"


@pytest.mark.parametrize(
    "build",
    [lambda: FieldRef("image[1]"), lambda: FieldRef("a b"), lambda: FieldRef("x", -1), lambda: FieldRef("x", 0, "y")],
)
def test_a_malformed_field_reference_is_a_programming_error(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_the_servers_error_takes_its_field_as_an_argument_and_sends_it_as_data() -> None:
    error = ServerInvalidInputError(FieldRef("image", 1), "image data is truncated or corrupt")
    assert str(error) == "image[1]: image data is truncated or corrupt"
    assert error.wire_message() == "image[1]: image data is truncated or corrupt [field=image index=1]"
    assert str(ServerInvalidInputError("max_tokens", "must be at least 1")) == "max_tokens: must be at least 1"


@pytest.mark.parametrize("status", ["StatusCode.INVALID_ARGUMENT", "400", ""])
def test_the_client_reads_the_field_from_a_rejection_whatever_the_status(status: str) -> None:
    wire = ServerInvalidInputError(FieldRef("messages", 0, ".role"), "must be one of system, user").wire_message()
    error = from_status(status, "in ensemble 'llava', " + wire)
    assert isinstance(error, InvalidInputError)
    assert (error.field, error.index, error.member) == ("messages", 0, ".role")
    assert str(error) == "messages[0].role: must be one of system, user"


def test_a_client_side_rejection_has_no_field_data() -> None:
    error = InvalidInputError("labels: give at least one label")
    assert error.field is None and error.index is None and error.member == "" and str(error) == error.reason
