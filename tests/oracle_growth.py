"""The per-plot implementation of agrisat/growth.py (``growth_analysis`` and the helpers it calls whose
implementation the columnar rewrite changed: ``_coverage``, ``_critical_gap``, ``_anomalies`` and
agrisat/anomaly.py's ``cohort_anomaly`` / ``own_history_anomaly``), kept as the oracle of the
columnar rewrite (issue 17). Do not change it to match the new code.

The per-plot helpers whose code did not change (``smoothing.drop_outliers``, ``whittaker_daily``,
``phenology.season_phenology``, ``cropcheck.check_crop``, ``cropclassifier.classify``) are imported,
so the oracle keeps following their per-plot definitions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from agrisat.config import CropTable, Policy
from agrisat.cropcalendar import HARVEST_MARGIN_DAYS, growing_window
from agrisat.cropcheck import check_crop
from agrisat.cropclassifier import classify
from agrisat.growth import CURVE_STEP_DAYS, EXCLUDING_GROWTH_FLAGS, MIN_PLOT_PIXELS, GrowthResult
from agrisat.phenology import season_phenology
from agrisat.smoothing import drop_outliers, whittaker_daily

_EPOCH = pd.Timestamp("1970-01-01")


def growth_analysis(
    series: pd.DataFrame, plots: pd.DataFrame, crops: CropTable, policy: Policy, as_of: dt.date,
    season_end: dt.date, history: pd.DataFrame | None = None, season_start: dt.date | None = None,
    crop_model: Any = None,
) -> GrowthResult:
    """Per plot: clear-observation counts, raw peak, phenology, crop check, anomalies and flags.

    ``history`` (optional) holds earlier seasons' ``plot_id, peak_ndvi`` for the plot's own z-score.
    """
    rules = policy.growth
    crop_of = dict(zip(plots["plot_id"], plots["declared_crop"].astype(str)))
    cutoff = pd.Timestamp(as_of)
    rows, obs_frames, curve_frames = [], [], []
    groups = dict(iter(series.groupby("plot_id", sort=False)))
    # Every registered plot gets a row: one with no series row at all was never seen, not absent.
    no_rows = series.iloc[0:0]
    for pid in [*groups, *(p for p in plots["plot_id"] if p not in groups)]:
        s_all = groups.get(pid, no_rows)
        crop = crops.get(crop_of[pid], plot_id=str(pid))
        start, stop = growing_window(crop, season_end, season_start)
        s_all = s_all.sort_values("date")
        seen = s_all[s_all["date"] <= cutoff]
        clear_all = seen[(seen["valid_fraction"] >= policy.min_valid_fraction) & seen["mean"].notna()]
        days_all = ((clear_all["date"] - _EPOCH).dt.days).to_numpy()
        outlier = drop_outliers(days_all, clear_all["mean"].to_numpy(float), rules.outlier_drop)
        clean_all = clear_all[~outlier]
        obs_frames.append(pd.DataFrame({"plot_id": pid, "date": clear_all["date"].to_numpy(), "is_outlier": outlier}))

        in_window = (s_all["date"] >= start) & (s_all["date"] <= min(cutoff, stop))
        s = s_all[in_window]
        clear = clear_all[(clear_all["date"] >= start) & (clear_all["date"] <= min(cutoff, stop))]
        clean = clean_all[(clean_all["date"] >= start) & (clean_all["date"] <= min(cutoff, stop))]
        n_pix = int(s_all["n_pixels"].iloc[0]) if len(s_all) else 0
        n_grid, best, imaged = _coverage(s_all, seen, n_pix)
        row: dict = {"plot_id": pid, "n_pixels": n_pix, "n_pixels_grid": n_grid, "imaged_fraction": imaged,
                     "n_dates": int(len(s)), "n_clear_obs": int(len(clear)),
                     "n_outliers": int(len(clear) - len(clean)),
                     "first_clear_date": clear["date"].min() if len(clear) else pd.NaT,
                     "last_clear_date": clear["date"].max() if len(clear) else pd.NaT,
                     "peak_ndvi": np.nan, "peak_date": pd.NaT, "season_integral": np.nan, "max_gap_days": np.nan}
        flags: list[str] = []
        details: dict[str, str] = {}
        # Coverage is evidence: the less of a plot is seen, the less it may count (never more).
        if n_grid is None:
            flags.append("NO_IMAGERY_COVERAGE")
            details["NO_IMAGERY_COVERAGE"] = "no imagery statistics for the plot"
        elif n_grid == 0:
            flags.append("PLOT_TOO_SMALL")
            details["PLOT_TOO_SMALL"] = "no pixel centre inside the polygon on the imagery grid"
        elif n_pix == 0:
            flags.append("NO_IMAGERY_COVERAGE")
            details["NO_IMAGERY_COVERAGE"] = f"none of the {n_grid} pixel centres inside the polygon lies on the imagery"
        elif n_pix < MIN_PLOT_PIXELS:
            flags.append("PLOT_TOO_SMALL")
            details["PLOT_TOO_SMALL"] = f"{n_pix} pixels < {MIN_PLOT_PIXELS}" + (
                f" ({n_grid} on the imagery grid, the rest off the imagery)" if n_grid > n_pix else "")
        elif imaged < policy.min_imaged_fraction:
            # Not excluding: credit lends on the share seen (area x imaged_fraction) and asks for review.
            flags.append("PARTIAL_IMAGERY_COVERAGE")
            details["PARTIAL_IMAGERY_COVERAGE"] = (
                f"{best} of {n_grid} pixel centres on valid imagery ({100 * best // n_grid}%) "
                f"< {policy.min_imaged_fraction * 100:g}%")
        if len(clean) < policy.min_clear_observations:
            flags.append("NOT_ENOUGH_CLEAR_OBSERVATIONS")
            details["NOT_ENOUGH_CLEAR_OBSERVATIONS"] = (
                f"{len(clean)} clear dates (valid fraction >= {policy.min_valid_fraction}, "
                f"{len(clear) - len(clean)} residual-cloud drops removed) < {policy.min_clear_observations} required")
        if len(clean):
            vals = clean["mean"].to_numpy(float)
            days = (clean["date"] - clean["date"].iloc[0]).dt.days.to_numpy(dtype=float)
            k = int(np.argmax(vals))
            row["peak_ndvi"], row["peak_date"] = float(vals[k]), clean["date"].iloc[k]
            row["season_integral"] = float(np.trapezoid(vals, days)) if len(clean) > 1 else 0.0
            row["max_gap_days"] = float(np.diff(days).max()) if len(clean) > 1 else np.nan
            if len(clean) >= policy.min_clear_observations:
                if row["peak_ndvi"] < crop.min_peak_ndvi:
                    flags.append("NO_CROP_SIGNAL")
                    details["NO_CROP_SIGNAL"] = f"peak NDVI {row['peak_ndvi']:.2f} < {crop.min_peak_ndvi}"
                elif row["peak_date"].month not in crop.peak_months:
                    flags.append("PEAK_OUTSIDE_CROP_CALENDAR")
                    details["PEAK_OUTSIDE_CROP_CALENDAR"] = (
                        f"peak in month {row['peak_date'].month}, {crop_of[pid]} peaks in {list(crop.peak_months)}")
        harvest = stop - pd.Timedelta(days=HARVEST_MARGIN_DAYS)
        gap = _critical_gap(clean["date"], crop, start, min(cutoff, harvest), rules.gap_lead_days)
        row["critical_gap_days"] = gap
        if np.isfinite(gap) and gap > rules.max_gap_days:
            flags.append("GAP_TOO_LONG")
            details["GAP_TOO_LONG"] = f"{gap:.0f} days without a clear date while the crop grows > {rules.max_gap_days}"

        # Smoothed daily curve over the window and its phenology.
        first, last = int((start - _EPOCH).days), int((min(cutoff, stop) - _EPOCH).days)
        cdays = ((clean["date"] - _EPOCH).dt.days).to_numpy()
        curve = (whittaker_daily(cdays, clean["mean"].to_numpy(float), rules.smoothing_lambda, first, last)
                 if len(clean) >= 3 and last > first else np.full(max(last - first + 1, 0), np.nan))
        ph = season_phenology(curve, first, rules.phenology_threshold, rules.min_amplitude)
        for key, col in (("sos_day", "sos_date"), ("peak_day", "mid_season_date"), ("eos_day", "eos_date")):
            row[col] = _EPOCH + pd.Timedelta(days=round(float(ph[key]))) if np.isfinite(ph[key]) else pd.NaT
        row |= {"smooth_peak_ndvi": ph["peak_value"], "amplitude": ph["amplitude"], "greenup_rate": ph["greenup_rate"],
                "senescence_rate": ph["senescence_rate"], "season_length_days": ph["season_length_days"],
                "season_integral_smooth": ph["season_integral_smooth"]}
        if len(curve) and np.isfinite(curve).all():
            on_obs = np.interp(days_all, np.arange(first, last + 1), curve, left=np.nan, right=np.nan)
            obs_frames[-1]["ndvi_smooth"] = on_obs
            step = np.arange(0, len(curve), CURVE_STEP_DAYS)
            curve_frames.append(pd.DataFrame({"plot_id": pid, "date": _EPOCH + pd.to_timedelta(first + step, unit="D"),
                                              "ndvi_smooth": curve[step]}))

        # Crop check on the whole season: the declared crop's window may hide the crop really there.
        # A trained classifier (labelled profiles) answers when it knows the declared crop; the
        # calendar templates otherwise.
        cc_dates, cc_values = pd.DatetimeIndex(clean_all["date"]), clean_all["mean"].to_numpy(float)
        cc = {"best_crop": None}
        if crop_model is not None:
            cc = classify(crop_model, cc_dates, cc_values, crop_of[pid],
                          season_start or (pd.Timestamp(season_end) - pd.Timedelta(days=364)).date(),
                          rules.crop_check_margin, rules.crop_check_min_obs)
        if cc["best_crop"] is None:
            cc = check_crop(cc_dates, cc_values, crop_of[pid], crops, season_end, rules.crop_check_margin,
                            rules.crop_check_min_obs, season_start) | {"crop_check_method": "calendar"}
        row |= {k: cc[k] for k in ("best_crop", "best_crop_score", "declared_crop_score", "crop_mismatch_confidence",
                                   "crop_check_method")}
        if cc["crop_mismatch"] and "NO_CROP_SIGNAL" not in flags:
            flags.append("CROP_MISMATCH")
            score = "p" if cc["crop_check_method"] == "classifier" else "r"
            details["CROP_MISMATCH"] = (f"profile matches {cc['best_crop']} ({score}={cc['best_crop_score']:.2f}) better than "
                                        f"declared {crop_of[pid]} ({score}={cc['declared_crop_score']:.2f}; "
                                        f"{cc['crop_check_method']}); confidence {cc['crop_mismatch_confidence']:.2f}")
        row["growth_flags"] = flags
        row["growth_flag_details"] = details
        rows.append(row)

    metrics = pd.DataFrame(rows)
    metrics = _anomalies(metrics, plots, history, policy)
    observations = pd.concat(obs_frames, ignore_index=True) if obs_frames else pd.DataFrame(
        columns=["plot_id", "date", "is_outlier", "ndvi_smooth"])
    if "ndvi_smooth" not in observations.columns:
        observations["ndvi_smooth"] = np.nan
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame(columns=["plot_id", "date", "ndvi_smooth"])
    return GrowthResult(metrics, observations, curves)


def _coverage(s_all: pd.DataFrame, seen: pd.DataFrame, n_pix: int) -> tuple[int | None, int, float]:
    """(n_pixels_grid, valid pixel centres on the best date seen, imaged_fraction) of one plot.

    n_pixels_grid counts the polygon's centres on the imagery grid beyond the window read (None if
    the plot has no row; n_pixels for a series without the column). The best date's ``count`` (or
    valid_fraction x n_pixels without it) over n_pixels_grid, in [0, 1], is the share of the plot the
    evidence covers; a plot with no centre has 0."""
    if not len(s_all):
        return None, 0, 0.0
    grid = s_all["n_pixels_grid"].iloc[0] if "n_pixels_grid" in s_all.columns else np.nan
    n_grid = int(grid) if pd.notna(grid) else n_pix
    if "count" in seen.columns:
        valid = seen["count"].astype(float)
    else:
        valid = (seen["valid_fraction"].astype(float) * seen["n_pixels"].astype(float)).round()
    best = int(np.nan_to_num(valid.to_numpy(), nan=0.0).max(initial=0.0))
    return n_grid, best, float(np.clip(best / n_grid, 0.0, 1.0)) if n_grid > 0 else 0.0


def _critical_gap(dates: pd.Series, crop, start: pd.Timestamp, end: pd.Timestamp, lead_days: int) -> float:
    """Longest stretch without a clear date from ``lead_days`` before the crop's first peak month to
    the window's end (the edges count: no clear date at all in that stretch is one long gap). Winter
    dormancy before it is not a gap worth flagging."""
    first_peak = crop.peak_months[0]
    year = end.year if first_peak <= end.month else end.year - 1
    open_ = max(pd.Timestamp(year, first_peak, 1) - pd.Timedelta(days=lead_days), start)
    if end <= open_:
        return np.nan  # the run is earlier than the critical window: nothing to ask for yet
    inside = dates[(dates >= open_) & (dates <= end)]
    edges = pd.DatetimeIndex([open_, *inside, end])
    return float(np.diff(edges.values).astype("timedelta64[D]").astype(int).max())


def _anomalies(metrics: pd.DataFrame, plots: pd.DataFrame, history: pd.DataFrame | None, policy: Policy) -> pd.DataFrame:
    """Cohort and own-history z-scores of peak NDVI; GROWTH_ANOMALY_LOW below the policy's z."""
    rules = policy.growth
    usable = metrics.copy()
    excluded = [any(f in EXCLUDING_GROWTH_FLAGS for f in fl) for fl in usable["growth_flags"]]
    usable.loc[excluded, "peak_ndvi"] = np.nan  # a plot we cannot measure is not part of its cohort
    out = metrics.merge(cohort_anomaly(usable, plots, "peak_ndvi", rules.anomaly_min_cohort), on="plot_id", how="left")
    out = out.merge(own_history_anomaly(usable, history, "peak_ndvi", rules.history_min_seasons), on="plot_id", how="left")
    for i, r in out.iterrows():
        low = [(name, z) for name, z in (("cohort", r["cohort_z"]), ("own history", r["history_z"]))
               if np.isfinite(z) and z < rules.anomaly_z_low]
        if low:
            out.at[i, "growth_flags"] = [*r["growth_flags"], "GROWTH_ANOMALY_LOW"]
            out.at[i, "growth_flag_details"] = {**r["growth_flag_details"], "GROWTH_ANOMALY_LOW": "; ".join(
                f"peak NDVI z = {z:.2f} against its {name} (n = {r['cohort_n'] if name == 'cohort' else r['history_n']})"
                f" < {rules.anomaly_z_low}" for name, z in low)}
    return out


