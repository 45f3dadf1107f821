"""Season weather per plot: nearest station or grid cell, then crop-calendar aggregates.

Inputs come from ``agrisat.io.weather`` in one shape (points + observations, daily or monthly).
Each plot takes its nearest point (great-circle distance recorded); its window runs from the
declared crop's sowing to its harvest (or the run's as-of date, if earlier). Aggregates are computed
once per (point, crop) since many plots share both.

Gaps: temperature gaps up to ``max_fill_days`` long are interpolated (and counted); rain is never
filled, because an invented dry day or wet day moves the drought and flood rules. A window with more
missing days than ``max_missing_fraction`` gets no aggregates at all, only WEATHER_DATA_GAP. A day
without ET0 but with Tmin/Tmax gets a Hargreaves estimate (FAO-56 eq. 52), counted.

Evidence: a shock rule that cannot be evaluated (all its metrics NaN: a data gap, an empty window,
a metric the resolution does not give, a point too far away to be the plot's weather, no weather at
all) is listed in ``weather_unevaluated`` and flagged WEATHER_RULES_NOT_EVALUATED, never read as
"no shock": credit charges it as if it had fired.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from agrisat.config import (DAILY_WEATHER_FEATURES, MONTHLY_WEATHER_FEATURES, WEATHER_FEATURES, CropParams,
                            CropTable, WeatherRules)
from agrisat.cropcalendar import HARVEST_MARGIN_DAYS, growing_window

EARTH_RADIUS_KM = 6371.0
FEATURES = WEATHER_FEATURES
NOT_EVALUATED = "WEATHER_RULES_NOT_EVALUATED"
SOLAR_CONSTANT = 0.0820  # MJ m-2 min-1 (FAO-56 eq. 21)
MJ_TO_MM = 0.408  # MJ m-2 day-1 of radiation -> mm day-1 of evaporation (FAO-56 eq. 20)


def haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _unit_xyz(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(np.asarray(lon, float)), np.radians(np.asarray(lat, float))
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def nearest_points(plot_lonlat: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Per plot: ``plot_id, weather_point_id, weather_distance_km, weather_point_lat``.

    The point's latitude is what the Hargreaves ET0 estimate needs (``season_features`` reads it).

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
                         "weather_distance_km": np.round(dist, 3),
                         "weather_point_lat": points["lat"].to_numpy(float)[k]})


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
    season_start: dt.date, season_end: dt.date, as_of: dt.date, points: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per plot: the nearest point, window, aggregates (``FEATURES``), day counts, flags and
    ``weather_unevaluated`` (the shock codes that could not be evaluated, sorted).

    ``match`` is ``nearest_points``' output; ``plots`` gives ``plot_id, declared_crop``. The crop
    window is clipped to the run's season: weather before the season is not asked of the source.
    The point's latitude (for Hargreaves ET0) comes from ``points`` (``point_id, lat``) or else from
    ``match["weather_point_lat"]``; without either, a day lacking ET0 stays lacking.

    Columnar: aggregates and flags are computed once per (point, crop) and joined to the plots (a
    plot whose point is too far gets its own flags: their text names its distance).
    """
    crop_of = plots.drop_duplicates("plot_id").set_index("plot_id")["declared_crop"].astype(str)
    pairs = match[["plot_id", "weather_point_id", "weather_distance_km"]].reset_index(drop=True)
    pairs["_crop"] = pairs["plot_id"].map(crop_of).to_numpy()
    by_point = {pid: g for pid, g in obs.groupby("point_id", sort=False)}
    if points is not None:
        lat_of = dict(zip(points["point_id"], points["lat"].astype(float)))
    elif "weather_point_lat" in match.columns:
        lat_of = dict(zip(match["weather_point_id"], match["weather_point_lat"].astype(float)))
    else:
        lat_of = {}
    monthly = obs.attrs.get("freq") == "MS"
    first_plot = pairs.drop_duplicates(["weather_point_id", "_crop"])
    aggs = []
    for point, crop_name, pid in zip(first_plot["weather_point_id"], first_plot["_crop"], first_plot["plot_id"]):
        crop = crops.get(crop_name, plot_id=str(pid))  # a loop over (point, crop) pairs, not plots
        sowing, end = crop_window(crop, season_end, as_of, season_start)
        start = max(sowing, pd.Timestamp(season_start))
        series = by_point.get(point, obs.iloc[:0])
        # Frost counts from the crop's own emergence, not from where the run's season clips it.
        if monthly:
            agg = _monthly_aggregates(series, start, end, crop, rules, frost_start(crop, sowing))
        else:
            agg = _daily_aggregates(series, start, end, crop, rules, frost_start(crop, sowing), lat_of.get(point))
        aggs.append({"weather_point_id": point, "_crop": crop_name, "weather_window_start": start,
                     "weather_window_end": end, "weather_resolution": "monthly" if monthly else "daily", **agg})
    out = pairs.merge(pd.DataFrame(aggs), on=["weather_point_id", "_crop"], how="left", sort=False)
    # Flags depend on the pair's aggregates, and on the distance only when it is too far.
    far = out["weather_distance_km"].to_numpy(float) > rules.max_distance_km
    key = out["weather_point_id"].astype(str) + "\x1f" + out["_crop"] + "\x1f" + np.where(
        far, out["weather_distance_km"].astype(str), "")
    out = out.drop(columns="_crop")
    firsts = ~key.duplicated().to_numpy()
    found = [_weather_flags(r, rules) for r in out[firsts].to_dict("records")]
    at = pd.Series(np.arange(int(firsts.sum())), index=key[firsts].to_numpy()).reindex(key.to_numpy()).to_numpy()
    out["weather_flags"] = [list(found[k][0]) for k in at]
    out["weather_flag_details"] = [dict(found[k][1]) for k in at]
    out["weather_unevaluated"] = [list(found[k][2]) for k in at]
    return out


