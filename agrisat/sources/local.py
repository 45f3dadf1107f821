"""Local GeoTIFF/COG tiles: an index file or a folder scan, on one grid or on many.

Files are listed one row per (date, band, file). Several files of one date and band are the tiles
of that acquisition (neighbouring MGRS tiles, or two UTM zones); they are mosaicked onto one target
grid, reprojected with nearest resampling (no invented values; SCL classes stay classes), the first
file in path order winning where tiles overlap. When every file already sits on the target grid,
the cube comes from ``tiles.open_cube`` unchanged: no warping, the same bits as before.

A file whose header cannot be read costs its date, not the run: the date is skipped with the
reason (``SceneReport``), which the run manifest records and counts.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import rasterio
import xarray as xr
from pyproj import CRS as ProjCRS, Transformer
from rasterio.enums import Resampling
from rasterio.transform import Affine, from_origin
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from agrisat import indices
from agrisat.config import ImagerySection
from agrisat.errors import ImageryError, InputDataError
from agrisat.io import tiles
from agrisat.sources import SceneReport

# Band names and quality-band semantics per product. ``exclude_classes`` for a classification band
# (Sentinel-2 SCL), ``exclude_bits`` for a bit-packed one (Landsat QA_PIXEL, see scenes.py).
# ``scale``/``offset`` apply when a file's header and the index carry none.
PROFILES: dict[str, dict] = {
    "sentinel2_l2a": {"red": "B04", "nir": "B08", "quality": "SCL", "exclude_classes": (0, 1, 3, 8, 9, 10, 11),
                      "exclude_bits": None, "scale": 1e-4, "offset": 0.0, "nodata": 65535},
    # USGS Landsat 8-9 Collection 2 Level-2 surface reflectance: DN * 2.75e-05 - 0.2, fill 0.
    "landsat_c2_l2": {"red": "SR_B4", "nir": "SR_B5", "quality": "QA_PIXEL", "exclude_classes": (),
                      "exclude_bits": (0, 1, 2, 3, 4, 5), "scale": 2.75e-5, "offset": -0.2, "nodata": 0},
}

# Folder layouts a scan understands: agrisat's own <area>/<YYYY-MM-DD>/<band>.tif and USGS Landsat
# Collection 2 product files (LC09_L2SP_198024_20230415_20230417_02_T1_SR_B4.TIF).
LAYOUTS = {
    "agrisat": re.compile(r"(?P<area>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<band>[^/.]+)\.tiff?$", re.I),
    "landsat": re.compile(r"(?P<area>L[COTEM]0\d_L2S[PR]_\d{6})_(?P<date>\d{8})_\d{8}_\d{2}_T[12]_"
                          r"(?P<band>SR_B\d|ST_B\d+|QA_PIXEL|QA_RADSAT)\.tiff?$", re.I),
}


def scan_folder(root: str | Path, layout: str = "agrisat", profile: str | None = None) -> pd.DataFrame:
    """Index rows (as ``tiles.read_index`` returns) for every GeoTIFF under ``root`` matching
    ``layout``; CRS, size, nodata, scale and offset come from each file's header (the profile's
    values where the header has none)."""
    root = Path(root)
    if not root.is_dir():
        raise InputDataError(f"{root}: imagery folder not found")
    pattern = LAYOUTS[layout]
    prof = PROFILES.get(profile or "", {})
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".tif", ".tiff")):
        rel = path.relative_to(root).as_posix()
        m = pattern.search(rel)
        if not m:
            continue
        row = {"area": m["area"], "date": pd.Timestamp(m["date"]), "band": m["band"].upper() if layout == "landsat" else m["band"],
               "path": rel, "abspath": str(path.resolve()), "crs": None, "width": None, "height": None,
               "nodata": prof.get("nodata"), "scale": prof.get("scale", 1.0), "offset": prof.get("offset", 0.0)}
        if row["band"] in ("SCL", "QA_PIXEL", "QA_RADSAT"):  # quality bands are never scaled
            row.update(scale=1.0, offset=0.0, nodata=0 if row["band"] == "SCL" else 1 if row["band"] == "QA_PIXEL" else None)
        try:
            with rasterio.open(path) as ds:
                row.update(crs=ds.crs.to_string() if ds.crs else None, width=ds.width, height=ds.height)
                if ds.nodata is not None:
                    row["nodata"] = ds.nodata
                if ds.scales[0] != 1.0 or ds.offsets[0] != 0.0:
                    row.update(scale=ds.scales[0], offset=ds.offsets[0])
        except rasterio.errors.RasterioIOError:
            pass  # kept: LocalTiles.scenes skips its date with the reason
        rows.append(row)
    if not rows:
        raise ImageryError(f"{root}: no GeoTIFF matches the {layout!r} layout ({pattern.pattern})")
    idx = pd.DataFrame(rows)
    idx.attrs["source"] = str(root)
    return idx


class LocalTiles:
    """``ImagerySource`` over an index (``tiles.read_index`` or ``scan_folder``) of local files."""

    def __init__(self, index: pd.DataFrame, area: str, *, grid_crs: str | None = None, resolution: float | None = None,
                 resampling: str = "nearest") -> None:
        self.index = index
        self.area = area
        self.grid_crs = grid_crs
        self.resolution = resolution
        self.resampling = Resampling[resampling]
        self._grids: dict[str, tiles.Grid] = {}  # each file's header, read once (scenes() probes them all)

    def _grid_of(self, path: str) -> tiles.Grid:
        if path not in self._grids:
            with rasterio.open(path) as ds:
                if ds.crs is None:
                    raise ImageryError("no CRS in the file")
                self._grids[path] = tiles.Grid(ds.crs.to_string(), ds.transform, ds.width, ds.height)
        return self._grids[path]

    def scenes(self, bands: list[str], start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, SceneReport]:
        """Rows of every usable date in [start, end], all bands present; dates with an unreadable
        file are left out and reported. Raises when nothing usable is left."""
        rows = tiles.select_scenes(self.index, self.area, bands, pd.Timestamp(start), pd.Timestamp(end))
        report, bad = SceneReport(), set()
        for r in rows.itertuples():
            try:
                self._grid_of(r.abspath)
            except (rasterio.errors.RasterioIOError, ImageryError) as e:
                if r.date not in bad:
                    report.skip(r.date, f"{r.abspath}: cannot open tile: {' '.join(str(e).split())[:200]}")
                bad.add(r.date)
        rows = rows[~rows["date"].isin(bad)].reset_index(drop=True)
        if rows.empty:
            raise ImageryError(f"{self.index.attrs.get('source', 'imagery index')}: every {self.area} date between "
                               f"{pd.Timestamp(start).date()} and {pd.Timestamp(end).date()} was skipped: {report.skipped}")
        for d in sorted(rows["date"].unique()):
            grp = rows[rows["date"] == d]
            report.used.append({"date": f"{pd.Timestamp(d):%Y-%m-%d}", "source": "local",
                                "detail": f"{grp['abspath'].nunique()} file(s)"})
        return rows, report

    def grid(self, scenes: pd.DataFrame, crs: str | None = None) -> tiles.Grid:
        """The files' own grid when they share one (and no other is asked for); otherwise the
        union of their footprints on ``crs`` (default: ``grid_crs``, else the first file's) at
        ``resolution`` (default: the finest pixel), snapped to whole pixels from the CRS origin."""
        grids = [self._grid_of(p) for p in scenes["abspath"].unique()]
        first = grids[0]
        crs = crs or self.grid_crs or first.crs
        if len(set(grids)) == 1 and ProjCRS(crs) == ProjCRS(first.crs) and self.resolution in (None, first.transform.a):
            return first
        res = self.resolution or min(abs(g.transform.a) for g in grids)
        x0 = y0 = math.inf
        x1 = y1 = -math.inf
        for g in grids:
            left, bottom, right, top = g.bounds
            xs, ys = _densified_edges(left, bottom, right, top)
            if ProjCRS(g.crs) != ProjCRS(crs):
                xs, ys = Transformer.from_crs(g.crs, crs, always_xy=True).transform(xs, ys)
            x0, y0, x1, y1 = min(x0, min(xs)), min(y0, min(ys)), max(x1, max(xs)), max(y1, max(ys))
        x0, y0 = math.floor(x0 / res) * res, math.floor(y0 / res) * res
        x1, y1 = math.ceil(x1 / res) * res, math.ceil(y1 / res) * res
        return tiles.Grid(crs, from_origin(x0, y1, res, res), round((x1 - x0) / res), round((y1 - y0) / res))

    def open_cube(self, scenes: pd.DataFrame, grid: tiles.Grid, window: Window, chunk_px: int = 1024) -> xr.DataArray:
        if self._on_grid(scenes, grid):
            return tiles.open_cube(scenes, grid, window, chunk_px)
        return _warped_cube(scenes, grid, window, chunk_px, self.resampling)

    def _on_grid(self, scenes: pd.DataFrame, grid: tiles.Grid) -> bool:
        """One file per date and band, each exactly on ``grid``: no warping or mosaicking needed."""
        return not scenes.duplicated(["date", "band"]).any() and all(
            self._grid_of(p) == grid for p in scenes["abspath"].unique())

    def open_ndvi(self, scenes: pd.DataFrame, grid: tiles.Grid, window: Window, imagery: ImagerySection,
                  chunk_px: int = 1024) -> tiles.NdviFiles | xr.DataArray:
        """Masked NDVI over ``window``, as ``zonal.plot_timeseries`` reads it. Files on the grid with
        an SCL-style quality band give a ``tiles.NdviFiles`` reader (each date task decodes its own
        strips of ``chunk_px`` rows and computes mask + NDVI from the integers; the same bits as the
        step-by-step path, tested); mosaics and bit-packed quality bands give the lazy (time, y, x) cube."""
        im = imagery
        if im.exclude_bits is None and self._on_grid(scenes, grid):
            return tiles.NdviFiles(scenes, grid, window, im.red, im.nir, im.quality, im.exclude_classes,
                                   strip_px=chunk_px)
        cube = self.open_cube(scenes, grid, window, chunk_px)
        return indices.masked_ndvi(cube, im.red, im.nir, im.quality, im.exclude_classes, exclude_bits=im.exclude_bits)

    def cube(self, bbox: tuple[float, float, float, float], crs: str, start: pd.Timestamp, end: pd.Timestamp,
             bands: list[str]) -> tuple[xr.DataArray, SceneReport]:
        """The ``ImagerySource`` call: bands over ``bbox`` (in ``crs``, the target grid's CRS)."""
        scenes, report = self.scenes(bands, start, end)
        grid = self.grid(scenes, crs)
        return self.open_cube(scenes, grid, tiles.window_for_bounds(grid, bbox, pad=0)), report


def _densified_edges(x0: float, y0: float, x1: float, y1: float, n: int = 21) -> tuple[list[float], list[float]]:
    """Points along a rectangle's edges: a footprint's bounds in another CRS are not its corners'."""
    t = np.linspace(0.0, 1.0, n)
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full(n, x1), x1 - (x1 - x0) * t, np.full(n, x0)])
    ys = np.concatenate([np.full(n, y0), y0 + (y1 - y0) * t, np.full(n, y1), y1 - (y1 - y0) * t])
    return xs.tolist(), ys.tolist()


