"""Weather: readers, nearest point, crop-window aggregates and shock rules, on the real Brussels
(1976-2005) and Champion, Nebraska (1982-2018) daily station series from ../shared."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from agrisat import weather
from agrisat.config import load_crops, load_policy
from agrisat.errors import InputDataError
from agrisat.io import tables
from agrisat.io import weather as wio
from conftest import ROOT, SHARED

pytestmark = pytest.mark.skipif(not (SHARED / "weather").exists(), reason="../shared/data not beside the project")

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
RULES = load_policy(ROOT / "configs" / "policy.yaml").weather
STATIONS = {"brussels": (4.358, 50.798), "champion": (-101.716, 40.471)}


@pytest.fixture(scope="module")
def stations_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("wx")
    rows = [f"{k},{k.title()},{lon},{lat},{SHARED / 'weather' / (k + '_climate.txt')}" for k, (lon, lat) in STATIONS.items()]
    (d / "stations.csv").write_text("station_id,name,lon,lat,path\n" + "\n".join(rows) + "\n")
    return d / "stations.csv"


@pytest.fixture(scope="module")
def stations(stations_csv):
    return wio.read_stations(stations_csv)


def _one_plot(crop: str, station: str, obs: pd.DataFrame, season_end: dt.date, rules=RULES) -> dict:
    plots = pd.DataFrame({"plot_id": ["p"], "declared_crop": [crop]})
    match = pd.DataFrame({"plot_id": ["p"], "weather_point_id": [station], "weather_distance_km": [2.0],
                          "weather_point_lat": [STATIONS[station][1]]})
    out = weather.season_features(match, plots, obs, CROPS, rules, dt.date(season_end.year - 1, 9, 1), season_end, season_end)
    return out.iloc[0].to_dict()


def _raw(station: str) -> pd.DataFrame:
    """The AquaCrop file read independently of agrisat: plain whitespace split."""
    lines = (SHARED / "weather" / f"{station}_climate.txt").read_text().split("\n")[1:]
    vals = np.array([[float(v) for v in ln.split()] for ln in lines if ln.strip()])
    dates = pd.to_datetime({"year": vals[:, 2].astype(int), "month": vals[:, 1].astype(int), "day": vals[:, 0].astype(int)})
    return pd.DataFrame({"tmin": vals[:, 3], "tmax": vals[:, 4], "rain": vals[:, 5], "et0": vals[:, 6]}, index=dates)


def test_station_files_read_completely(stations):
    points, obs = stations
    assert list(points["point_id"]) == ["brussels", "champion"]
    assert obs.attrs["freq"] == "D"
    n = obs.groupby("point_id").size()
    assert n["champion"] == 13_514 and n["brussels"] == 10_958  # the counts the data README states
    b = obs[obs["point_id"] == "brussels"]
    assert b["date"].min() == pd.Timestamp("1976-01-01") and b["date"].max() == pd.Timestamp("2005-12-31")


@pytest.mark.parametrize("station, crop, year", [("brussels", "maize", 1990), ("brussels", "winter_wheat", 1996),
                                                 ("champion", "maize", 2012), ("champion", "sugar_beet", 1995)])
def test_aggregates_match_an_independent_computation(stations, station, crop, year):
    _, obs = stations
    got = _one_plot(crop, station, obs, dt.date(year, 10, 31))
    c = CROPS.get(crop)
    start, end = weather.crop_window(c, dt.date(year, 10, 31), dt.date(year, 10, 31))
    start = max(start, pd.Timestamp(year - 1, 9, 1))
    w = _raw(station).loc[start:end]
    assert got["weather_window_start"] == start and got["weather_window_end"] == end
    assert got["weather_days"] == len(w) and got["weather_days_missing"] == 0
    tmean = (w["tmin"] + w["tmax"]) / 2
    assert got["gdd"] == pytest.approx(sum(max(t - c.base_temp_c, 0.0) for t in tmean), abs=1e-6)
    assert got["rain_total_mm"] == pytest.approx(w["rain"].sum(), abs=1e-6)
    assert got["rain_minus_et0_mm"] == pytest.approx(w["rain"].sum() - w["et0"].sum(), abs=1e-6)
    assert got["heat_stress_days"] == int((w["tmax"] >= c.heat_stress_c).sum())
    assert got["heavy_rain_days"] == int((w["rain"] >= RULES.heavy_rain_mm).sum())
    assert got["max_3day_rain_mm"] == pytest.approx(max(w["rain"].iloc[i:i + 3].sum() for i in range(len(w) - 2)))
    longest = run = 0
    for r in w["rain"]:
        run = run + 1 if r < RULES.dry_day_mm else 0
        longest = max(longest, run)
    assert got["longest_dry_spell_days"] == longest
    frost_from = weather.frost_start(c, start)
    assert got["frost_days_after_emergence"] == int((w.loc[frost_from:, "tmin"] <= RULES.frost_tmin_c).sum())


def test_winter_frost_before_hardiness_is_lost_does_not_count(stations):
    _, obs = stations
    got = _one_plot("winter_wheat", "brussels", obs, dt.date(1987, 10, 31))
    w = _raw("brussels").loc["1986-10-15":"1987-08-01"]
    assert (w.loc[:"1987-03-31", "tmin"] <= -2).sum() > 20  # the cold January of 1987
    assert got["frost_days_after_emergence"] == int((w.loc["1987-04-01":, "tmin"] <= -2).sum())


def test_an_inserted_30_day_dry_spell_triggers_the_drought_rule(stations):
    _, obs = stations
    before = _one_plot("maize", "brussels", obs, dt.date(1985, 10, 31))
    assert "WEATHER_DROUGHT" not in before["weather_flags"] and before["longest_dry_spell_days"] < 30
    dry = obs.copy()
    days = (dry["point_id"] == "brussels") & dry["date"].between("1985-06-01", "1985-06-30")
    dry.loc[days, "precip_mm"] = 0.0
    after = _one_plot("maize", "brussels", dry, dt.date(1985, 10, 31))
    assert after["longest_dry_spell_days"] >= 30
    assert "WEATHER_DROUGHT" in after["weather_flags"]
    assert "longest_dry_spell_days" in after["weather_flag_details"]["WEATHER_DROUGHT"]


def test_shocks_fire_in_the_known_bad_seasons_and_rarely_otherwise(stations):
    """1976 was Belgium's drought summer; the rules should flag it and few other seasons."""
    _, obs = stations
    flagged = {y: _one_plot("maize", "brussels", obs, dt.date(y, 10, 31))["weather_flags"] for y in range(1976, 2006)}
    assert "WEATHER_DROUGHT" in flagged[1976]
    shocked = [y for y, f in flagged.items() if any(x.startswith("WEATHER_") for x in f)]
    assert len(shocked) <= 6, shocked


