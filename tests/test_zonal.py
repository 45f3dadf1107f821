import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from rasterio.features import geometry_mask

from agrisat import indices, scenes, zonal
from agrisat.io import tiles
from conftest import CRS, TRANSFORM, pixel_box


def _ndvi(tiny_tiles, chunk_px=1024):
    idx = tiles.read_index(tiny_tiles["index"])
    chosen = tiles.select_scenes(idx, "tiny", ["B04", "B08", "SCL"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))
    grid = tiles.common_grid(chosen)
    cube = tiles.open_cube(chosen, grid, tiles.window_for_bounds(grid, grid.bounds), chunk_px=chunk_px)
    return indices.ndvi(scenes.mask_clouds(cube, "SCL", (0, 1, 3, 8, 9, 10, 11)))


def _files(tiny_tiles, strip_px=1024):
    """The pipeline's reader (tiles.NdviFiles) over the tiny tiles."""
    idx = tiles.read_index(tiny_tiles["index"])
    chosen = tiles.select_scenes(idx, "tiny", ["B04", "B08", "SCL"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))
    grid = tiles.common_grid(chosen)
    return tiles.NdviFiles(chosen, grid, tiles.window_for_bounds(grid, grid.bounds), "B04", "B08", "SCL",
                           (0, 1, 3, 8, 9, 10, 11), strip_px=strip_px)


def _expected(tiny_tiles, geom, date):
    """Independent NDVI statistics straight from the raw integers."""
    raw = tiny_tiles["raw"]
    red = raw[(date, "B04")].astype(float) * 1e-4
    nir = raw[(date, "B08")].astype(float) * 1e-4
    bad = (raw[(date, "B04")] == 65535) | np.isin(raw[(date, "SCL")], [0, 1, 3, 8, 9, 10, 11])
    nd = ((nir - red) / (nir + red)).astype(np.float32).astype(float)
    inside = geometry_mask([geom], out_shape=red.shape, transform=TRANSFORM, invert=True)
    vals = nd[inside & ~bad]
    return inside.sum(), vals


def test_plain_statistics_match_direct_numpy(tiny_tiles, tiny_plots):
    ts = zonal.plot_timeseries(_ndvi(tiny_tiles), tiny_plots)
    assert len(ts) == 3 * 3
    for geom, pid in zip(tiny_plots.geometry, tiny_plots["plot_id"]):
        for d in tiny_tiles["dates"]:
            n, vals = _expected(tiny_tiles, geom, d)
            row = ts[(ts["plot_id"] == pid) & (ts["date"] == pd.Timestamp(d))].iloc[0]
            assert row["n_pixels"] == n
            assert row["count"] == len(vals)
            assert row["valid_fraction"] == pytest.approx(len(vals) / n)
            if len(vals) == 0:  # plot A under the cloud on date 2
                assert np.isnan(row[["mean", "std", "median", "p10", "p90"]].astype(float)).all()
                continue
            assert row["mean"] == pytest.approx(vals.mean(), rel=1e-6)
            assert row["std"] == pytest.approx(vals.std(), rel=1e-5)
            assert row["median"] == pytest.approx(np.median(vals), rel=1e-6)
            assert row["p10"] == pytest.approx(np.percentile(vals, 10), rel=1e-6)


def test_cloud_masks_part_of_plot_a(tiny_tiles, tiny_plots):
    ts = zonal.plot_timeseries(_ndvi(tiny_tiles), tiny_plots)
    a = ts[ts["plot_id"] == "A"].set_index("date")["valid_fraction"]
    # Plot A (pixels 2..20) sits inside the cloud (pixels 0..24) on the second date only.
    assert list(a.round(6)) == [1.0, 0.0, 1.0]