def no_weather(plots: pd.DataFrame, rules: WeatherRules) -> pd.DataFrame:
    """The weather frame of a run without any weather source: every shock unevaluated.

    ``plot_id, weather_flags, weather_flag_details, weather_unevaluated``; no weather is no evidence
    that the season was free of shocks.
    """
    codes = sorted(rules.shocks)
    n = len(plots)
    detail = {NOT_EVALUATED: f"{', '.join(codes)} not evaluated: the run has no weather source"}
    return pd.DataFrame({"plot_id": plots["plot_id"].to_numpy(),
                         "weather_flags": [[NOT_EVALUATED] if codes else [] for _ in range(n)],
                         "weather_flag_details": [dict(detail) if codes else {} for _ in range(n)],
                         "weather_unevaluated": [list(codes) for _ in range(n)]})


def extraterrestrial_radiation(lat_deg: np.ndarray | float, doy: np.ndarray | int) -> np.ndarray:
    """Ra, MJ m-2 day-1, from latitude (degrees, south negative) and day of year (FAO-56 eqs. 21-25)."""
    phi = np.radians(np.asarray(lat_deg, float))
    j = np.asarray(doy, float)
    dr = 1 + 0.033 * np.cos(2 * np.pi * j / 365)  # eq. 23, inverse relative Earth-Sun distance
    delta = 0.409 * np.sin(2 * np.pi * j / 365 - 1.39)  # eq. 24, solar declination
    # eq. 25, sunset hour angle; clipped for polar day/night, where the arccos argument leaves [-1, 1].
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(delta), -1.0, 1.0))
    return (24 * 60 / np.pi) * SOLAR_CONSTANT * dr * (ws * np.sin(phi) * np.sin(delta)
                                                      + np.cos(phi) * np.cos(delta) * np.sin(ws))


