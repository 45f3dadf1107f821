"""Local tiles, Sentinel Hub and a STAC catalog give the same NDVI per plot and date."""

from __future__ import annotations

import shutil

import geopandas as gpd
import pandas as pd
import pytest

from agrisat import indices, zonal
from agrisat.errors import ImageryError, MissingBandError
from agrisat.io import tiles
from agrisat.sources.stac import StacSource, write_catalog
from conftest import ROOT
from shserver import SentinelHubStub
from stacserver import StaticServer

SAMPLE = ROOT / "sample_tiles"
START, END = pd.Timestamp("2023-04-01"), pd.Timestamp("2023-04-30")
BANDS = ["B04", "B08", "SCL"]
CLASSES = (0, 1, 3, 8, 9, 10, 11)
COLLECTION = "sentinel-2-l2a-sample"


@pytest.fixture(scope="module")
def stac(tmp_path_factory):
    """The Mol sample tiles and a static STAC catalog of them, served over HTTP on 127.0.0.1."""
    root = tmp_path_factory.mktemp("stac")
    shutil.copytree(SAMPLE / "mol", root / "mol")
    idx = tiles.read_index(SAMPLE / "index.csv")
    with StaticServer(root) as srv:
        write_catalog(idx, "mol", root / "catalog", srv.url)
        yield srv, root, f"{srv.url}/catalog/catalog.json"


def _local():
    idx = tiles.read_index(SAMPLE / "index.csv")
    chosen = tiles.select_scenes(idx, "mol", BANDS, START, END)
    grid = tiles.common_grid(chosen)
    return tiles.open_cube(chosen, grid, tiles.window_for_bounds(grid, grid.bounds, pad=0)), grid


def _ndvi_per_plot(cube):
    plots = gpd.read_file(SAMPLE / "registry" / "plots_mol.geojson").to_crs(cube.attrs["crs"])
    return zonal.plot_timeseries(indices.masked_ndvi(cube, "B04", "B08", "SCL", CLASSES), plots)


def test_three_sources_same_ndvi_per_plot_date(stac, tmp_path, monkeypatch):
    local, grid = _local()
    _, _, catalog = stac
    stac_cube, stac_report = StacSource(catalog, COLLECTION).cube(grid.bounds, grid.crs, START, END, BANDS)
    assert len(stac_report.used) == 12 and stac_report.skipped == []

    monkeypatch.setenv("AGRISAT_SH_CLIENT_ID", "test-client")
    monkeypatch.setenv("AGRISAT_SH_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    from sentinelhub import SentinelHubDownloadClient

    from agrisat.sources.sentinelhub import SentinelHubSource

    SentinelHubDownloadClient._CACHED_SESSIONS.clear()
    with SentinelHubStub(SAMPLE, "mol") as sh:
        src = SentinelHubSource(tmp_path / "cache", base_url=sh.url, token_url=f"{sh.url}/oauth/token", backoff_s=0.05)
        sh_cube, _ = src.cube(grid.bounds, grid.crs, START, END, BANDS)
        want = _ndvi_per_plot(local)
        for cube in (stac_cube, sh_cube):
            assert cube.attrs["transform"] == local.attrs["transform"] and cube.sizes == local.sizes
            pd.testing.assert_frame_equal(_ndvi_per_plot(cube), want, check_exact=False, rtol=1e-6)


def test_stac_unreadable_scene_is_skipped_with_its_reason(stac, tmp_path):
    srv, root, _ = stac
    cat_dir = tmp_path / "cat"
    idx = tiles.read_index(SAMPLE / "index.csv")
    write_catalog(idx, "mol", cat_dir, srv.url)
    # Point one item's red band at a file that is not there.
    item_file = next(cat_dir.rglob("mol-2023-04-10.json"))
    item_file.write_text(item_file.read_text().replace("mol/2023-04-10/B04.tif", "mol/2023-04-10/B04-missing.tif"))
    shutil.copytree(cat_dir, root / "cat-broken", dirs_exist_ok=True)
    cube, report = StacSource(f"{srv.url}/cat-broken/catalog.json", COLLECTION).cube(*_bounds(), START, END, BANDS)
    assert cube.sizes["time"] == 11
    assert report.skipped[0]["date"] == "2023-04-10" and "B04-missing.tif" in report.skipped[0]["reason"]


def test_stac_clear_errors(stac):
    _, _, catalog = stac
    src = StacSource(catalog, COLLECTION)
    with pytest.raises(MissingBandError, match=r"has no asset\(s\) B8A"):
        src.cube(*_bounds(), START, END, ["B04", "B8A"])
    with pytest.raises(ImageryError, match="no item of 'sentinel-2-l2a-sample'"):
        src.cube(*_bounds(), pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-31"), BANDS)


def _bounds():
    _, grid = _local()
    return grid.bounds, grid.crs
