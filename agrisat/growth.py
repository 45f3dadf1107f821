"""Growth metrics per plot from its NDVI time series, and data-sufficiency flags.

Walking-skeleton scope: peak NDVI, date of peak, season integral over clear observations, and a
crop-calendar sanity check. Smoothing, phenology and anomalies come with the growth-analytics issue.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from agrisat.config import CropParams, CropTable, Policy

# Flags that mean "we cannot estimate this plot's harvest": it leaves the revenue base.
EXCLUDING_GROWTH_FLAGS = ("NOT_ENOUGH_CLEAR_OBSERVATIONS", "NO_IMAGERY_COVERAGE", "PLOT_TOO_SMALL", "NO_CROP_SIGNAL")
MIN_PLOT_PIXELS = 4  # fewer clear pixel centres than this is not a plot mean, it is a guess


HARVEST_MARGIN_DAYS = 30  # a crop can stand a little past its usual harvest date


def growing_window(crop: CropParams, season_end: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Sowing .. harvest (+ margin) of the crop's season that ends by ``season_end``.

    The season's window often also holds the previous crop (a cover crop in November, the winter
    wheat before a maize): statistics outside the declared crop's own calendar are not its growth.
    Winter crops are sown in the year before their harvest.
    """
    end = pd.Timestamp(season_end)
    hm, hd = (int(v) for v in crop.harvest.split("-"))
    sm, sd = (int(v) for v in crop.sowing.split("-"))
    harvest = pd.Timestamp(end.year, hm, hd)
    if harvest > end + pd.Timedelta(days=HARVEST_MARGIN_DAYS):
        harvest = harvest.replace(year=harvest.year - 1)
    sowing = pd.Timestamp(harvest.year, sm, sd)
    if sowing >= harvest:
        sowing = sowing.replace(year=sowing.year - 1)
    return sowing, harvest + pd.Timedelta(days=HARVEST_MARGIN_DAYS)


def growth_metrics(
    series: pd.DataFrame, plots: pd.DataFrame, crops: CropTable, policy: Policy, as_of: dt.date,
    season_end: dt.date,
) -> pd.DataFrame:
    """One row per plot: clear-observation count, peak, peak date, integral, flags with their numbers.

    Only dates inside the declared crop's growing window (``growing_window`` of the season ending
    ``season_end``) and not after ``as_of`` count. A date is a clear observation when its valid-pixel
    fraction reaches ``policy.min_valid_fraction``.
    """
    crop_of = dict(zip(plots["plot_id"], plots["declared_crop"]))
    cutoff = pd.Timestamp(as_of)
    rows = []
    for pid, s in series.groupby("plot_id", sort=False):
        crop = crops.get(str(crop_of[pid]), plot_id=str(pid))
        start, stop = growing_window(crop, season_end)
        s = s[(s["date"] <= min(cutoff, stop)) & (s["date"] >= start)].sort_values("date")
        clear = s[(s["valid_fraction"] >= policy.min_valid_fraction) & s["mean"].notna()]
        n_pix = int(s["n_pixels"].iloc[0]) if len(s) else 0
        row: dict = {
            "plot_id": pid,
            "n_pixels": n_pix,
            "n_dates": int(len(s)),
            "n_clear_obs": int(len(clear)),
            "first_clear_date": clear["date"].min() if len(clear) else pd.NaT,
            "last_clear_date": clear["date"].max() if len(clear) else pd.NaT,
            "peak_ndvi": np.nan,
            "peak_date": pd.NaT,
            "season_integral": np.nan,
            "max_gap_days": np.nan,
        }
        flags: list[str] = []
        details: dict[str, str] = {}
        if n_pix == 0:
            flags.append("NO_IMAGERY_COVERAGE")
            details["NO_IMAGERY_COVERAGE"] = "no pixel centre inside the plot on the imagery grid"
        elif n_pix < MIN_PLOT_PIXELS:
            flags.append("PLOT_TOO_SMALL")
            details["PLOT_TOO_SMALL"] = f"{n_pix} pixels < {MIN_PLOT_PIXELS}"
        if len(clear) < policy.min_clear_observations:
            flags.append("NOT_ENOUGH_CLEAR_OBSERVATIONS")
            details["NOT_ENOUGH_CLEAR_OBSERVATIONS"] = (
                f"{len(clear)} clear dates (valid fraction >= {policy.min_valid_fraction}) "
                f"< {policy.min_clear_observations} required"
            )
        if len(clear):
            k = int(np.argmax(clear["mean"].to_numpy()))
            row["peak_ndvi"] = float(clear["mean"].iloc[k])
            row["peak_date"] = clear["date"].iloc[k]
            days = (clear["date"] - clear["date"].iloc[0]).dt.days.to_numpy(dtype=float)
            row["season_integral"] = float(np.trapezoid(clear["mean"].to_numpy(), days)) if len(clear) > 1 else 0.0
            row["max_gap_days"] = float(np.diff(days).max()) if len(clear) > 1 else np.nan
            if len(clear) >= policy.min_clear_observations:
                if row["peak_ndvi"] < crop.min_peak_ndvi:
                    flags.append("NO_CROP_SIGNAL")
                    details["NO_CROP_SIGNAL"] = f"peak NDVI {row['peak_ndvi']:.2f} < {crop.min_peak_ndvi}"
                elif row["peak_date"].month not in crop.peak_months:
                    flags.append("PEAK_OUTSIDE_CROP_CALENDAR")
                    details["PEAK_OUTSIDE_CROP_CALENDAR"] = (
                        f"peak in month {row['peak_date'].month}, {crop_of[pid]} peaks in {list(crop.peak_months)}"
                    )
        row["growth_flags"] = flags
        row["growth_flag_details"] = details
        rows.append(row)
    return pd.DataFrame(rows)