def _warped_cube(scenes: pd.DataFrame, grid: tiles.Grid, window: Window, chunk_px: int, resampling: Resampling) -> xr.DataArray:
    """Like ``tiles.open_cube`` (one task per date and block, every band), but each block is a
    mosaic of every file of that date and band, warped onto the block's piece of ``grid``."""
    dates = sorted(scenes["date"].unique())
    bands = sorted(scenes["band"].unique())
    files: dict[tuple, list] = {}
    for r in scenes.sort_values("abspath").itertuples():
        files.setdefault((r.date, r.band), []).append(
            (r.abspath, None if pd.isna(r.nodata) else float(r.nodata), float(r.scale), float(r.offset)))
    t0 = grid.transform @ Affine.translation(window.col_off, window.row_off)
    row_edges = list(range(0, int(window.height), chunk_px)) + [int(window.height)]
    col_edges = list(range(0, int(window.width), chunk_px)) + [int(window.width)]
    planes = []
    for date in dates:
        sources = tuple(tuple(files[(date, b)]) for b in bands)
        rows = []
        for y0, y1 in zip(row_edges[:-1], row_edges[1:]):
            cols = []
            for x0, x1 in zip(col_edges[:-1], col_edges[1:]):
                bt = tuple(t0 @ Affine.translation(x0, y0))[:6]
                block = dask.delayed(_read_mosaic, pure=True)(sources, grid.crs, bt, x1 - x0, y1 - y0, resampling)
                cols.append(da.from_delayed(block, shape=(len(bands), y1 - y0, x1 - x0), dtype=np.float32))
            rows.append(cols)
        planes.append(da.block(rows))
    xs = t0.c + t0.a * (np.arange(int(window.width)) + 0.5)
    ys = t0.f + t0.e * (np.arange(int(window.height)) + 0.5)
    cube = xr.DataArray(da.stack(planes), dims=("time", "band", "y", "x"),
                        coords={"time": pd.DatetimeIndex(dates), "band": bands, "y": ys, "x": xs}, name="reflectance")
    cube.attrs.update(crs=grid.crs, transform=tuple(t0)[:6])
    return cube


def _read_mosaic(sources: tuple, crs: str, transform: tuple, width: int, height: int, resampling: Resampling) -> np.ndarray:
    """(band, y, x) float32 on the block grid: per band, files warped in order, each filling only
    pixels still empty (NaN); scale, offset and nodata of each file honoured."""
    out = np.full((len(sources), height, width), np.nan, dtype=np.float32)
    dst = Affine(*transform)
    for i, band_files in enumerate(sources):
        for path, nodata, scale, offset in band_files:
            try:
                with rasterio.open(path) as src:
                    with WarpedVRT(src, crs=crs, transform=dst, width=width, height=height, resampling=resampling,
                                   src_nodata=nodata, nodata=nodata) as vrt:
                        raw = vrt.read(1)
                        valid = vrt.read_masks(1) > 0
            except rasterio.errors.RasterioIOError as e:
                raise ImageryError(f"{path}: cannot read (warped onto {crs}): {e}") from e
            if nodata is not None:
                valid &= raw != nodata
            vals = indices.reflectance(raw, (nodata, scale, offset), np.empty(raw.shape, np.float32))
            fill = valid & np.isnan(out[i])
            out[i][fill] = vals[fill]
    return out
