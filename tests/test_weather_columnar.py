"""The columnar season weather (agrisat/weather.py ``season_features``: aggregates and flags once per
(point, crop), joined to the plots) equals the per-plot implementation it replaced
(tests/oracle_weather.py) on the sample's monthly cells and on seeded daily stations with gaps and
far points, exactly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import oracle_weather
from agrisat import weather
from agrisat.config import load_crops, load_policy
from agrisat.io import plots as plots_io
from agrisat.io import tables
from agrisat.io import weather as weather_io
from conftest import ROOT

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
RULES = load_policy(ROOT / "configs" / "policy.yaml").weather
S0, S1 = dt.date(2020, 11, 1), dt.date(2021, 10, 31)


def _compare(match, plots, obs, as_of, points=None):
    got = weather.season_features(match, plots, obs, CROPS, RULES, S0, S1, as_of, points=points)
    want = oracle_weather.season_features(match, plots, obs, CROPS, RULES, S0, S1, as_of, points=points)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    return got


@pytest.mark.parametrize("as_of", [dt.date(2020, 11, 30), dt.date(2021, 3, 31), dt.date(2021, 7, 15), S1])
def test_sample_monthly_weather_equals_the_oracle(as_of):
    plots = plots_io.read_plots(ROOT / "sample_tiles" / "registry" / "plots.geojson")
    points, obs = weather_io.monthly_cells(tables.read_weather_monthly(ROOT / "sample_tiles" / "registry" / "weather_monthly.csv"))
    c = plots.to_crs(plots.estimate_utm_crs()).centroid.to_crs(4326)
    match = weather.nearest_points(pd.DataFrame({"plot_id": plots["plot_id"], "lon": c.x, "lat": c.y}), points)
    _compare(match, plots, obs, as_of, points)


def test_seeded_daily_stations_with_gaps_and_far_points_equal_the_oracle():
    rng = np.random.default_rng(11)
    days = pd.date_range("2020-09-01", "2021-11-30", freq="D")
    stations = pd.DataFrame({"point_id": ["near", "gappy", "far"], "lon": [5.3, 5.5, 12.0], "lat": [50.6, 50.7, 55.0],
                             "name": ["near", "gappy", "far"]})
    frames = []
    for sid in stations["point_id"]:
        tmin = rng.normal(6, 5, len(days))
        obs = pd.DataFrame({"point_id": sid, "date": days, "tmin_c": tmin, "tmax_c": tmin + rng.uniform(4, 12, len(days)),
                            "precip_mm": rng.gamma(0.6, 4.0, len(days))})
        if sid == "gappy":
            obs.loc[rng.random(len(days)) < 0.1, "precip_mm"] = np.nan
            obs.loc[200:210, "tmin_c"] = np.nan
        frames.append(obs)
    obs = pd.concat(frames, ignore_index=True)
    obs["tmean_c"] = (obs["tmin_c"] + obs["tmax_c"]) / 2
    obs.attrs["freq"] = "D"
    n = 60
    crops = sorted(CROPS.crops)
    plots = pd.DataFrame({"plot_id": [f"P{i}" for i in range(n)], "declared_crop": [crops[i % len(crops)] for i in range(n)]})
    near = np.arange(n) % 2 == 0  # half the plots around the two Belgian stations, half anywhere
    lon = np.where(near, rng.uniform(5.1, 5.7, n), rng.uniform(5.0, 12.5, n))
    lat = np.where(near, rng.uniform(50.4, 50.9, n), rng.uniform(50.3, 55.2, n))
    lonlat = pd.DataFrame({"plot_id": plots["plot_id"], "lon": lon, "lat": lat})
    match = weather.nearest_points(lonlat, stations)
    got = _compare(match, plots, obs, dt.date(2021, 8, 15), stations)
    assert (got["weather_distance_km"] > RULES.max_distance_km).any() and (got["weather_distance_km"] <= RULES.max_distance_km).any()
    assert got["weather_flags"].map(len).gt(0).any()


def test_regional_shares_equal_the_oracle():
    rng = np.random.default_rng(3)
    codes = sorted(RULES.shocks) + ["WEATHER_DATA_GAP"]
    for it in range(200):
        n = int(rng.integers(1, 30))
        plots = pd.DataFrame({"plot_id": [f"P{i}" for i in range(n)], "region": rng.choice(["a", "b", "c"], n)})
        if it % 5 == 0:
            plots = plots.drop(columns="region")
        f = pd.DataFrame({"plot_id": plots["plot_id"],
                          "weather_flags": [list(rng.choice(codes, int(rng.integers(0, 3)), replace=False)) for _ in range(n)]})
        assert weather.region_shocks(f, plots, RULES) == oracle_weather.region_shocks(f, plots, RULES), it
