"""Synthetic yield history for demos and tests -- SYNTHETIC, say so wherever its results appear.

No public plot-level yield + imagery set is available offline, so we derive one from the *real* NDVI
curves of the sample plots through a stated crop-growth relation plus noise:

    curve'    = curve scaled around its bare-soil floor by a (season x region x plot) vigour factor
    yield     = reference_yield * (0.35 + 0.65 * integral' / integral_ref)     growth
                * (1 - 0.35 * max(0, (rain_ref - rain) / rain_ref))             drought
                * (1 + 0.006 * (season - 2015))                                  technology trend
                * (1 + N(0, 0.05))                                               unexplained noise

where ``integral'`` is the season NDVI integral of the scaled curve computed by the same growth code
the pipeline uses, ``integral_ref`` the crop's median integral in the sample, and ``rain_ref`` 350 mm.
The model is expected to recover this relation; the baselines (region average, trend) cannot see it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from agrisat.config import CropTable, Policy
from agrisat.growth import growth_metrics

RAIN_REF_MM = 350.0


def generate(series: pd.DataFrame, plots: pd.DataFrame, crops: CropTable, policy: Policy, season_end: dt.date,
             seasons: range = range(2012, 2022), regions: tuple[str, ...] = ("north", "centre", "south"),
             seed: int = 0) -> pd.DataFrame:
    """One row per (plot, season, region): features as the pipeline computes them, and yield_t_ha."""
    rng = np.random.default_rng(seed)
    base = growth_metrics(series, plots, crops, policy, season_end, season_end)
    ok = base[base["growth_flags"].map(len) == 0]["plot_id"]
    crop_of = dict(zip(plots["plot_id"], plots["declared_crop"]))
    ref_integral = base.assign(crop=base["plot_id"].map(crop_of)).groupby("crop")["season_integral"].median()
    rows = []
    for season in seasons:
        season_vigour = rng.normal(1.0, 0.08)
        rain_season = rng.normal(RAIN_REF_MM, 70)
        for region in regions:
            region_vigour = rng.normal(1.0, 0.05)
            rain = max(rain_season + rng.normal(0, 40), 50.0)
            tmean = rng.normal(12.0, 1.0)
            for pid in ok:
                vigour = season_vigour * region_vigour * rng.normal(1.0, 0.10)
                s = series[series["plot_id"] == pid].copy()
                floor = np.nanmin(s["mean"])
                s["mean"] = np.clip(floor + (s["mean"] - floor) * vigour, -1, 1)
                m = growth_metrics(s, plots, crops, policy, season_end, season_end).iloc[0]
                crop = crop_of[pid]
                c = crops.crops[crop]
                growth = 0.35 + 0.65 * m["season_integral"] / ref_integral[crop]
                drought = 1 - 0.35 * max(0.0, (RAIN_REF_MM - rain) / RAIN_REF_MM)
                trend = 1 + 0.006 * (season - 2015)
                y = c.reference_yield_t_ha * growth * drought * trend * (1 + rng.normal(0, 0.05))
                rows.append({"plot_id": pid, "season": season, "region": region, "crop": crop,
                             "peak_ndvi": m["peak_ndvi"], "season_integral": m["season_integral"],
                             "season_precip_mm": rain, "season_tmean_c": tmean, "yield_t_ha": max(y, 0.0)})
    return pd.DataFrame(rows)