def test_gaps_are_filled_for_temperature_only_and_long_gaps_give_no_numbers(stations):
    _, obs = stations
    full = _one_plot("maize", "brussels", obs, dt.date(1985, 10, 31))
    holed = obs.copy()
    two = (holed["point_id"] == "brussels") & holed["date"].between("1985-07-10", "1985-07-11")
    holed.loc[two, ["tmin_c", "tmax_c", "tmean_c"]] = np.nan
    got = _one_plot("maize", "brussels", holed, dt.date(1985, 10, 31))
    assert got["weather_temp_values_filled"] == 4 and got["weather_days_missing"] == 0
    assert got["gdd"] == pytest.approx(full["gdd"], rel=0.01)
    # 20 rain days missing out of ~170: more than 5%, so no aggregates at all, and a flag.
    rain_gap = obs.copy()
    gap = (rain_gap["point_id"] == "brussels") & rain_gap["date"].between("1985-07-01", "1985-07-20")
    rain_gap.loc[gap, "precip_mm"] = np.nan
    got = _one_plot("maize", "brussels", rain_gap, dt.date(1985, 10, 31))
    assert got["weather_days_missing"] == 20 and "WEATHER_DATA_GAP" in got["weather_flags"]
    assert all(np.isnan(got[f]) for f in weather.FEATURES)
    # No numbers is no evidence of "no shock": every shock is unevaluated (credit charges them).
    assert got["weather_unevaluated"] == sorted(RULES.shocks)
    assert got["weather_flags"] == ["WEATHER_DATA_GAP", "WEATHER_RULES_NOT_EVALUATED"]
    # A dropped row (absent, not NaN) is a missing day too.
    dropped = obs[~gap].copy()
    dropped.attrs = obs.attrs
    assert _one_plot("maize", "brussels", dropped, dt.date(1985, 10, 31))["weather_days_missing"] == 20