def hargreaves_et0(tmin: np.ndarray, tmax: np.ndarray, lat_deg: float, doy: np.ndarray) -> np.ndarray:
    """Reference ET0, mm/day, FAO-56 eq. 52: 0.0023 (Tmean + 17.8) (Tmax - Tmin)^0.5 Ra, with Ra in
    mm/day. NaN where a temperature is missing or Tmax < Tmin (a bad row, not a zero range)."""
    tmin, tmax = np.asarray(tmin, float), np.asarray(tmax, float)
    span = tmax - tmin
    ra_mm = MJ_TO_MM * extraterrestrial_radiation(lat_deg, doy)
    with np.errstate(invalid="ignore"):
        et0 = 0.0023 * ((tmax + tmin) / 2 + 17.8) * np.sqrt(span) * ra_mm
    return np.where(span >= 0, et0, np.nan)


def _daily_aggregates(series: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, crop: CropParams,
                      rules: WeatherRules, frost_from: pd.Timestamp, lat: float | None = None) -> dict:
    days = pd.date_range(start, end, freq="D")  # empty when the window ends before it starts
    s = series.set_index("date").reindex(days)
    n = len(days)
    tmin, tmax = s.get("tmin_c"), s.get("tmax_c")
    filled = 0
    if tmin is not None and tmax is not None:
        before = int(tmin.isna().sum() + tmax.isna().sum())
        tmin, tmax = _fill_short_gaps(tmin, rules.max_fill_days), _fill_short_gaps(tmax, rules.max_fill_days)
        filled = before - int(tmin.isna().sum() + tmax.isna().sum())
        tmean = (tmin + tmax) / 2.0
    else:
        tmean = s.get("tmean_c", pd.Series(np.nan, index=days))
    rain = s.get("precip_mm", pd.Series(np.nan, index=days))
    missing = int((rain.isna() | tmean.isna()).sum())
    out: dict = {"weather_days": n, "weather_days_missing": missing, "weather_temp_values_filled": filled,
                 "weather_et0_days_estimated": 0}
    if n == 0 or missing > rules.max_missing_fraction * n:
        return out | dict.fromkeys(FEATURES, np.nan)
    r = rain.to_numpy(float)
    dry = (r < rules.dry_day_mm) & ~np.isnan(r)  # a missing day breaks a dry spell: unknown, not dry
    rained = ~np.isnan(r)  # the water balance pairs days: a missing rain day is not a day of pure ET0 loss
    et0 = s["et0_mm"].to_numpy(float) if "et0_mm" in s else np.full(n, np.nan)
    lacking = np.isnan(et0)
    if lacking.any() and lat is not None and np.isfinite(lat) and tmin is not None and tmax is not None:
        # Hargreaves needs only Tmin/Tmax and latitude; it is the FAO-56 fallback when radiation,
        # humidity and wind (Penman-Monteith) are not measured. Interpolated temperatures feed it too.
        est = hargreaves_et0(tmin.to_numpy(float), tmax.to_numpy(float), lat, days.day_of_year.to_numpy())
        et0 = np.where(lacking, est, et0)
        out["weather_et0_days_estimated"] = int((lacking & rained & ~np.isnan(est)).sum())
    out |= dict.fromkeys(MONTHLY_WEATHER_FEATURES, np.nan)  # daily rules keep their own calibration
    out |= {
        "gdd": float(np.nansum(np.maximum(tmean.to_numpy(float) - crop.base_temp_c, 0.0))),
        "rain_total_mm": float(np.nansum(r)),
        "longest_dry_spell_days": _longest_run(dry),
        "heat_stress_days": int((tmax.to_numpy(float) >= crop.heat_stress_c).sum()) if tmax is not None else np.nan,
        "frost_days_after_emergence": (int(((tmin.to_numpy(float) <= rules.frost_tmin_c) & (days >= frost_from)).sum())
                                       if tmin is not None else np.nan),
        "heavy_rain_days": int((r >= rules.heavy_rain_mm).sum()),
        "max_3day_rain_mm": float(np.nanmax(rain.rolling(3, min_periods=3).sum().to_numpy(float), initial=0.0)),
        "rain_minus_et0_mm": float(np.sum(r[rained] - et0[rained])) if not np.isnan(et0[rained]).any() else np.nan,
    }
    return out


