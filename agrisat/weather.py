"""Season weather per plot from a gridded monthly table (AgERA5-like cells).

Each plot takes its nearest cell (great-circle distance recorded). Missing months inside the season
are counted and reported, never filled with zeros.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

EARTH_RADIUS_KM = 6371.0


def haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def season_weather(
    plot_lonlat: pd.DataFrame, weather: pd.DataFrame, season_start: dt.date, season_end: dt.date
) -> pd.DataFrame:
    """Per plot: nearest cell, distance, season rain total, mean temperature, months missing.

    ``plot_lonlat`` has ``plot_id, lon, lat`` (plot centroids in WGS84).
    """
    cells = weather.groupby("cell_id", sort=True)[["lon", "lat"]].first()
    months = pd.date_range(pd.Timestamp(season_start).to_period("M").to_timestamp(),
                           pd.Timestamp(season_end), freq="MS")
    rows = []
    for pid, lon, lat in zip(plot_lonlat["plot_id"], plot_lonlat["lon"], plot_lonlat["lat"]):
        d = haversine_km(np.full(len(cells), lon), np.full(len(cells), lat),
                         cells["lon"].to_numpy(), cells["lat"].to_numpy())
        k = int(np.argmin(d))
        cell = cells.index[k]
        w = weather[(weather["cell_id"] == cell) & weather["month"].isin(months)]
        rows.append({
            "plot_id": pid,
            "weather_cell_id": cell,
            "weather_distance_km": float(d[k]),
            "season_precip_mm": float(w["precip_mm"].sum()) if len(w) == len(months) else np.nan,
            "season_tmean_c": float(w["tmean_c"].mean()) if len(w) else np.nan,
            "weather_months_missing": int(len(months) - w["month"].nunique()),
        })
    return pd.DataFrame(rows)


def plot_weather_series(season: pd.DataFrame, weather: pd.DataFrame, season_start: dt.date,
                        season_end: dt.date) -> pd.DataFrame:
    """Monthly weather of each plot's cell over the season (``plot_id, month, precip_mm, tmean_c``),
    for the weather strip of the analyst charts."""
    s0 = pd.Timestamp(season_start).to_period("M").to_timestamp()
    w = weather[(weather["month"] >= s0) & (weather["month"] <= pd.Timestamp(season_end))]
    cells = season[["plot_id", "weather_cell_id"]].rename(columns={"weather_cell_id": "cell_id"})
    out = cells.merge(w[["cell_id", "month", "precip_mm", "tmean_c"]], on="cell_id", how="inner")
    return out.drop(columns="cell_id").sort_values(["plot_id", "month"]).reset_index(drop=True)