def test_chunking_and_batching_do_not_change_results(tiny_tiles, tiny_plots):
    whole = zonal.plot_timeseries(_ndvi(tiny_tiles, chunk_px=1024), tiny_plots, group_px=1024)
    # 16-px chunks and 8-px batches: every plot crosses chunk and batch boundaries.
    cut = zonal.plot_timeseries(_ndvi(tiny_tiles, chunk_px=16), tiny_plots, group_px=8)
    pd.testing.assert_frame_equal(whole, cut)


def test_same_result_on_numpy_and_dask_and_schedulers(tiny_tiles, tiny_plots):
    nd = _ndvi(tiny_tiles, chunk_px=16)
    with dask.config.set(scheduler="synchronous"):
        sync = zonal.plot_timeseries(nd, tiny_plots)
    eager = nd.copy(data=nd.values)
    with dask.config.set(scheduler="threads"):
        threads = zonal.plot_timeseries(eager, tiny_plots)
    pd.testing.assert_frame_equal(sync, threads)


def test_tiny_and_outside_plots_give_nan_not_invented_numbers(tiny_tiles, tiny_plots):
    import geopandas as gpd
    from shapely.geometry import box

    x0, y0 = 600000.0, 5600000.0
    sub_pixel = box(x0 + 101, y0 - 109, x0 + 104, y0 - 106)  # 3 x 3 m inside pixel (10, 10), off its centre
    outside = box(x0 - 500, y0 + 100, x0 - 300, y0 + 300)
    extra = gpd.GeoDataFrame({"plot_id": ["tiny", "out"]}, geometry=[sub_pixel, outside], crs=CRS)
    ts = zonal.plot_timeseries(_ndvi(tiny_tiles), extra)
    assert (ts["n_pixels"] == 0).all()
    assert (ts["count"] == 0).all()
    assert ts["mean"].isna().all()


def test_overlapping_plots_each_get_all_their_pixels(tiny_tiles):
    import geopandas as gpd

    plots = gpd.GeoDataFrame({"plot_id": ["big", "inner"]},
                             geometry=[pixel_box(28, 28, 44, 44), pixel_box(30, 30, 34, 34)], crs=CRS)
    ts = zonal.plot_timeseries(_ndvi(tiny_tiles), plots)
    n = ts.groupby("plot_id")["n_pixels"].first()
    assert n["big"] == 256 and n["inner"] == 16


def test_coverage_weighted_means_match_exactextract(tmp_path):
    """Irregular polygons, some smaller than a pixel: coverage-weighted means within 1e-3 of
    exactextract's `mean` for at least 95% of plots."""
    import geopandas as gpd
    import rasterio
    import shapely
    from exactextract import exact_extract

    from conftest import TRANSFORM

    rng = np.random.default_rng(3)
    arr = rng.uniform(0.1, 0.9, size=(60, 60)).astype(np.float32)
    path = tmp_path / "ndvi.tif"
    with rasterio.open(path, "w", driver="GTiff", width=60, height=60, count=1, dtype="float32", crs=CRS,
                       transform=TRANSFORM, nodata=np.nan) as ds:
        ds.write(arr, 1)
    x0, y0 = 600000.0, 5600000.0
    centres = rng.uniform([x0 + 30, y0 - 570], [x0 + 570, y0 - 30], size=(40, 2))
    radii = np.concatenate([rng.uniform(2, 6, 10), rng.uniform(15, 80, 30)])  # 10 plots below a pixel
    geoms = [shapely.Point(c).buffer(r, quad_segs=3) for c, r in zip(centres, radii)]
    plots = gpd.GeoDataFrame({"plot_id": [f"g{i}" for i in range(40)]}, geometry=geoms, crs=CRS)
    nd = xr.DataArray(arr[None], dims=("time", "y", "x"), coords={"time": pd.DatetimeIndex(["2021-06-01"])},
                      attrs={"transform": tuple(TRANSFORM)[:6], "crs": CRS})
    ours = zonal.plot_timeseries(nd, plots, coverage=True).set_index("plot_id")
    ref = exact_extract(str(path), plots, ["mean"], include_cols=["plot_id"], output="pandas").set_index("plot_id")
    diff = (ours["cov_mean"] - ref["mean"]).abs()
    assert ours["cov_mean"].notna().all()  # sub-pixel plots keep a value
    small = ours.loc[[f"g{i}" for i in range(10)], "n_pixels"]
    assert (small <= 2).all() and (small == 0).sum() >= 3  # plain statistics lose these plots
    assert np.quantile(diff, 0.95) < 1e-3, diff.describe()


