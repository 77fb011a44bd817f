"""Medians and percentiles of durations, by linear interpolation between closest ranks.

The method (Hyndman & Fan type 7; numpy's and spreadsheets' PERCENTILE.INC default): sort the n
values ``x[0] <= ... <= x[n-1]``; the p-th percentile sits at the fractional position
``h = (n - 1) * p / 100``; with ``i = floor(h)`` it is ``x[i] + (h - i) * (x[i+1] - x[i])``.

Why this one: it is what people check the report against in a spreadsheet, the median of an even
count is the mean of the two middle values (as everyone expects), and a percentile never lies
outside the observed values. Worked example with 1, 2, 3, 4 minutes: median at h = 1.5 is
2 + 0.5 * (3 - 2) = 2.5 min; p90 at h = 2.7 is 3 + 0.7 * (4 - 3) = 3.7 min. One value is its own
median and p90; no values give None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100) of ``values`` by linear interpolation, or None when empty."""
    if not 0 <= p <= 100:
        raise ValueError("p must be between 0 and 100")
    ordered = sorted(values)
    return percentile_of_sorted(ordered, p)


def percentile_of_sorted(ordered: Sequence[float], p: float) -> float | None:
    """Like ``percentile`` for values already sorted ascending (no copy, no sort)."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * p / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + fraction * (ordered[high] - ordered[low])


def median(values: Iterable[float]) -> float | None:
    """The 50th percentile (the mean of the two middle values for an even count), or None."""
    return percentile(values, 50)


def median_and_p90(values: Iterable[float]) -> tuple[float | None, float | None]:
    """The median and the 90th percentile, sorting once."""
    ordered = sorted(values)
    return percentile_of_sorted(ordered, 50), percentile_of_sorted(ordered, 90)
