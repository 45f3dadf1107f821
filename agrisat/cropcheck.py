"""Declared crop against the observed NDVI profile, from the crop calendars in configs/crops.yaml.

Each crop's calendar becomes a template over the season: 0 until emergence, rising to 1 at the
start of its peak months, 1 through them, falling to 0 at harvest. A plot's clear, cleaned NDVI is
correlated with every template; the best-matching crop is reported, and CROP_MISMATCH is raised when
it beats the declared crop's correlation by at least ``margin``. Correlation, not distance, so a thin
canopy and a dense one of the same crop look alike; the calendar decides, not the NDVI level.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from agrisat.config import CropParams, CropTable
from agrisat.cropcalendar import HARVEST_MARGIN_DAYS, growing_window


def crop_template(crop: CropParams, dates: pd.DatetimeIndex, season_end: dt.date,
                  season_start: dt.date | None = None) -> np.ndarray:
    """The crop's calendar as a 0..1 curve at ``dates`` (see module docstring)."""
    sowing, stop = growing_window(crop, season_end, season_start)
    harvest = stop - pd.Timedelta(days=HARVEST_MARGIN_DAYS)
    emergence = sowing + pd.Timedelta(days=crop.emergence_days)
    first, last = crop.peak_months[0], crop.peak_months[-1]
    peak_start = pd.Timestamp(harvest.year - (first > harvest.month), first, 1)
    peak_end = min(pd.Timestamp(harvest.year - (last > harvest.month), last, 1) + pd.offsets.MonthEnd(0), harvest)
    knots = np.array([emergence, max(peak_start, emergence), max(peak_end, peak_start), harvest], dtype="datetime64[D]")
    t = np.asarray(dates, dtype="datetime64[D]").astype(float)
    return np.interp(t, knots.astype(float), [0.0, 1.0, 1.0, 0.0], left=0.0, right=0.0)


def check_crop(dates: pd.DatetimeIndex, values: np.ndarray, declared: str, crops: CropTable,
               season_end: dt.date, margin: float, min_obs: int, season_start: dt.date | None = None) -> dict:
    """``best_crop``, per-crop correlations, ``crop_mismatch`` and ``crop_mismatch_confidence``
    (half the correlation gap, 0..1). Too few clear dates: no verdict (NaN), never a guess."""
    ok = np.isfinite(values)
    out = {"best_crop": None, "best_crop_score": np.nan, "declared_crop_score": np.nan,
           "crop_mismatch": False, "crop_mismatch_confidence": np.nan}
    if ok.sum() < min_obs or np.nanstd(values) == 0:
        return out
    scores = {}
    for name, crop in sorted(crops.crops.items()):
        tmpl = crop_template(crop, dates[ok], season_end, season_start)
        scores[name] = float(np.corrcoef(tmpl, values[ok])[0, 1]) if tmpl.std() > 0 else np.nan
    finite = {k: v for k, v in scores.items() if np.isfinite(v)}
    if not finite or declared not in finite:
        return out
    best = max(sorted(finite), key=lambda k: finite[k])  # sorted: ties go to the first name
    gap = finite[best] - finite[declared]
    return out | {"best_crop": best, "best_crop_score": round(finite[best], 4),
                  "declared_crop_score": round(finite[declared], 4), "crop_mismatch": bool(best != declared and gap >= margin),
                  "crop_mismatch_confidence": round(gap / 2.0, 4)}