def test_many_plot_sizes_match_numpy_and_do_not_depend_on_batching_or_dates():
    """200 random plots of 1 to ~900 pixels on a cube with cloud holes: every statistic equals numpy's
    on the plot's own pixels, and is bit-identical whatever the batching or the set of dates."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(7)
    n_t, h, w = 5, 128, 128
    nd = rng.uniform(-0.2, 0.95, (n_t, h, w)).astype(np.float32)
    nd[rng.random((n_t, h, w)) < 0.15] = np.nan
    cx, cy = rng.uniform(0, w * 10, 200), rng.uniform(0, h * 10, 200)
    radius = rng.uniform(3, 170, 200)
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    geoms = [shapely.Point(x0 + x, y0 - y).buffer(r, quad_segs=3) for x, y, r in zip(cx, cy, radius)]
    plots = gpd.GeoDataFrame({"plot_id": [f"q{i}" for i in range(200)]}, geometry=geoms, crs=CRS)
    times = pd.date_range("2021-04-01", periods=n_t, freq="10D")
    cube = xr.DataArray(nd, dims=("time", "y", "x"), coords={"time": times}, attrs={"transform": tuple(TRANSFORM)[:6]})

    def run(arr, group_px):
        with dask.config.set(scheduler="synchronous"):
            return zonal.plot_timeseries(arr.chunk({"y": 64, "x": 64}), plots, group_px=group_px)

    big, small = run(cube, 256), run(cube, 32)
    pd.testing.assert_frame_equal(big, small, check_exact=True)
    later = run(cube.isel(time=slice(2, None)), 256)
    pd.testing.assert_frame_equal(later.reset_index(drop=True),
                                  big[big["date"] >= times[2]].reset_index(drop=True), check_exact=True)
    rows = big.set_index(["plot_id", "date"])
    for i in range(0, 200, 7):
        inside = geometry_mask([geoms[i]], out_shape=(h, w), transform=TRANSFORM, invert=True)
        for d in (0, 3):
            r = rows.loc[(f"q{i}", times[d])]
            vals = nd[d][inside].astype(float)
            vals = vals[~np.isnan(vals)]
            assert r["n_pixels"] == inside.sum() and r["count"] == len(vals)
            if len(vals):
                assert r["mean"] == pytest.approx(vals.mean(), rel=1e-12, abs=1e-12)
                assert r["std"] == pytest.approx(vals.std(), rel=1e-9, abs=1e-12)
                for col, q in (("median", 50), ("p10", 10), ("p90", 90)):
                    assert r[col] == np.percentile(vals, q), (i, d, col)


def test_fused_mask_and_ndvi_equal_the_step_by_step_cube(tiny_tiles):
    idx = tiles.read_index(tiny_tiles["index"])
    chosen = tiles.select_scenes(idx, "tiny", ["B04", "B08", "SCL"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))
    grid = tiles.common_grid(chosen)
    cube = tiles.open_cube(chosen, grid, tiles.window_for_bounds(grid, grid.bounds), chunk_px=16)
    classes = (0, 1, 3, 8, 9, 10, 11)
    steps = indices.ndvi(scenes.mask_clouds(cube, "SCL", classes)).compute()
    fused = indices.masked_ndvi(cube, "B04", "B08", "SCL", classes)
    assert fused.data.npartitions == cube.sizes["time"] * 9  # one task per date and 16 px block
    np.testing.assert_array_equal(fused.compute().values, steps.values)
    np.testing.assert_array_equal(indices.masked_ndvi(cube.compute(), "B04", "B08", "SCL", classes).values, steps.values)
    assert fused.attrs["transform"] == cube.attrs["transform"]
    with pytest.raises(Exception, match=r"band 'B8A' not in cube bands"):
        indices.masked_ndvi(cube, "B04", "B8A", "SCL", classes)


def test_centre_pixels_equal_gdal_masks_for_holes_multiparts_and_window_edges():
    """The vectorised scanline fill gives exactly rasterio's (GDAL's) pixel-centre mask, in row-major
    order, for irregular polygons, polygons with holes, multi-polygons, overlapping plots and plots
    hanging over the window's edge (outside pixels are dropped)."""
    import shapely

    rng = np.random.default_rng(11)
    h, w = 50, 70
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    geoms = []
    for _ in range(60):
        cx, cy, r = rng.uniform(-40, w * 10 + 40), rng.uniform(-40, h * 10 + 40), rng.uniform(4, 120)
        g = shapely.Point(x0 + cx, y0 - cy).buffer(r, quad_segs=int(rng.integers(1, 6)))
        g = shapely.affinity.rotate(shapely.affinity.scale(g, rng.uniform(0.3, 1.5), 1.0), rng.uniform(0, 180))
        if rng.random() < 0.3 and r > 40:
            g = g.difference(shapely.Point(x0 + cx, y0 - cy).buffer(r / 3))  # a hole
        geoms.append(g)
    geoms.append(shapely.MultiPolygon([pixel_box(1, 1, 4, 5), pixel_box(10, 2, 12, 9)]))
    geoms.append(pixel_box(30, 30, 44, 44))
    geoms.append(pixel_box(32, 32, 36, 36))  # inside the previous one
    geoms = np.array(geoms, dtype=object)
    pool, starts, lengths = zonal._centre_pixels(geoms, TRANSFORM, h, w)
    assert lengths.sum() > 3000 and (lengths == 0).sum() < 10
    for i, g in enumerate(geoms):
        mask = geometry_mask([g], out_shape=(h, w), transform=TRANSFORM, invert=True)
        np.testing.assert_array_equal(pool[starts[i]:starts[i] + lengths[i]], np.flatnonzero(mask.ravel()), err_msg=str(i))


