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


# -- Many plots at once (growth.growth_analysis): the same numbers as the per-plot functions above. --

def drop_outliers_rows(values: np.ndarray, max_drop: float, max_rounds: int = 3) -> np.ndarray:
    """``drop_outliers`` on every row of ``values`` (plots x dates ascending, NaN = not observed) at
    once: the same mask. Each round drops, per row, the deepest kept value below both its kept
    neighbours (first on ties); a row that drops nothing is done, as the per-plot loop breaks."""
    v = np.asarray(values, dtype=float)
    out = np.zeros(v.shape, dtype=bool)
    n_rows, n = v.shape
    if n < 3:
        return out
    finite = np.isfinite(v)
    active = np.flatnonzero(finite.sum(axis=1) >= 3)
    cols = np.arange(n)
    for _ in range(max_rounds * 2):
        if not len(active):
            break
        va = v[active]
        keep = finite[active] & ~out[active]
        # Previous / next kept column of every column (-1 / n when there is none).
        before = np.maximum.accumulate(np.where(keep, cols, -1), axis=1)
        prev = np.concatenate([np.full((len(active), 1), -1), before[:, :-1]], axis=1)
        after = np.minimum.accumulate(np.where(keep, cols, n)[:, ::-1], axis=1)[:, ::-1]
        nxt = np.concatenate([after[:, 1:], np.full((len(active), 1), n)], axis=1)
        cand = keep & (prev >= 0) & (nxt < n)
        pv = np.take_along_axis(va, np.maximum(prev, 0), axis=1)
        nv = np.take_along_axis(va, np.minimum(nxt, n - 1), axis=1)
        with np.errstate(invalid="ignore"):
            depth = np.where(cand, np.minimum(pv, nv) - va, -np.inf)
        k = np.argmax(depth, axis=1)
        hit = depth[np.arange(len(active)), k] > max_drop
        out[active[hit], k[hit]] = True
        active = active[hit]
    return out


def _second_difference_bands(n: int, lam: float) -> np.ndarray:
    """lam * D'D in upper banded storage, exactly as ``whittaker_daily`` builds it."""
    dd = np.zeros((3, n))
    dd[2] = 6.0
    dd[2, [0, -1]] = 1.0
    dd[2, [1, -2]] = 5.0
    dd[1, 1:] = -4.0
    dd[1, [1, -1]] = -2.0
    dd[0, 2:] = 1.0
    return lam * dd


def whittaker_rows(w: np.ndarray, ysum: np.ndarray, lam: float, max_rows: int = 1 << 18) -> np.ndarray:
    """``whittaker_daily`` for many plots on one daily grid: ``w`` (plots x days) counts the
    observations of each day, ``ysum`` sums their values; returns the smoothed curves (NaN rows
    where fewer than 3 observations, as per plot).

    The plots' systems are independent, so they are stacked into one block-diagonal banded system
    (the coupling bands between blocks are 0) and solved by the same LAPACK routines
    ``solveh_banded`` calls (dpbtrf + dpbtrs): on a zero coupling the banded Cholesky and the two
    triangular solves do, block by block, exactly the per-plot arithmetic (bit-identical, tested).
    Plots with the same weights share one matrix, so each distinct weight pattern (on a tile,
    clouds make many plots' patterns equal) is factored once and its factor copied to its plots.
    ``max_rows`` bounds the rows of one LAPACK call (memory)."""
    from scipy.linalg import lapack

    w = np.asarray(w, dtype=float)
    n_rows, n = w.shape
    out = np.full((n_rows, n), np.nan)
    if n < 3 or not n_rows:
        return out
    y = np.divide(ysum, w, out=np.zeros_like(w), where=w > 0)
    solve = np.flatnonzero(w.sum(axis=1) >= 3)
    if not len(solve):
        return out
    ws = w[solve]
    rhs = (ws * y[solve]).ravel()
    # Banded matrices are kept transposed (plot-days x 3, C order): that is LAPACK's column-major
    # (3 x plot-days), so no call copies, and a plot's factor is one contiguous row to copy.
    bands = _second_difference_bands(n, lam).T
    key = ws.astype(np.uint8) if ws.max() < 256 else ws  # observation counts: one byte a day when they fit
    key = np.ascontiguousarray(key).view(np.dtype((np.void, key.dtype.itemsize * n))).ravel()
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    per_call = max(1, max_rows // n)

    def factor(weights: np.ndarray) -> np.ndarray:  # dpbtrf of the stacked systems, column-major
        ab = np.tile(bands, (len(weights), 1))
        ab[:, 2] += weights.ravel()
        c, info = lapack.dpbtrf(ab.T, lower=0, overwrite_ab=1)
        if info > 0:
            raise np.linalg.LinAlgError(f"{info}-th leading minor not positive definite")
        return c

    shared = len(first) < len(solve)
    if shared:
        factors = np.concatenate([factor(ws[first[b: b + per_call]]).T.reshape(-1, n * 3)
                                  for b in range(0, len(first), per_call)])
    x = np.empty(len(solve) * n)
    for b in range(0, len(solve), per_call):
        c = factors[inverse[b: b + per_call]].reshape(-1, 3).T if shared else factor(ws[b: b + per_call])
        x[b * n: b * n + c.shape[1]], info = lapack.dpbtrs(c, rhs[b * n: b * n + c.shape[1]], lower=0)
    out[solve] = x.reshape(len(solve), n)
    return out
