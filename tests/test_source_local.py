"""Local tiles: folder scan, mosaics across tiles and UTM zones, Landsat C2 L2, bad files skipped."""

from __future__ import annotations

import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window

from agrisat import indices, zonal
from agrisat.errors import ImageryError, InputDataError
from agrisat.io import tiles
from agrisat.sources.local import LocalTiles, scan_folder
from conftest import ROOT, write_band

SAMPLE = ROOT / "sample_tiles"
START, END = pd.Timestamp("2023-04-01"), pd.Timestamp("2023-04-30")
BANDS = ["B04", "B08", "SCL"]
CLASSES = (0, 1, 3, 8, 9, 10, 11)


def _mol_reference():
    idx = tiles.read_index(SAMPLE / "index.csv")
    chosen = tiles.select_scenes(idx, "mol", BANDS, START, END)
    grid = tiles.common_grid(chosen)
    cube = tiles.open_cube(chosen, grid, Window(0, 0, grid.width, grid.height))
    return chosen, grid, cube


def _ndvi_per_plot(cube):
    plots = gpd.read_file(SAMPLE / "registry" / "plots_mol.geojson").to_crs(cube.attrs["crs"])
    return zonal.plot_timeseries(indices.masked_ndvi(cube, "B04", "B08", "SCL", CLASSES), plots)


