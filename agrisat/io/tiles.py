"""Local GeoTIFF/COG tiles listed in an index file -> dask-backed xarray cube.

The index is a CSV with one row per band-date file::

    area,date,band,path,crs,width,height,nodata,scale,offset,dtype

``path`` is relative to the index file. The cube has dims (time, band, y, x), float32 reflectance
(scale and offset honoured), NaN where the file says nodata. Each chunk is one windowed read of one
file, so nothing holds a whole tile season in memory. All files of an area must share one grid;
reprojection of mixed grids belongs to the imagery-source layer (issue 3), and until then a mismatch
is an error naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import rasterio
import xarray as xr
from rasterio.transform import Affine
from rasterio.windows import Window, from_bounds

from agrisat import indices
from agrisat.errors import ImageryError, InputDataError, MissingBandError

INDEX_COLUMNS = ("area", "date", "band", "path", "crs", "nodata", "scale", "offset")


@dataclass(frozen=True)
class Grid:
    crs: str
    transform: Affine
    width: int
    height: int

    def __str__(self) -> str:
        t = self.transform
        return f"{self.crs} {self.width}x{self.height} px, origin ({t.c}, {t.f}), pixel ({t.a}, {t.e})"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))


def read_index(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{path}: imagery index not found")
    try:
        idx = pd.read_csv(path, dtype={"area": str, "band": str, "path": str, "crs": str})
    except Exception as e:
        raise InputDataError(f"{path}: cannot read imagery index: {e}") from e
    missing = [c for c in INDEX_COLUMNS if c not in idx.columns]
    if missing:
        raise InputDataError(f"{path}: imagery index lacks column(s) {', '.join(missing)}")
    dates = pd.to_datetime(idx["date"], errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna())[0])
        raise InputDataError(f"{path}: row {row + 2}: unparseable date {idx['date'].iloc[row]!r}")
    idx["date"] = dates
    idx["abspath"] = [str((path.parent / p).resolve()) for p in idx["path"]]
    idx.attrs["source"] = str(path)
    return idx


def select_scenes(
    index: pd.DataFrame, area: str, bands: list[str], start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Rows for ``area`` and ``bands`` between start and end inclusive; every date must have every band."""
    src = index.attrs.get("source", "imagery index")
    rows = index[index["area"] == area]
    if rows.empty:
        known = ", ".join(sorted(index["area"].unique()))
        raise ImageryError(f"{src}: no imagery for area {area!r} (areas: {known})")
    for band in bands:
        if band not in set(rows["band"]):
            raise MissingBandError(
                f"{src}: band {band!r} not in area {area!r} (bands: {', '.join(sorted(set(rows['band'])))})"
            )
    rows = rows[(rows["date"] >= start) & (rows["date"] <= end) & rows["band"].isin(bands)]
    if rows.empty:
        raise ImageryError(f"{src}: no {area} imagery between {start.date()} and {end.date()}")
    for date, grp in rows.groupby("date"):
        lacking = sorted(set(bands) - set(grp["band"]))
        if lacking:
            raise MissingBandError(f"{src}: {area} {date.date()}: band(s) {', '.join(lacking)} missing")
    return rows.sort_values(["date", "band"]).reset_index(drop=True)


def common_grid(scenes: pd.DataFrame) -> Grid:
    """Open every file's header; all must share CRS, transform and size."""
    grid: Grid | None = None
    first = ""
    for p in scenes["abspath"]:
        try:
            with rasterio.open(p) as ds:
                g = Grid(ds.crs.to_string() if ds.crs else "", ds.transform, ds.width, ds.height)
        except rasterio.errors.RasterioIOError as e:
            raise ImageryError(f"{p}: cannot open tile: {e}") from e
        if grid is None:
            grid, first = g, p
        elif g != grid:
            raise ImageryError(f"{p}: grid [{g}] differs from {first} [{grid}]; mixed grids need reprojection")
    assert grid is not None
    return grid


def window_for_bounds(grid: Grid, bounds: tuple[float, float, float, float], pad: int = 1) -> Window:
    """Pixel window covering ``bounds`` (grid CRS) plus ``pad`` pixels, clipped to the grid."""
    w = from_bounds(*bounds, transform=grid.transform)
    col0 = max(math.floor(w.col_off) - pad, 0)
    row0 = max(math.floor(w.row_off) - pad, 0)
    col1 = min(math.ceil(w.col_off + w.width) + pad, grid.width)
    row1 = min(math.ceil(w.row_off + w.height) + pad, grid.height)
    if col1 <= col0 or row1 <= row0:
        raise ImageryError(f"plots {bounds} lie outside the imagery {grid.bounds}")
    return Window(col0, row0, col1 - col0, row1 - row0)


def _read_raw(path: str, window: Window) -> np.ndarray:
    try:
        with rasterio.open(path) as ds:
            return ds.read(1, window=window)
    except rasterio.errors.RasterioIOError as e:
        raise ImageryError(f"{path}: cannot read window {window}: {e}") from e


def _read_block(path: str, window: Window, nodata: float | None, scale: float, offset: float,
                out: np.ndarray | None = None) -> np.ndarray:
    raw = _read_raw(path, window)
    # One pass per step, in place, skipping x1 and +0 (exact no-ops on these non-negative integers):
    # this is the hot loop of every run, over every pixel of every band and date. Converting inside
    # the multiply (dtype=float32) gives the same bits as astype(float32) followed by *= scale.
    out = indices.reflectance(raw, (nodata, scale, offset), np.empty(raw.shape, np.float32) if out is None else out)
    if nodata is not None and not np.isnan(nodata):
        np.copyto(out, np.float32(np.nan), where=raw == nodata)
    return out