def cohort_anomaly(metrics: pd.DataFrame, plots: pd.DataFrame, column: str, min_cohort: int) -> pd.DataFrame:
    """Per plot: ``cohort_n``, ``cohort_z`` and ``cohort_percentile`` (0-100) of ``column`` among
    plots of the same ``declared_crop`` and ``region`` with a finite value."""
    df = metrics[["plot_id", column]].merge(plots[["plot_id", "declared_crop"]].assign(
        region=plots["region"] if "region" in plots.columns else "all"), on="plot_id")
    out = pd.DataFrame({"plot_id": df["plot_id"], "cohort_n": 0, "cohort_z": np.nan, "cohort_percentile": np.nan})
    for _, g in df.groupby(["declared_crop", "region"], sort=True):
        v = g[column].to_numpy(float)
        ok = np.isfinite(v)
        out.loc[g.index, "cohort_n"] = int(ok.sum())
        if ok.sum() < min_cohort:
            continue
        mu, sd = v[ok].mean(), v[ok].std(ddof=1)
        rank = np.array([(v[ok] < x).sum() + 0.5 * (v[ok] == x).sum() for x in v])
        out.loc[g.index, "cohort_z"] = np.where(ok, (v - mu) / sd if sd > 0 else 0.0, np.nan)
        out.loc[g.index, "cohort_percentile"] = np.where(ok, 100.0 * rank / ok.sum(), np.nan)
    return out


