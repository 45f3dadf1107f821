"""Phenology of one season from a smoothed daily NDVI curve, on numpy only (TIMESAT is non-commercial).

Amplitude-threshold method: the peak is the curve's maximum; the left (right) base is the minimum
before (after) it; start of season is where the curve last rises through base + ``threshold`` x
amplitude before the peak, end of season where it first falls through that level after it (each side
with its own base, so a crop sown on bare soil and harvested into stubble is measured fairly).
Green-up and senescence rates are the slopes between the 20% and 80% levels. The season's peak
*date* is TIMESAT's "middle of season", halfway between the 80% levels on the way up and down: the
argmax of a flat-topped canopy is decided by noise, the 80% crossings are not. Days are integers
counted from any origin (the caller's), so seasons across the new year need nothing special.
"""

from __future__ import annotations

import numpy as np

NAN_RESULT = {"sos_day": np.nan, "peak_day": np.nan, "max_day": np.nan, "eos_day": np.nan, "peak_value": np.nan,
              "amplitude": np.nan, "greenup_rate": np.nan, "senescence_rate": np.nan,
              "season_length_days": np.nan, "season_integral_smooth": np.nan}


def season_phenology(curve: np.ndarray, first_day: int, threshold: float = 0.2, min_amplitude: float = 0.1) -> dict:
    """Phenology of ``curve`` (daily values from ``first_day``); NaN entries when there is no season
    (flat curve, amplitude below ``min_amplitude`` on either side, or a crossing outside the curve)."""
    if len(curve) < 3 or not np.isfinite(curve).all():
        return dict(NAN_RESULT)
    k = int(np.argmax(curve))
    peak = float(curve[k])
    base_l, base_r = float(curve[: k + 1].min()), float(curve[k:].min())
    amp_l, amp_r = peak - base_l, peak - base_r
    out = dict(NAN_RESULT) | {"max_day": float(first_day + k), "peak_value": peak, "amplitude": max(amp_l, amp_r)}
    if amp_l < min_amplitude or amp_r < min_amplitude:
        return out
    sos = _rise(curve[: k + 1], base_l + threshold * amp_l)
    eos = _fall(curve[k:], base_r + threshold * amp_r)
    up20, up80 = _rise(curve[: k + 1], base_l + 0.2 * amp_l), _rise(curve[: k + 1], base_l + 0.8 * amp_l)
    dn80, dn20 = _fall(curve[k:], base_r + 0.8 * amp_r), _fall(curve[k:], base_r + 0.2 * amp_r)
    out["sos_day"] = first_day + sos
    out["eos_day"] = first_day + k + eos
    out["peak_day"] = first_day + (up80 + k + dn80) / 2.0
    out["greenup_rate"] = 0.6 * amp_l / (up80 - up20) if up80 > up20 else np.nan
    out["senescence_rate"] = -0.6 * amp_r / (dn20 - dn80) if dn20 > dn80 else np.nan
    out["season_length_days"] = out["eos_day"] - out["sos_day"]
    if np.isfinite(out["season_length_days"]):
        i0, i1 = int(np.ceil(sos)), int(np.floor(k + eos))
        seg = curve[i0: i1 + 1] - min(base_l, base_r)
        out["season_integral_smooth"] = float(np.trapezoid(seg)) if len(seg) > 1 else 0.0
    return out


def _rise(c: np.ndarray, level: float) -> float:
    """Fractional index where ``c`` (ending at its peak) last crosses ``level`` upwards."""
    below = np.flatnonzero(c < level)
    if len(below) == 0:
        return np.nan  # already above the level at the first day: the start is before the curve
    i = int(below[-1])
    return i + (level - c[i]) / (c[i + 1] - c[i])


def _fall(c: np.ndarray, level: float) -> float:
    """Fractional index where ``c`` (starting at its peak) first crosses ``level`` downwards."""
    below = np.flatnonzero(c < level)
    if len(below) == 0:
        return np.nan  # still above the level at the last day: the end is after the curve
    j = int(below[0])
    return j - 1 + (c[j - 1] - level) / (c[j - 1] - c[j])


