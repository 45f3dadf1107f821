"""Coverage is evidence: how much of each plot the imagery sees, checked against rasterio's own
rasterization on grids larger than the tile (never against the code under test).

The tiny tile (conftest.tiny_tiles) is 48 x 48 px of 10 m; date 2 has a cloud over rows and columns
0..23 and one nodata pixel at (40, 40).
"""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml
from rasterio.features import rasterize
from rasterio.transform import Affine

from agrisat import growth, zonal
from agrisat.config import load_crops, load_policy, load_run_config
from conftest import CRS, ORIGIN, ROOT, TRANSFORM, pixel_box
from pipelines import extract

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
POLICY = load_policy(ROOT / "configs" / "policy.yaml").for_stage("harvest")
END = dt.date(2021, 10, 31)
CLOUD_CLASSES = (0, 1, 3, 8, 9, 10, 11)


def _poly(*pixel_xy):
    """A polygon from (column, row) pixel coordinates of the test grid."""
    x0, y0 = ORIGIN
    return shapely.Polygon([(x0 + 10 * c, y0 - 10 * r) for c, r in pixel_xy])


# Pixel coordinates chosen off the half-pixel lattice, so no centre lies on an edge.
GEOMS = {
    "inside": _poly((5.3, 30.1), (18.6, 28.4), (20.2, 42.7), (7.9, 44.1)),
    # Hangs over the tile's east edge (column 48): about half its centres are off the imagery.
    "half": _poly((36.3, 10.2), (60.7, 12.9), (58.1, 25.4), (38.2, 22.8)),
    # 3 x 3 m inside pixel (10, 10), away from its centre: no pixel centre at all.
    "sub": _poly((10.1, 10.1), (10.4, 10.1), (10.4, 10.4), (10.1, 10.4)),
    # 5 km east of the tile: its own partition, not one pixel of it read.
    "far": _poly((500.2, 10.3), (521.7, 11.1), (519.4, 26.6), (501.1, 24.9)),
}


def _centres(geom, col0: int, row0: int, width: int, height: int) -> int:
    """Pixel centres inside ``geom`` on the test grid's lattice over columns [col0, col0 + width) and
    rows [row0, row0 + height): rasterio's rasterize on that grid (GDAL's pixel-centre rule)."""
    t = TRANSFORM @ Affine.translation(col0, row0)
    return int(rasterize([(geom, 1)], out_shape=(height, width), transform=t, fill=0, dtype="uint8").sum())


def _valid(tiny_tiles, date: str) -> np.ndarray:
    """Pixels with a valid NDVI on ``date``, from the raw integers (nodata 65535, SCL classes)."""
    raw = tiny_tiles["raw"]
    return ~((raw[(date, "B04")] == 65535) | (raw[(date, "B08")] == 65535)
             | np.isin(raw[(date, "SCL")], CLOUD_CLASSES))


def _inside_tile(geom) -> np.ndarray:
    return rasterize([(geom, 1)], out_shape=(48, 48), transform=TRANSFORM, fill=0, dtype="uint8").astype(bool)


def _plots() -> gpd.GeoDataFrame:
    n = len(GEOMS)
    return gpd.GeoDataFrame({"plot_id": list(GEOMS), "farmer_id": ["F1", "F1", "F2", "F3"],
                             "declared_crop": ["winter_wheat"] * n, "season": ["2021"] * n, "tenure": ["owned"] * n},
                            geometry=list(GEOMS.values()), crs=CRS)


