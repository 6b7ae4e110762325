"""schemathesis against the gateway's own /openapi.json, on the real gateway and tritonserver: for a bounded
number of generated requests per operation, valid ones and invalid ones, no 5xx and every response matches the
schema (status, content type, headers, body). Generations are kept short so the run stays small."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway.process import GatewayProcess
from tests.gateway.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_TOKENS = 4
EXAMPLES = 10  # per operation and mode
OPERATIONS = {
    "GET /v1/models", "POST /v1/chat/completions", "POST /v1/embeddings", "POST /analyze-image",
    "POST /document-analysis", "POST /v1/classify", "GET /health", "GET /ready", "GET /metrics", "GET /",
}  # fmt: skip


@pytest.fixture(scope="module")
def api_schema(gateway: GatewayProcess) -> Any:
    return schemathesis.openapi.from_url(f"{gateway.url}/openapi.json", headers=AUTH, timeout=30)


def short_generations(body: Any) -> None:
    """A generated chat request may ask for up to the whole context; cap it (the rejections of long requests
    are tested on their own)."""
    if not isinstance(body, dict):
        return
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
            body[name] = MAX_TOKENS
    if "messages" in body and body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = MAX_TOKENS


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_operation_answers_5xx_or_outside_its_schema(api_schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {operation.label for operation in operations} == OPERATIONS
    if mode is GenerationMode.NEGATIVE:  # only requests with a body can be made invalid (the GETs take nothing)
        operations = [operation for operation in operations if operation.method.upper() == "POST"]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def answers_within_the_schema(case: schemathesis.Case) -> None:
            short_generations(case.body)
            # Schema-valid data can still be refused (a valid string that is no image), so that check is left
            # out; every refusal must still be a 4xx with the declared error object.
            case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance], timeout=60)

        answers_within_the_schema()
