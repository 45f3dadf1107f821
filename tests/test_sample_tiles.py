"""The shipped sample tiles are valid COGs with exactly the source pixels, and the registry is sound."""

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from rio_cogeo.cogeo import cog_validate

from conftest import ROOT, SHARED

SAMPLE = ROOT / "sample_tiles"
INDEX = pd.read_csv(SAMPLE / "index.csv")


def test_every_index_row_is_a_valid_cog_as_described():
    assert len(INDEX) == 12 * 6 + 12 * 4
    for r in INDEX.itertuples():
        path = SAMPLE / r.path
        valid, errors, _ = cog_validate(str(path))
        assert valid, (r.path, errors)
        with rasterio.open(path) as ds:
            assert ds.crs.to_string() == r.crs and (ds.width, ds.height) == (r.width, r.height)
            assert ds.nodata == r.nodata and ds.dtypes[0] == r.dtype
            assert ds.scales[0] == pytest.approx(r.scale)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not beside the project")
@pytest.mark.parametrize("area, nc, date, band", [
    ("hesbaye", "imagery/worldcereal_hesbaye_BE/worldcereal_preprocessed_inputs.nc", "2021-06-01", "B08"),
    ("hesbaye", "imagery/worldcereal_hesbaye_BE/worldcereal_preprocessed_inputs.nc", "2020-12-01", "B04"),
    ("mol", "imagery/gfmap_mol_BE/cdse_sentinel2_l2a.nc", "2023-04-15", "SCL"),
    ("mol", "imagery/gfmap_mol_BE/cdse_sentinel2_l2a.nc", "2023-04-05", "B04"),
])
def test_pixels_equal_the_source_netcdf(area, nc, date, band):
    ds = xr.open_dataset(SHARED / nc, mask_and_scale=False)
    src = ds[f"S2-L2A-{band}"].sel(t=date).values.view(np.uint16)
    with rasterio.open(SAMPLE / area / date / f"{band}.tif") as f:
        got = f.read(1)
        x0, y0 = f.transform * (0.5, 0.5)
    np.testing.assert_array_equal(got.astype(np.uint16), src)
    assert (x0, y0) == (float(ds["x"][0]), float(ds["y"][0]))  # pixel centres line up


def test_registry_is_sound():
    plots = gpd.read_file(SAMPLE / "registry" / "plots.geojson")
    assert {"plot_id", "farmer_id", "declared_crop", "season", "declared_area_ha", "tenure"} <= set(plots.columns)
    assert len(plots) >= 12 and plots["farmer_id"].nunique() >= 6
    utm = plots.to_crs("EPSG:32631")
    assert utm.geometry.is_valid.all()
    assert utm.geometry.within(gpd.GeoSeries.from_xy([664500], [5611620], crs=32631).buffer(500, cap_style=3).iloc[0]).all()
    for a, b in itertools.combinations(utm.geometry, 2):
        assert a.intersection(b).area < 1.0
    contracts = pd.read_csv(SAMPLE / "registry" / "contracts.csv")
    assert (contracts["status"] == "expired").sum() == 1
    merged = contracts.merge(plots[["plot_id", "farmer_id"]], on="plot_id")
    # C004 leases P007 to another farmer; C007 is the second, overlapping claim on P012.
    assert sorted(merged.loc[merged["lessee_id"] != merged["farmer_id"], "contract_id"]) == ["C004", "C007"]
    assert set(contracts["lessee_id"]) <= set(plots["farmer_id"])  # every lessee is a registered farmer