@pytest.fixture
def coverage_config(tmp_path, tiny_tiles):
    """tiny_config's settings (16 px partitions, SCL mask) over the four plots above."""
    _plots().to_file(tmp_path / "cov_plots.geojson")
    cfg = {
        "run": {"name": "cov", "output_dir": str(tmp_path / "runs"), "as_of": "2021-10-31", "stage": "harvest"},
        "season": {"start": "2021-03-01", "end": "2021-10-31"},
        "inputs": {"plots": str(tmp_path / "cov_plots.geojson"), "imagery_index": str(tiny_tiles["index"]),
                   "imagery_area": "tiny"},
        "crops": str(ROOT / "configs" / "crops.yaml"),
        "policy": str(ROOT / "configs" / "policy.yaml"),
        "imagery": {"quality": "SCL", "partition_px": 16, "chunk_px": 16},
    }
    path = tmp_path / "cov.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_oracle_counts_are_what_the_cases_claim():
    """The cases are what their names say, by rasterize alone."""
    g = GEOMS
    assert _centres(g["sub"], 0, 0, 48, 48) == 0
    assert _centres(g["far"], 0, 0, 48, 48) == 0 and _centres(g["far"], 480, 0, 80, 48) > 250
    on_tile, whole = _centres(g["half"], 0, 0, 48, 48), _centres(g["half"], 0, 0, 80, 48)
    assert 0.2 < on_tile / whole < 0.7
    assert _centres(g["inside"], 0, 0, 48, 48) == _centres(g["inside"], -20, -20, 100, 100) > 100


def test_extraction_counts_every_centre_and_never_stops_for_a_plot_off_the_imagery(coverage_config, tiny_tiles):
    cfg = load_run_config(coverage_config)
    plots = _plots()
    keys = extract.partition_keys(plots, extract.open_imagery(cfg, plots, ["B04", "B08", "SCL"])[3], 16)
    assert (keys == keys[plots["plot_id"] == "far"].iloc[0]).sum() == 1  # its own partition
    ex = extract.extract_series(cfg, plots, "cov-extract", "synchronous")  # used to raise ImageryError (exit 4)
    s = ex.series
    assert list(s.columns[:4]) == ["plot_id", "date", "n_pixels", "n_pixels_grid"]
    assert s["n_pixels_grid"].dtype == np.int64 and s["n_pixels"].dtype == np.int64
    assert sorted(s["plot_id"].unique()) == sorted(GEOMS) and len(s) == 4 * 3  # every plot, every date
    rows = s.set_index(["plot_id", "date"])
    # Whole-polygon counts on a lattice three times wider than the tile, and on the tile alone.
    want_grid = {pid: _centres(g, -48, -48, 48 * 12, 48 * 3) for pid, g in GEOMS.items()}
    want_tile = {pid: _centres(g, 0, 0, 48, 48) for pid, g in GEOMS.items()}
    for pid in GEOMS:
        mine = rows.loc[pid]
        assert (mine["n_pixels_grid"] == want_grid[pid]).all(), pid
        assert (mine["n_pixels"] == want_tile[pid]).all(), pid
        for d in tiny_tiles["dates"]:
            assert mine.loc[pd.Timestamp(d), "count"] == (_inside_tile(GEOMS[pid]) & _valid(tiny_tiles, d)).sum()
    assert want_grid["inside"] == want_tile["inside"]  # fully inside: nothing changes
    assert want_grid["half"] > want_tile["half"] > 0
    far = rows.loc["far"]
    assert (far["n_pixels"] == 0).all() and (far["count"] == 0).all() and (far["valid_fraction"] == 0).all()
    assert far[["mean", "std", "median", "p10", "p90"]].isna().all().all()
    assert list(far.index) == [pd.Timestamp(d) for d in tiny_tiles["dates"]]