def _read_all(files: tiles.NdviFiles) -> np.ndarray:
    """Every date of an NdviFiles reader, strip by strip, as one (time, y, x) array."""
    out = np.full((len(files.dates), files.height, files.width), -9.0, np.float32)
    for t in range(len(files.dates)):
        with files.open_date(t) as read:
            for y0 in range(0, files.height, files.strip_px):
                y1 = min(y0 + files.strip_px, files.height)
                read(y0, y1, out[t, y0:y1])
    return out


def test_ndvi_read_from_raw_integers_equals_the_cube_path(tiny_tiles):
    """NdviFiles (decode + mask + NDVI from the files' integers, strip by strip) gives the same bits and
    transform as masked_ndvi(open_cube(...)), nodata and cloud included, for any strip height."""
    idx = tiles.read_index(tiny_tiles["index"])
    chosen = tiles.select_scenes(idx, "tiny", ["B04", "B08", "SCL"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))
    grid = tiles.common_grid(chosen)
    window = tiles.window_for_bounds(grid, grid.bounds)
    classes = (0, 1, 3, 8, 9, 10, 11)
    cube = tiles.open_cube(chosen, grid, window, chunk_px=16)
    steps = indices.ndvi(scenes.mask_clouds(cube, "SCL", classes)).compute()
    for strip_px in (7, 16, 1024):
        files = tiles.NdviFiles(chosen, grid, window, "B04", "B08", "SCL", classes, strip_px=strip_px)
        got = _read_all(files)
        np.testing.assert_array_equal(got.view(np.uint32)[~np.isnan(got)],
                                      steps.values.view(np.uint32)[~np.isnan(steps.values)])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(steps.values))
        assert np.isnan(got[1, 40, 40]) and np.isnan(got[1, :24, :24]).all()
        assert files.transform == cube.attrs["transform"] and (files.height, files.width) == steps.shape[1:]
        np.testing.assert_array_equal(files.dates, steps["time"].values)
    # Without a quality band, and with the quality band decoded from float codes (no lookup table).
    no_q = _read_all(tiles.NdviFiles(chosen, grid, window, "B04", "B08", None, classes, strip_px=16))
    np.testing.assert_array_equal(no_q, indices.ndvi(cube).compute().values)
    red, nir = (tiny_tiles["raw"][("2021-05-01", b)] for b in ("B04", "B08"))
    scl = tiny_tiles["raw"][("2021-05-01", "SCL")].astype(np.float32)
    enc = (65535.0, 1e-4, 0.0)
    np.testing.assert_array_equal(indices.masked_ndvi_from_raw(red, nir, scl, enc, enc, (0.0, 1.0, 0.0), classes),
                                  steps.values[1])
    with pytest.raises(Exception, match=r"band 'B8A' not in cube bands"):
        tiles.NdviFiles(chosen, grid, window, "B04", "B8A", "SCL", classes)


