"""Bad input gives a clear error naming the file, row, plot or band."""


import pandas as pd
import pytest
from shapely.geometry import Polygon

from agrisat.config import load_crops
from agrisat.errors import ImageryError, InputDataError, MissingBandError, PlotError, UnknownCropError
from agrisat.io import plots as plots_io
from agrisat.io import tables, tiles
from agrisat.plots import validate_plots
from conftest import ROOT, write_band

CROPS = load_crops(ROOT / "configs" / "crops.yaml")


def test_malformed_plot_file_names_the_file(tmp_path):
    bad = tmp_path / "plots.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [ {"type": "Feature", ')
    with pytest.raises(InputDataError, match="plots.geojson: cannot read plot file"):
        plots_io.read_plots(bad)


def test_plot_file_missing_columns_names_them(tmp_path, tiny_plots):
    path = tmp_path / "p.gpkg"
    tiny_plots.drop(columns=["declared_crop"]).to_file(path)
    with pytest.raises(InputDataError, match=r"p.gpkg: missing column\(s\) declared_crop"):
        plots_io.read_plots(path)


def test_unknown_crop_names_plot_and_known_crops(tiny_plots):
    plots = tiny_plots.copy()
    plots.loc[1, "declared_crop"] = "quinoa"
    with pytest.raises(UnknownCropError, match=r"plot B .*unknown crop 'quinoa'.*maize"):
        validate_plots(plots, CROPS, source="reg.geojson")


def test_duplicate_plot_ids_name_the_features(tiny_plots):
    plots = tiny_plots.copy()
    plots.loc[2, "plot_id"] = "A"
    with pytest.raises(InputDataError, match=r"reg: duplicate plot_id 'A' \(features 1, 3\)"):
        validate_plots(plots, CROPS, source="reg")


def test_empty_geometry_names_plot(tiny_plots):
    plots = tiny_plots.copy()
    plots.loc[1, "geometry"] = Polygon()
    with pytest.raises(PlotError, match=r"feature 2 \(plot B\): empty geometry"):
        validate_plots(plots, CROPS, source="reg")


def test_bow_tie_geometry_is_repaired_and_area_measured(tiny_plots):
    plots = tiny_plots.copy()
    x0, y0 = 600000.0, 5600000.0
    plots.loc[0, "geometry"] = Polygon([(x0, y0), (x0 + 100, y0 - 100), (x0 + 100, y0), (x0, y0 - 100)])
    out = validate_plots(plots, CROPS)
    assert out.geometry.iloc[0].is_valid
    assert out["area_ha"].iloc[0] == pytest.approx(0.5, rel=1e-3)  # two 50 m^2 x 100 triangles
    assert out["area_ha"].iloc[1] == pytest.approx(20 * 20 * 100 / 10_000, rel=1e-3)


def test_declared_area_mismatch_is_flagged(tiny_plots):
    plots = tiny_plots.copy()
    plots["declared_area_ha"] = [3.24, 4.0 * 1.3, 5.6]  # plot B declares 30% too much
    out = validate_plots(plots, CROPS)
    assert [("AREA_MISMATCH" in f) for f in out["flags"]] == [False, True, False]


def test_missing_band_names_band_and_area(tiny_tiles):
    idx = tiles.read_index(tiny_tiles["index"])
    with pytest.raises(MissingBandError, match=r"band 'B11' not in area 'tiny'"):
        tiles.select_scenes(idx, "tiny", ["B04", "B11"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))


def test_band_missing_on_one_date_names_the_date(tiny_tiles):
    idx = tiles.read_index(tiny_tiles["index"])
    idx = idx[~((idx["band"] == "B08") & (idx["date"] == pd.Timestamp("2021-05-01")))]
    with pytest.raises(MissingBandError, match=r"tiny 2021-05-01: band\(s\) B08 missing"):
        tiles.select_scenes(idx, "tiny", ["B04", "B08"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))


def test_bad_date_in_index_names_row(tiny_tiles):
    df = pd.read_csv(tiny_tiles["index"])
    df.loc[3, "date"] = "2021-13-45"
    df.to_csv(tiny_tiles["index"], index=False)
    with pytest.raises(InputDataError, match=r"index.csv: row 5: unparseable date '2021-13-45'"):
        tiles.read_index(tiny_tiles["index"])


def test_grid_mismatch_names_the_file(tiny_tiles):
    import numpy as np
    from rasterio.transform import from_origin

    odd = tiny_tiles["dir"] / "tiny/2021-06-01/B08.tif"
    write_band(odd, np.ones((48, 48), "uint16"), 65535, transform=from_origin(600005.0, 5600000.0, 10, 10))
    idx = tiles.read_index(tiny_tiles["index"])
    chosen = tiles.select_scenes(idx, "tiny", ["B04", "B08"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))
    with pytest.raises(ImageryError, match=r"2021-06-01/B08.tif: grid .* differs"):
        tiles.common_grid(chosen)


def test_corrupt_tile_names_the_file(tiny_tiles):
    (tiny_tiles["dir"] / "tiny/2021-04-01/B04.tif").write_bytes(b"not a tiff")
    idx = tiles.read_index(tiny_tiles["index"])
    chosen = tiles.select_scenes(idx, "tiny", ["B04", "B08"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))
    with pytest.raises(ImageryError, match=r"2021-04-01/B04.tif: cannot open tile"):
        tiles.common_grid(chosen)