def test_growth_flags_partial_unseen_and_sub_pixel_plots(coverage_config, tiny_tiles):
    cfg = load_run_config(coverage_config)
    plots = _plots()
    series = extract.extract_series(cfg, plots, "cov-growth", "synchronous").series
    g = growth.growth_analysis(series, plots, CROPS, POLICY, END, END).metrics.set_index("plot_id")
    assert sorted(g.index) == sorted(GEOMS)

    grid = _centres(GEOMS["half"], 0, 0, 100, 48)
    seen = max(int((_inside_tile(GEOMS["half"]) & _valid(tiny_tiles, d)).sum()) for d in tiny_tiles["dates"])
    half = g.loc["half"]
    assert half["n_pixels_grid"] == grid and half["imaged_fraction"] == pytest.approx(seen / grid, abs=1e-12)
    assert "PARTIAL_IMAGERY_COVERAGE" in half["growth_flags"]
    assert half["growth_flag_details"]["PARTIAL_IMAGERY_COVERAGE"] == (
        f"{seen} of {grid} pixel centres on valid imagery ({int(100 * seen / grid)}%) < 90%")
    assert not any(f in growth.EXCLUDING_GROWTH_FLAGS for f in ("PARTIAL_IMAGERY_COVERAGE",))  # credit weighs it

    far = g.loc["far"]
    assert "NO_IMAGERY_COVERAGE" in far["growth_flags"] and far["imaged_fraction"] == 0.0
    assert far["n_pixels_grid"] == _centres(GEOMS["far"], 480, 0, 80, 48) and far["n_pixels"] == 0
    assert "PARTIAL_IMAGERY_COVERAGE" not in far["growth_flags"]

    sub = g.loc["sub"]
    assert sub["growth_flag_details"]["PLOT_TOO_SMALL"] == "no pixel centre inside the polygon on the imagery grid"
    assert sub["n_pixels_grid"] == 0 and sub["imaged_fraction"] == 0.0
    assert "NO_IMAGERY_COVERAGE" not in sub["growth_flags"] and "PARTIAL_IMAGERY_COVERAGE" not in sub["growth_flags"]

    inside = g.loc["inside"]
    n = _centres(GEOMS["inside"], 0, 0, 48, 48)
    best = max(int((_inside_tile(GEOMS["inside"]) & _valid(tiny_tiles, d)).sum()) for d in tiny_tiles["dates"])
    assert inside["n_pixels_grid"] == inside["n_pixels"] == n and inside["imaged_fraction"] == best / n == 1.0
    assert not {"PARTIAL_IMAGERY_COVERAGE", "NO_IMAGERY_COVERAGE", "PLOT_TOO_SMALL"} & set(inside["growth_flags"])


def test_a_plot_enlarged_sixty_times_is_lent_on_what_is_seen_only(tiny_tiles):
    """A plot in the tile's corner redrawn 60x larger (same centre) is mostly off the imagery: its
    imaged fraction is the share rasterize puts on the tile, and it is flagged."""
    from test_zonal import _files

    small = pixel_box(44, 44, 48, 48)  # 16 px in the south-east corner
    big = shapely.affinity.rotate(shapely.affinity.scale(small, 60, 60), 17)  # 240 px wide; edges off the lattice
    plots = gpd.GeoDataFrame({"plot_id": ["small", "big"], "declared_crop": "winter_wheat", "region": "r"},
                             geometry=[small, big], crs=CRS)
    ts = zonal.plot_timeseries(_files(tiny_tiles), plots)
    whole = _centres(big, -200, -200, 480, 480)
    assert whole == pytest.approx(240 * 240, rel=0.01)
    got = ts.groupby("plot_id")[["n_pixels", "n_pixels_grid"]].first()
    assert got.loc["big", "n_pixels_grid"] == whole and got.loc["big", "n_pixels"] == _centres(big, 0, 0, 48, 48)
    assert got.loc["small", "n_pixels_grid"] == got.loc["small", "n_pixels"] == 16
    g = growth.growth_analysis(ts, plots, CROPS, POLICY, END, END).metrics.set_index("plot_id")
    seen = max(int((_inside_tile(big) & _valid(tiny_tiles, d)).sum()) for d in tiny_tiles["dates"])
    assert g.loc["big", "imaged_fraction"] == pytest.approx(seen / whole, abs=1e-12) and seen / whole < 0.05
    assert "PARTIAL_IMAGERY_COVERAGE" in g.loc["big", "growth_flags"]
    assert g.loc["small", "imaged_fraction"] == 1.0


