"""export.parity: the comparator and the report every runtime check goes through."""

from __future__ import annotations

import math

import numpy as np
import pytest

from export.parity import ParityError, ParityReport, check_parity, compare
from export.specs import Tolerance

TOLERANCE = Tolerance(max_abs_diff=1e-4, min_cosine=0.9999)


def encoder(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A deterministic stand-in model: two outputs from one input."""
    x = feed["pixel_values"].astype(np.float32)
    flat = x.reshape(x.shape[0], -1)
    return {"image_embeds": np.tanh(flat[:, :8]), "pooled": flat.mean(axis=1, keepdims=True)}


def noisy(scale: float):
    rng = np.random.default_rng(0)

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = encoder(feed)
        return {name: value + rng.normal(0, scale, value.shape).astype(np.float32) for name, value in outputs.items()}

    return run


def feeds(*batch_sizes: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"pixel_values": rng.normal(size=(n, 3, 4, 4)).astype(np.float32)} for n in batch_sizes]


# compare


def test_compare_of_identical_arrays_is_zero_difference_and_cosine_one() -> None:
    a = np.array([[1.0, 2.0, 3.0], [-4.0, 5.0, 0.5]], dtype=np.float32)
    diff, cosine = compare(a, a.copy())
    assert diff == 0.0
    assert cosine == pytest.approx(1.0, abs=1e-15)


def test_compare_gives_the_max_abs_diff_and_the_lowest_per_item_cosine() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidate = np.array([[1.0, 0.0], [1.0, 1.0]])
    diff, cosine = compare(reference, candidate)
    assert diff == 1.0
    assert cosine == pytest.approx(1 / math.sqrt(2), rel=1e-15)


def test_compare_finds_an_opposite_item_even_when_others_match() -> None:
    reference = np.array([[1.0, 2.0], [3.0, 4.0], [0.5, 0.5]])
    candidate = reference.copy()
    candidate[1] = -candidate[1]
    diff, cosine = compare(reference, candidate)
    assert diff == 8.0
    assert cosine == pytest.approx(-1.0, rel=1e-15)


def test_compare_measures_cosine_per_item_over_all_trailing_dims() -> None:
    reference = np.ones((2, 2, 2), dtype=np.float32)
    candidate = reference.copy()
    candidate[0, 0, 0] = 0.0  # item 0 becomes (0, 1, 1, 1): cosine 3 / (2 * sqrt(3))
    _, cosine = compare(reference, candidate)
    assert cosine == pytest.approx(3 / (2 * math.sqrt(3)), rel=1e-7)


def test_compare_counts_all_zero_items_as_matching() -> None:
    zeros = np.zeros((2, 3))
    assert compare(zeros, zeros.copy()) == (0.0, 1.0)


def test_compare_is_computed_in_float64_for_half_precision_inputs() -> None:
    reference = np.full((1, 4), 1000.0, dtype=np.float16)
    candidate = reference + np.float16(1.0)
    diff, _ = compare(reference, candidate)
    assert diff == 1.0


def test_compare_raises_on_a_shape_mismatch() -> None:
    with pytest.raises(ParityError, match=r"shape mismatch: reference \(2, 3\), candidate \(3, 2\)"):
        compare(np.zeros((2, 3)), np.zeros((3, 2)))


# check_parity and the report


def test_check_parity_passes_for_identical_runners() -> None:
    report = check_parity("clip_vision", ("torch", encoder), ("onnxruntime", encoder), feeds(1, 3), TOLERANCE)
    assert report.passed
    assert report.max_abs_diff == 0.0
    assert [(case.output, case.batch_size) for case in report.cases] == [
        ("image_embeds", 1),
        ("pooled", 1),
        ("image_embeds", 3),
        ("pooled", 3),
    ]


def test_check_parity_fails_when_the_candidate_adds_noise_beyond_tolerance() -> None:
    report = check_parity("clip_vision", ("torch", encoder), ("onnxruntime", noisy(1e-2)), feeds(1, 3), TOLERANCE)
    assert report.passed is False
    assert report.max_abs_diff > TOLERANCE.max_abs_diff
    assert not any(case.passed for case in report.cases)


def test_check_parity_passes_when_noise_is_within_tolerance() -> None:
    tolerance = Tolerance(max_abs_diff=1e-2, min_cosine=0.99)
    report = check_parity("clip_vision", ("torch", encoder), ("onnxruntime", noisy(1e-5)), feeds(2), tolerance)
    assert report.passed
    assert 0 < report.max_abs_diff <= 1e-2


def test_one_failing_output_fails_the_whole_report() -> None:
    def candidate(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = encoder(feed)
        outputs["pooled"] = outputs["pooled"] + 1.0
        return outputs

    report = check_parity("clip_vision", ("torch", encoder), ("onnxruntime", candidate), feeds(2), TOLERANCE)
    assert {case.output: case.passed for case in report.cases} == {"image_embeds": True, "pooled": False}
    assert report.passed is False
    assert report.max_abs_diff == pytest.approx(1.0, abs=1e-6)


def test_check_parity_raises_when_the_candidate_output_has_another_shape() -> None:
    def candidate(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: value[:, :1] for name, value in encoder(feed).items()}

    with pytest.raises(ParityError, match="shape mismatch"):
        check_parity("clip_vision", ("torch", encoder), ("onnxruntime", candidate), feeds(2), TOLERANCE)


def test_summary_says_pass_with_the_sizes_and_limits() -> None:
    report = check_parity("clip_vision", ("torch", encoder), ("onnxruntime", encoder), feeds(3, 1), TOLERANCE)
    summary = report.summary()
    assert summary.startswith("PASS clip_vision: onnxruntime vs torch, batch sizes [1, 3]")
    assert "limit 1e-04" in summary and "limit 0.9999" in summary


def test_summary_says_fail_when_the_report_failed() -> None:
    report = check_parity("clip_vision", ("torch", encoder), ("onnxruntime", noisy(1e-2)), feeds(1), TOLERANCE)
    assert report.summary().startswith("FAIL clip_vision:")


def test_to_dict_carries_the_verdict_the_tolerance_and_every_case() -> None:
    report = check_parity("clip_vision", ("torch", encoder), ("onnxruntime", encoder), feeds(1, 3), TOLERANCE)
    data = report.to_dict()
    assert data["passed"] is True
    assert data["tolerance"] == {"max_abs_diff": 1e-4, "min_cosine": 0.9999}
    assert len(data["cases"]) == 4
    assert data["cases"][0]["output"] == "image_embeds"


def test_a_report_without_cases_has_not_passed() -> None:
    report = check_parity("clip_vision", ("torch", encoder), ("onnxruntime", encoder), [], TOLERANCE)
    assert report.cases == []
    assert report.passed is False


def test_a_report_without_cases_summarises_as_fail_instead_of_crashing() -> None:
    report = ParityReport("clip_vision", "torch", "onnxruntime", TOLERANCE)
    assert report.summary().startswith("FAIL")