def own_history_anomaly(metrics: pd.DataFrame, history: pd.DataFrame | None, column: str, min_seasons: int) -> pd.DataFrame:
    """Per plot: ``history_n`` earlier seasons of ``column`` (``history`` has ``plot_id`` and that
    column, one row per earlier season), and this season's ``history_z`` and ``history_percentile``
    (0-100, share of earlier seasons below it, ties counted half) against them."""
    out = pd.DataFrame({"plot_id": metrics["plot_id"], "history_n": 0, "history_z": np.nan, "history_percentile": np.nan})
    if history is None or history.empty:
        return out
    h = history[np.isfinite(history[column].astype(float))]
    past = {pid: g[column].to_numpy(float) for pid, g in h.groupby("plot_id")}
    now = metrics.set_index("plot_id")[column].astype(float)
    for i, pid in enumerate(out["plot_id"]):
        v = past.get(pid)
        if v is None:
            continue
        out.loc[i, "history_n"] = len(v)
        if len(v) >= min_seasons and np.isfinite(now[pid]):
            sd = v.std(ddof=1)
            if sd > 0:
                out.loc[i, "history_z"] = (now[pid] - v.mean()) / sd
            out.loc[i, "history_percentile"] = 100.0 * ((v < now[pid]).sum() + 0.5 * (v == now[pid]).sum()) / len(v)
    return out
