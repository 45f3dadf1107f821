"""Weather evidence: monthly shock rules, unevaluated rules, far points and gaps, Hargreaves ET0, and
every as-of date of the sample season. Oracles are hand-worked numbers from the sample's monthly
AgERA5 table, FAO-56's own worked example, and the real Brussels daily series (../shared)."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from agrisat import weather
from agrisat.config import MONTHLY_WEATHER_FEATURES, load_crops, load_policy
from agrisat.io import tables
from agrisat.io import weather as wio
from conftest import ROOT, SHARED

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
RULES = load_policy(ROOT / "configs" / "policy.yaml").weather
SHOCKS = ["WEATHER_DROUGHT", "WEATHER_FLOOD", "WEATHER_FROST", "WEATHER_HEAT"]
SEASON = (dt.date(2020, 11, 1), dt.date(2021, 10, 31))
REGISTRY = ROOT / "sample_tiles" / "registry"


@pytest.fixture(scope="module")
def sample():
    """The sample's monthly cell table, its plots (plus one plot of every crop in crops.yaml that
    the sample lacks) and their nearest cell."""
    points, obs = wio.monthly_cells(tables.read_weather_monthly(REGISTRY / "weather_monthly.csv"))
    reg = gpd.read_file(REGISTRY / "plots.geojson")
    c = reg.to_crs(reg.estimate_utm_crs()).centroid.to_crs(4326)
    plots = pd.DataFrame({"plot_id": reg["plot_id"], "declared_crop": reg["declared_crop"], "lon": c.x, "lat": c.y})
    extra = sorted(set(CROPS.crops) - set(plots["declared_crop"]))
    plots = pd.concat([plots, pd.DataFrame({"plot_id": [f"X_{k}" for k in extra], "declared_crop": extra,
                                            "lon": plots["lon"].iloc[0], "lat": plots["lat"].iloc[0]})], ignore_index=True)
    return points, obs, plots, weather.nearest_points(plots, points)


def _scaled(obs: pd.DataFrame, rain: float) -> pd.DataFrame:
    out = obs.assign(precip_mm=obs["precip_mm"] * rain)
    out.attrs = obs.attrs
    return out


def _features(sample, obs=None, as_of=SEASON[1], match=None) -> pd.DataFrame:
    points, base, plots, m = sample
    return weather.season_features(m if match is None else match, plots, base if obs is None else obs,
                                   CROPS, RULES, *SEASON, as_of, points=points).set_index("plot_id")


def test_monthly_metrics_match_a_hand_computation(sample):
    """Potato: 15 Apr .. 15 Sep 2021 (154 days). From the CSV: Apr 51.3, May 103.76, Jun 160.17,
    Jul 160.72, Aug 128.61, Sep 47.74 mm; tmean Jun 18.37 C is the warmest month."""
    plots = sample[2]
    potato = plots.loc[plots["declared_crop"] == "potato", "plot_id"].iloc[0]
    pot = _features(sample).loc[potato]
    rain = 51.3 * 16 / 30 + 103.76 + 160.17 + 160.72 + 128.61 + 47.74 * 15 / 30
    assert pot["weather_days"] == 154 and pot["weather_resolution"] == "monthly"
    assert pot["rain_total_mm"] == pytest.approx(rain, abs=1e-9)
    assert pot["rain_mm_per_30d"] == pytest.approx(rain / 154 * 30, abs=1e-9)
    assert pot["driest_3_months_rain_mm"] == pytest.approx(103.76 + 160.17 + 160.72)  # May-Jul: whole months only
    assert pot["wettest_month_rain_mm"] == 160.72 and pot["warmest_month_tmean_c"] == 18.37
    assert pot["cold_months_after_frost_start"] == 0  # from emergence (5 May): May 11.06 C and warmer
    assert np.isnan(pot["longest_dry_spell_days"])  # a daily metric: not given by monthly data


def test_the_real_sample_season_fires_no_shock_and_evaluates_every_rule(sample):
    got = _features(sample)
    assert len(got) == 13 + 1  # the sample's plots and a sugar beet
    for pid, r in got.iterrows():
        assert r["weather_flags"] == [] and r["weather_unevaluated"] == [], pid


def test_a_tenth_of_the_rain_is_a_drought_for_every_plot(sample):
    got = _features(sample, _scaled(sample[1], 0.1))
    for pid, r in got.iterrows():
        assert r["weather_flags"] == ["WEATHER_DROUGHT"], pid
        assert "rain_mm_per_30d" in r["weather_flag_details"]["WEATHER_DROUGHT"]
    assert got["rain_mm_per_30d"].max() < 12.0  # 36-161 mm a month x 0.1, against a 30 mm threshold


def test_four_times_the_rain_is_a_flood_for_every_plot(sample):
    got = _features(sample, _scaled(sample[1], 4.0))
    for pid, r in got.iterrows():
        assert r["weather_flags"] == ["WEATHER_FLOOD"], pid
        assert r["weather_flag_details"]["WEATHER_FLOOD"] == "wettest_month_rain_mm 642.88 >= 220"  # 4 x 160.72 (July)


def test_a_far_point_is_no_evidence_all_shocks_unevaluated(sample):
    """60 km > max_distance_km (50): even a tenth of the rain (a drought there) is not this plot's."""
    far = sample[3].assign(weather_distance_km=60.0)
    got = _features(sample, _scaled(sample[1], 0.1), match=far)
    for pid, r in got.iterrows():
        assert r["weather_flags"] == ["WEATHER_SOURCE_FAR", "WEATHER_RULES_NOT_EVALUATED"], pid
        assert r["weather_unevaluated"] == SHOCKS
        detail = r["weather_flag_details"]["WEATHER_RULES_NOT_EVALUATED"]
        assert detail.startswith("WEATHER_DROUGHT, WEATHER_FLOOD, WEATHER_FROST, WEATHER_HEAT not evaluated") and "60.0 km" in detail
    assert RULES.max_distance_km == 50


