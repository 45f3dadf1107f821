"""The real sentinelhub client against a Sentinel Hub look-alike on 127.0.0.1 (tests/shserver.py)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from agrisat import indices, zonal
from agrisat.errors import ConfigError, ImageryError, MissingBandError
from agrisat.io import tiles
from agrisat.sources.sentinelhub import SentinelHubSource, _tiles
from conftest import ROOT
from shserver import SentinelHubStub

SAMPLE = ROOT / "sample_tiles"
START, END = pd.Timestamp("2023-04-01"), pd.Timestamp("2023-04-30")
CLASSES = (0, 1, 3, 8, 9, 10, 11)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("AGRISAT_SH_CLIENT_ID", "test-client")
    monkeypatch.setenv("AGRISAT_SH_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP is only for 127.0.0.1 tests
    with SentinelHubStub(SAMPLE, "mol") as srv:
        yield srv


def _source(server, tmp_path, **kw):
    from sentinelhub import SentinelHubDownloadClient

    SentinelHubDownloadClient._CACHED_SESSIONS.clear()  # each test starts without a token
    opts = {"base_url": server.url, "token_url": f"{server.url}/oauth/token", "backoff_s": 0.05, "timeout_s": 5.0}
    return SentinelHubSource(tmp_path / "cache", **(opts | kw))


def _local_grid():
    idx = tiles.read_index(SAMPLE / "index.csv")
    chosen = tiles.select_scenes(idx, "mol", ["B04", "B08", "SCL"], START, END)
    grid = tiles.common_grid(chosen)
    return chosen, grid


def _plot_ndvi(cube, plots):
    nd = indices.masked_ndvi(cube, "B04", "B08", "SCL", CLASSES)
    return zonal.plot_timeseries(nd, plots.to_crs(cube.attrs["crs"]))


def test_same_ndvi_per_plot_date_as_the_local_tiles(server, tmp_path):
    chosen, grid = _local_grid()
    local = tiles.open_cube(chosen, grid, tiles.window_for_bounds(grid, grid.bounds, pad=0))
    plots = gpd.read_file(SAMPLE / "registry" / "plots_mol.geojson")
    cube, report = _source(server, tmp_path).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    assert cube.sizes == local.sizes and cube.attrs["transform"] == local.attrs["transform"]
    assert len(report.used) == 12 and report.skipped == []
    a, b = _plot_ndvi(local, plots), _plot_ndvi(cube, plots)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)
    assert server.counts["process"] == 12 and server.counts["search"] == 1


def test_a_warm_cache_makes_no_process_request(server, tmp_path):
    _, grid = _local_grid()
    _source(server, tmp_path).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    before = server.counts["process"]
    cube, _ = _source(server, tmp_path).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    cube.compute()
    assert server.counts["process"] == before


def test_rate_limit_server_errors_and_timeouts_are_retried(server, tmp_path):
    _, grid = _local_grid()
    server.faults["process"].extend(["429", "500", "slow"])
    server.faults["search"].append("500")
    server.slow_seconds = 1.5
    cube, report = _source(server, tmp_path, timeout_s=0.5).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    assert report.skipped == [] and cube.sizes["time"] == 12
    assert server.counts["process"] == 12 + 3 and server.counts["search"] == 2


def test_persistent_errors_skip_the_scene_and_name_it(server, tmp_path):
    _, grid = _local_grid()
    server.faults["process"].extend(["500"] * 3)  # all 3 attempts of the first scene fail
    cube, report = _source(server, tmp_path, max_attempts=3).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    assert cube.sizes["time"] == 11
    assert report.skipped[0]["date"] == "2023-04-02" and "500" in report.skipped[0]["reason"]


def test_rate_limit_forever_gives_up(server, tmp_path):
    _, grid = _local_grid()
    server.faults["process"].extend(["429"] * 3)
    _, report = _source(server, tmp_path, max_attempts=3).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    assert report.skipped and "2023-04-02" == report.skipped[0]["date"]


def test_malformed_response_is_skipped_and_not_cached(server, tmp_path):
    _, grid = _local_grid()
    server.faults["process"].append("malformed")
    src = _source(server, tmp_path)
    cube, report = src.cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    assert cube.sizes["time"] == 11 and "not a usable GeoTIFF" in report.skipped[0]["reason"]
    cube, report = src.cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])  # asks again, gets it
    assert cube.sizes["time"] == 12 and report.skipped == []


def test_revoked_token_is_renewed(server, tmp_path):
    _, grid = _local_grid()
    server.faults["process"].extend([None, "revoke"])
    cube, report = _source(server, tmp_path).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    assert report.skipped == [] and cube.sizes["time"] == 12
    assert server.counts["token"] == 2


def test_cloudy_scenes_are_skipped_by_catalog_cloud_cover(server, tmp_path):
    _, grid = _local_grid()
    cube, report = _source(server, tmp_path, max_cloud_cover=20).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    assert set(cube["time"].dt.strftime("%Y-%m-%d").values) >= {"2023-04-05", "2023-04-15"}
    assert all("cloud cover" in s["reason"] for s in report.skipped) and report.skipped
    assert server.counts["process"] == cube.sizes["time"]


def test_clear_errors_for_bad_requests(server, tmp_path, monkeypatch):
    _, grid = _local_grid()
    src = _source(server, tmp_path)
    with pytest.raises(MissingBandError, match="no band\\(s\\) B99"):
        src.cube(grid.bounds, grid.crs, START, END, ["B04", "B99"])
    with pytest.raises(ImageryError, match="no Sentinel-2 L2A acquisition .* between 2022-01-01 and 2022-01-31"):
        src.cube(grid.bounds, grid.crs, pd.Timestamp("2022-01-01"), pd.Timestamp("2022-01-31"), ["B04"])
    monkeypatch.delenv("AGRISAT_SH_CLIENT_SECRET")
    with pytest.raises(ConfigError, match="AGRISAT_SH_CLIENT_SECRET"):
        _source(server, tmp_path)


def test_large_areas_are_split_below_the_request_limit():
    t = _tiles(5200, 2400)
    assert len(t) == 3 and all(c1 - c0 <= 2500 and r1 - r0 <= 2500 for r0, r1, c0, c1 in t)
    assert sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in t) == 5200 * 2400


def test_a_split_request_mosaics_back_to_the_same_cube(server, tmp_path, monkeypatch):
    import agrisat.sources.sentinelhub as sh

    chosen, grid = _local_grid()
    local = tiles.open_cube(chosen, grid, tiles.window_for_bounds(grid, grid.bounds, pad=0))
    monkeypatch.setattr(sh, "MAX_PX", 40)  # 64 x 66 px -> 2 x 2 requests per scene
    cube, _ = _source(server, tmp_path).cube(grid.bounds, grid.crs, START, END, ["B04", "B08", "SCL"])
    assert server.counts["process"] == 12 * 4
    assert cube.attrs["transform"] == local.attrs["transform"]
    np.testing.assert_array_equal(cube.values, local.values)
