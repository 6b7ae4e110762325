"""serving.pixel_budget: a request's min_pixels / max_pixels within the model's floor and cap, each error naming the
field and the limit."""

from __future__ import annotations

import numpy as np
import pytest

from serving.errors import InvalidInputError
from serving.pixel_budget import BudgetLimits, PixelBudget

pytestmark = pytest.mark.timeout(30)

LIMITS = BudgetLimits.of(PixelBudget(3136, 50176), factor=28, cap=12_845_056)


def inputs(**values: object) -> dict[str, np.ndarray]:
    return {name: np.array([value]) for name, value in values.items()}


def refusal(**values: object) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        LIMITS.budget(inputs(**values))
    return caught.value


def test_no_values_leave_the_processors_own_budget() -> None:
    assert LIMITS.budget({}) is None


def test_one_value_takes_the_other_from_the_processor() -> None:
    assert LIMITS.budget(inputs(max_pixels=10_000)) == PixelBudget(3136, 10_000)
    assert LIMITS.budget(inputs(min_pixels=784)) == PixelBudget(784, 50176)


def test_a_request_may_go_past_the_checkpoints_maximum_up_to_the_cap() -> None:
    assert LIMITS.budget(inputs(min_pixels=100_000, max_pixels=12_845_056)) == PixelBudget(100_000, 12_845_056)


def test_the_floor_is_one_merged_patch_and_the_cap_is_the_exports() -> None:
    assert (LIMITS.floor, LIMITS.cap) == (784, 12_845_056)
    error = refusal(min_pixels=783)
    assert error.field.name == "min_pixels"
    assert error.reason == "must lie in [784, 12845056] for this model, got 783"
    assert refusal(max_pixels=12_845_057).field.name == "max_pixels"


def test_the_cap_is_never_below_the_processors_own_maximum() -> None:
    assert BudgetLimits.of(PixelBudget(3136, 20_000_000), factor=28, cap=12_845_056).cap == 20_000_000


def test_min_above_max_is_refused_naming_both() -> None:
    assert refusal(min_pixels=20_000, max_pixels=10_000).reason == "must be at most max_pixels (10000), got 20000"


def test_a_single_value_past_the_processors_other_one_is_refused_naming_it() -> None:
    error = refusal(max_pixels=1000)
    assert error.field.name == "max_pixels"
    assert "at least the image processor's min_pixels (3136) unless min_pixels is given, got 1000" in error.reason
    error = refusal(min_pixels=60_000)
    assert error.field.name == "min_pixels" and "max_pixels (50176)" in error.reason


@pytest.mark.parametrize("value", [3136.5, 4000.0])
def test_a_non_integer_is_refused(value: float) -> None:
    error = refusal(min_pixels=value)
    assert error.field.name == "min_pixels" and error.reason == "expected an integer, got float64"


def test_more_than_one_value_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="max_pixels: expected exactly 1 value, got 2"):
        LIMITS.budget({"max_pixels": np.array([5000, 6000])})


def test_zero_and_negatives_are_refused_by_the_tables_range() -> None:
    error = refusal(max_pixels=0)
    assert error.field.name == "max_pixels" and "got 0" in error.reason