def test_nearest_station_with_distance(stations):
    points, _ = stations
    plots = pd.DataFrame({"plot_id": ["hesbaye", "kansas"], "lon": [5.33, -98.0], "lat": [50.63, 38.5]})
    m = weather.nearest_points(plots, points).set_index("plot_id")
    assert m.loc["hesbaye", "weather_point_id"] == "brussels" and m.loc["kansas", "weather_point_id"] == "champion"
    assert m.loc["hesbaye", "weather_distance_km"] == pytest.approx(
        weather.haversine_km(np.array([5.33]), np.array([50.63]), np.array([4.358]), np.array([50.798]))[0], abs=1e-3)
    assert 60 < m.loc["hesbaye", "weather_distance_km"] < 80


def test_far_station_is_flagged(stations):
    _, obs = stations
    plots = pd.DataFrame({"plot_id": ["p"], "declared_crop": ["maize"]})
    match = pd.DataFrame({"plot_id": ["p"], "weather_point_id": ["brussels"], "weather_distance_km": [71.0]})
    out = weather.season_features(match, plots, obs, CROPS, RULES, dt.date(1984, 11, 1), dt.date(1985, 10, 31), dt.date(1985, 10, 31))
    assert out.loc[0, "weather_flags"] == ["WEATHER_SOURCE_FAR", "WEATHER_RULES_NOT_EVALUATED"]
    assert "71.0 km" in out.loc[0, "weather_flag_details"]["WEATHER_SOURCE_FAR"]
    # Another place's weather is not this plot's evidence: its shocks are not evaluated (no haircut
    # on WEATHER_SOURCE_FAR itself: credit charges the unevaluated shocks instead).
    assert out.loc[0, "weather_unevaluated"] == sorted(RULES.shocks)
    assert np.isfinite(out.loc[0, "rain_total_mm"])  # the numbers are still shown


def test_region_shock_summary():
    feats = pd.DataFrame({"plot_id": ["a", "b", "c", "d"],
                          "weather_flags": [["WEATHER_DROUGHT"], ["WEATHER_DROUGHT"], [], ["WEATHER_FLOOD"]]})
    plots = pd.DataFrame({"plot_id": ["a", "b", "c", "d"], "region": ["north", "north", "north", "south"]})
    assert weather.region_shocks(feats, plots, RULES) == {"north": {"WEATHER_DROUGHT": 0.6667}, "south": {"WEATHER_FLOOD": 1.0}}


@pytest.mark.skipif(not (SHARED / "imagery").exists(), reason="../shared/data not beside the project")
def test_gridded_netcdf_equals_the_monthly_table_derived_from_it():
    nc = SHARED / "imagery" / "worldcereal_hesbaye_BE" / "worldcereal_preprocessed_inputs.nc"
    points, obs = wio.read_grid(nc, {"precip_mm": {"name": "AGERA5-PRECIP", "scale": 0.01},
                                     "tmean_c": {"name": "AGERA5-TMEAN", "scale": 0.01, "offset": -273.15}}, time_dim="t")
    assert obs.attrs["freq"] == "MS" and len(points) == 100 * 100
    assert points["lon"].between(5.3, 5.35).all() and points["lat"].between(50.62, 50.65).all()
    table = tables.read_weather_monthly(ROOT / "sample_tiles" / "registry" / "weather_monthly.csv")
    cell = obs[obs["point_id"] == "cell_50_50"].set_index("date")
    ref = table.set_index("month")
    np.testing.assert_allclose(cell["precip_mm"], ref["precip_mm"], atol=0.006)
    np.testing.assert_allclose(cell["tmean_c"], ref["tmean_c"], atol=0.006)