def test_grid_counts_equal_rasterize_for_random_polygons_anywhere():
    """Irregular polygons, holes, multipolygons, huge and far-away ones: the unbounded count equals
    rasterize on a grid that contains each polygon."""
    rng = np.random.default_rng(5)
    geoms = []
    for i in range(80):
        cx, cy = rng.uniform(-3000, 3000), rng.uniform(-3000, 3000)  # pixel coordinates, mostly off any tile
        r = rng.uniform(0.2, 60) if i % 10 else rng.uniform(100, 300)
        x0, y0 = ORIGIN
        g = shapely.Point(x0 + 10 * cx, y0 - 10 * cy).buffer(10 * r, quad_segs=int(rng.integers(1, 6)))
        g = shapely.affinity.rotate(shapely.affinity.scale(g, rng.uniform(0.3, 1.5), 1.0), rng.uniform(0, 180))
        if i % 7 == 0 and r > 5:
            g = g.difference(shapely.Point(x0 + 10 * cx, y0 - 10 * cy).buffer(10 * r / 3))
        if i % 11 == 0:
            g = shapely.MultiPolygon([g, shapely.affinity.translate(g, 10 * 3 * r + 50, 0)]) if g.geom_type == "Polygon" else g
        geoms.append(g)
    geoms.append(_poly((2000.1, -900.1), (2000.4, -900.1), (2000.4, -900.4)))  # far away and smaller than a pixel
    got = zonal.grid_pixel_counts(np.array(geoms, dtype=object), TRANSFORM)
    for g, n in zip(geoms, got):
        x0, y0, x1, y1 = g.bounds
        c0, r0 = int(np.floor((x0 - ORIGIN[0]) / 10)) - 1, int(np.floor((ORIGIN[1] - y1) / 10)) - 1
        c1, r1 = int(np.ceil((x1 - ORIGIN[0]) / 10)) + 1, int(np.ceil((ORIGIN[1] - y0) / 10)) + 1
        assert n == _centres(g, c0, r0, c1 - c0, r1 - r0)
    assert (got == 0).sum() >= 1 and got.max() > 10_000


def test_window_edges_count_the_whole_polygon_and_inside_plots_stay_bit_identical(tiny_tiles, tiny_plots):
    """A window cut through plots: n_pixels counts the centres in the window, n_pixels_grid the
    polygon's; every statistic of plots the window holds whole is bit-identical to the full tile's."""
    from agrisat.io import tiles
    from test_zonal import _files

    files = _files(tiny_tiles)
    part = tiles.NdviFiles(*_window_args(tiny_tiles, tiles, (0, 0, 26, 48)), strip_px=16)
    cut = zonal.plot_timeseries(part, tiny_plots).set_index(["plot_id", "date"])
    full = zonal.plot_timeseries(files, tiny_plots).set_index(["plot_id", "date"])
    for pid, g in zip(tiny_plots["plot_id"], tiny_plots.geometry):
        assert (cut.loc[pid, "n_pixels"] == _centres(g, 0, 0, 26, 48)).all()
        assert (cut.loc[pid, "n_pixels_grid"] == _centres(g, 0, 0, 48, 48)).all()
        assert (full.loc[pid, "n_pixels_grid"] == full.loc[pid, "n_pixels"]).all()
    pd.testing.assert_frame_equal(cut.loc[["A"]], full.loc[["A"]], check_exact=True)  # A lies in columns 2..19


def _window_args(tiny_tiles, tiles, cols_rows):
    from rasterio.windows import Window

    idx = tiles.read_index(tiny_tiles["index"])
    chosen = tiles.select_scenes(idx, "tiny", ["B04", "B08", "SCL"], pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))
    grid = tiles.common_grid(chosen)
    c0, r0, w, h = cols_rows
    return chosen, grid, Window(c0, r0, w, h), "B04", "B08", "SCL", CLOUD_CLASSES