def season_phenology_rows(curves: np.ndarray, first_day: int, threshold: float = 0.2,
                          min_amplitude: float = 0.1) -> dict[str, np.ndarray]:
    """``season_phenology`` of every row of ``curves`` (plots x days from ``first_day``) at once: a
    dict of arrays with the same keys and, row by row, the same numbers (same operations in the same
    order; the integral sums each row's own segment, as the per-plot trapezoid does)."""
    c = np.asarray(curves, dtype=float)
    n_rows, n = c.shape
    out = {key: np.full(n_rows, np.nan) for key in NAN_RESULT}
    if n < 3 or not n_rows:
        return out
    rows = np.flatnonzero(np.isfinite(c).all(axis=1))
    c = c[rows]
    r = np.arange(len(rows))
    j = np.arange(n)[None, :]
    k = np.argmax(c, axis=1)
    peak = c[r, k]
    left, right = j <= k[:, None], j >= k[:, None]
    base_l, base_r = np.where(left, c, np.inf).min(axis=1), np.where(right, c, np.inf).min(axis=1)
    amp_l, amp_r = peak - base_l, peak - base_r
    out["max_day"][rows] = first_day + k
    out["peak_value"][rows] = peak
    out["amplitude"][rows] = np.maximum(amp_l, amp_r)
    season = (amp_l >= min_amplitude) & (amp_r >= min_amplitude)
    rows, c, r, k, left, right = rows[season], c[season], r[: season.sum()], k[season], left[season], right[season]
    base_l, base_r, amp_l, amp_r = base_l[season], base_r[season], amp_l[season], amp_r[season]

    def rise(level: np.ndarray) -> np.ndarray:  # _rise on c[:k + 1]: the last day below the level
        below = left & (c < level[:, None])
        i = n - 1 - np.argmax(below[:, ::-1], axis=1)
        i1 = np.minimum(i + 1, n - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(below.any(axis=1), i + (level - c[r, i]) / (c[r, i1] - c[r, i]), np.nan)

    def fall(level: np.ndarray) -> np.ndarray:  # _fall on c[k:]: the first day below the level, from k
        below = right & (c < level[:, None])
        a = np.argmax(below, axis=1)
        a0 = np.maximum(a - 1, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(below.any(axis=1), (a - k - 1) + (c[r, a0] - level) / (c[r, a0] - c[r, a]), np.nan)

    sos = rise(base_l + threshold * amp_l)
    eos = fall(base_r + threshold * amp_r)
    up20, up80 = rise(base_l + 0.2 * amp_l), rise(base_l + 0.8 * amp_l)
    dn80, dn20 = fall(base_r + 0.8 * amp_r), fall(base_r + 0.2 * amp_r)
    out["sos_day"][rows] = first_day + sos
    out["eos_day"][rows] = (first_day + k) + eos
    out["peak_day"][rows] = first_day + (up80 + k + dn80) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["greenup_rate"][rows] = np.where(up80 > up20, 0.6 * amp_l / (up80 - up20), np.nan)
        out["senescence_rate"][rows] = np.where(dn20 > dn80, -0.6 * amp_r / (dn20 - dn80), np.nan)
    length = out["eos_day"][rows] - out["sos_day"][rows]
    out["season_length_days"][rows] = length
    # Integral between the crossings: each row's own segment, summed as np.trapezoid sums it (rows
    # of one length together, so the pairwise summation sees exactly the per-plot array).
    has = np.isfinite(length)
    i0 = np.where(has, np.ceil(np.nan_to_num(sos)), 0).astype(int)
    i1 = np.where(has, np.floor(np.nan_to_num(k + eos)), -1).astype(int)
    size = np.where(has, np.maximum(i1 + 1, i0) - i0, 0)
    integral = np.where(has, 0.0, np.nan)
    floor = np.minimum(base_l, base_r)
    for m in np.unique(size[size > 1]):
        sel = np.flatnonzero(size == m)
        seg = c[sel[:, None], i0[sel, None] + np.arange(m)] - floor[sel, None]
        integral[sel] = np.trapezoid(seg, axis=1)
    out["season_integral_smooth"][rows] = integral
    return out
