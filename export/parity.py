"""One comparator for every parity check (PyTorch vs ONNX Runtime now, TensorRT vs ONNX Runtime later)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from export.specs import Tolerance

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class ParityError(RuntimeError):
    pass


@dataclass(frozen=True)
class ParityCase:
    output: str
    batch_size: int
    max_abs_diff: float
    min_cosine: float
    passed: bool


@dataclass
class ParityReport:
    component: str
    reference: str
    candidate: str
    tolerance: Tolerance
    cases: list[ParityCase] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(case.passed for case in self.cases)

    @property
    def max_abs_diff(self) -> float:
        return max((case.max_abs_diff for case in self.cases), default=float("nan"))

    @property
    def min_cosine(self) -> float:
        return min((case.min_cosine for case in self.cases), default=float("nan"))

    def to_dict(self) -> dict:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "tolerance": asdict(self.tolerance),
            "passed": self.passed,
            "max_abs_diff": self.max_abs_diff,
            "min_cosine": self.min_cosine,
            "cases": [asdict(case) for case in self.cases],
        }

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        sizes = sorted({case.batch_size for case in self.cases})
        return (
            f"{verdict} {self.component}: {self.candidate} vs {self.reference}, batch sizes {sizes}: "
            f"max abs diff {self.max_abs_diff:.2e} (limit {self.tolerance.max_abs_diff:.0e}), "
            f"min cosine {self.min_cosine:.6f} (limit {self.tolerance.min_cosine})"
        )


def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """Max absolute difference, and the lowest cosine similarity over the batch's items."""
    if reference.shape != candidate.shape:
        raise ParityError(f"shape mismatch: reference {reference.shape}, candidate {candidate.shape}")
    ref = reference.reshape(reference.shape[0], -1).astype(np.float64)
    cand = candidate.reshape(candidate.shape[0], -1).astype(np.float64)
    max_abs_diff = float(np.abs(ref - cand).max())
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosines = np.where(norms > 0, (ref * cand).sum(axis=1) / np.maximum(norms, 1e-30), 1.0)
    return max_abs_diff, float(cosines.min())


def check_parity(
    component: str,
    reference: tuple[str, Runner],
    candidate: tuple[str, Runner],
    feeds: Iterable[dict[str, np.ndarray]],
    tolerance: Tolerance,
) -> ParityReport:
    report = ParityReport(component, reference[0], candidate[0], tolerance)
    for feed in feeds:
        batch_size = next(iter(feed.values())).shape[0]
        expected, actual = reference[1](feed), candidate[1](feed)
        for name, value in expected.items():
            diff, cosine = compare(value, actual[name])
            passed = diff <= tolerance.max_abs_diff and cosine >= tolerance.min_cosine
            report.cases.append(ParityCase(name, batch_size, diff, cosine, passed))
    return report