def _read_bands(sources: tuple[tuple[str, float | None, float, float], ...], window: Window) -> np.ndarray:
    """All bands of one date and block, (band, y, x): one task instead of one per band, so the
    mask and index that follow see every band of a pixel in one chunk."""
    out = np.empty((len(sources), int(window.height), int(window.width)), np.float32)
    for k, (path, nodata, scale, offset) in enumerate(sources):
        _read_block(path, window, nodata, scale, offset, out=out[k])
    return out


def _read_masked_ndvi(sources: tuple, window: Window, exclude_classes: tuple[int, ...]) -> np.ndarray:
    """Masked NDVI of one date and block, (y, x), from the red, NIR and quality files' integers."""
    red, nir, quality = sources
    raws = [None if s is None else _read_raw(s[0], window) for s in sources]
    return indices.masked_ndvi_from_raw(raws[0], raws[1], raws[2], red[1:], nir[1:],
                                        None if quality is None else quality[1:], exclude_classes)


def open_cube(scenes: pd.DataFrame, grid: Grid, window: Window, chunk_px: int = 1024) -> xr.DataArray:
    """Lazy cube (time, band, y, x) over ``window``: one delayed windowed read per date and block,
    holding every band (chunks are (1, n_bands, chunk_px, chunk_px))."""
    dates = sorted(scenes["date"].unique())
    bands = sorted(scenes["band"].unique())
    lookup = {(r.date, r.band): r for r in scenes.itertuples()}
    row_edges = list(range(0, int(window.height), chunk_px)) + [int(window.height)]
    col_edges = list(range(0, int(window.width), chunk_px)) + [int(window.width)]
    planes = []
    for date in dates:
        sources = tuple(
            (r.abspath, None if pd.isna(r.nodata) else float(r.nodata), float(r.scale), float(r.offset))
            for r in (lookup[(date, band)] for band in bands)
        )
        rows = []
        for y0, y1 in zip(row_edges[:-1], row_edges[1:]):
            cols = []
            for x0, x1 in zip(col_edges[:-1], col_edges[1:]):
                w = Window(window.col_off + x0, window.row_off + y0, x1 - x0, y1 - y0)
                block = dask.delayed(_read_bands, pure=True)(sources, w)
                cols.append(da.from_delayed(block, shape=(len(bands), y1 - y0, x1 - x0), dtype=np.float32))
            rows.append(cols)
        planes.append(da.block(rows))  # (band, y, x) blocks along y and x
    data = da.stack(planes)
    t = grid.transform @ Affine.translation(window.col_off, window.row_off)
    xs = t.c + t.a * (np.arange(int(window.width)) + 0.5)
    ys = t.f + t.e * (np.arange(int(window.height)) + 0.5)
    cube = xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords={"time": pd.DatetimeIndex(dates), "band": bands, "y": ys, "x": xs},
        name="reflectance",
    )
    cube.attrs.update(crs=grid.crs, transform=tuple(t)[:6])
    return cube


def open_masked_ndvi(scenes: pd.DataFrame, grid: Grid, window: Window, red: str, nir: str, quality: str | None,
                     exclude_classes: tuple[int, ...] | list[int], chunk_px: int = 1024) -> xr.DataArray:
    """``indices.masked_ndvi(open_cube(...), red, nir, quality, exclude_classes)`` -- the same values
    bit for bit, dims, coords and attrs -- with one task per date and block that decodes the three
    files and computes the masked NDVI from their integers (``indices.masked_ndvi_from_raw``): no
    float32 reflectance cube is materialised, and the graph has one layer instead of three."""
    bands = sorted(scenes["band"].unique())
    for name in (red, nir) + ((quality,) if quality else ()):
        if name not in bands:
            raise MissingBandError(f"band {name!r} not in cube bands {bands}")
    dates = sorted(scenes["date"].unique())
    lookup = {(r.date, r.band): r for r in scenes.itertuples()}
    classes = tuple(int(c) for c in exclude_classes)
    row_edges = list(range(0, int(window.height), chunk_px)) + [int(window.height)]
    col_edges = list(range(0, int(window.width), chunk_px)) + [int(window.width)]

    def source(date, band):
        if band is None:
            return None
        r = lookup[(date, band)]
        return (r.abspath, None if pd.isna(r.nodata) else float(r.nodata), float(r.scale), float(r.offset))

    planes = []
    for date in dates:
        sources = (source(date, red), source(date, nir), source(date, quality or None))
        rows = []
        for y0, y1 in zip(row_edges[:-1], row_edges[1:]):
            cols = []
            for x0, x1 in zip(col_edges[:-1], col_edges[1:]):
                w = Window(window.col_off + x0, window.row_off + y0, x1 - x0, y1 - y0)
                block = dask.delayed(_read_masked_ndvi, pure=True)(sources, w, classes)
                cols.append(da.from_delayed(block, shape=(y1 - y0, x1 - x0), dtype=np.float32))
            rows.append(cols)
        planes.append(da.block(rows))
    data = da.stack(planes)
    t = grid.transform @ Affine.translation(window.col_off, window.row_off)
    xs = t.c + t.a * (np.arange(int(window.width)) + 0.5)
    ys = t.f + t.e * (np.arange(int(window.height)) + 0.5)
    out = xr.DataArray(data, dims=("time", "y", "x"), coords={"time": pd.DatetimeIndex(dates), "y": ys, "x": xs},
                       name="ndvi")
    out.attrs.update(crs=grid.crs, transform=tuple(t)[:6])
    return out
