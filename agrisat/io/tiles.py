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

import contextlib
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

# GDAL block cache (MB) while NdviFiles reads: room for the block rows that two strips share (a
# window not aligned to the blocks), ~30 MB per date task across a whole tile.
BLOCK_CACHE_MB = 128
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
    window = window_within(grid, bounds, pad)
    if window is None:
        raise ImageryError(f"plots {bounds} lie outside the imagery {grid.bounds}")
    return window


def window_within(grid: Grid, bounds: tuple[float, float, float, float], pad: int = 1) -> Window | None:
    """``window_for_bounds``, or None when the bounds miss the grid: the pipeline then reports its
    plots as unseen (NO_IMAGERY_COVERAGE) instead of stopping the whole run."""
    w = from_bounds(*bounds, transform=grid.transform)
    col0 = max(math.floor(w.col_off) - pad, 0)
    row0 = max(math.floor(w.row_off) - pad, 0)
    col1 = min(math.ceil(w.col_off + w.width) + pad, grid.width)
    row1 = min(math.ceil(w.row_off + w.height) + pad, grid.height)
    if col1 <= col0 or row1 <= row0:
        return None
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


def _ndvi_sources(scenes: pd.DataFrame, red: str, nir: str, quality: str | None) -> tuple[list, list]:
    """Dates, and per date the (path, nodata, scale, offset) of its red, NIR and quality (or None) files."""
    bands = sorted(scenes["band"].unique())
    for name in (red, nir) + ((quality,) if quality else ()):
        if name not in bands:
            raise MissingBandError(f"band {name!r} not in cube bands {bands}")
    dates = sorted(scenes["date"].unique())
    lookup = {(r.date, r.band): r for r in scenes.itertuples()}

    def source(date, band):
        if band is None:
            return None
        r = lookup[(date, band)]
        return (r.abspath, None if pd.isna(r.nodata) else float(r.nodata), float(r.scale), float(r.offset))

    return dates, [(source(d, red), source(d, nir), source(d, quality or None)) for d in dates]


class NdviFiles:
    """Masked NDVI straight from on-grid files, one date and strip of rows at a time: the reader
    ``zonal.plot_timeseries`` takes on the pipeline's hot path (a ``zonal.RowSource``). One task per
    date opens its three files once and decodes each strip into the task's plane; the values are
    ``indices.masked_ndvi(open_cube(...))``'s, bit for bit (``indices.masked_ndvi_from_raw``, tested)."""

    def __init__(self, scenes: pd.DataFrame, grid: Grid, window: Window, red: str, nir: str, quality: str | None,
                 exclude_classes: tuple[int, ...] | list[int], strip_px: int = 1024):
        dates, self.sources = _ndvi_sources(scenes, red, nir, quality)
        self.dates = pd.DatetimeIndex(dates)
        self.exclude_classes = tuple(int(c) for c in exclude_classes)
        self.col_off, self.row_off = int(window.col_off), int(window.row_off)
        self.width, self.height = int(window.width), int(window.height)
        self.strip_px = int(strip_px)
        self.crs = grid.crs
        self.transform = tuple(grid.transform @ Affine.translation(self.col_off, self.row_off))[:6]

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.sources, self.exclude_classes, self.col_off, self.row_off, self.width,
                self.height, self.strip_px, self.transform)

    def __repr__(self) -> str:
        return f"NdviFiles({len(self.dates)} dates, {self.width}x{self.height} px at ({self.col_off}, {self.row_off}))"

    @contextlib.contextmanager
    def open_date(self, t: int):
        """Open date ``t``'s files; yields ``read(y0, y1, out)`` writing window rows [y0, y1) into ``out``."""
        srcs = self.sources[t]
        with contextlib.ExitStack() as stack:
            # Strips are read top to bottom, so GDAL never reads a decoded block twice: its block cache
            # (5% of RAM by default) only held used blocks -- 1 GB and 10-20% of the time on a full
            # tile (BENCHMARKS.md). GDAL's cache size is per process; rasterio restores it on exit.
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=BLOCK_CACHE_MB))
            handles = []
            for s in srcs:
                if s is None:
                    handles.append(None)
                    continue
                try:
                    handles.append(stack.enter_context(rasterio.open(s[0])))
                except rasterio.errors.RasterioIOError as e:
                    raise ImageryError(f"{s[0]}: cannot open tile: {e}") from e

            # One set of integer buffers per date, reused by its strips (fresh ones cost page faults).
            bufs = [None if ds is None else np.empty((self.strip_px, self.width), ds.dtypes[0]) for ds in handles]

            def read(y0: int, y1: int, out: np.ndarray) -> None:
                w = Window(self.col_off, self.row_off + y0, self.width, y1 - y0)
                raws = []
                for s, ds, buf in zip(srcs, handles, bufs):
                    try:
                        raws.append(None if ds is None else ds.read(1, window=w, out=buf[:y1 - y0]))
                    except rasterio.errors.RasterioIOError as e:
                        raise ImageryError(f"{s[0]}: cannot read window {w}: {e}") from e
                red, nir, quality = srcs
                indices.masked_ndvi_from_raw(raws[0], raws[1], raws[2], red[1:], nir[1:],
                                             None if quality is None else quality[1:], self.exclude_classes, out=out)

            yield read