def _split(src_path, dst_dir, cols: tuple[int, int], epsg: int | None = None, res: float | None = None):
    """Columns [c0, c1) of a sample file as a tile of its own, optionally warped to another CRS."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    with rasterio.open(src_path) as src:
        win = Window(cols[0], 0, cols[1] - cols[0], src.height)
        arr, t = src.read(1, window=win), src.window_transform(win)
        prof = src.profile | {"width": arr.shape[1], "height": arr.shape[0], "transform": t, "driver": "GTiff"}
        if epsg is None:
            with rasterio.open(dst_dir / src_path.name, "w", **prof) as dst:
                dst.write(arr, 1)
            return
        bounds = rasterio.transform.array_bounds(arr.shape[0], arr.shape[1], t)
        t2, w2, h2 = calculate_default_transform(src.crs, f"EPSG:{epsg}", arr.shape[1], arr.shape[0], *bounds, resolution=res)
        out = np.full((h2, w2), src.nodata, dtype=arr.dtype)
        reproject(arr, out, src_transform=t, src_crs=src.crs, dst_transform=t2, dst_crs=f"EPSG:{epsg}",
                  resampling=Resampling.nearest, src_nodata=src.nodata, dst_nodata=src.nodata)
        with rasterio.open(dst_dir / src_path.name, "w", **(prof | {"width": w2, "height": h2, "transform": t2,
                                                                    "crs": f"EPSG:{epsg}"})) as dst:
            dst.write(out, 1)


def _tiled_index(tmp_path, right_epsg: int | None, right_res: float | None = None) -> pd.DataFrame:
    """The Mol scenes cut into two overlapping tiles per file: columns 0-40 and 30-64, the right one
    optionally in another UTM zone."""
    chosen, _, _ = _mol_reference()
    rows = []
    for r in chosen.itertuples():
        src = SAMPLE / r.path
        for name, cols, epsg in (("left", (0, 40), None), ("right", (30, 64), right_epsg)):
            d = tmp_path / name / r.date.strftime("%Y-%m-%d")
            _split(src, d, cols, epsg, right_res)
            rows.append({"area": "mol", "date": r.date, "band": r.band, "path": f"{name}/{src.name}",
                         "abspath": str(d / src.name), "crs": "", "nodata": r.nodata, "scale": r.scale, "offset": r.offset})
    idx = pd.DataFrame(rows)
    idx.attrs["source"] = str(tmp_path)
    return idx


def test_folder_scan_finds_what_the_index_lists():
    scanned = scan_folder(SAMPLE)
    listed = tiles.read_index(SAMPLE / "index.csv")
    key = ["area", "date", "band", "path"]
    a = scanned[key + ["nodata", "scale"]].sort_values(key).reset_index(drop=True)
    b = listed[key + ["nodata", "scale"]].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_tiles_of_one_grid_mosaic_to_the_whole_scene(tmp_path):
    _, grid, ref = _mol_reference()
    src = LocalTiles(_tiled_index(tmp_path, None), "mol")
    scenes, report = src.scenes(BANDS, START, END)
    assert src.grid(scenes) == grid and len(report.used) == 12
    cube = src.open_cube(scenes, grid, Window(0, 0, grid.width, grid.height), chunk_px=32)
    np.testing.assert_array_equal(cube.values, ref.values)


def test_a_tile_in_the_next_utm_zone_is_reprojected_onto_the_grid(tmp_path):
    # The right tile in EPSG:32632 on a 2.5 m grid: nearest resampling back onto the 10 m grid of
    # EPSG:32631 lands within 2 m of each pixel centre, so it must give back the very pixels.
    _, grid, ref = _mol_reference()
    src = LocalTiles(_tiled_index(tmp_path, 32632, 2.5), "mol", grid_crs=grid.crs, resolution=10.0)
    scenes, _ = src.scenes(BANDS, START, END)
    g = src.grid(scenes)
    assert g.crs == grid.crs and g.transform.a == 10.0
    win = tiles.window_for_bounds(g, grid.bounds, pad=0)
    cube = src.open_cube(scenes, g, win, chunk_px=24)
    assert cube.attrs["transform"] == ref.attrs["transform"]
    # Every pixel but the reprojected tile's outer ring (where nearest may fall outside it).
    np.testing.assert_array_equal(cube.values[..., 1:-1, :-1], ref.values[..., 1:-1, :-1])
    pd.testing.assert_frame_equal(_ndvi_per_plot(cube), _ndvi_per_plot(ref))


def test_unreadable_file_skips_its_date_with_the_reason(tmp_path):
    shutil.copytree(SAMPLE / "mol", tmp_path / "mol")
    (tmp_path / "mol" / "2023-04-10" / "B08.tif").write_bytes(b"not a tiff")
    src = LocalTiles(scan_folder(tmp_path), "mol")
    scenes, report = src.scenes(BANDS, START, END)
    assert sorted(scenes["date"].dt.strftime("%Y-%m-%d").unique()) == [d for d in sorted(
        {r.date.strftime("%Y-%m-%d") for r in _mol_reference()[0].itertuples()}) if d != "2023-04-10"]
    assert report.skipped == [{"date": "2023-04-10", "reason": report.skipped[0]["reason"]}]
    assert "2023-04-10/B08.tif: cannot open tile" in report.skipped[0]["reason"]
    for p in (tmp_path / "mol").rglob("*.tif"):
        p.write_bytes(b"")
    with pytest.raises(ImageryError, match="every mol date .* was skipped"):
        LocalTiles(scan_folder(tmp_path), "mol").scenes(BANDS, START, END)


def test_landsat_collection2_files_scale_offset_and_qa_bits(tmp_path):
    rng = np.random.default_rng(7)
    h = w = 32
    t = from_origin(600000.0, 5600000.0, 30.0, 30.0)
    red = rng.integers(8000, 12000, size=(h, w)).astype("uint16")
    nir = rng.integers(15000, 30000, size=(h, w)).astype("uint16")
    qa = np.full((h, w), 1 << 6, dtype="uint16")  # bit 6: clear
    qa[:8, :] = (1 << 3) | (1 << 1)  # cloud + dilated cloud
    qa[8:12, :] = 1 << 4  # cloud shadow
    qa[12:14, :] = 1 << 7  # water: not excluded by default
    red[20, 20] = 0  # fill
    stem = "LC09_L2SP_198024_20230415_20230417_02_T1"
    for band, arr, nodata in (("SR_B4", red, 0), ("SR_B5", nir, 0), ("QA_PIXEL", qa, 1)):
        write_band(tmp_path / "landsat" / f"{stem}_{band}.TIF", arr, nodata, transform=t)
    idx = scan_folder(tmp_path, layout="landsat", profile="landsat_c2_l2")
    assert set(idx["band"]) == {"SR_B4", "SR_B5", "QA_PIXEL"} and set(idx["area"]) == {"LC09_L2SP_198024"}
    assert idx.loc[idx["band"] == "SR_B4", "scale"].item() == pytest.approx(2.75e-5)
    src = LocalTiles(idx, "LC09_L2SP_198024")
    cube, _ = src.cube((600000.0, 5600000.0 - h * 30, 600000.0 + w * 30, 5600000.0), "EPSG:32631",
                       pd.Timestamp("2023-04-01"), pd.Timestamp("2023-04-30"), ["QA_PIXEL", "SR_B4", "SR_B5"])
    nd = indices.masked_ndvi(cube, "SR_B4", "SR_B5", "QA_PIXEL", (), exclude_bits=(0, 1, 2, 3, 4, 5)).values[0]
    r = red.astype(np.float32) * np.float32(2.75e-5) + np.float32(-0.2)
    n = nir.astype(np.float32) * np.float32(2.75e-5) + np.float32(-0.2)
    want = ((n - r) / (n + r)).astype(np.float32)
    want[:12] = np.nan
    want[20, 20] = np.nan
    np.testing.assert_array_equal(nd, want)


def test_folder_scan_errors_name_the_folder(tmp_path):
    with pytest.raises(InputDataError, match=f"{tmp_path / 'nope'}: imagery folder not found"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "photo.tif").write_bytes(b"x")
    with pytest.raises(ImageryError, match=f"{tmp_path}: no GeoTIFF matches the 'agrisat' layout"):
        scan_folder(tmp_path)