def _corrcoef_rows(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``np.corrcoef(t[i], v[i])[0, 1]`` for every row i, by numpy's own steps (mean, centre, the
    2 x 2 product, scale, divide, clip) on a stack: rows of one length give the per-row bits."""
    g, m = t.shape
    x = np.empty((g, 2, m))
    x[:, 0], x[:, 1] = t, v
    x -= x.mean(axis=2)[:, :, None]
    c = np.matmul(x, x.transpose(0, 2, 1))
    c *= np.true_divide(1, m - 1)
    sd = np.sqrt(np.stack([c[:, 0, 0], c[:, 1, 1]], axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(c[:, 0, 1] / sd[:, 0] / sd[:, 1], -1, 1)


def check_crop_rows(dates: pd.DatetimeIndex, values: np.ndarray, declared: np.ndarray, crops: CropTable,
                    season_end: dt.date, margin: float, min_obs: int,
                    season_start: dt.date | None = None) -> dict[str, np.ndarray]:
    """``check_crop`` for many plots on shared dates: ``values`` is plots x ``dates`` (NaN: not in
    the plot's profile), ``declared`` the plots' crop names. Returns arrays (``best_crop`` an object
    array with None where there is no verdict) with, plot by plot, check_crop's answer.

    Each crop's template is computed once at all dates (it is pointwise, so a plot's clear dates
    pick their values from it); correlations run on stacks of plots with the same number of clear
    dates, so numpy sums exactly the arrays the per-plot check sums (ties break identically)."""
    names = sorted(crops.crops)
    v = np.asarray(values, dtype=float)
    n_rows = v.shape[0]
    best = np.full(n_rows, None, dtype=object)
    best_score, declared_score = np.full(n_rows, np.nan), np.full(n_rows, np.nan)
    mismatch, gap = np.zeros(n_rows, dtype=bool), np.full(n_rows, np.nan)
    out = {"best_crop": best, "best_crop_score": best_score, "declared_crop_score": declared_score,
           "crop_mismatch": mismatch, "crop_mismatch_confidence": gap}
    if not n_rows:
        return out
    tmpl = np.stack([crop_template(crops.crops[name], dates, season_end, season_start) for name in names])
    decl = pd.Index(names, dtype=object).get_indexer(np.asarray(declared, dtype=object))  # -1: not a crop of the table
    ok = np.isfinite(v)
    n_ok = ok.sum(axis=1)
    odd = np.flatnonzero(np.isinf(v).any(axis=1))  # an infinite mean: per plot, by check_crop itself
    n_ok[odd] = -1
    for m in np.unique(n_ok[n_ok >= max(min_obs, 2)]):
        sel = np.flatnonzero(n_ok == m)
        cols = np.nonzero(ok[sel])[1].reshape(len(sel), m)
        vals = v[sel[:, None], cols]
        live = np.nanstd(vals, axis=1) != 0
        sel, cols, vals = sel[live], cols[live], vals[live]
        scores = np.full((len(sel), len(names)), np.nan)
        for i in range(len(names)):
            t = tmpl[i][cols]
            has = np.std(t, axis=1) > 0
            scores[has, i] = _corrcoef_rows(t[has], vals[has])
        d = decl[sel]
        ds = np.where(d >= 0, scores[np.arange(len(sel)), np.maximum(d, 0)], np.nan)
        fin = np.isfinite(ds) & np.isfinite(scores).any(axis=1)
        sel, scores, d, ds = sel[fin], scores[fin], d[fin], ds[fin]
        b = np.argmax(np.where(np.isfinite(scores), scores, -np.inf), axis=1)  # first of the sorted names
        bs = scores[np.arange(len(sel)), b]
        best[sel] = np.asarray(names, dtype=object)[b]
        best_score[sel], declared_score[sel] = _round_py(bs, 4), _round_py(ds, 4)
        mismatch[sel] = (b != d) & (bs - ds >= margin)
        gap[sel] = _round_py((bs - ds) / 2.0, 4)
    for i in odd:
        keep = ~np.isnan(v[i])
        one = check_crop(dates[keep], v[i, keep], str(declared[i]), crops, season_end, margin, min_obs, season_start)
        best[i] = one["best_crop"]
        for key in ("best_crop_score", "declared_crop_score", "crop_mismatch", "crop_mismatch_confidence"):
            out[key][i] = one[key]
    return out


def _round_py(x: np.ndarray, ndigits: int) -> np.ndarray:
    """Python's ``round(float, ndigits)`` (correctly rounded) on an array: numpy's round scales by
    10**ndigits first, which can land on the other side of a half; those few values go to Python."""
    x = np.asarray(x, dtype=float)
    out = np.round(x, ndigits)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = x * 10.0 ** ndigits
        near_half = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    for i in np.flatnonzero(near_half):
        out[i] = round(float(x[i]), ndigits)
    return out