def test_files_reader_gives_the_cube_path_statistics(tiny_tiles, tiny_plots):
    """plot_timeseries on an NdviFiles reader (one task per date reading its own strips) equals the
    same statistics from the lazy cube and from an in-memory array, bit for bit, on any scheduler."""
    want = zonal.plot_timeseries(_ndvi(tiny_tiles, chunk_px=16), tiny_plots, group_px=8, coverage=True)
    for strip_px, scheduler in ((16, "threads"), (7, "synchronous"), (1024, "threads")):
        with dask.config.set(scheduler=scheduler):
            got = zonal.plot_timeseries(_files(tiny_tiles, strip_px), tiny_plots, group_px=8, coverage=True)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert want["count"].sum() > 0 and want["mean"].notna().sum() >= 6


def test_time_chunks_strips_and_eager_arrays_change_no_number(tiny_tiles, tiny_plots):
    """One task per time chunk, several dates per chunk, strips cut through plots: the same frame, bit
    for bit, as one date per chunk and as the eager (numpy-backed) computation."""
    nd = _ndvi(tiny_tiles, chunk_px=16)
    with dask.config.set(scheduler="threads"):
        whole = zonal.plot_timeseries(nd, tiny_plots, group_px=8, coverage=True)
        grouped = zonal.plot_timeseries(nd.chunk({"time": 2, "y": 5, "x": 40}), tiny_plots, group_px=8, coverage=True)
    eager = zonal.plot_timeseries(nd.copy(data=nd.values), tiny_plots, group_px=8, coverage=True)
    pd.testing.assert_frame_equal(whole, grouped, check_exact=True)
    pd.testing.assert_frame_equal(whole, eager, check_exact=True)


def test_files_reader_names_a_file_that_breaks_after_the_scan(tiny_tiles, tiny_plots):
    """A file that vanishes or is cut short between the scene scan and the date task is an
    ImageryError naming it (and, when cut short, the window), not a bare GDAL traceback."""
    from agrisat.errors import ImageryError

    files = _files(tiny_tiles, strip_px=16)
    cut = tiny_tiles["dir"] / "tiny/2021-06-01/B08.tif"
    whole = cut.read_bytes()
    cut.write_bytes(whole[:1200])  # the header and the first tiles survive
    with dask.config.set(scheduler="synchronous"), pytest.raises(
            ImageryError, match=r"2021-06-01/B08.tif: cannot read window"):
        zonal.plot_timeseries(files, tiny_plots)
    cut.write_bytes(whole)
    (tiny_tiles["dir"] / "tiny/2021-05-01/SCL.tif").write_bytes(b"not a tiff")
    with dask.config.set(scheduler="synchronous"), pytest.raises(
            ImageryError, match=r"2021-05-01/SCL.tif: cannot open tile"):
        zonal.plot_timeseries(files, tiny_plots)