def test_a_plot_without_any_series_row_still_gets_a_row():
    dates = pd.date_range("2021-03-01", "2021-07-20", freq="10D")
    vals = np.interp(np.arange(len(dates)), [0, 6, 10, 14], [0.3, 0.85, 0.85, 0.3])
    series = pd.DataFrame({"plot_id": "ok", "date": dates, "mean": vals, "valid_fraction": 1.0, "n_pixels": 100,
                           "n_pixels_grid": 100, "count": 100})
    plots = pd.DataFrame({"plot_id": ["ok", "ghost"], "declared_crop": "winter_wheat", "region": "r"})
    g = growth.growth_analysis(series, plots, CROPS, POLICY, END, END).metrics.set_index("plot_id")
    assert list(g.index) == ["ok", "ghost"]
    assert g.loc["ghost", "growth_flags"][0] == "NO_IMAGERY_COVERAGE" and g.loc["ghost", "imaged_fraction"] == 0.0
    assert g.loc["ok", "growth_flags"] == [] and g.loc["ok", "imaged_fraction"] == 1.0


def test_old_series_without_the_column_get_it_from_the_polygons(coverage_config):
    """A previous run's or an unfinished partition's series written before n_pixels_grid existed:
    recomputed from the polygon (not assumed equal to n_pixels, which would call a half-seen plot whole)."""
    cfg = load_run_config(coverage_config)
    plots = _plots()
    grid = extract.open_imagery(cfg, plots, ["B04", "B08", "SCL"])[3]
    old = pd.DataFrame({"plot_id": ["half", "half", "inside"], "date": pd.to_datetime(["2021-04-01"] * 3),
                        "n_pixels": [1, 1, 2], "count": [1, 1, 2]})
    got = extract._with_grid_counts(old, plots, grid)
    assert list(got.columns) == ["plot_id", "date", "n_pixels", "n_pixels_grid", "count"]
    assert list(got["n_pixels_grid"]) == [_centres(GEOMS["half"], 0, 0, 100, 48)] * 2 + [_centres(GEOMS["inside"], 0, 0, 48, 48)]


def test_a_run_with_a_plot_off_the_imagery_finishes_and_reports_it(coverage_config):
    from pipelines.seasonal import run_seasonal

    res = run_seasonal(coverage_config, run_id="cov-run")
    out = gpd.read_parquet(res.path / "plots.parquet").set_index("plot_id")
    assert "NO_IMAGERY_COVERAGE" in out.loc["far", "flags"]
    assert "PARTIAL_IMAGERY_COVERAGE" in out.loc["half", "flags"]
    assert "PLOT_TOO_SMALL" in out.loc["sub", "flags"]
    details = json.loads(out.loc["half", "flag_details"])
    assert details["PARTIAL_IMAGERY_COVERAGE"].endswith("< 90%")
    assert out.loc["far", "imaged_fraction"] == 0.0 and out.loc["inside", "imaged_fraction"] == 1.0
    ts = pd.read_parquet(res.path / "plot_timeseries.parquet")
    assert (ts.loc[ts["plot_id"] == "far", "n_pixels"] == 0).all()


def test_an_incremental_run_from_a_run_without_the_column_equals_a_full_run(coverage_config, tmp_path):
    """The previous run's series predates n_pixels_grid: the reused dates get it from the polygons,
    so the half-seen plot keeps its flag and every output equals a full run's."""
    from pipelines.seasonal import run_seasonal

    cfg = yaml.safe_load(coverage_config.read_text())
    cfg["run"]["as_of"] = "2021-05-15"
    early = tmp_path / "early.yaml"
    early.write_text(yaml.safe_dump(cfg))
    may = run_seasonal(early, run_id="may")
    stored = may.path / "plot_timeseries.parquet"
    pd.read_parquet(stored).drop(columns="n_pixels_grid").to_parquet(stored, index=False)  # as older code wrote it
    inc = run_seasonal(coverage_config, run_id="june-inc", incremental_from="may")
    full = run_seasonal(coverage_config, run_id="june-full")
    for name in ("plot_timeseries.parquet", "plots.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(full.path / name), pd.read_parquet(inc.path / name), check_exact=True)
    out = pd.read_parquet(inc.path / "plots.parquet").set_index("plot_id")
    assert "PARTIAL_IMAGERY_COVERAGE" in out.loc["half", "flags"]