def test_a_fully_missing_window_is_a_gap_with_all_shocks_unevaluated(sample):
    gap = sample[1].assign(precip_mm=np.nan, tmean_c=np.nan)
    gap.attrs = sample[1].attrs
    got = _features(sample, gap)
    for pid, r in got.iterrows():
        assert r["weather_flags"] == ["WEATHER_DATA_GAP", "WEATHER_RULES_NOT_EVALUATED"], pid
        assert r["weather_unevaluated"] == SHOCKS and r["weather_days_missing"] == r["weather_days"] > 0
    # A point with no rows at all is the same gap.
    none = sample[1].iloc[:0].copy()
    none.attrs = sample[1].attrs
    got = _features(sample, none)
    assert all(f == ["WEATHER_DATA_GAP", "WEATHER_RULES_NOT_EVALUATED"] for f in got["weather_flags"])
    assert all(u == SHOCKS for u in got["weather_unevaluated"])


def test_rain_without_temperature_evaluates_drought_and_flood_only(sample):
    cold_unknown = sample[1].assign(tmean_c=np.nan)
    cold_unknown.attrs = sample[1].attrs
    got = _features(sample, cold_unknown)
    for pid, r in got.iterrows():
        assert r["weather_flags"] == ["WEATHER_RULES_NOT_EVALUATED"], pid
        assert r["weather_unevaluated"] == ["WEATHER_FROST", "WEATHER_HEAT"]
        assert "heat_stress_days (not given by monthly data), warmest_month_tmean_c" in r["weather_flag_details"]["WEATHER_RULES_NOT_EVALUATED"]


def test_no_weather_source_leaves_every_shock_unevaluated(sample):
    plots = sample[2]
    got = weather.no_weather(plots, RULES)
    assert list(got.columns) == ["plot_id", "weather_flags", "weather_flag_details", "weather_unevaluated"]
    assert list(got["plot_id"]) == list(plots["plot_id"])
    for r in got.itertuples():
        assert r.weather_flags == ["WEATHER_RULES_NOT_EVALUATED"] and r.weather_unevaluated == SHOCKS
        assert r.weather_flag_details == {"WEATHER_RULES_NOT_EVALUATED":
                                          "WEATHER_DROUGHT, WEATHER_FLOOD, WEATHER_FROST, WEATHER_HEAT not evaluated: the run has no weather source"}


def test_weather_data_quality_flags_have_no_haircut_of_their_own():
    """Their cost is charged through the unevaluated shocks; a haircut too would charge it twice."""
    policy = load_policy(ROOT / "configs" / "policy.yaml")
    assert policy.multipliers.get("WEATHER_SOURCE_FAR", 1.0) == 1.0
    assert policy.multipliers.get("WEATHER_DATA_GAP", 1.0) == 1.0
    assert all(policy.multipliers[c] < 1.0 for c in SHOCKS)


def test_every_as_of_date_of_the_season_for_every_crop(sample):
    """Every 14 days from the season's first day: windows that are empty (before sowing), one
    month, or partial never crash; an empty window has no numbers and nothing to charge (the crop is
    not in the ground yet); the real sample season fires no shock on any date."""
    plots = sample[2].set_index("plot_id")
    assert set(plots["declared_crop"]) == set(CROPS.crops)
    as_of = SEASON[0]
    seen_empty = seen_one_month = 0
    while as_of <= SEASON[1]:
        got = _features(sample, as_of=as_of)
        assert len(got) == len(plots)
        for pid, r in got.iterrows():
            assert not any(s in r["weather_flags"] for s in SHOCKS), (as_of, pid)
            if r["weather_window_end"] < r["weather_window_start"]:
                seen_empty += 1
                assert r["weather_days"] == 0 and r["weather_days_missing"] == 0
                assert all(np.isnan(r[f]) for f in weather.FEATURES)
                assert r["weather_unevaluated"] == [] and r["weather_flags"] == []
            else:
                assert r["weather_days"] == (r["weather_window_end"] - r["weather_window_start"]).days + 1
                assert r["weather_unevaluated"] == [], (as_of, pid)
                seen_one_month += r["weather_days"] <= 31
        as_of += dt.timedelta(days=14)
    assert seen_empty and seen_one_month


