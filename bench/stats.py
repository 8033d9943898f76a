"""Small numbers helpers: medians of runs, percentiles of latencies, ratios to the baseline."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` 0.99 for p99) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return value / baseline


def spread(values: Iterable[float | None]) -> str:
    """min–max of the runs, for the reader to judge the noise."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    return f"{min(present):.4g}–{max(present):.4g}"
