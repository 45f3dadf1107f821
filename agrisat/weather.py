"""Season weather per plot: nearest station or grid cell, then crop-calendar aggregates.

Inputs come from ``agrisat.io.weather`` in one shape (points + observations, daily or monthly).
Each plot takes its nearest point (great-circle distance recorded); its window runs from the
declared crop's sowing to its harvest (or the run's as-of date, if earlier). Aggregates are computed
once per (point, crop) since many plots share both.

Gaps: temperature gaps up to ``max_fill_days`` long are interpolated (and counted); rain is never
filled, because an invented dry day or wet day moves the drought and flood rules. A window with more
missing days than ``max_missing_fraction`` gets no aggregates at all, only WEATHER_DATA_GAP.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from agrisat.config import WEATHER_FEATURES, CropParams, CropTable, WeatherRules
from agrisat.cropcalendar import HARVEST_MARGIN_DAYS, growing_window

EARTH_RADIUS_KM = 6371.0
FEATURES = WEATHER_FEATURES


def haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _unit_xyz(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(np.asarray(lon, float)), np.radians(np.asarray(lat, float))
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def nearest_points(plot_lonlat: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Per plot: ``plot_id, weather_point_id, weather_distance_km``.

    A KD-tree on unit vectors finds the nearest point by chord length, which orders points exactly
    as great-circle distance does; ties go to the first point in ``points`` order (deterministic).
    """
    tree = cKDTree(_unit_xyz(points["lon"], points["lat"]))
    _, k = tree.query(_unit_xyz(plot_lonlat["lon"], plot_lonlat["lat"]), k=1)
    k = np.asarray(k, dtype=int)
    dist = haversine_km(plot_lonlat["lon"].to_numpy(float), plot_lonlat["lat"].to_numpy(float),
                        points["lon"].to_numpy(float)[k], points["lat"].to_numpy(float)[k])
    return pd.DataFrame({"plot_id": plot_lonlat["plot_id"].to_numpy(),
                         "weather_point_id": points["point_id"].to_numpy()[k],
                         "weather_distance_km": np.round(dist, 3)})