def _window_months(start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Months overlapping ``start .. end`` and the window's days in each (first and last partial);
    no months when the window ends before it starts (e.g. a run before sowing)."""
    if end < start:
        return pd.DatetimeIndex([]), np.zeros(0, dtype=int)
    months = pd.date_range(start.to_period("M").to_timestamp(), end, freq="MS")
    first = months.to_numpy().astype("datetime64[D]")
    last = (months + pd.offsets.MonthEnd(0)).to_numpy().astype("datetime64[D]")
    s, e = np.datetime64(start.date(), "D"), np.datetime64(end.date(), "D")
    days = (np.minimum(last, e) - np.maximum(first, s)).astype(int) + 1
    return months, days


def _monthly_aggregates(series: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, crop: CropParams,
                        rules: WeatherRules, frost_from: pd.Timestamp) -> dict:
    """Monthly cells give rain totals, an approximate GDD (days x monthly mean excess, which
    undercounts warm spells in cool months) and the monthly metrics; daily-only aggregates stay NaN.

    Prorated: ``rain_total_mm`` and ``rain_mm_per_30d`` weigh a partial month by its days in the
    window. Whole months: ``wettest_month_rain_mm``, ``warmest_month_tmean_c`` and
    ``cold_months_after_frost_start`` read each month overlapping the window whole, since a monthly
    total or mean cannot be split and a shock in a month the crop stood in may have hit it (so a
    winter wheat harvested on 1 August is judged on August too). ``driest_3_months_rain_mm`` takes
    only months wholly inside the window (rain from outside it would hide a drought); NaN with
    fewer than three.
    """
    months, days = _window_months(start, end)
    s = series.set_index("date").reindex(months)
    rain = s["precip_mm"].to_numpy(float) if "precip_mm" in s else np.full(len(months), np.nan)
    tmean = s["tmean_c"].to_numpy(float) if "tmean_c" in s else np.full(len(months), np.nan)
    out: dict = {"weather_days": int(days.sum()), "weather_days_missing": int(days[np.isnan(rain)].sum()),
                 "weather_temp_values_filled": 0, "weather_et0_days_estimated": 0}
    out |= dict.fromkeys(FEATURES, np.nan)
    if len(months) == 0 or out["weather_days_missing"] > rules.max_missing_fraction * out["weather_days"]:
        return out
    # Each metric needs every month it reads: a missing month is never a dry (or mild) one.
    if not np.isnan(rain).any():
        month_len = months.days_in_month.to_numpy()
        out["rain_total_mm"] = float(np.sum(rain * days / month_len))
        out["rain_mm_per_30d"] = out["rain_total_mm"] / out["weather_days"] * 30.0
        out["wettest_month_rain_mm"] = float(rain.max())
        whole = rain[days == month_len]  # consecutive: the window is one interval
        if len(whole) >= 3:
            out["driest_3_months_rain_mm"] = float(np.convolve(whole, np.ones(3), mode="valid").min())
    if not np.isnan(tmean).any():
        out["gdd"] = float(np.sum(days * np.maximum(tmean - crop.base_temp_c, 0.0)))
        out["warmest_month_tmean_c"] = float(tmean.max())
    # Months overlapping the frost-sensitive part of the window; none yet (window ends before frost
    # starts) is 0 cold months, as the daily rule counts 0 frost days then.
    sensitive = (months + pd.offsets.MonthEnd(0)) >= frost_from.normalize()
    if not np.isnan(tmean[sensitive]).any():
        out["cold_months_after_frost_start"] = int((tmean[sensitive] <= rules.cold_month_tmean_c).sum())
    return out


def _fill_short_gaps(x: pd.Series, limit: int) -> pd.Series:
    """Linear interpolation of inner gaps of at most ``limit`` steps. (pandas' ``limit`` alone would
    fill the first ``limit`` days of a longer gap too, inventing days the rule does not allow.)"""
    gap = x.isna()
    run = gap.groupby((~gap).cumsum()).transform("sum")  # length of the NaN run each NaN is in
    return x.interpolate(limit_area="inside").where(~gap | (run <= limit))


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    m = np.concatenate([[0], mask.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(m))
    return int((edges[1::2] - edges[::2]).max())


def _weather_flags(row: dict, rules: WeatherRules) -> tuple[list[str], dict[str, str], list[str]]:
    """Shock rules (any condition of a shock fires it), data-quality flags with the numbers, and the
    shocks that could not be evaluated (sorted codes)."""
    flags, details, unevaluated, why = [], {}, [], []
    far = row["weather_distance_km"] > rules.max_distance_km
    if far:
        flags.append("WEATHER_SOURCE_FAR")
        details["WEATHER_SOURCE_FAR"] = (f"nearest weather point {row['weather_point_id']} is "
                                         f"{row['weather_distance_km']:.1f} km away > {rules.max_distance_km} km")
        why.append(f"the nearest weather point is {row['weather_distance_km']:.1f} km away "
                   f"(> {rules.max_distance_km} km), so its weather is not this plot's")
    if row["weather_days"] and row["weather_days_missing"] > rules.max_missing_fraction * row["weather_days"]:
        flags.append("WEATHER_DATA_GAP")
        details["WEATHER_DATA_GAP"] = (f"{row['weather_days_missing']} of {row['weather_days']} days missing "
                                       f"> {rules.max_missing_fraction:.0%}; no weather aggregates")
    if not row["weather_days"]:
        # The crop is not sown by as_of: no shock can have hit it yet, so there is nothing to charge
        # (a later run, with the crop in the ground, evaluates the rules).
        return flags, details, unevaluated
    for code, conditions in sorted(rules.shocks.items()):
        values = {c.metric: row.get(c.metric, np.nan) for c in conditions}
        if far or not any(np.isfinite(v) for v in values.values()):
            unevaluated.append(code)
            if not far:
                why.append(f"{code}: no value for {', '.join(_metric_note(m, row) for m in values)}")
            continue
        hits = [c for c in conditions if np.isfinite(values[c.metric]) and c.holds(values[c.metric])]
        if hits:
            flags.append(code)
            details[code] = "; ".join(f"{c.metric} {row[c.metric]:g} {c.op} {c.value:g}" for c in hits)
    if unevaluated:
        if row["weather_days_missing"]:
            why.insert(0, f"{row['weather_days_missing']} of {row['weather_days']} window days have no weather")
        flags.append(NOT_EVALUATED)
        details[NOT_EVALUATED] = f"{', '.join(unevaluated)} not evaluated: " + "; ".join(why)
    return flags, details, unevaluated


def _metric_note(metric: str, row: dict) -> str:
    res = row.get("weather_resolution")
    if (res == "monthly" and metric in DAILY_WEATHER_FEATURES) or (res == "daily" and metric in MONTHLY_WEATHER_FEATURES):
        return f"{metric} (not given by {res} data)"
    return metric


def region_shocks(features: pd.DataFrame, plots: pd.DataFrame, rules: WeatherRules) -> dict[str, dict[str, float]]:
    """Share of each region's plots under each shock; regions at or above ``rules.region_share`` are
    reported (the manifest lists them so operations see a regional event, not 40 separate plots)."""
    region = plots.set_index("plot_id")["region"] if "region" in plots.columns else pd.Series("all", index=plots["plot_id"])
    df = features[["plot_id", "weather_flags"]].assign(region=lambda d: d["plot_id"].map(region).fillna("unknown"))
    size = df.groupby("region", sort=True).size()
    hits = df.explode("weather_flags")
    hits = hits[hits["weather_flags"].isin(list(rules.shocks))].drop_duplicates(["plot_id", "region", "weather_flags"])
    count = hits.groupby(["region", "weather_flags"], sort=True).size()
    share = count / size.reindex(count.index.get_level_values(0)).to_numpy()
    out: dict[str, dict[str, float]] = {}
    for (reg, code), v in share.items():  # only the (region, shock) pairs that fired
        if v >= rules.region_share and v > 0:
            out.setdefault(str(reg), {})[code] = round(float(v), 4)
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