def test_monthly_windows_of_one_day_and_across_a_month_end():
    """The window-month arithmetic on its own: days per month, first and last partial."""
    months, days = weather._window_months(pd.Timestamp("2021-03-31"), pd.Timestamp("2021-03-31"))
    assert list(months) == [pd.Timestamp("2021-03-01")] and list(days) == [1]
    months, days = weather._window_months(pd.Timestamp("2021-01-30"), pd.Timestamp("2021-03-02"))
    assert list(days) == [2, 28, 2]
    months, days = weather._window_months(pd.Timestamp("2021-04-25"), pd.Timestamp("2021-04-20"))
    assert len(months) == 0 and len(days) == 0


# --- Hargreaves ET0 -------------------------------------------------------------------------------

def test_extraterrestrial_radiation_is_fao56_example_8():
    """FAO-56 Example 8: 20 degrees S on 3 September (day 246): Ra = 32.2 MJ m-2 day-1."""
    assert pd.Timestamp("2015-09-03").day_of_year == 246
    assert float(weather.extraterrestrial_radiation(-20.0, 246)) == pytest.approx(32.2, abs=0.05)


def test_hargreaves_matches_the_formula_worked_by_hand():
    """Same place and day, Tmax 30 C, Tmin 15 C. FAO-56 eq. 52 with Ra = 32.2 MJ (Example 8) in mm:
    0.0023 x (22.5 + 17.8) x 15^0.5 x (0.408 x 32.2) = 0.0023 x 40.3 x 3.87298 x 13.1376 = 4.716 mm."""
    hand = 0.0023 * 40.3 * 3.87298 * 13.1376
    assert hand == pytest.approx(4.716, abs=5e-4)
    got = float(weather.hargreaves_et0(np.array([15.0]), np.array([30.0]), -20.0, np.array([246]))[0])
    assert got == pytest.approx(hand, rel=2e-3)  # Ra printed to 3 digits in FAO-56
    assert np.isnan(weather.hargreaves_et0(np.array([20.0]), np.array([10.0]), -20.0, np.array([246]))[0])


@pytest.mark.skipif(not (SHARED / "weather").exists(), reason="../shared/data not beside the project")
def test_daily_series_without_et0_gets_a_hargreaves_water_balance(tmp_path):
    """The real Brussels 1985 series with its ET0 column dropped: the drought balance runs on
    Hargreaves (counted per day), close to (in this humid climate a little above) the file's ET0."""
    (tmp_path / "s.csv").write_text(f"station_id,lon,lat,path\nbrussels,4.358,50.798,{SHARED / 'weather' / 'brussels_climate.txt'}\n")
    points, obs = wio.read_stations(tmp_path / "s.csv")
    no_et0 = obs.drop(columns="et0_mm")
    no_et0.attrs = obs.attrs
    plots = pd.DataFrame({"plot_id": ["p"], "declared_crop": ["maize"]})
    match = weather.nearest_points(pd.DataFrame({"plot_id": ["p"], "lon": [4.36], "lat": [50.80]}), points)
    end = dt.date(1985, 10, 31)
    got = weather.season_features(match, plots, no_et0, CROPS, RULES, dt.date(1984, 11, 1), end, end).iloc[0]
    ref = weather.season_features(match, plots, obs, CROPS, RULES, dt.date(1984, 11, 1), end, end).iloc[0]
    assert np.isfinite(got["rain_minus_et0_mm"]) and got["weather_et0_days_estimated"] == got["weather_days"] == 169
    assert ref["weather_et0_days_estimated"] == 0
    # The estimate, day by day, from the formula written out (Ra from FAO-56 eqs. 21-25 above).
    w = obs[(obs["date"] >= got["weather_window_start"]) & (obs["date"] <= got["weather_window_end"])]
    ra = 0.408 * weather.extraterrestrial_radiation(50.798, w["date"].dt.day_of_year.to_numpy())
    et0 = 0.0023 * ((w["tmax_c"] + w["tmin_c"]) / 2 + 17.8) * np.sqrt(w["tmax_c"] - w["tmin_c"]) * ra
    assert got["rain_minus_et0_mm"] == pytest.approx(float((w["precip_mm"] - et0).sum()), abs=1e-6)
    hargreaves, penman = float(et0.sum()), float(w["et0_mm"].sum())
    assert 1.0 < hargreaves / penman < 1.3, (hargreaves, penman)
    assert got["weather_unevaluated"] == []