def crop_window(crop: CropParams, season_end: dt.date, as_of: dt.date | None = None,
                season_start: dt.date | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Sowing .. harvest of the declared crop's season, cut at ``as_of`` when given."""
    sowing, stop = growing_window(crop, season_end, season_start)
    harvest = stop - pd.Timedelta(days=HARVEST_MARGIN_DAYS)
    return sowing, harvest if as_of is None else min(harvest, pd.Timestamp(as_of))


def frost_start(crop: CropParams, sowing: pd.Timestamp) -> pd.Timestamp:
    """When frost starts to hurt: ``frost_sensitive_from`` (winter crops, after winter hardiness is
    lost) in the harvest year, else emergence."""
    if crop.frost_sensitive_from:
        m, d = (int(v) for v in crop.frost_sensitive_from.split("-"))
        start = pd.Timestamp(sowing.year, m, d)
        return start if start > sowing else start.replace(year=sowing.year + 1)
    return sowing + pd.Timedelta(days=crop.emergence_days)


def season_features(
    match: pd.DataFrame, plots: pd.DataFrame, obs: pd.DataFrame, crops: CropTable, rules: WeatherRules,
    season_start: dt.date, season_end: dt.date, as_of: dt.date,
) -> pd.DataFrame:
    """Per plot: the nearest point, window, aggregates (``FEATURES``), day counts and flags.

    ``match`` is ``nearest_points``' output; ``plots`` gives ``plot_id, declared_crop``. The crop
    window is clipped to the run's season: weather before the season is not asked of the source.
    """
    crop_of = dict(zip(plots["plot_id"], plots["declared_crop"].astype(str)))
    by_point = {pid: g for pid, g in obs.groupby("point_id", sort=False)}
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
            agg = (_monthly_aggregates if monthly else _daily_aggregates)(series, start, end, crop, rules,
                                                                          frost_start(crop, sowing))
            cache[key] = {"weather_window_start": start, "weather_window_end": end,
                          "weather_resolution": "monthly" if monthly else "daily", **agg}
        row = {"plot_id": pid, "weather_point_id": point, "weather_distance_km": dist, **cache[key]}
        rows.append(row)
    out = pd.DataFrame(rows)
    flags, details = zip(*(_weather_flags(r, rules) for r in out.to_dict("records"))) if len(out) else ((), ())
    out["weather_flags"] = list(flags)
    out["weather_flag_details"] = list(details)
    return out


def _daily_aggregates(series: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, crop: CropParams,
                      rules: WeatherRules, frost_from: pd.Timestamp) -> dict:
    days = pd.date_range(start, end, freq="D")
    s = series.set_index("date").reindex(days)
    n = len(days)
    tmin, tmax = s.get("tmin_c"), s.get("tmax_c")
    filled = 0
    if tmin is not None and tmax is not None:
        before = int(tmin.isna().sum() + tmax.isna().sum())
        tmin = tmin.interpolate(limit=rules.max_fill_days, limit_area="inside")
        tmax = tmax.interpolate(limit=rules.max_fill_days, limit_area="inside")
        filled = before - int(tmin.isna().sum() + tmax.isna().sum())
        tmean = (tmin + tmax) / 2.0
    else:
        tmean = s.get("tmean_c", pd.Series(np.nan, index=days))
    rain = s.get("precip_mm", pd.Series(np.nan, index=days))
    missing = int((rain.isna() | tmean.isna()).sum())
    out: dict = {"weather_days": n, "weather_days_missing": missing, "weather_temp_values_filled": filled}
    if n == 0 or missing > rules.max_missing_fraction * n:
        return out | dict.fromkeys(FEATURES, np.nan)
    r = rain.to_numpy(float)
    dry = (r < rules.dry_day_mm) & ~np.isnan(r)  # a missing day breaks a dry spell: unknown, not dry
    et0 = s.get("et0_mm")
    rained = ~np.isnan(r)  # the water balance pairs days: a missing rain day is not a day of pure ET0 loss
    out |= {
        "gdd": float(np.nansum(np.maximum(tmean.to_numpy(float) - crop.base_temp_c, 0.0))),
        "rain_total_mm": float(np.nansum(r)),
        "longest_dry_spell_days": _longest_run(dry),
        "heat_stress_days": int((tmax.to_numpy(float) >= crop.heat_stress_c).sum()) if tmax is not None else np.nan,
        "frost_days_after_emergence": (int(((tmin.to_numpy(float) <= rules.frost_tmin_c) & (days >= frost_from)).sum())
                                       if tmin is not None else np.nan),
        "heavy_rain_days": int((r >= rules.heavy_rain_mm).sum()),
        "max_3day_rain_mm": float(np.nanmax(rain.rolling(3, min_periods=3).sum().to_numpy(float), initial=0.0)),
        "rain_minus_et0_mm": (float(np.sum(r[rained] - et0.to_numpy(float)[rained]))
                              if et0 is not None and et0[rained].notna().all() else np.nan),
    }
    return out


def _monthly_aggregates(series: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, crop: CropParams,
                        rules: WeatherRules, frost_from: pd.Timestamp) -> dict:
    """Monthly cells give rain totals and an approximate GDD (days x monthly mean excess, which
    undercounts warm spells in cool months); daily-only aggregates stay NaN, and rules on them are
    not evaluated."""
    months = pd.date_range(start.to_period("M").to_timestamp(), end, freq="MS")
    s = series.set_index("date").reindex(months)
    # Days of each month inside the window: the first and last months count partially.
    month_end = months + pd.offsets.MonthEnd(0)
    days = (np.minimum(month_end, end) - np.maximum(months, start)).days.to_numpy() + 1
    month_len = months.days_in_month.to_numpy()
    missing = int(s["precip_mm"].isna().sum() if "precip_mm" in s else len(months))
    out: dict = {"weather_days": int(days.sum()),
                 "weather_days_missing": int(days[s["precip_mm"].isna().to_numpy()].sum()) if "precip_mm" in s else int(days.sum()),
                 "weather_temp_values_filled": 0}
    out |= dict.fromkeys(FEATURES, np.nan)
    if len(months) == 0 or missing:
        return out
    out["rain_total_mm"] = float(np.sum(s["precip_mm"].to_numpy(float) * days / month_len))
    if "tmean_c" in s and s["tmean_c"].notna().all():
        out["gdd"] = float(np.sum(days * np.maximum(s["tmean_c"].to_numpy(float) - crop.base_temp_c, 0.0)))
    return out


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    m = np.concatenate([[0], mask.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(m))
    return int((edges[1::2] - edges[::2]).max())


def _weather_flags(row: dict, rules: WeatherRules) -> tuple[list[str], dict[str, str]]:
    """Shock rules (any condition of a shock fires it) plus data-quality flags, with the numbers."""
    flags, details = [], {}
    if row["weather_distance_km"] > rules.max_distance_km:
        flags.append("WEATHER_SOURCE_FAR")
        details["WEATHER_SOURCE_FAR"] = (f"nearest weather point {row['weather_point_id']} is "
                                         f"{row['weather_distance_km']:.1f} km away > {rules.max_distance_km} km")
    if row["weather_days"] and row["weather_days_missing"] > rules.max_missing_fraction * row["weather_days"]:
        flags.append("WEATHER_DATA_GAP")
        details["WEATHER_DATA_GAP"] = (f"{row['weather_days_missing']} of {row['weather_days']} days missing "
                                       f"> {rules.max_missing_fraction:.0%}; no weather aggregates")
    for code, conditions in sorted(rules.shocks.items()):
        hits = [c for c in conditions if np.isfinite(row.get(c.metric, np.nan)) and c.holds(row[c.metric])]
        if hits:
            flags.append(code)
            details[code] = "; ".join(f"{c.metric} {row[c.metric]:g} {c.op} {c.value:g}" for c in hits)
    return flags, details


def region_shocks(features: pd.DataFrame, plots: pd.DataFrame, rules: WeatherRules) -> dict[str, dict[str, float]]:
    """Share of each region's plots under each shock; regions at or above ``rules.region_share`` are
    reported (the manifest lists them so operations see a regional event, not 40 separate plots)."""
    region = plots.set_index("plot_id")["region"] if "region" in plots.columns else pd.Series("all", index=plots["plot_id"])
    df = features[["plot_id", "weather_flags"]].assign(region=lambda d: d["plot_id"].map(region).fillna("unknown"))
    out: dict[str, dict[str, float]] = {}
    for reg, g in df.groupby("region", sort=True):
        for code in sorted(rules.shocks):
            share = float(np.mean([code in f for f in g["weather_flags"]]))
            if share >= rules.region_share and share > 0:
                out.setdefault(str(reg), {})[code] = round(share, 4)
    return out


def season_totals(match: pd.DataFrame, obs: pd.DataFrame, season_start: dt.date, season_end: dt.date) -> pd.DataFrame:
    """Per plot: rain total and mean temperature over the whole run season (the yield model's
    weather features, whatever the crop). The total is NaN when any step of the season is missing."""
    s0, s1 = pd.Timestamp(season_start), pd.Timestamp(season_end)
    if obs.attrs.get("freq") == "MS":
        steps = pd.date_range(s0.to_period("M").to_timestamp(), s1, freq="MS")
    else:
        steps = pd.date_range(s0, s1, freq="D")
    w = obs[obs["date"].isin(steps)]
    g = w.groupby("point_id", sort=False)
    tot = pd.DataFrame({
        "season_precip_mm": g["precip_mm"].sum(min_count=1).where(g["precip_mm"].count() == len(steps)),
        "season_tmean_c": g["tmean_c"].mean() if "tmean_c" in w else np.nan,
    })
    out = match[["plot_id", "weather_point_id"]].merge(tot, left_on="weather_point_id", right_index=True, how="left")
    return out.drop(columns="weather_point_id")


def monthly_series(match: pd.DataFrame, obs: pd.DataFrame, season_start: dt.date, season_end: dt.date) -> pd.DataFrame:
    """Monthly rain and mean temperature of each plot's point over the season
    (``plot_id, month, precip_mm, tmean_c``), for the weather strip of the analyst charts."""
    s0 = pd.Timestamp(season_start).to_period("M").to_timestamp()
    w = obs[(obs["date"] >= s0) & (obs["date"] <= pd.Timestamp(season_end))]
    if obs.attrs.get("freq") != "MS":
        # A month with any rain day missing has no total: a partial sum would read as a dry month.
        w = w.assign(month=w["date"].dt.to_period("M").dt.to_timestamp())
        g = w.groupby(["point_id", "month"], sort=True)
        w = g.agg(precip_mm=("precip_mm", lambda x: x.sum(min_count=len(x)) if x.notna().all() else np.nan),
                  tmean_c=("tmean_c", "mean")).reset_index()
    else:
        w = w.rename(columns={"date": "month"})
    pts = match[["plot_id", "weather_point_id"]].rename(columns={"weather_point_id": "point_id"})
    out = pts.merge(w[["point_id", "month", "precip_mm", "tmean_c"]], on="point_id", how="inner")
    return out.drop(columns="point_id").sort_values(["plot_id", "month"]).reset_index(drop=True)
