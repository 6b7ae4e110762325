"""A request's pixel budget (``min_pixels`` / ``max_pixels``, ``client.pixel_parameters``) checked against what a
model allows: each given value within ``[floor, cap]`` (the floor is one merged patch, the cap the larger of the
export's ``max_pixels_cap`` and the processor's own ``max_pixels``), and the resulting ``min_pixels`` at most its
``max_pixels``, a value the request leaves out taking the processor's own. Errors name the field and the limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from client.pixel_parameters import MAX_PIXELS, MIN_PIXELS
from serving.errors import InvalidInputError
from serving.generation.params import number_input


@dataclass(frozen=True)
class PixelBudget:
    """The area an image (or a video frame) is resized to lie within."""

    min_pixels: int
    max_pixels: int


@dataclass(frozen=True)
class BudgetLimits:
    """What a model allows: ``default`` (its processor's budget) and each value's range ``[floor, cap]``."""

    default: PixelBudget
    floor: int
    cap: int
    processor: str = "image processor"  # whose default a request's missing value takes, for errors

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.cap:
            raise ValueError(f"the pixel floor {self.floor} must lie in [1, cap {self.cap}]")

    @classmethod
    def of(cls, default: PixelBudget, factor: int, cap: int, processor: str = "image processor") -> BudgetLimits:
        """Floor one merged patch (``factor`` pixels a side); the cap never below the processor's own maximum."""
        return cls(default, factor * factor, max(cap, default.max_pixels), processor)

    def given(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, int]:
        """The request's values, each checked for type and range."""
        values: dict[str, int] = {}
        for parameter in (MIN_PIXELS, MAX_PIXELS):
            value = number_input(inputs, parameter)
            if value is None:
                continue
            if not self.floor <= value <= self.cap:
                limit = f"must lie in [{self.floor}, {self.cap}] for this model"
                raise InvalidInputError(parameter.name, f"{limit}, got {int(value)}")
            values[parameter.name] = int(value)
        return values

    def budget(self, inputs: dict[str, npt.NDArray[Any]]) -> PixelBudget | None:
        """The request's budget; None when it gives neither value (the processor's own applies)."""
        given = self.given(inputs)
        if not given:
            return None
        low = given.get(MIN_PIXELS.name, self.default.min_pixels)
        high = given.get(MAX_PIXELS.name, self.default.max_pixels)
        if low > high:
            if MIN_PIXELS.name in given and MAX_PIXELS.name in given:
                raise InvalidInputError(MIN_PIXELS.name, f"must be at most max_pixels ({high}), got {low}")
            if MIN_PIXELS.name in given:
                reason = f"must be at most the {self.processor}'s max_pixels ({high}) unless max_pixels is given"
                raise InvalidInputError(MIN_PIXELS.name, f"{reason}, got {low}")
            reason = f"must be at least the {self.processor}'s min_pixels ({low}) unless min_pixels is given"
            raise InvalidInputError(MAX_PIXELS.name, f"{reason}, got {high}")
        return PixelBudget(low, high)