CONTRACT_HEADER = "contract_id,plot_id,lessor_id,lessee_id,start_date,end_date,annual_rent,currency,status\n"


@pytest.mark.parametrize(
    "row, message",
    [
        ("C1,P1,L1,F1,2020-01-01,2019-01-01,100,EUR,active", r"row 2: contract C1 ends before it starts"),
        ("C1,P1,L1,F1,2020-02-30,2021-01-01,100,EUR,active", r"row 2: start_date '2020-02-30' is not a date"),
        ("C1,P1,L1,F1,2020-01-01,2021-01-01,-5,EUR,active", r"row 2: annual_rent -5 is below 0"),
        ("C1,P1,L1,F1,2020-01-01,2021-01-01,lots,EUR,active", r"row 2: annual_rent 'lots' is not a number"),
    ],
)
def test_bad_contract_rows_are_named(tmp_path, row, message):
    path = tmp_path / "contracts.csv"
    path.write_text(CONTRACT_HEADER + row + "\n")
    with pytest.raises(InputDataError, match=message):
        tables.read_contracts(path)


def test_contracts_missing_column(tmp_path):
    path = tmp_path / "contracts.csv"
    path.write_text("contract_id,plot_id\nC1,P1\n")
    with pytest.raises(InputDataError, match=r"contracts.csv: contracts file lacks column\(s\) lessor_id"):
        tables.read_contracts(path)


def test_negative_debt_is_named(tmp_path):
    path = tmp_path / "debt.csv"
    path.write_text("farmer_id,outstanding,currency\nF1,100,EUR\nF2,-3,EUR\n")
    with pytest.raises(InputDataError, match=r"debt.csv: row 3: outstanding -3 is below 0"):
        tables.read_debt(path)


def test_area_tolerance_comes_from_the_policy():
    import geopandas as gpd

    plots = gpd.read_file(ROOT / "sample_tiles" / "registry" / "plots.geojson")
    strict = validate_plots(plots, CROPS).set_index("plot_id")
    assert [p for p, f in strict["flags"].items() if "AREA_MISMATCH" in f] == ["P013"]
    assert "tolerance 10%" in strict.loc["P013", "area_detail"] and "+25%" in strict.loc["P013", "area_detail"]
    lax = validate_plots(plots, CROPS, area_tolerance=0.3)
    assert not any("AREA_MISMATCH" in f for f in lax["flags"])


def test_contracts_quarantine_keeps_good_rows_and_says_why(tmp_path):
    path = tmp_path / "contracts.csv"
    path.write_text(CONTRACT_HEADER + "C1,P1,L1,F1,2020-01-01,2021-01-01,100,EUR,active\n"
                    "C2,P9,L1,F1,2020-01-01,2021-01-01,100,EUR,active\n"
                    "C3,P1,L1,F8,2020-01-01,2021-01-01,100,EUR,active\n"
                    "C1,P1,L1,F1,2020-01-01,2021-01-01,100,EUR,active\n")
    kw = {"known_plots": {"P1"}, "known_farmers": {"F1"}}
    with pytest.raises(InputDataError, match=r"contracts.csv: row 3: contract C2 names unknown plot 'P9'"):
        tables.read_contracts(path, **kw)
    df = tables.read_contracts(path, on_bad_row="quarantine", **kw)
    assert list(df["contract_id"]) == ["C1"]
    rej = df.attrs["rejects"]
    assert list(rej["row"]) == [3, 4, 5]
    assert list(rej["reason"]) == ["contract C2 names unknown plot 'P9'", "contract C3 names unknown lessee 'F8'",
                                   "duplicate contract_id 'C1'"]


def test_weather_config_takes_one_source_and_known_metrics(tmp_path):
    import yaml

    from agrisat.config import load_policy, load_run_config
    from agrisat.errors import ConfigError

    cfg = yaml.safe_load((ROOT / "configs" / "sample_hesbaye.yaml").read_text())
    cfg["inputs"]["weather_grid"] = "x.nc"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"give one weather source, not weather and weather_grid"):
        load_run_config(tmp_path / "c.yaml")
    pol = yaml.safe_load((ROOT / "configs" / "policy.yaml").read_text())
    pol["weather"]["shocks"]["WEATHER_DROUGHT"].append({"metric": "soil_moisture", "op": "<=", "value": 0.1})
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pol))
    with pytest.raises(ConfigError, match=r"weather.shocks.WEATHER_DROUGHT: unknown metric 'soil_moisture'"):
        load_policy(tmp_path / "p.yaml")


def test_unknown_lessee_stops_the_run_naming_the_row(tmp_path):
    path = tmp_path / "contracts.csv"
    path.write_text(CONTRACT_HEADER + "C1,P1,L1,F1,2020-01-01,2021-01-01,100,EUR,active\n"
                    "C2,P1,L1,F8,2021-01-02,2022-01-01,100,EUR,active\n")
    with pytest.raises(InputDataError, match=r"contracts.csv: row 3: contract C2 names unknown lessee 'F8'$"):
        tables.read_contracts(path, known_plots={"P1"}, known_farmers={"F1"})