# --- Calibration of the monthly rules on the Brussels series summed to months ---------------------

@pytest.mark.skipif(not (SHARED / "weather").exists(), reason="../shared/data not beside the project")
def test_monthly_rules_fire_in_the_worst_few_brussels_seasons(tmp_path):
    """The policy's monthly thresholds against the real Brussels daily series summed to months:
    they fire in the seasons the policy comments name, and rarely otherwise."""
    (tmp_path / "s.csv").write_text(f"station_id,lon,lat,path\nbrussels,4.358,50.798,{SHARED / 'weather' / 'brussels_climate.txt'}\n")
    _, obs = wio.read_stations(tmp_path / "s.csv")
    mon = (obs.assign(date=obs["date"].dt.to_period("M").dt.to_timestamp())
           .groupby(["point_id", "date"], as_index=False).agg(precip_mm=("precip_mm", "sum"), tmean_c=("tmean_c", "mean")))
    mon.attrs["freq"] = "MS"
    match = pd.DataFrame({"plot_id": ["p"], "weather_point_id": ["brussels"], "weather_distance_km": [2.0]})
    fired: dict[str, dict[int, list[str]]] = {}
    for crop in CROPS.crops:
        plots = pd.DataFrame({"plot_id": ["p"], "declared_crop": [crop]})
        for y in range(1976, 2006):
            start = dt.date(1976, 1, 1) if y == 1976 else dt.date(y - 1, 11, 1)  # the series opens in 1976
            r = weather.season_features(match, plots, mon, CROPS, RULES, start, dt.date(y, 10, 31), dt.date(y, 10, 31)).iloc[0]
            assert r["weather_unevaluated"] == [], (crop, y)
            shocks = [f for f in r["weather_flags"] if f in SHOCKS]
            if shocks:
                fired.setdefault(crop, {})[y] = shocks
    print("\n" + "\n".join(f"{c}: {v}" for c, v in fired.items()))
    assert fired["maize"] == {1983: ["WEATHER_HEAT"], 1994: ["WEATHER_HEAT"], 1996: ["WEATHER_FLOOD"], 1997: ["WEATHER_HEAT"]}
    assert "WEATHER_DROUGHT" in fired["spring_barley"][1976] and "WEATHER_DROUGHT" in fired["sugar_beet"][1976]
    assert fired["spring_barley"][1987] == ["WEATHER_FROST"]  # March 1987, 3.1 C
    for crop, years in fired.items():
        assert len(years) <= 6, (crop, years)
    assert set(MONTHLY_WEATHER_FEATURES) <= {c.metric for conds in RULES.shocks.values() for c in conds}


def test_planting_runs_before_sowing_complete_with_nothing_to_charge(tmp_path, monkeypatch):
    """The reported crash: the sample at stage planting, as of 30 Nov 2020 (spring crops not sown,
    winter crops one month in) and 31 Mar 2021 (spring barley three weeks in)."""
    import yaml

    from pipelines.seasonal import run_seasonal

    config = ROOT / "configs" / "sample_hesbaye.yaml"
    monkeypatch.delenv("AGRISAT_OUTPUT_DIR", raising=False)
    for as_of in ("2020-11-30", "2021-03-31"):
        cfg = yaml.safe_load(config.read_text())
        for key, value in list(cfg["inputs"].items()):
            if isinstance(value, str) and value.startswith(".."):
                cfg["inputs"][key] = str((config.parent / value).resolve())
        cfg["crops"], cfg["policy"] = str(config.parent / cfg["crops"]), str(config.parent / cfg["policy"])
        cfg["run"] |= {"output_dir": str(tmp_path / "runs"), "as_of": as_of, "stage": "planting"}
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        res = run_seasonal(tmp_path / "cfg.yaml", run_id=f"planting-{as_of}")
        plots = gpd.read_parquet(res.path / "plots.parquet").set_index("plot_id")
        for pid, r in plots.iterrows():
            # Before sowing (an empty window) nothing can have hit the crop: nothing unevaluated.
            assert list(r["weather_unevaluated"]) == [], (as_of, pid)
            assert "WEATHER_RULES_NOT_EVALUATED" not in r["flags"], (as_of, pid)
            assert not any(s in r["flags"] for s in SHOCKS), (as_of, pid)
        crop = plots["declared_crop"]
        assert (plots.loc[crop.isin(["maize", "potato"]), "weather_days"] == 0).all()
        assert (plots.loc[crop.isin(["winter_wheat", "winter_barley"]), "weather_days"] > 0).all()