def test_grid_errors_name_the_file_and_variable(tmp_path):
    nc = SHARED / "imagery" / "worldcereal_hesbaye_BE" / "worldcereal_preprocessed_inputs.nc"
    with pytest.raises(InputDataError, match=r"preprocessed_inputs.nc: variable 'RAIN' \(for precip_mm\) not in the grid"):
        wio.read_grid(nc, {"precip_mm": {"name": "RAIN"}}, time_dim="t")
    with pytest.raises(InputDataError, match=r"no time dimension 'time'"):
        wio.read_grid(nc, {"precip_mm": {"name": "AGERA5-PRECIP"}})


@pytest.mark.parametrize("body, message", [
    ("station_id,date,tmin_c,tmax_c,precip_mm\nS1,2020-01-01,1,5,0\nS1,2020-01-32,1,5,0\n", r"daily.csv: row 3: date '2020-01-32' is not a date"),
    ("station_id,date,tmin_c,tmax_c,precip_mm\nS1,2020-01-01,1,5,0\nS1,2020-01-02,1,warm,0\n", r"daily.csv: row 3: tmax_c 'warm' is not a number"),
    ("station_id,date,tmin_c,tmax_c,precip_mm\nS1,2020-01-01,1,5,0\nS1,2020-01-01,1,5,0\n", r"daily.csv: row 3: station S1 has 2020-01-01 twice"),
    ("station_id,date,tmin_c,tmax_c,precip_mm\nS1,2020-01-01,1,5,-2\n", r"daily.csv: row 2: precip_mm -2 is below 0"),
    ("station_id,date,tmin_c,tmax_c,precip_mm\nS9,2020-01-01,1,5,0\n", r"series for station\(s\) not in stations.csv: S9"),
])
def test_bad_daily_rows_are_named(tmp_path, body, message):
    (tmp_path / "stations.csv").write_text("station_id,lon,lat\nS1,4.35,50.8\n")
    (tmp_path / "daily.csv").write_text(body)
    with pytest.raises(InputDataError, match=message):
        wio.read_stations(tmp_path / "stations.csv", tmp_path / "daily.csv")


def test_a_blank_value_is_missing_not_zero(tmp_path):
    (tmp_path / "stations.csv").write_text("station_id,lon,lat\nS1,4.35,50.8\n")
    (tmp_path / "daily.csv").write_text("station_id,date,tmin_c,tmax_c,precip_mm\nS1,2020-01-01,1,5,\nS1,2020-01-02,1,5,3\n")
    _, obs = wio.read_stations(tmp_path / "stations.csv", tmp_path / "daily.csv")
    assert np.isnan(obs["precip_mm"].iloc[0]) and obs["precip_mm"].iloc[1] == 3


def test_station_coordinates_must_be_degrees(tmp_path):
    (tmp_path / "stations.csv").write_text("station_id,lon,lat,path\nS1,664000,5611000,x.txt\n")
    with pytest.raises(InputDataError, match=r"stations.csv: row 2: station S1 lon/lat \(664000.0, 5611000.0\) is not WGS84"):
        wio.read_stations(tmp_path / "stations.csv")


@pytest.mark.skipif(not (SHARED / "imagery").exists(), reason="../shared/data not beside the project")
def test_zarr_store_reads_like_the_netcdf(tmp_path):
    import xarray as xr

    nc = SHARED / "imagery" / "worldcereal_hesbaye_BE" / "worldcereal_preprocessed_inputs.nc"
    spec = {"precip_mm": {"name": "AGERA5-PRECIP", "scale": 0.01}}
    with xr.open_dataset(nc) as ds:
        ds[["AGERA5-PRECIP", "crs"]].isel(x=slice(0, 10), y=slice(0, 10)).to_zarr(tmp_path / "w.zarr")
    points, obs = wio.read_grid(tmp_path / "w.zarr", spec, time_dim="t")
    ref_points, ref = wio.read_grid(nc, spec, time_dim="t")
    assert len(points) == 100
    got = obs.set_index(["point_id", "date"])["precip_mm"]
    np.testing.assert_array_equal(got.to_numpy(), ref.set_index(["point_id", "date"]).loc[got.index, "precip_mm"].to_numpy())


