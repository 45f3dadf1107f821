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
