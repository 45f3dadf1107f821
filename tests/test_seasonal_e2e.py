"""End to end on the shipped sample tiles: the demo run, checked against independent computations."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from rasterio.features import geometry_mask

from agrisat.cli import main
from agrisat.errors import RunStoreError
from conftest import ROOT, SHARED
from pipelines.seasonal import run_seasonal

SAMPLE = ROOT / "sample_tiles"
CONFIG = ROOT / "configs" / "sample_hesbaye.yaml"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("AGRISAT_OUTPUT_DIR", str(out))
    try:
        result = run_seasonal(CONFIG, run_id="demo")
    finally:
        mp.undo()
    return result.path


def test_run_folder_has_every_output(demo_run):
    names = sorted(p.name for p in demo_run.iterdir())
    assert names == ["limits.parquet", "manifest.json", "plot_smoothed.parquet", "plot_timeseries.parquet",
                     "plot_weather.parquet", "plots.parquet"]
    wx = pd.read_parquet(demo_run / "plot_weather.parquet")
    assert len(wx) == 13 * 12 and wx["precip_mm"].between(20, 200).all()  # 12 AgERA5 months per plot
    assert not list(demo_run.parent.glob(".tmp-*"))
    plots = gpd.read_parquet(demo_run / "plots.parquet")  # GeoParquet: geometry and CRS survive
    assert plots.crs.to_epsg() == 4326
    registry = gpd.read_file(SAMPLE / "registry" / "plots.geojson")
    assert sorted(plots["plot_id"]) == sorted(registry["plot_id"])
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert manifest["counts"]["plots"] == len(registry)
    assert manifest["inputs"]["plots"]["sha256"]
    assert len(manifest["imagery"]) == 12 * 2  # 12 monthly dates x (B04, B08)


def test_every_sample_farmer_gets_a_limit_with_contract_columns(demo_run):
    limits = pd.read_parquet(demo_run / "limits.parquet")
    registry = gpd.read_file(SAMPLE / "registry" / "plots.geojson")
    assert sorted(limits["farmer_id"]) == sorted(registry["farmer_id"].unique())
    for col in ("farmer_id", "limit", "currency", "previous_limit", "change_reason", "reason_codes",
                "valid_from", "valid_until", "run_id", "policy_version", "model_version", "imagery_dates", "status",
                "inputs_sha256"):
        assert col in limits.columns, col
    assert (limits["limit"] >= 0).all()
    assert set(limits["status"]) <= {"approved", "review", "declined"}
    assert (limits["run_id"] == "demo").all()
    assert limits["inputs_sha256"].nunique() == 1 and len(limits["inputs_sha256"].iloc[0]) == 64
    assert limits["policy_version"].iloc[0].startswith("policy-") and limits["imagery_dates"].map(len).max() > 0


def test_ndvi_series_match_independent_rasterio_numpy(demo_run):
    ts = pd.read_parquet(demo_run / "plot_timeseries.parquet")
    registry = gpd.read_file(SAMPLE / "registry" / "plots.geojson").to_crs("EPSG:32631")
    index = pd.read_csv(SAMPLE / "index.csv")
    hes = index[index["area"] == "hesbaye"]
    for pid in registry["plot_id"].iloc[:3]:
        geom = registry.loc[registry["plot_id"] == pid, "geometry"].iloc[0]
        for date in ("2021-04-01", "2021-06-01", "2021-08-01"):
            rows = hes[hes["date"] == date].set_index("band")
            with rasterio.open(SAMPLE / rows.loc["B04", "path"]) as r, rasterio.open(SAMPLE / rows.loc["B08", "path"]) as n:
                red, nir = r.read(1).astype(float), n.read(1).astype(float)
                inside = geometry_mask([geom], out_shape=red.shape, transform=r.transform, invert=True)
            ok = inside & (red != 65535) & (nir != 65535) & (red + nir > 0)
            nd = (nir - red) / (nir + red)  # scale 1e-4 cancels in the ratio
            got = ts[(ts["plot_id"] == pid) & (ts["date"] == pd.Timestamp(date))].iloc[0]
            assert got["n_pixels"] == inside.sum()
            assert got["count"] == ok.sum()
            assert got["mean"] == pytest.approx(nd[ok].mean(), abs=1e-5)


def test_winter_and_summer_crops_peak_in_different_months(demo_run):
    plots = gpd.read_parquet(demo_run / "plots.parquet")
    plots["peak_month"] = pd.to_datetime(plots["peak_date"]).dt.month
    calendar_ok = ~plots["flags"].map(lambda f: "PEAK_OUTSIDE_CROP_CALENDAR" in f)
    winter = plots[plots["declared_crop"].isin(["winter_wheat", "winter_barley"]) & calendar_ok]
    maize = plots[(plots["declared_crop"] == "maize") & calendar_ok]
    assert len(winter) >= 3 and len(maize) >= 3
    assert (winter["peak_month"].between(4, 6)).all(), winter[["plot_id", "peak_month"]]
    assert (maize["peak_month"].between(7, 9)).all(), maize[["plot_id", "peak_month"]]
    assert winter["peak_month"].max() < maize["peak_month"].min()


def test_mis_declared_plot_is_flagged(demo_run):
    # P003 is declared maize but its field is spring barley (bare until April, peak in June):
    # sample_tiles/README.md documents the deliberate mistake.
    plots = gpd.read_parquet(demo_run / "plots.parquet").set_index("plot_id")
    assert "PEAK_OUTSIDE_CROP_CALENDAR" in plots.loc["P003", "flags"]
    flagged = {p for p, f in plots["flags"].items() if "PEAK_OUTSIDE_CROP_CALENDAR" in f}
    assert flagged == {"P003"}
    # The crop check names what is really there, with a confidence, and flags nobody else.
    assert {p for p, f in plots["flags"].items() if "CROP_MISMATCH" in f} == {"P003"}
    assert plots.loc["P003", "best_crop"] == "spring_barley"
    assert plots.loc["P003", "crop_mismatch_confidence"] > 0.3
    assert "spring_barley" in json.loads(plots.loc["P003", "flag_details"])["CROP_MISMATCH"]


def test_phenology_separates_winter_and_summer_crops(demo_run):
    plots = gpd.read_parquet(demo_run / "plots.parquet").set_index("plot_id")
    ok = plots[plots["sos_date"].notna()]
    winter = ok[ok["declared_crop"].isin(["winter_wheat", "winter_barley"])]
    summer = ok[ok["declared_crop"].isin(["maize", "potato"])]
    assert len(winter) >= 2 and len(summer) >= 4
    # Winter cereals green up in February-March and peak by May; summer crops start in May-June.
    assert winter["sos_date"].dt.month.isin([1, 2, 3]).all() and summer["sos_date"].dt.month.isin([4, 5, 6]).all()
    assert winter["mid_season_date"].max() < summer["mid_season_date"].min()
    assert (ok["eos_date"] > ok["mid_season_date"]).all() and (ok["mid_season_date"] > ok["sos_date"]).all()
    ts = pd.read_parquet(demo_run / "plot_timeseries.parquet")
    assert {"ndvi_smooth", "is_outlier"} <= set(ts.columns) and not ts["is_outlier"].any()
    curves = pd.read_parquet(demo_run / "plot_smoothed.parquet")
    assert set(ok.index) <= set(curves["plot_id"])


def test_dec_jan_nodata_dates_are_not_clear(demo_run):
    ts = pd.read_parquet(demo_run / "plot_timeseries.parquet")
    dark = ts[ts["date"].dt.month.isin([12, 1])]
    assert len(dark) and (dark["valid_fraction"] == 0).all() and dark["mean"].isna().all()


def test_lease_problems_reach_the_affected_farmers(demo_run):
    plots = gpd.read_parquet(demo_run / "plots.parquet")
    limits = pd.read_parquet(demo_run / "limits.parquet").set_index("farmer_id")
    contracts = pd.read_csv(SAMPLE / "registry" / "contracts.csv")
    expired = contracts[contracts["status"] == "expired"].iloc[0]
    owner = plots.set_index("plot_id").loc[expired["plot_id"], "farmer_id"]
    assert "PLOT_EXCLUDED_LEASE_EXPIRED" in list(limits.loc[owner, "reason_codes"])
    merged = contracts.merge(plots[["plot_id", "farmer_id"]], on="plot_id")
    other = merged[(merged["lessee_id"] != merged["farmer_id"]) & (merged["status"] == "active")].iloc[0]
    assert "PLOT_EXCLUDED_LEASE_LESSEE_MISMATCH" in list(limits.loc[other["farmer_id"], "reason_codes"])
    assert limits.loc[owner, "status"] == "review" or limits.loc[owner, "limit"] == 0
    # Two active contracts (C006 to F06, C007 to F05) claim P012: excluded, both ids in the reason.
    f06 = {r["code"]: r for r in limits.loc["F06", "reasons"]}
    assert f06["PLOT_EXCLUDED_LEASE_OVERLAP"]["plot_id"] == "P012"
    assert "C006" in f06["PLOT_EXCLUDED_LEASE_OVERLAP"]["detail"] and "C007" in f06["PLOT_EXCLUDED_LEASE_OVERLAP"]["detail"]
    details = json.loads(plots.set_index("plot_id").loc["P012", "flag_details"])
    assert "C006" in details["LEASE_OVERLAP"]


def test_same_inputs_give_bit_identical_limits(demo_run, tmp_path, monkeypatch):
    monkeypatch.setenv("AGRISAT_OUTPUT_DIR", str(tmp_path))
    again = run_seasonal(CONFIG, run_id="again", scheduler="synchronous")
    first = pd.read_parquet(demo_run / "limits.parquet").drop(columns=["run_id"])
    second = pd.read_parquet(again.path / "limits.parquet").drop(columns=["run_id"])
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    a = pd.read_parquet(demo_run / "plot_timeseries.parquet")
    b = pd.read_parquet(again.path / "plot_timeseries.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_existing_run_id_is_refused_and_left_intact(demo_run, monkeypatch):
    monkeypatch.setenv("AGRISAT_OUTPUT_DIR", str(demo_run.parent))
    before = (demo_run / "limits.parquet").read_bytes()
    with pytest.raises(RunStoreError, match="already exists"):
        run_seasonal(CONFIG, run_id="demo")
    assert (demo_run / "limits.parquet").read_bytes() == before
    assert not list(demo_run.parent.glob(".tmp-*"))


def _copy_config(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load(CONFIG.read_text())
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        cfg[section][key] = value
    for key, value in cfg["inputs"].items():
        if isinstance(value, str) and value.startswith(".."):
            cfg["inputs"][key] = str((CONFIG.parent / value).resolve())
    cfg["crops"] = str(CONFIG.parent / cfg["crops"])
    cfg["policy"] = str(CONFIG.parent / cfg["policy"])
    cfg["run"]["output_dir"] = str(tmp_path / "runs")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_run_prints_a_limit_per_farmer(tmp_path):
    result = CliRunner().invoke(main, ["run", str(_copy_config(tmp_path)), "--run-id", "cli"])
    assert result.exit_code == 0, result.output
    registry = gpd.read_file(SAMPLE / "registry" / "plots.geojson")
    for fid in registry["farmer_id"].unique():
        assert f"\n{fid} " in result.output
    assert "run cli written to" in result.output


def test_cli_missing_band_is_one_line_naming_the_band(tmp_path):
    cfg = _copy_config(tmp_path, **{"imagery.nir": "B8A"})
    result = CliRunner().invoke(main, ["run", str(cfg)])
    assert result.exit_code == 4
    assert "band 'B8A' not in area 'hesbaye'" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_cli_unknown_crop_names_the_plot(tmp_path):
    plots = gpd.read_file(SAMPLE / "registry" / "plots.geojson")
    plots.loc[2, "declared_crop"] = "rice"
    bad = tmp_path / "plots.geojson"
    plots.to_file(bad)
    cfg = _copy_config(tmp_path, **{"inputs.plots": str(bad)})
    result = CliRunner().invoke(main, ["run", str(cfg)])
    assert result.exit_code == 3
    assert f"plot {plots.loc[2, 'plot_id']}" in result.output and "unknown crop 'rice'" in result.output


def test_mol_cloudy_month_masks_clouds_and_flags_plots(tmp_path, monkeypatch):
    monkeypatch.setenv("AGRISAT_OUTPUT_DIR", str(tmp_path))
    res = run_seasonal(ROOT / "configs" / "sample_mol.yaml", run_id="mol")
    ts = pd.read_parquet(res.path / "plot_timeseries.parquet")
    clear_dates = set(ts.loc[ts["valid_fraction"] >= 0.5, "date"].dt.strftime("%Y-%m-%d"))
    assert clear_dates <= {"2023-04-05", "2023-04-15"} and clear_dates
    plots = gpd.read_parquet(res.path / "plots.parquet")
    assert all("NOT_ENOUGH_CLEAR_OBSERVATIONS" in f for f in plots["flags"])
    limits = pd.read_parquet(res.path / "limits.parquet")
    # Too cloudy to measure is not evidence against the farmer: review, with the reason, not declined.
    assert (limits["limit"] == 0).all() and (limits["status"] == "review").all()
    assert (limits["decided_by"] == "NO_PLEDGEABLE_EVIDENCE").all()


def test_bad_rows_stop_the_run_naming_file_and_row(tmp_path):
    debt = tmp_path / "debt.csv"
    debt.write_text((SAMPLE / "registry" / "debt.csv").read_text() + "F02,lots,EUR\n")
    cfg = _copy_config(tmp_path, **{"inputs.debt": str(debt)})
    result = CliRunner().invoke(main, ["run", str(cfg)])
    assert result.exit_code == 3
    n = len(debt.read_text().splitlines())
    assert f"debt.csv: row {n}: outstanding 'lots' is not a number" in result.output


def test_quarantined_rows_are_set_aside_and_their_farmers_held(tmp_path, monkeypatch):
    debt = tmp_path / "debt.csv"
    debt.write_text((SAMPLE / "registry" / "debt.csv").read_text() + "F02,lots,EUR\nF77,100,EUR\n")
    contracts = tmp_path / "contracts.csv"
    contracts.write_text((SAMPLE / "registry" / "contracts.csv").read_text() + "C099,P001,L09,F01,2021-13-01,2028-09-30,10,EUR,active\n")
    cfg = _copy_config(tmp_path, **{"inputs.debt": str(debt), "inputs.contracts": str(contracts),
                                    "inputs.on_bad_row": "quarantine"})
    monkeypatch.delenv("AGRISAT_OUTPUT_DIR", raising=False)
    res = run_seasonal(cfg, run_id="q")
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["rejects"] == {"contracts": 1, "debt": 2}
    rej = pd.read_parquet(res.path / "rejects_debt.parquet")
    assert list(rej["farmer_id"]) == ["F02", "F77"]
    assert "outstanding 'lots' is not a number" in rej["reason"].iloc[0] and "unknown farmer 'F77'" in rej["reason"].iloc[1]
    assert "start_date '2021-13-01' is not a date" in pd.read_parquet(res.path / "rejects_contracts.parquet")["reason"].iloc[0]
    limits = res.limits.set_index("farmer_id")
    # F02's debt is unknown: held at zero for review, never lent on as if it owed nothing.
    assert limits.loc["F02", "limit"] == 0 and limits.loc["F02", "status"] == "review"
    assert limits.loc["F02", "decided_by"] == "DEBT_RECORD_REJECTED"
    assert sum(r["amount"] for r in limits.loc["F02", "reasons"]) == pytest.approx(0.0, abs=1e-6)
    # The other farmers are decided exactly as in the clean demo.
    (tmp_path / "clean").mkdir()
    clean = run_seasonal(_copy_config(tmp_path / "clean"), run_id="clean").limits.set_index("farmer_id")
    others = [f for f in clean.index if f != "F02"]
    assert list(limits.loc[others, "limit"]) == list(clean.loc[others, "limit"])


def test_a_run_on_daily_stations_reports_season_aggregates(tmp_path, monkeypatch):
    """The 2020/21 sample season has no daily station data, so the daily path is run on a season of
    the real Brussels series with the imagery left as it is: the point is the wiring, not agronomy."""
    shared = SHARED / "weather"
    if not shared.exists():
        pytest.skip("../shared/data not beside the project")
    src = pd.read_csv(shared / "brussels_climate.txt", sep=r"\s+")
    dates = pd.to_datetime(dict(year=src["Year"] + 16, month=src["Month"], day=src["Day"]), errors="coerce")
    daily = pd.DataFrame({"station_id": "uccle", "date": dates.dt.strftime("%Y-%m-%d"), "tmin_c": src["Tmin(C)"],
                          "tmax_c": src["Tmax(C)"], "precip_mm": src["Prcp(mm)"], "et0_mm": src["Et0(mm)"]}).dropna()
    daily = daily[daily["date"].between("2020-09-01", "2021-10-31")]  # 2004/05 shifted by 16 years
    daily.to_csv(tmp_path / "daily.csv", index=False)
    (tmp_path / "stations.csv").write_text("station_id,name,lon,lat\nuccle,Brussels-Uccle,4.358,50.798\n")
    (tmp_path / "clean").mkdir()
    cfg = yaml.safe_load(_copy_config(tmp_path / "clean").read_text())
    del cfg["inputs"]["weather"]
    cfg["inputs"] |= {"weather_stations": str(tmp_path / "stations.csv"), "weather_daily": str(tmp_path / "daily.csv")}
    (tmp_path / "daily.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.delenv("AGRISAT_OUTPUT_DIR", raising=False)
    res = run_seasonal(tmp_path / "daily.yaml", run_id="daily")
    plots = gpd.read_parquet(res.path / "plots.parquet").set_index("plot_id")
    assert (plots["weather_point_id"] == "uccle").all() and plots["weather_distance_km"].between(60, 80).all()
    assert plots["weather_resolution"].eq("daily").all()
    for col in ("gdd", "rain_total_mm", "longest_dry_spell_days", "heat_stress_days", "rain_minus_et0_mm"):
        assert plots[col].notna().all(), col
    # Winter wheat's window is longer than maize's: more degree days above a lower base.
    crop = plots["declared_crop"]
    assert plots.loc[crop == "winter_wheat", "gdd"].min() > plots.loc[crop == "maize", "gdd"].max()
    # Every plot is farther than 50 km from Uccle: flagged, in review, and the numbers are stated.
    assert all("WEATHER_SOURCE_FAR" in f for f in plots["flags"])
    wx = pd.read_parquet(res.path / "plot_weather.parquet")
    assert len(wx) == 13 * 12 and wx["precip_mm"].notna().all()
