"""Growth per plot: clean series, phenology, crop check, anomalies and data-sufficiency flags.

Per plot, inside its declared crop's growing window (``cropcalendar.growing_window``) and up to the
run's as-of date: the clear dates (valid fraction >= policy.min_valid_fraction) are cleaned of
residual-cloud drops, smoothed on a daily grid (``smoothing``), and measured (``phenology``). The
raw peak (the clear date with the highest NDVI) stays the yield model's input; the smoothed curve
gives start, middle and end of season. The crop check looks at the whole season (the declared crop's
window may exclude the crop that is really there); anomalies compare plots of one cohort.
Every flag carries the numbers behind it in ``growth_flag_details``.

Columnar (issue 17): the series is pivoted once into (plot, date) arrays and every step runs on
whole arrays, per crop (a crop's plots share the growing window and the daily grid), never per plot.
Each step is the per-plot definition (kept in tests/oracle_growth.py) done on many plots at once, with
the same floating-point operations in the same order: sums run on stacks of rows of one length, so
numpy's pairwise summation sees exactly the per-plot arrays, and the numbers are the per-plot bits
(tests/test_growth_columnar.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agrisat.anomaly import cohort_anomaly, own_history_anomaly
from agrisat.config import CropTable, Policy
from agrisat.cropcalendar import HARVEST_MARGIN_DAYS, growing_window  # growing_window re-exported
from agrisat.cropcheck import check_crop_rows
from agrisat.cropclassifier import profile_features
from agrisat.phenology import season_phenology_rows
from agrisat.smoothing import drop_outliers_rows, whittaker_rows

# Flags that mean "we cannot estimate this plot's harvest": it leaves the revenue base.
EXCLUDING_GROWTH_FLAGS = ("NOT_ENOUGH_CLEAR_OBSERVATIONS", "NO_IMAGERY_COVERAGE", "PLOT_TOO_SMALL", "NO_CROP_SIGNAL")
MIN_PLOT_PIXELS = 4  # fewer clear pixel centres than this is not a plot mean, it is a guess
CURVE_STEP_DAYS = 5  # the smoothed curve is stored every 5 days (for charts), computed daily
_EPOCH = pd.Timestamp("1970-01-01")
_DAY_NS = 86_400 * 10**9
_SMOOTH_ROWS = 1 << 18  # plot-days per smoothing block: bounds the memory of the daily curves (~2 MB each)


@dataclass(frozen=True)
class GrowthResult:
    metrics: pd.DataFrame  # one row per plot
    observations: pd.DataFrame  # plot_id, date, ndvi_smooth, is_outlier (for plot_timeseries)
    curves: pd.DataFrame  # plot_id, date, ndvi_smooth every CURVE_STEP_DAYS (plot_smoothed.parquet)


def growth_metrics(series: pd.DataFrame, plots: pd.DataFrame, crops: CropTable, policy: Policy, as_of: dt.date,
                   season_end: dt.date) -> pd.DataFrame:
    """The per-plot table of ``growth_analysis``."""
    return growth_analysis(series, plots, crops, policy, as_of, season_end).metrics


@dataclass
class _Grid:
    """The series pivoted once: plots (in output order) x columns (dates up to as_of, ascending; a
    date a plot has twice is two columns, in row order)."""

    pids: np.ndarray  # object: plot ids, series order then registry plots without a row
    crop: np.ndarray  # object: declared crop per plot
    has_rows: np.ndarray  # the plot has at least one series row (any date)
    n_pix: np.ndarray  # n_pixels of its first row by date (0 without rows)
    n_grid: np.ndarray  # n_pixels_grid of that row (n_pix when absent)
    col_ns: np.ndarray  # int64 ns since 1970 of each column
    col_dt: np.ndarray  # the same as datetime64 in the series' unit
    present: np.ndarray  # plots x columns: a row exists
    mean: np.ndarray
    clear: np.ndarray  # plots x columns: valid fraction at the policy's minimum and a mean
    best: np.ndarray  # per plot: valid pixel centres on its best date up to as_of (count, or
    #                   valid_fraction x n_pixels rounded)


def _ns(t: pd.Timestamp) -> int:
    return int(pd.Timestamp(t).as_unit("ns").value)


def _pivot(series: pd.DataFrame, plots: pd.DataFrame, crops: CropTable, cutoff: pd.Timestamp,
           min_valid_fraction: float) -> _Grid:
    codes, uniq = pd.factorize(series["plot_id"])  # first appearance order; a missing id is no plot (-1)
    uniq = np.asarray(uniq, dtype=object)
    registry = plots["plot_id"]
    # Every registered plot gets a row: one with no series row at all was never seen, not absent.
    ids = np.asarray(registry, dtype=object)
    extra = ids[pd.Index(uniq, dtype=object).get_indexer(ids) < 0] if len(uniq) else ids
    pids = np.concatenate([uniq, extra])
    last = ~registry.duplicated(keep="last").to_numpy()  # dict(zip(...)): the last registry row wins
    where = pd.Index(registry[last]).get_indexer(pids)
    crop = np.asarray(plots["declared_crop"].astype(str), dtype=object)[last]
    crop = crop[np.maximum(where, 0)] if len(crop) else np.full(len(pids), "", dtype=object)
    known = np.isin(crop, list(crops.crops)) & (where >= 0)
    if not known.all():  # the first plot (in output order) that has no crop or an unknown one
        i = int(np.argmin(known))
        if where[i] < 0:
            raise KeyError(pids[i])
        crops.get(crop[i], plot_id=str(pids[i]))

    keep = codes >= 0
    rc = codes[keep]
    date = series["date"].to_numpy()[keep]
    unit = np.datetime_data(date.dtype)[0] if date.dtype.kind == "M" else "ns"
    dns = date.astype("datetime64[ns]").view(np.int64)
    order = np.lexsort((dns, rc))  # by plot, then date; equal dates keep their row order
    rc, dns = rc[order], dns[order]
    n_plots = len(pids)
    has_rows = np.zeros(n_plots, dtype=bool)
    n_pix = np.zeros(n_plots, dtype=np.int64)
    n_grid = np.zeros(n_plots, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, rc[1:] != rc[:-1]]) if len(rc) else np.zeros(0, dtype=int)
    if len(first):
        p = rc[first]
        has_rows[p] = True
        pix = series["n_pixels"].to_numpy(dtype=float, na_value=np.nan)[keep][order][first]
        if np.isnan(pix).any():
            raise ValueError("cannot convert float NaN to integer")  # what int(NaN) said per plot
        n_pix[p] = pix.astype(np.int64)
        if "n_pixels_grid" in series.columns:
            grid = series["n_pixels_grid"].to_numpy(dtype=float, na_value=np.nan)[keep][order][first]
            n_grid[p] = np.where(np.isnan(grid), pix, np.nan_to_num(grid)).astype(np.int64)
        else:
            n_grid[p] = n_pix[p]

    seen = dns <= _ns(cutoff)
    sc, sd = rc[seen], dns[seen]
    if len(sc):
        new = np.r_[True, (sc[1:] != sc[:-1]) | (sd[1:] != sd[:-1])]
        idx = np.arange(len(sc))
        dup = idx - np.maximum.accumulate(np.where(new, idx, 0))
        if dup.any():
            pairs, col = np.unique(np.stack([sd, dup], axis=1), axis=0, return_inverse=True)
            col_ns = pairs[:, 0]
        else:  # few distinct dates among many rows: hash them, then sort the few
            codes_d, dates_d = pd.factorize(sd)
            rank = np.empty(len(dates_d), dtype=np.int64)
            rank[np.argsort(dates_d)] = np.arange(len(dates_d))
            col_ns, col = np.sort(dates_d), rank[codes_d]
        col = col.ravel()
    else:
        col_ns, col = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=int)
    rows = keep.nonzero()[0][order][seen]  # the series rows behind (sc, col)

    def grid_of(values: np.ndarray, fill, dtype=float) -> np.ndarray:
        out = np.full((n_plots, len(col_ns)), fill, dtype=dtype)
        out[sc, col] = values
        return out

    vf = series["valid_fraction"].to_numpy(dtype=float, na_value=np.nan)[rows]
    if "count" in series.columns:
        valid = series["count"].to_numpy(dtype=float, na_value=np.nan)[rows]
    else:
        valid = np.round(vf * series["n_pixels"].to_numpy(dtype=float, na_value=np.nan)[rows])
    mean = grid_of(series["mean"].to_numpy(dtype=float, na_value=np.nan)[rows], np.nan)
    best = np.nan_to_num(grid_of(valid, 0.0), nan=0.0).max(axis=1, initial=0.0).astype(np.int64)
    return _Grid(
        pids=pids, crop=crop, has_rows=has_rows, n_pix=n_pix, n_grid=n_grid, col_ns=col_ns,
        col_dt=col_ns.astype("datetime64[ns]").astype(f"datetime64[{unit}]"),
        present=grid_of(True, False, bool), mean=mean,
        clear=grid_of(vf >= min_valid_fraction, False, bool) & ~np.isnan(mean), best=best)


def _first_true(mask: np.ndarray) -> np.ndarray:
    return np.argmax(mask, axis=1) if mask.shape[1] else np.zeros(len(mask), dtype=int)


def _last_true(mask: np.ndarray) -> np.ndarray:
    return mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1) if mask.shape[1] else np.zeros(len(mask), dtype=int)


def growth_analysis(
    series: pd.DataFrame, plots: pd.DataFrame, crops: CropTable, policy: Policy, as_of: dt.date,
    season_end: dt.date, history: pd.DataFrame | None = None, season_start: dt.date | None = None,
    crop_model: Any = None,
) -> GrowthResult:
    """Per plot: clear-observation counts, raw peak, phenology, crop check, anomalies and flags.

    ``history`` (optional) holds earlier seasons' ``plot_id, peak_ndvi`` for the plot's own z-score.
    """
    rules = policy.growth
    cutoff = pd.Timestamp(as_of)
    g = _pivot(series, plots, crops, cutoff, policy.min_valid_fraction)
    n_plots, n_cols = g.present.shape
    col_day = np.floor_divide(g.col_ns, _DAY_NS)

    # Clear dates up to as_of, and residual-cloud drops judged on all of them (the whole season).
    clear = g.clear
    values = np.where(clear, g.mean, np.nan)
    outlier = drop_outliers_rows(values, rules.outlier_drop)
    clean = clear & ~outlier

    # Coverage: the best date's valid pixel centres over the polygon's centres on the grid.
    best = g.best
    with np.errstate(invalid="ignore", divide="ignore"):
        imaged = np.where(g.n_grid > 0, np.clip(best / np.maximum(g.n_grid, 1), 0.0, 1.0), 0.0)
    imaged[~g.has_rows] = 0.0

    m = _Metrics(n_plots)
    smooth = np.full((n_plots, n_cols), np.nan)  # the smoothed curve on each observation date
    curve_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    crop_codes, crop_names = pd.factorize(g.crop)
    for ci, name in enumerate(crop_names):
        rows = np.flatnonzero(crop_codes == ci)
        crop = crops.get(name)
        start, stop = growing_window(crop, season_end, season_start)
        wend = min(cutoff, stop)
        win = np.flatnonzero((g.col_ns >= _ns(start)) & (g.col_ns <= _ns(wend)))
        _window_metrics(m, rows, win, g, clear, clean, values, crop, policy)
        harvest = stop - pd.Timedelta(days=HARVEST_MARGIN_DAYS)
        m.gap[rows] = _critical_gap_rows(clean[rows], g.col_ns, crop, start, min(cutoff, harvest), rules.gap_lead_days)
        first, last = int((start - _EPOCH).days), int((wend - _EPOCH).days)
        if last > first:
            part = _smooth_rows(m, rows, win, clean, values, col_day, first, last, rules, smooth)
            if part is not None:
                curve_parts.append(part)

    # Crop check on the whole season: the declared crop's window may hide the crop really there.
    # A trained classifier (labelled profiles) answers when it knows the declared crop; the
    # calendar templates otherwise.
    profile = np.where(clean, g.mean, np.nan)
    cc = check_crop_rows(pd.DatetimeIndex(g.col_dt), profile, g.crop, crops, season_end, rules.crop_check_margin,
                         rules.crop_check_min_obs, season_start)
    method = np.full(n_plots, "calendar", dtype=object)
    if crop_model is not None:
        _classify_rows(cc, method, crop_model, g, profile, season_start or (
            pd.Timestamp(season_end) - pd.Timedelta(days=364)).date(), rules)

    metrics, excluded = _assemble(m, g, best, imaged, cc, method, crops, policy)
    metrics = _anomalies(metrics, excluded, plots, history, policy)
    observations = _observations(g, clear, outlier, smooth)
    curves = _curves(g, curve_parts)
    return GrowthResult(metrics, observations, curves)


class _Metrics:
    """The per-plot numbers, one array per metric, filled crop by crop."""

    def __init__(self, n: int) -> None:
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        self.n_dates, self.n_clear, self.n_clean = (np.zeros(n, dtype=np.int64) for _ in range(3))
        self.first_ns, self.last_ns, self.peak_ns = (np.zeros(n, dtype=np.int64) for _ in range(3))
        self.peak, self.integral, self.max_gap, self.gap = nan(), nan(), nan(), nan()
        self.ph = {k: nan() for k in ("sos_day", "peak_day", "eos_day", "peak_value", "amplitude", "greenup_rate",
                                      "senescence_rate", "season_length_days", "season_integral_smooth")}
        self.no_signal, self.off_calendar = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        self.peak_month = np.zeros(n, dtype=np.int64)


def _window_metrics(m: _Metrics, rows: np.ndarray, win: np.ndarray, g: _Grid, clear: np.ndarray,
                    clean: np.ndarray, values: np.ndarray, crop, policy: Policy) -> None:
    """Counts, first/last clear date, raw peak, integral and gaps inside one crop's window."""
    cl, cn = clear[rows][:, win], clean[rows][:, win]
    v = values[rows][:, win]
    ns = g.col_ns[win]
    m.n_dates[rows] = g.present[rows][:, win].sum(axis=1)
    m.n_clear[rows] = cl.sum(axis=1)
    n_clean = cn.sum(axis=1)
    m.n_clean[rows] = n_clean
    if not len(win):
        return
    m.first_ns[rows], m.last_ns[rows] = ns[_first_true(cl)], ns[_last_true(cl)]
    k = np.argmax(np.where(cn, v, -np.inf), axis=1)  # first maximum, as np.argmax on the clean values
    seen = n_clean > 0
    m.peak[rows[seen]] = v[np.flatnonzero(seen), k[seen]]
    m.peak_ns[rows] = ns[k]
    m.integral[rows[n_clean == 1]] = 0.0
    # Trapezoid and gaps on rows of one length at a time: the per-plot arrays, summed identically.
    for size in np.unique(n_clean[n_clean > 1]):
        sel = np.flatnonzero(n_clean == size)
        cols = np.nonzero(cn[sel])[1].reshape(len(sel), size)
        t = ns[cols]
        days = ((t - t[:, :1]) // _DAY_NS).astype(float)
        m.integral[rows[sel]] = np.trapezoid(v[sel[:, None], cols], days, axis=1)
        m.max_gap[rows[sel]] = np.diff(days, axis=1).max(axis=1)
    month = g.col_dt[win][k].astype("datetime64[M]").astype(np.int64) % 12 + 1
    judged = seen & (n_clean >= policy.min_clear_observations)
    low = judged & (m.peak[rows] < crop.min_peak_ndvi)
    m.no_signal[rows] = low
    m.off_calendar[rows] = judged & ~low & ~np.isin(month, list(crop.peak_months))
    m.peak_month[rows] = month


def _critical_gap_rows(clean: np.ndarray, col_ns: np.ndarray, crop, start: pd.Timestamp, end: pd.Timestamp,
                       lead_days: int) -> np.ndarray:
    """Longest stretch without a clear date from ``lead_days`` before the crop's first peak month to
    the window's end (the edges count: no clear date at all in that stretch is one long gap). Winter
    dormancy before it is not a gap worth flagging. One crop's plots (rows of ``clean``) at once."""
    first_peak = crop.peak_months[0]
    year = end.year if first_peak <= end.month else end.year - 1
    open_ = max(pd.Timestamp(year, first_peak, 1) - pd.Timedelta(days=lead_days), start)
    if end <= open_:
        return np.full(len(clean), np.nan)  # the run is earlier than the critical window: nothing to ask for yet
    lo, hi = _ns(open_), _ns(end)
    cols = np.flatnonzero((col_ns >= lo) & (col_ns <= hi))
    inside, t = clean[:, cols], col_ns[cols]
    # The clear date before each one (or the window's opening), then the stretch to the end.
    latest = np.maximum.accumulate(np.where(inside, t, lo), axis=1) if len(cols) else np.full((len(clean), 1), lo)
    before = np.concatenate([np.full((len(clean), 1), lo), latest[:, :-1]], axis=1)[:, : len(cols)]
    steps = np.where(inside, (t - before) // _DAY_NS, 0)
    tail = (hi - latest[:, -1]) // _DAY_NS
    return np.maximum(steps.max(axis=1, initial=0), tail).astype(float)


def _smooth_rows(m: _Metrics, rows: np.ndarray, win: np.ndarray, clean: np.ndarray, values: np.ndarray,
                 col_day: np.ndarray, first: int, last: int, rules, smooth: np.ndarray):
    """Whittaker curves of one crop's plots on its daily grid, their phenology, the curve on the
    observation dates (into ``smooth``) and every CURVE_STEP_DAYS (returned), block by block."""
    n = last - first + 1
    need = rows[m.n_clean[rows] >= 3]
    if not len(need):
        return None
    day = col_day[win] - first  # the window's columns on the daily grid
    on_grid = (col_day - first >= 0) & (col_day - first < n)
    grid_cols, grid_day = np.flatnonzero(on_grid), (col_day - first)[on_grid]
    step = np.arange(0, n, CURVE_STEP_DAYS)
    parts_rows, parts_vals = [], []
    block = max(1, _SMOOTH_ROWS // n)
    for b in range(0, len(need), block):
        sel = need[b: b + block]
        cn, v = clean[sel][:, win], values[sel][:, win]
        w, ysum = np.zeros((len(sel), n)), np.zeros((len(sel), n))
        for j, d in enumerate(day):  # one date at a time: duplicates of a day add up in date order
            ok = cn[:, j] & np.isfinite(v[:, j])
            w[:, d] += ok
            ysum[:, d] += np.where(ok, v[:, j], 0.0)
        curve = whittaker_rows(w, ysum, rules.smoothing_lambda)
        ph = season_phenology_rows(curve, first, rules.phenology_threshold, rules.min_amplitude)
        for key, arr in m.ph.items():
            arr[sel] = ph[key]
        fin = np.isfinite(curve).all(axis=1)
        smooth[np.ix_(sel[fin], grid_cols)] = curve[fin][:, grid_day]
        parts_rows.append(sel[fin])
        parts_vals.append(curve[fin][:, step])
    dates = (_EPOCH + pd.to_timedelta(first + step, unit="D")).to_numpy()
    return np.concatenate(parts_rows), dates, np.concatenate(parts_vals)


def _classify_rows(cc: dict, method: np.ndarray, model, g: _Grid, profile: np.ndarray, season_start: dt.date,
                   rules) -> None:
    """The trained classifier's verdict (``cropclassifier.classify``) replaces the template check's
    for the plots it answers for. Features are built per plot (``profile_features``), only for the
    plots whose declared crop the classifier knows and that have enough clear dates; one
    ``predict_proba`` call scores them all."""
    classes = list(model.classes_)
    known = np.isin(g.crop, classes) & (np.isfinite(profile).sum(axis=1) >= rules.crop_check_min_obs)
    rows = np.flatnonzero(known)
    if not len(rows):
        return
    dates = pd.DatetimeIndex(g.col_dt)
    feats = np.array([profile_features(dates[~np.isnan(profile[i])], profile[i][~np.isnan(profile[i])], season_start)
                      for i in rows]).reshape(len(rows), -1)
    answered = np.isfinite(feats).any(axis=1)
    rows, feats = rows[answered], feats[answered]
    if not len(rows):
        return
    proba = model.predict_proba(feats)
    order = sorted(range(len(classes)), key=lambda c: classes[c])
    for i, p_row in zip(rows, proba):  # per answered plot: classify's own Python arithmetic
        p = dict(zip(classes, p_row))
        best = max((classes[c] for c in order), key=lambda k: p[k])
        declared = g.crop[i]
        gap = float(p[best] - p[declared])
        cc["best_crop"][i] = str(best)
        cc["best_crop_score"][i] = round(float(p[best]), 4)
        cc["declared_crop_score"][i] = round(float(p[declared]), 4)
        cc["crop_mismatch"][i] = bool(best != declared and gap >= rules.crop_check_margin)
        cc["crop_mismatch_confidence"][i] = round(gap, 4)
        method[i] = "classifier"


def _dates(ns: np.ndarray, ok: np.ndarray, unit: str) -> np.ndarray:
    """Timestamps (NaT where not ``ok``) as the per-plot rows' column would hold them: the given
    unit, or seconds when every value is NaT (pandas' choice for an all-NaT column)."""
    if not ok.any():
        return np.full(len(ns), np.datetime64("NaT"), dtype="datetime64[s]")
    out = ns.astype("datetime64[ns]").astype(f"datetime64[{unit}]")
    out[~ok] = np.datetime64("NaT")
    return out


_EPOCH_UNIT = (_EPOCH + pd.Timedelta(days=1)).unit  # what EPOCH + Timedelta(days=...) carries


def _day_dates(day: np.ndarray) -> np.ndarray:
    ok = np.isfinite(day)
    ns = np.rint(np.nan_to_num(day)).astype(np.int64) * _DAY_NS + _ns(_EPOCH)
    return _dates(ns, ok, _EPOCH_UNIT)


def _assemble(m: _Metrics, g: _Grid, best: np.ndarray, imaged: np.ndarray, cc: dict, method: np.ndarray,
              crops: CropTable, policy: Policy) -> tuple[pd.DataFrame, np.ndarray]:
    """The metrics frame with each plot's flag list and flag details, in the per-plot order, and
    which plots carry a flag of EXCLUDING_GROWTH_FLAGS."""
    rules = policy.growth
    n = len(g.pids)
    unit = np.datetime_data(g.col_dt.dtype)[0]
    has, n_pix, n_grid = g.has_rows, g.n_pix, g.n_grid
    # Coverage is evidence: the less of a plot is seen, the less it may count (never more).
    unseen = ~has
    no_centre = has & (n_grid == 0)
    off_image = has & ~no_centre & (n_pix == 0)
    tiny = has & ~no_centre & ~off_image & (n_pix < MIN_PLOT_PIXELS)
    partial = has & ~no_centre & ~off_image & ~tiny & (imaged < policy.min_imaged_fraction)
    few = m.n_clean < policy.min_clear_observations
    long_gap = np.isfinite(m.gap) & (m.gap > rules.max_gap_days)
    mismatch = cc["crop_mismatch"] & ~m.no_signal

    flags: list[list[str]] = [[] for _ in range(n)]
    details: list[dict[str, str]] = [{} for _ in range(n)]

    fired: dict[str, np.ndarray] = {}

    def add(code: str, mask: np.ndarray, text) -> None:
        fired[code] = fired.get(code, np.zeros(n, dtype=bool)) | mask
        for i in np.flatnonzero(mask):
            flags[i].append(code)
            details[i][code] = text(i)

    add("NO_IMAGERY_COVERAGE", unseen, lambda i: "no imagery statistics for the plot")
    add("PLOT_TOO_SMALL", no_centre, lambda i: "no pixel centre inside the polygon on the imagery grid")
    add("NO_IMAGERY_COVERAGE", off_image,
        lambda i: f"none of the {n_grid[i]} pixel centres inside the polygon lies on the imagery")
    add("PLOT_TOO_SMALL", tiny, lambda i: f"{n_pix[i]} pixels < {MIN_PLOT_PIXELS}" + (
        f" ({n_grid[i]} on the imagery grid, the rest off the imagery)" if n_grid[i] > n_pix[i] else ""))
    add("PARTIAL_IMAGERY_COVERAGE", partial, lambda i: (
        f"{best[i]} of {n_grid[i]} pixel centres on valid imagery ({100 * best[i] // n_grid[i]}%) "
        f"< {policy.min_imaged_fraction * 100:g}%"))
    # The coverage flags are exclusive, so adding them flag by flag keeps each plot's one in place.
    add("NOT_ENOUGH_CLEAR_OBSERVATIONS", few, lambda i: (
        f"{m.n_clean[i]} clear dates (valid fraction >= {policy.min_valid_fraction}, "
        f"{m.n_clear[i] - m.n_clean[i]} residual-cloud drops removed) < {policy.min_clear_observations} required"))
    add("NO_CROP_SIGNAL", m.no_signal,
        lambda i: f"peak NDVI {m.peak[i]:.2f} < {crops.crops[g.crop[i]].min_peak_ndvi}")
    add("PEAK_OUTSIDE_CROP_CALENDAR", m.off_calendar, lambda i: (
        f"peak in month {m.peak_month[i]}, {g.crop[i]} peaks in {list(crops.crops[g.crop[i]].peak_months)}"))
    add("GAP_TOO_LONG", long_gap,
        lambda i: f"{m.gap[i]:.0f} days without a clear date while the crop grows > {rules.max_gap_days}")

    def mismatch_text(i: int) -> str:
        score = "p" if method[i] == "classifier" else "r"
        return (f"profile matches {cc['best_crop'][i]} ({score}={cc['best_crop_score'][i]:.2f}) better than "
                f"declared {g.crop[i]} ({score}={cc['declared_crop_score'][i]:.2f}; "
                f"{method[i]}); confidence {cc['crop_mismatch_confidence'][i]:.2f}")

    add("CROP_MISMATCH", mismatch, mismatch_text)

    seen = m.n_clean > 0
    clear_any = m.n_clear > 0
    # None for a plot without rows: ints, floats with NaN, or all None, as pandas reads the rows.
    grid = n_grid if has.all() else np.where(has, n_grid, np.nan) if has.any() else np.full(n, None, dtype=object)
    excluded = np.logical_or.reduce([fired[c] for c in EXCLUDING_GROWTH_FLAGS if c in fired] + [np.zeros(n, dtype=bool)])
    return pd.DataFrame({
        "plot_id": pd.Series(g.pids.tolist()), "n_pixels": n_pix, "n_pixels_grid": grid, "imaged_fraction": imaged,
        "n_dates": m.n_dates, "n_clear_obs": m.n_clear, "n_outliers": m.n_clear - m.n_clean,
        "first_clear_date": _dates(m.first_ns, clear_any, unit), "last_clear_date": _dates(m.last_ns, clear_any, unit),
        "peak_ndvi": m.peak, "peak_date": _dates(m.peak_ns, seen, unit), "season_integral": m.integral,
        "max_gap_days": m.max_gap, "critical_gap_days": m.gap,
        "sos_date": _day_dates(m.ph["sos_day"]), "mid_season_date": _day_dates(m.ph["peak_day"]),
        "eos_date": _day_dates(m.ph["eos_day"]),
        "smooth_peak_ndvi": m.ph["peak_value"], "amplitude": m.ph["amplitude"], "greenup_rate": m.ph["greenup_rate"],
        "senescence_rate": m.ph["senescence_rate"], "season_length_days": m.ph["season_length_days"],
        "season_integral_smooth": m.ph["season_integral_smooth"],
        "best_crop": pd.Series(cc["best_crop"].tolist()), "best_crop_score": cc["best_crop_score"],
        "declared_crop_score": cc["declared_crop_score"], "crop_mismatch_confidence": cc["crop_mismatch_confidence"],
        "crop_check_method": pd.Series(method.tolist()), "growth_flags": flags, "growth_flag_details": details,
    }), excluded


def _anomalies(metrics: pd.DataFrame, excluded: np.ndarray, plots: pd.DataFrame, history: pd.DataFrame | None,
               policy: Policy) -> pd.DataFrame:
    """Cohort and own-history z-scores of peak NDVI; GROWTH_ANOMALY_LOW below the policy's z.
    ``excluded``: the plots with a flag of EXCLUDING_GROWTH_FLAGS."""
    rules = policy.growth
    # A plot we cannot measure is not part of its cohort.
    usable = pd.DataFrame({"plot_id": metrics["plot_id"], "peak_ndvi": metrics["peak_ndvi"].where(~excluded)})
    out = metrics.merge(cohort_anomaly(usable, plots, "peak_ndvi", rules.anomaly_min_cohort), on="plot_id", how="left")
    out = out.merge(own_history_anomaly(usable, history, "peak_ndvi", rules.history_min_seasons), on="plot_id", how="left")
    cz, hz = out["cohort_z"].to_numpy(float), out["history_z"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        low_c, low_h = np.isfinite(cz) & (cz < rules.anomaly_z_low), np.isfinite(hz) & (hz < rules.anomaly_z_low)
    cn, hn = out["cohort_n"].to_numpy(), out["history_n"].to_numpy()
    flags, details = out["growth_flags"].to_numpy(copy=True), out["growth_flag_details"].to_numpy(copy=True)
    for i in np.flatnonzero(low_c | low_h):
        low = [(name, z, n) for name, z, n, hit in (("cohort", cz[i], cn[i], low_c[i]), ("own history", hz[i], hn[i], low_h[i]))
               if hit]
        flags[i] = [*flags[i], "GROWTH_ANOMALY_LOW"]
        details[i] = {**details[i], "GROWTH_ANOMALY_LOW": "; ".join(
            f"peak NDVI z = {z:.2f} against its {name} (n = {n}) < {rules.anomaly_z_low}" for name, z, n in low)}
    out["growth_flags"], out["growth_flag_details"] = flags, details
    return out


def _observations(g: _Grid, clear: np.ndarray, outlier: np.ndarray, smooth: np.ndarray) -> pd.DataFrame:
    """Every clear date up to as_of, plot by plot in date order, with its residual-cloud mark and the
    smoothed curve there (NaN outside the crop's window or without a curve)."""
    p, c = np.nonzero(clear)
    return pd.DataFrame({"plot_id": pd.Series(g.pids.tolist()).take(p).reset_index(drop=True), "date": g.col_dt[c],
                         "is_outlier": outlier[p, c], "ndvi_smooth": smooth[p, c]})


def _curves(g: _Grid, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """The smoothed curves every CURVE_STEP_DAYS, plot by plot in output order (each crop's block
    of curves is written at its plots' offsets: no sort)."""
    if not parts or not sum(len(r) for r, _, _ in parts):
        return pd.DataFrame(columns=["plot_id", "date", "ndvi_smooth"])
    length = np.zeros(len(g.pids), dtype=np.int64)
    for r, d, _ in parts:
        length[r] = len(d)
    offset = np.cumsum(length) - length
    dates = np.empty(length.sum(), dtype=parts[0][1].dtype)
    vals = np.empty(length.sum())
    for r, d, v in parts:
        at = (offset[r][:, None] + np.arange(len(d))).ravel()
        dates[at], vals[at] = np.tile(d, len(r)), v.ravel()
    plot = pd.Series(g.pids.tolist()).take(np.repeat(np.arange(len(g.pids)), length)).reset_index(drop=True)
    return pd.DataFrame({"plot_id": plot, "date": dates, "ndvi_smooth": vals})