def test_a_missing_rain_day_is_not_a_day_of_pure_et0_loss(stations):
    _, obs = stations
    holed = obs.copy()
    miss = (holed["point_id"] == "brussels") & holed["date"].isin(pd.to_datetime(["1985-06-03", "1985-07-14", "1985-08-21"]))
    holed.loc[miss, "precip_mm"] = np.nan
    got = _one_plot("maize", "brussels", holed, dt.date(1985, 10, 31))
    start, end = got["weather_window_start"], got["weather_window_end"]
    w = _raw("brussels").loc[start:end].drop(pd.to_datetime(["1985-06-03", "1985-07-14", "1985-08-21"]))
    assert got["weather_days_missing"] == 3 and "WEATHER_DATA_GAP" not in got["weather_flags"]  # 3 of ~160: tolerated
    assert got["rain_total_mm"] == pytest.approx(w["rain"].sum(), abs=1e-6)  # the rain observed, counted beside it
    assert got["rain_minus_et0_mm"] == pytest.approx((w["rain"] - w["et0"]).sum(), abs=1e-6)
    # A missing ET0 value on an observed day is estimated from that day's Tmin/Tmax (Hargreaves,
    # FAO-56 eq. 52, written out here) and counted; with no temperatures either, no balance at all.
    no_et0 = obs.copy()
    day = (no_et0["point_id"] == "brussels") & (no_et0["date"] == "1985-07-01")
    no_et0.loc[day, "et0_mm"] = np.nan
    got = _one_plot("maize", "brussels", no_et0, dt.date(1985, 10, 31))
    raw = _raw("brussels").loc[got["weather_window_start"]:got["weather_window_end"]]
    tn, tx = raw.loc["1985-07-01", "tmin"], raw.loc["1985-07-01", "tmax"]
    ra_mm = 0.408 * float(weather.extraterrestrial_radiation(50.798, 182))
    est = 0.0023 * ((tn + tx) / 2 + 17.8) * (tx - tn) ** 0.5 * ra_mm
    assert got["weather_et0_days_estimated"] == 1
    assert got["rain_minus_et0_mm"] == pytest.approx((raw["rain"] - raw["et0"]).sum() + raw.loc["1985-07-01", "et0"] - est, abs=1e-6)
    no_et0.loc[day, ["tmin_c", "tmax_c", "tmean_c"]] = np.nan
    no_et0.loc[(no_et0["point_id"] == "brussels") & no_et0["date"].between("1985-06-29", "1985-07-03"), ["tmin_c", "tmax_c"]] = np.nan
    assert np.isnan(_one_plot("maize", "brussels", no_et0, dt.date(1985, 10, 31))["rain_minus_et0_mm"])


def test_frost_counts_from_emergence_even_when_the_run_season_starts_later(stations):
    _, obs = stations
    cold = obs.copy()
    # Maize sown 04-25 emerges 05-05; a -5 C night on 05-07, inside a run season that opens 05-01.
    cold.loc[(cold["point_id"] == "brussels") & (cold["date"] == "1985-05-07"), "tmin_c"] = -5.0
    plots = pd.DataFrame({"plot_id": ["p"], "declared_crop": ["maize"]})
    match = pd.DataFrame({"plot_id": ["p"], "weather_point_id": ["brussels"], "weather_distance_km": [2.0]})
    end = dt.date(1985, 10, 31)
    got = weather.season_features(match, plots, cold, CROPS, RULES, dt.date(1985, 5, 1), end, end).iloc[0]
    assert got["weather_window_start"] == pd.Timestamp("1985-05-01")
    w = _raw("brussels").loc["1985-05-05":got["weather_window_end"], "tmin"].copy()
    w.loc["1985-05-07"] = -5.0
    assert got["frost_days_after_emergence"] == int((w <= RULES.frost_tmin_c).sum()) >= 1


