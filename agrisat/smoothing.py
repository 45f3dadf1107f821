"""Cleaning one plot's NDVI series: residual-cloud drops out, gaps filled, noise smoothed.

Clouds and their shadows that slip through the mask pull NDVI *down* for one date, so a clear value
far below the line through its clear neighbours is an outlier. Smoothing is a Whittaker smoother
(Eilers 2003, Analytical Chemistry 75:3631) on a daily grid: observations weigh 1, days without one
weigh 0, so the same solve fills gaps; the raw series is always kept beside the smoothed one.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solveh_banded


def drop_outliers(days: np.ndarray, values: np.ndarray, max_drop: float, max_rounds: int = 3) -> np.ndarray:
    """Mask of values lying more than ``max_drop`` below *both* the previous and the next kept value
    (``days`` ascending, NaN = not observed). Below both, not below the line through them: a harvest
    followed by regrowth (a catch crop) is a real V, and on monthly composites it is one date deep.
    Repeated a few rounds, deepest drop first, so two cloudy dates in a row are both found. The
    first and last values have one neighbour only and are kept."""
    out = np.zeros(len(values), dtype=bool)
    for _ in range(max_rounds * 2):
        ok = np.flatnonzero(np.isfinite(values) & ~out)
        if len(ok) < 3:
            break
        v = values[ok]
        depth = np.minimum(v[:-2], v[2:]) - v[1:-1]
        k = int(np.argmax(depth))
        if depth[k] <= max_drop:
            break
        out[ok[k + 1]] = True  # one at a time: a drop also lowers its neighbours' reference lines
    return out


def whittaker_daily(days: np.ndarray, values: np.ndarray, lam: float, first: int, last: int) -> np.ndarray:
    """Smoothed daily curve on days ``first`` .. ``last`` (inclusive) from observations at ``days``
    (NaN ignored): minimises sum w (y - z)^2 + lam * sum (second difference of z)^2."""
    n = last - first + 1
    w = np.zeros(n)
    y = np.zeros(n)
    ok = np.isfinite(values) & (days >= first) & (days <= last)
    idx = (days[ok] - first).astype(int)
    np.add.at(w, idx, 1.0)
    np.add.at(y, idx, values[ok])
    y = np.divide(y, w, out=np.zeros(n), where=w > 0)
    if w.sum() < 3 or n < 3:
        return np.full(n, np.nan)
    # lam * D'D for second differences is a symmetric pentadiagonal matrix; store its upper bands.
    dd = np.zeros((3, n))
    dd[2] = 6.0
    dd[2, [0, -1]] = 1.0
    dd[2, [1, -2]] = 5.0
    dd[1, 1:] = -4.0
    dd[1, [1, -1]] = -2.0
    dd[0, 2:] = 1.0
    ab = lam * dd
    ab[2] += w
    return solveh_banded(ab, w * y)
