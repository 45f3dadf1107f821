"""The per-plot ``season_features`` of agrisat/weather.py, kept as the oracle of its columnar rewrite
(issue 17). Do not change it to match the new code."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from agrisat.config import CropTable, WeatherRules
from agrisat.weather import _daily_aggregates, _monthly_aggregates, _weather_flags, crop_window, frost_start


def season_features(
    match: pd.DataFrame, plots: pd.DataFrame, obs: pd.DataFrame, crops: CropTable, rules: WeatherRules,
    season_start: dt.date, season_end: dt.date, as_of: dt.date, points: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per plot: the nearest point, window, aggregates (``FEATURES``), day counts, flags and
    ``weather_unevaluated`` (the shock codes that could not be evaluated, sorted).

    ``match`` is ``nearest_points``' output; ``plots`` gives ``plot_id, declared_crop``. The crop
    window is clipped to the run's season: weather before the season is not asked of the source.
    The point's latitude (for Hargreaves ET0) comes from ``points`` (``point_id, lat``) or else from
    ``match["weather_point_lat"]``; without either, a day lacking ET0 stays lacking.
    """
    crop_of = dict(zip(plots["plot_id"], plots["declared_crop"].astype(str)))
    by_point = {pid: g for pid, g in obs.groupby("point_id", sort=False)}
    if points is not None:
        lat_of = dict(zip(points["point_id"], points["lat"].astype(float)))
    elif "weather_point_lat" in match.columns:
        lat_of = dict(zip(match["weather_point_id"], match["weather_point_lat"].astype(float)))
    else:
        lat_of = {}
    monthly = obs.attrs.get("freq") == "MS"
    cache: dict[tuple[str, str], dict] = {}
    rows = []
    for pid, point, dist in zip(match["plot_id"], match["weather_point_id"], match["weather_distance_km"]):
        key = (str(point), crop_of[pid])
        if key not in cache:
            crop = crops.get(crop_of[pid], plot_id=str(pid))
            sowing, end = crop_window(crop, season_end, as_of, season_start)
            start = max(sowing, pd.Timestamp(season_start))
            series = by_point.get(point, obs.iloc[:0])
            # Frost counts from the crop's own emergence, not from where the run's season clips it.
            if monthly:
                agg = _monthly_aggregates(series, start, end, crop, rules, frost_start(crop, sowing))
            else:
                agg = _daily_aggregates(series, start, end, crop, rules, frost_start(crop, sowing), lat_of.get(point))
            cache[key] = {"weather_window_start": start, "weather_window_end": end,
                          "weather_resolution": "monthly" if monthly else "daily", **agg}
        row = {"plot_id": pid, "weather_point_id": point, "weather_distance_km": dist, **cache[key]}
        rows.append(row)
    out = pd.DataFrame(rows)
    flags, details, unevaluated = zip(*(_weather_flags(r, rules) for r in out.to_dict("records"))) if len(out) else ((), (), ())
    out["weather_flags"] = list(flags)
    out["weather_flag_details"] = list(details)
    out["weather_unevaluated"] = list(unevaluated)
    return out


def region_shocks(features: pd.DataFrame, plots: pd.DataFrame, rules: WeatherRules) -> dict[str, dict[str, float]]:
    region = plots.set_index("plot_id")["region"] if "region" in plots.columns else pd.Series("all", index=plots["plot_id"])
    df = features[["plot_id", "weather_flags"]].assign(region=lambda d: d["plot_id"].map(region).fillna("unknown"))
    out: dict[str, dict[str, float]] = {}
    for reg, g in df.groupby("region", sort=True):
        for code in sorted(rules.shocks):
            share = float(np.mean([code in f for f in g["weather_flags"]]))
            if share >= rules.region_share and share > 0:
                out.setdefault(str(reg), {})[code] = round(share, 4)
    return out