def test_daily_table_as_parquet_reads_like_the_csv(tmp_path):
    (tmp_path / "stations.csv").write_text("station_id,lon,lat\nS1,4.35,50.8\n")
    body = "station_id,date,tmin_c,tmax_c,precip_mm,et0_mm\nS1,2020-01-01,1,5,,0.4\nS1,2020-01-02,-1,4,3.5,0.3\n"
    (tmp_path / "daily.csv").write_text(body)
    pd.read_csv(tmp_path / "daily.csv", dtype=str).to_parquet(tmp_path / "daily.parquet")
    _, a = wio.read_stations(tmp_path / "stations.csv", tmp_path / "daily.csv")
    _, b = wio.read_stations(tmp_path / "stations.csv", tmp_path / "daily.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert np.isnan(b["precip_mm"].iloc[0]) and b["tmean_c"].iloc[1] == 1.5


def test_an_inserted_dry_june_flags_plots_and_the_region_and_reaches_the_limits(tmp_path, monkeypatch):
    """The Hesbaye sample run on the real Brussels 2004/05 series (shifted to 2020/21) with June
    made rainless: the drought rule fires per plot, for the region in the manifest, and as reasons.
    The station is placed among the plots: Uccle itself is 60-80 km away, beyond max_distance_km,
    and a far station is no evidence (its shocks are not evaluated)."""
    import json

    import yaml

    from pipelines.seasonal import run_seasonal

    src = _raw("brussels").loc["2004-09-01":"2005-10-31"]
    dates = src.index + pd.DateOffset(years=16)
    daily = pd.DataFrame({"station_id": "uccle", "date": dates.strftime("%Y-%m-%d"), "tmin_c": src["tmin"].to_numpy(),
                          "tmax_c": src["tmax"].to_numpy(), "precip_mm": src["rain"].to_numpy(), "et0_mm": src["et0"].to_numpy()})
    daily.loc[daily["date"].between("2021-06-01", "2021-06-30"), "precip_mm"] = 0.0
    daily.to_csv(tmp_path / "daily.csv", index=False)
    (tmp_path / "stations.csv").write_text("station_id,name,lon,lat\nuccle,Brussels-Uccle,5.33,50.63\n")
    config = ROOT / "configs" / "sample_hesbaye.yaml"
    cfg = yaml.safe_load(config.read_text())
    for key, value in list(cfg["inputs"].items()):
        if isinstance(value, str) and value.startswith(".."):
            cfg["inputs"][key] = str((config.parent / value).resolve())
    del cfg["inputs"]["weather"]
    cfg["inputs"] |= {"weather_stations": str(tmp_path / "stations.csv"), "weather_daily": str(tmp_path / "daily.csv")}
    cfg["crops"], cfg["policy"] = str(config.parent / cfg["crops"]), str(config.parent / cfg["policy"])
    cfg["run"]["output_dir"] = str(tmp_path / "runs")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.delenv("AGRISAT_OUTPUT_DIR", raising=False)
    res = run_seasonal(tmp_path / "cfg.yaml", run_id="dry")
    plots = gpd.read_parquet(res.path / "plots.parquet").set_index("plot_id")
    assert (plots["longest_dry_spell_days"] >= 30).all()
    assert all("WEATHER_DROUGHT" in f for f in plots["flags"])
    assert all("longest_dry_spell_days" in json.loads(d)["WEATHER_DROUGHT"] for d in plots["flag_details"])
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["weather_shocks_by_region"]["hesbaye"]["WEATHER_DROUGHT"] == 1.0
    limits = res.limits.set_index("farmer_id")
    assert plots["eligible"].sum() >= 8
    for pid, row in plots.iterrows():
        if row["eligible"]:  # an excluded plot has no advance to lower
            codes = {(r["code"], r["plot_id"]) for r in limits.loc[row["farmer_id"], "reasons"]}
            assert ("FLAG_WEATHER_DROUGHT", pid) in codes, pid
