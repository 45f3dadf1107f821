"""Per-plot statistics of a (time, y, x) NDVI cube: the hot path.

Design -- rasterize once, then one pass per date:

1. Every plot belongs to the *strip* (a band of whole rows, the cube's row chunks) that holds its
   last row. One task per strip rasterizes its plots once (pixel-centre rule, ``_centre_pixels``)
   into a gather index: per padded width class, a (plots, width) array of flat pixel positions in
   the window, padded with the position of a NaN sentinel (``_strip_index``).
2. One task per date fills a window-sized NDVI plane strip by strip -- reading the files itself (a
   ``RowSource`` such as ``io.tiles.NdviFiles``) or copying the cube's chunks -- and reduces each
   strip's plots as soon as their last strip is in: gather, sort, percentiles, sums
   (``_strip_stats``). The strip just decoded is still in cache when it is gathered.

So every pixel is decoded once, memory holds one date's plane per running task (it does not grow with
the dates), a plot cut by a chunk or strip boundary is read whole from the plane, overlapping plots
each keep all their pixels, and a plot's numbers depend only on its own pixels: the same on any
scheduler, chunking or set of dates. Statistics are accumulated in float64.
"""

from __future__ import annotations

import contextlib
import operator
import threading
from collections.abc import Callable
from typing import Protocol

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from rasterio.features import geometry_mask
from rasterio.transform import Affine

STAT_COLUMNS = ("n_pixels", "count", "valid_fraction", "mean", "std", "median", "p10", "p90")
COVERAGE_COLUMNS = ("cov_mean", "cov_weight")
# Pixel centres inside the polygon on the imagery grid extended without bounds (``grid_pixel_counts``),
# beside n_pixels (the centres inside the window read): their ratio is how much of the plot the
# imagery can see at all, so coverage can weigh as evidence (growth.py: imaged_fraction).
GRID_COLUMN = "n_pixels_grid"
_FLOAT_STATS = ("valid_fraction", "mean", "std", "median", "p10", "p90")
# Values per work block of the reduction (plots x padded width): 1 MB of float32 and 2 MB of float64
# work arrays, about one core's L2 here; 4x larger blocks measured 1.5x slower per value.
_BLOCK_VALUES = 1 << 18
# Rows per strip for an in-memory (numpy) cube; dask cubes use their row chunks, sources strip_px.
_NUMPY_STRIP_PX = 1024
_QUANTILES = np.array([0.10, 0.50, 0.90])  # p10, median, p90 (np.percentile's 'linear' method)

RowReader = Callable[[int, int, np.ndarray], None]  # (y0, y1, out): write window rows [y0, y1) into out


class RowSource(Protocol):
    """A reader that decodes the NDVI itself, one date and strip of rows at a time (the pipeline's
    ``io.tiles.NdviFiles``): ``plot_timeseries`` then runs one task per date that reads its own rows,
    with no chunk of the cube ever passing through the scheduler."""

    dates: pd.DatetimeIndex
    transform: tuple  # the window's affine transform (6 numbers)
    height: int
    width: int
    strip_px: int  # rows per read

    def open_date(self, t: int) -> contextlib.AbstractContextManager[RowReader]:
        """Open date ``t``'s files; the reader writes NDVI rows [y0, y1) into a (y1 - y0, width) float32 array."""
        ...


def plot_timeseries(
    ndvi: xr.DataArray | RowSource, plots: gpd.GeoDataFrame, group_px: int = 512, coverage: bool = False
) -> pd.DataFrame:
    """Statistics per plot and date: ``plot_id, date, n_pixels, n_pixels_grid`` + STAT_COLUMNS[1:].

    ``coverage=True`` adds ``cov_mean`` (pixels weighted by the exact fraction of their area inside
    the polygon) and ``cov_weight`` (the valid weight, in pixels): plots smaller than a pixel then keep
    a value instead of vanishing. It costs one polygon-pixel intersection per pixel of the plot's box.

    ``ndvi`` is a (time, y, x) DataArray with attrs ``transform`` (its own window), numpy- or
    dask-backed, or a ``RowSource``; ``plots`` are in its CRS. ``group_px``: plots are gathered in
    blocks of this many columns (cache locality; no number depends on it). Computes with the active
    dask scheduler. ``n_pixels`` counts pixel centres inside the polygon (0 for a plot smaller than a
    pixel or outside the grid: its stats are NaN, never invented); ``n_pixels_grid`` counts them on
    the grid extended beyond the window (equal to ``n_pixels`` unless the plot crosses the window's edge).
    """
    if isinstance(ndvi, xr.DataArray):
        transform = Affine(*ndvi.attrs["transform"])
        data = ndvi.transpose("time", "y", "x").data
        dates = pd.DatetimeIndex(ndvi["time"].values)
        height, width = ndvi.sizes["y"], ndvi.sizes["x"]
        strip_rows = data.chunks[1] if isinstance(data, da.Array) else _even(height, _NUMPY_STRIP_PX)
    else:
        transform, data, dates = Affine(*ndvi.transform), None, pd.DatetimeIndex(ndvi.dates)
        height, width = ndvi.height, ndvi.width
        strip_rows = _even(height, ndvi.strip_px)
    row_edges = tuple(int(e) for e in np.cumsum((0,) + tuple(strip_rows)))
    n_t = len(dates)

    members, needed = _strips_of(plots, transform, height, row_edges)
    # Only plots reaching beyond the window can have centres it does not hold: count theirs on the
    # unbounded grid (vectorised bounds test for all, scanline counts for these few); the rest are n_pixels.
    geoms_all = np.asarray(plots.geometry.values, dtype=object)
    beyond = np.flatnonzero(_beyond_window(geoms_all, transform, height, width))
    grid_counts = (beyond, grid_pixel_counts(geoms_all[beyond], transform))
    strips = tuple(members)
    spec = (row_edges, width, strips, needed)

    lazy = data is None or isinstance(data, da.Array)

    def call(f, pure: bool = True):  # a dask task for lazy inputs, a plain call for an in-memory array
        return dask.delayed(f, pure=pure) if lazy else f

    # Geometries travel as one object array per strip (dask does not walk it, shapely pickles it);
    # pure=False: a key needs no hash of the geometries.
    t6 = tuple(transform)[:6]
    indexes = [call(_strip_index, pure=False)(geoms_all[members[k]], t6, height, width, row_edges[k + 1], group_px,
                                              coverage) for k in strips]
    n_pixels = [call(operator.getitem)(ix, "n_pixels") for ix in indexes]  # the index itself stays on the workers
    spaces = _Workspaces()
    if data is None:
        t_starts = list(range(n_t))
        tasks = [call(_source_task)(ndvi, t, spec, indexes, coverage, spaces) for t in range(n_t)]
    elif lazy:
        # Each time chunk's pieces as Delayed keys of the cube's own graph (one decode per chunk).
        pieces = data.to_delayed(optimize_graph=False)
        t_starts = [int(s) for s in np.cumsum((0,) + data.chunks[0])[:-1]]
        tasks = [call(_chunk_task)(pieces[tc].tolist(), spec, indexes, coverage, spaces) for tc in range(pieces.shape[0])]
    else:
        arr = np.asarray(data)
        t_starts = [0]
        tasks = [_chunk_task([[arr[:, a:z, :]] for a, z in zip(row_edges[:-1], row_edges[1:])], spec, indexes, coverage,
                             spaces)]
    if lazy:
        # optimize_graph=False: fusing would hand a chunk's read to every task that uses it.
        n_pixels, tasks = dask.compute(n_pixels, tasks, optimize_graph=False)

    return _frame(plots["plot_id"], dates, members, n_pixels, t_starts, tasks, coverage, grid_counts)


def outside_timeseries(dates: pd.DatetimeIndex, plots: gpd.GeoDataFrame, transform: Affine) -> pd.DataFrame:
    """The frame ``plot_timeseries`` gives plots of which no pixel lies on the imagery (a partition
    whose window is empty): per plot and date n_pixels 0, count 0, valid_fraction 0, NaN statistics,
    and ``n_pixels_grid`` from the polygon on the grid ``transform`` -- the plot is reported as not
    seen, never dropped or allowed to stop the run."""
    geoms = np.asarray(plots.geometry.values, dtype=object)
    frame = _frame(plots["plot_id"], pd.DatetimeIndex(dates), {}, [], [], [], False,
                   (np.arange(len(geoms)), grid_pixel_counts(geoms, Affine(*tuple(transform)[:6]))))
    frame["valid_fraction"] = 0.0  # as plot_timeseries reports a plot with no centre in the window
    return frame


def _beyond_window(geoms: np.ndarray, t: Affine, h: int, w: int) -> np.ndarray:
    """Plots whose bounds reach outside the (h, w) window: only these can have pixel centres the
    window does not hold (every centre inside a polygon lies inside its bounds). Empty: False."""
    b = shapely.bounds(geoms)
    inv = ~t
    corners = ((0, 1), (0, 3), (2, 1), (2, 3))
    cols = np.stack([inv.a * b[:, i] + inv.b * b[:, j] + inv.c for i, j in corners])
    rows = np.stack([inv.d * b[:, i] + inv.e * b[:, j] + inv.f for i, j in corners])
    with np.errstate(invalid="ignore"):  # NaN bounds of empty geometries compare False
        return (cols.min(axis=0) < 0) | (rows.min(axis=0) < 0) | (cols.max(axis=0) > w) | (rows.max(axis=0) > h)


def grid_pixel_counts(geoms: np.ndarray, t: Affine) -> np.ndarray:
    """Pixel centres inside each polygon on the grid of ``t`` extended without bounds (no window, no
    raster extent): ``_centre_pixels``' rule (GDAL's) without its clipping, counted from the scanline
    crossings without listing the pixels, so a huge or far-away polygon costs its rows, not its area."""
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    counts = np.zeros(n, np.int64)
    if not n:
        return counts
    type_id = shapely.get_type_id(geoms)
    empty = shapely.is_empty(geoms)
    areal = np.flatnonzero(((type_id == 3) | (type_id == 6)) & ~empty)
    plot, rows, x = _crossings(geoms, areal, t, None)
    col = np.floor(x + 0.5).astype(np.int64)
    order = np.lexsort((col, rows, plot))  # pair crossings in order along each plot's centre line
    plot, rows, col = plot[order], rows[order], col[order]
    if len(plot) % 2 or not (np.array_equal(plot[0::2], plot[1::2]) and np.array_equal(rows[0::2], rows[1::2])):
        raise AssertionError("unpaired polygon crossings")  # closed rings always pair up
    counts += np.bincount(plot[0::2], weights=col[1::2] - col[0::2], minlength=n).astype(np.int64)
    for i in np.flatnonzero(~np.isin(type_id, (3, 6)) & ~empty):  # lines, points, collections: GDAL's mask
        x0, y0, x1, y1 = geoms[i].bounds
        cs, rs = ~t @ (np.array([x0, x0, x1, x1]), np.array([y0, y1, y0, y1]))
        c0, r0 = int(np.floor(cs.min())), int(np.floor(rs.min()))
        c1, r1 = int(np.ceil(cs.max())), int(np.ceil(rs.max()))
        counts[i] = len(_own_pixels(geoms[i], t @ Affine.translation(c0, r0), r1 - r0, c1 - c0))
    return counts


def _strips_of(plots: gpd.GeoDataFrame, transform: Affine, height: int,
               row_edges: tuple[int, ...]) -> tuple[dict[int, np.ndarray], tuple[bool, ...]]:
    """Plot positions per strip -- the strip holding the plot's last row, so all its rows are in the
    plane once that strip is read -- and which strips any plot touches (the others are never read).
    Rows come from the bounds' corners, which enclose every pixel centre ``_centre_pixels`` finds."""
    b = shapely.bounds(plots.geometry.values)
    inv = ~transform
    corner_rows = np.stack([inv.d * b[:, i] + inv.e * b[:, j] + inv.f for i, j in ((0, 1), (0, 3), (2, 1), (2, 3))])
    with np.errstate(invalid="ignore"):  # empty geometries have NaN bounds: they land in strip 0
        first_row = np.clip(np.nan_to_num(np.floor(corner_rows.min(axis=0))), 0, height - 1).astype(np.int64)
        last_row = np.clip(np.nan_to_num(np.ceil(corner_rows.max(axis=0)) - 1), 0, height - 1).astype(np.int64)
    n_strips = len(row_edges) - 1
    strip = np.searchsorted(row_edges, last_row, side="right") - 1
    members = {k: m for k in range(n_strips) if len(m := np.flatnonzero(strip == k))}
    touched = np.zeros(n_strips + 1, np.int64)  # +1 where a plot's rows begin, -1 after they end
    np.add.at(touched, np.searchsorted(row_edges, first_row, side="right") - 1, 1)
    np.add.at(touched, strip + 1, -1)
    return members, tuple(bool(v) for v in np.cumsum(touched)[:-1] > 0)


def _frame(plot_ids: pd.Series, dates: pd.DatetimeIndex, members: dict[int, np.ndarray], n_pixels: list,
           t_starts: list[int], tasks: list, coverage: bool,
           grid_counts: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """The date tasks' per-strip results as the long frame, in the plots' order, then date
    (deterministic whatever the strips or chunks). ``grid_counts``: (plot positions, their
    n_pixels_grid) where it differs from n_pixels."""
    n_t, n = len(dates), len(plot_ids)
    names = _FLOAT_STATS + ("count",) + (COVERAGE_COLUMNS if coverage else ())
    cols = {k: np.full((n_t, n), np.nan) for k in names}
    cols["count"] = np.zeros((n_t, n), np.int64)
    npx = np.zeros(n, np.int64)
    for m, v in zip(members.values(), n_pixels):
        npx[m] = v
    for t0, per_date in zip(t_starts, tasks):
        for j, per_strip in enumerate(per_date):
            for m, res in zip(members.values(), per_strip):
                for name, v in res.items():
                    cols[name][t0 + j, m] = v
    out = pd.DataFrame({"plot_id": plot_ids.array.take(np.repeat(np.arange(n), n_t)),
                        "date": np.tile(dates.to_numpy(), n)})
    out["n_pixels"] = np.repeat(npx, n_t)
    npx_grid = npx.copy()
    npx_grid[grid_counts[0]] = grid_counts[1]
    out[GRID_COLUMN] = np.repeat(npx_grid, n_t)
    for col in STAT_COLUMNS[1:] + (COVERAGE_COLUMNS if coverage else ()):
        out[col] = cols[col].T.ravel()
    return out


def _even(total: int, step: int) -> tuple[int, ...]:
    """``total`` rows in strips of ``step`` (the last one shorter)."""
    return tuple(min(step, total - a) for a in range(0, total, step)) or (0,)


class _Workspaces:
    """Work arrays (the date's plane and the reduction's block buffers) handed from one date task to
    the next within one ``plot_timeseries`` call. Fresh large arrays are page-faulted on first touch,
    and the page faults of threads of one process serialise in the kernel: allocating them per task
    and per block made the second worker add ~40% instead of ~100% (measured). A pickled copy (in
    another process) starts empty; the arrays are freed with the call's graph."""

    def __init__(self) -> None:
        self._free: list[tuple[np.ndarray, ...]] = []
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple:
        return (_Workspaces, ())

    def __dask_tokenize__(self) -> str:
        return "zonal-workspaces"

    @contextlib.contextmanager
    def get(self, plane_size: int, block: int):
        """(plane float32, block float32, block float64, block bool), at least these sizes."""
        with self._lock:
            ws = self._free.pop() if self._free else None
        if ws is None or ws[0].size < plane_size or ws[1].size < block:
            ws = (np.empty(plane_size, np.float32), np.empty(block, np.float32), np.empty(block, np.float64),
                  np.empty(block, bool))
        try:
            yield (ws[0][:plane_size],) + ws[1:]
        finally:
            with self._lock:
                self._free.append(ws)


def _source_task(source: RowSource, t: int, spec: tuple, indexes: list[dict], coverage: bool,
                 spaces: _Workspaces) -> list[list[dict]]:
    """One date of a ``RowSource``: its files are opened once, read strip by strip into the plane."""
    with source.open_date(t) as read:
        return [_reduce_date(read, spec, indexes, coverage, spaces)]


def _chunk_task(pieces: list, spec: tuple, indexes: list[dict], coverage: bool,
                spaces: _Workspaces) -> list[list[dict]]:
    """The dates of one time chunk of a cube: ``pieces[row chunk][col chunk]`` arrays (dates, h, w)."""
    row_edges = spec[0]

    def reader(j: int) -> RowReader:
        def read(y0: int, y1: int, out: np.ndarray) -> None:
            row = pieces[row_edges.index(y0)]
            x0 = 0
            for p in row:
                out[:, x0:x0 + p.shape[2]] = p[j]
                x0 += p.shape[2]
        return read

    return [_reduce_date(reader(j), spec, indexes, coverage, spaces) for j in range(pieces[0][0].shape[0])]


def _reduce_date(read: RowReader, spec: tuple, indexes: list[dict], coverage: bool,
                 spaces: _Workspaces) -> list[dict]:
    """Fill one date's plane strip by strip and reduce each strip's plots once their last strip is in.
    Returns one dict of (plots,) arrays per strip that has plots."""
    row_edges, width, strips, needed = spec
    widest = max((ix.shape[1] for index in indexes for _, ix in index["classes"]), default=0)
    with spaces.get(row_edges[-1] * width + 1, max(_BLOCK_VALUES, widest)) as (plane, *blocks):
        plane[-1] = np.nan  # the padding sentinel every gather index points past the pixels to
        rows = plane[:-1].reshape(-1, width)
        todo = dict(zip(strips, indexes))
        out = []
        for k, (y0, y1) in enumerate(zip(row_edges[:-1], row_edges[1:])):
            if needed[k]:
                read(y0, y1, rows[y0:y1])
            if k in todo:
                out.append(_strip_stats(plane, todo[k], coverage, *blocks))
        return out


def _strip_index(geoms: np.ndarray, transform: tuple, height: int, width: int, row_end: int, group_px: int,
                 coverage: bool) -> dict:
    """Rasterize a strip's plots once: ``n_pixels`` per plot and, per padded width class, the plots'
    positions in the strip and a (plots, width) gather index of flat positions in the window's plane
    (row-major), padded with the sentinel position ``height * width``; with ``coverage``, the touched
    pixels, their area fractions and their plots (``cov``)."""
    t = Affine(*transform)
    pool, starts, lengths = _centre_pixels(geoms, t, height, width)
    dtype = np.int32 if height * width < np.iinfo(np.int32).max else np.int64
    sentinel = height * width
    if len(pool) and int(pool.max()) >= row_end * width:  # the strip is chosen from the plots' bounds
        raise AssertionError("a plot's pixel lies below its strip")
    padded = _padded_length(lengths)
    # Neighbours first (column block, then first pixel): a block then gathers from a compact area.
    first = pool[np.minimum(starts, len(pool) - 1)] if len(pool) else np.zeros(len(geoms), np.int64)
    block = (first % max(width, 1)) // group_px
    classes = []
    for w in np.unique(padded[padded > 0]):
        m = np.flatnonzero(padded == w)
        m = m[np.lexsort((first[m], block[m]))]
        ln = lengths[m]
        idx = np.full((len(m), int(w)), sentinel, dtype)
        rows = np.repeat(np.arange(len(m)), ln)
        within = np.arange(int(ln.sum())) - np.repeat(np.cumsum(ln) - ln, ln)
        idx[rows, within] = pool[np.repeat(starts[m], ln) + within]
        classes.append((m, idx))
    out = {"n_pixels": lengths, "classes": classes}
    if coverage:
        pw = [_coverage_weights(g, t, height, width) for g in geoms]
        pix = np.concatenate([p for p, _ in pw]).astype(dtype)
        if len(pix) and int(pix.max()) >= row_end * width:
            raise AssertionError("a plot's pixel lies below its strip")
        out["cov"] = (pix, np.concatenate([f for _, f in pw]), np.repeat(np.arange(len(geoms)), [len(p) for p, _ in pw]))
    return out


def _strip_stats(plane: np.ndarray, index: dict, coverage: bool, scratch: np.ndarray, scratch64: np.ndarray,
                 scratch_nan: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of one date for a strip's plots, (plots,) arrays; NaN pixels are invalid.

    Each width class is gathered a cache-sized block of plots at a time into (plots, width) rows
    padded with the NaN sentinel, and every reduction runs along the row: a plot's row depends only on
    its own pixels and its own padded length, so its numbers are the same whatever else is in the
    strip, the chunk or the set of dates.
    """
    lengths = index["n_pixels"]
    m = len(lengths)
    out = {k: np.full(m, np.nan) for k in _FLOAT_STATS}
    out["count"] = np.zeros(m, np.int64)
    out["valid_fraction"][:] = 0.0
    for members, idx in index["classes"]:
        width = idx.shape[1]
        step = max(_BLOCK_VALUES // width, 1)
        for p0 in range(0, len(members), step):
            ix, mb = idx[p0:p0 + step], members[p0:p0 + step]
            vals = scratch[:ix.size].reshape(ix.shape)
            np.take(plane, ix, out=vals, mode="wrap")  # indices are valid; wrap is the cheap mode
            _reduce_rows(vals, scratch64[:ix.size].reshape(ix.shape), scratch_nan[:ix.size].reshape(ix.shape), out, mb,
                         lengths[mb])
    if coverage:
        pix, frac, owner = index["cov"]
        vals = np.take(plane, pix).astype(np.float64)
        valid = ~np.isnan(vals)
        weight = np.where(valid, frac, 0.0)
        wsum = np.bincount(owner, weights=weight, minlength=m)
        total = np.bincount(owner, weights=np.where(valid, vals, 0.0) * weight, minlength=m)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["cov_mean"] = np.where(wsum > 0, total / wsum, np.nan)
        out["cov_weight"] = wsum
    return out


def _centre_pixels(geoms: np.ndarray, t: Affine, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels whose centre lies inside each polygon, for all polygons of a batch in a few vectorised
    passes: ``pool[starts[i]:starts[i] + lengths[i]]`` are plot i's flat indices into the (h, w)
    window, row-major.

    The rule is GDAL's scanline fill (``GDALdllImageFilledPolygon``, what rasterio's ``rasterize``
    and ``geometry_mask`` use): on the horizontal line through the centres of row r, each edge with
    y1 <= r + 0.5 < y2 crosses at x, rounded to ``floor(x + 0.5)``; crossings are paired in order
    (even-odd over all rings of the plot, holes and parts included) and each pair fills columns
    [left, right). A centre exactly on a horizontal edge is the one tie handled differently (GDAL
    fills some of those; the probability is nil for surveyed coordinates). Each plot is filled on its
    own, so overlapping plots each keep every pixel. Geometries that are not (multi)polygons are
    masked one by one with ``geometry_mask``.
    """
    n = len(geoms)
    lengths = np.zeros(n, np.int64)
    type_id = shapely.get_type_id(geoms)
    areal = np.flatnonzero(((type_id == 3) | (type_id == 6)) & ~shapely.is_empty(geoms))
    other = np.flatnonzero(~np.isin(type_id, (3, 6)) & ~shapely.is_empty(geoms))
    crossing_plot, rows, x = _crossings(geoms, areal, t, h)
    col = np.clip(np.floor(x + 0.5), 0, w).astype(np.int64)  # clipping keeps the order and the fill
    key = np.sort((crossing_plot * h + rows) * (w + 1) + col)
    left, right = key[0::2], key[1::2]
    line = left // (w + 1)  # plot * h + row of each crossing pair
    if len(key) % 2 or not np.array_equal(line, right // (w + 1)):
        raise AssertionError("unpaired polygon crossings")  # closed rings always pair up
    lc, rc = left % (w + 1), right % (w + 1)
    span = rc - lc
    plot, row = line // h, line % h
    total = int(span.sum())
    pool = np.repeat(row * w + lc, span) + (np.arange(total) - np.repeat(np.cumsum(span) - span, span))
    lengths += np.bincount(plot, weights=span, minlength=n).astype(np.int64)
    if len(other):  # lines, points, collections: GDAL's own mask, appended after the polygons' pixels
        own = [_own_pixels(geoms[i], t, h, w) for i in other]
        lengths[other] = [len(o) for o in own]
        pool = np.concatenate([pool] + own)
        starts = np.zeros(n, np.int64)
        in_poly = np.setdiff1d(np.arange(n), other)
        starts[in_poly] = np.cumsum(lengths[in_poly]) - lengths[in_poly]
        starts[other] = total + np.cumsum(lengths[other]) - lengths[other]
    else:
        starts = np.cumsum(lengths) - lengths
    return pool.astype(np.int64), starts, lengths


def _crossings(geoms: np.ndarray, areal: np.ndarray, t: Affine,
               h: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GDAL's scanline crossings of the (multi)polygons ``geoms[areal]`` (see ``_centre_pixels``):
    per crossing its plot (position in ``geoms``), row and x in pixel coordinates, for the rows
    [0, h) of a window, or every row of the unbounded grid when ``h`` is None."""
    xy, vertex_of, ring_geom = _ring_coordinates(geoms[areal])
    inv = ~t
    px = inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c
    py = inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f
    # Edges between consecutive vertices of one ring (rings are closed: no wrap-around edge).
    same = vertex_of[1:] == vertex_of[:-1]
    xa, ya, xb, yb = px[:-1][same], py[:-1][same], px[1:][same], py[1:][same]
    edge_plot = areal[ring_geom[vertex_of[:-1][same]]]
    up = ya < yb
    y1, y2 = np.where(up, ya, yb), np.where(up, yb, ya)
    x1, x2 = np.where(up, xa, xb), np.where(up, xb, xa)
    keep = y1 != y2  # horizontal edges cross no centre line (but on it: see the docstring)
    y1, y2, x1, x2, edge_plot = y1[keep], y2[keep], x1[keep], x2[keep], edge_plot[keep]
    # Rows whose centre line r + 0.5 lies in [y1, y2), clipped to the window's rows if it has any.
    r_lo, r_hi = np.ceil(y1 - 0.5), np.ceil(y2 - 0.5) - 1
    if h is not None:
        r_lo, r_hi = np.maximum(r_lo, 0), np.minimum(r_hi, h - 1)
    r_lo, r_hi = r_lo.astype(np.int64), r_hi.astype(np.int64)
    k = np.maximum(r_hi - r_lo + 1, 0)
    e = np.repeat(np.arange(len(k)), k)
    rows = r_lo[e] + (np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k))
    dy = rows + 0.5
    x = (dy - y1[e]) * (x2[e] - x1[e]) / (y2[e] - y1[e]) + x1[e]
    return edge_plot[e], rows, x


def _ring_coordinates(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (x, y) of every ring of non-empty (multi)polygons, each vertex's ring, and each ring's
    geometry: one vectorised pass (``to_ragged_array``) instead of a Python object per ring."""
    if not len(polys):
        return np.empty((0, 2)), np.empty(0, np.int64), np.empty(0, np.int64)
    kind, xy, offsets = shapely.to_ragged_array(polys)
    ring_off = offsets[0]
    vertex_of = np.repeat(np.arange(len(ring_off) - 1), np.diff(ring_off))
    if kind == shapely.GeometryType.POLYGON:
        ring_geom = np.repeat(np.arange(len(offsets[1]) - 1), np.diff(offsets[1]))
    else:  # MULTIPOLYGON (mixed polygons and multipolygons come out as multipolygons)
        part_geom = np.repeat(np.arange(len(offsets[2]) - 1), np.diff(offsets[2]))
        ring_geom = part_geom[np.repeat(np.arange(len(offsets[1]) - 1), np.diff(offsets[1]))]
    return xy, vertex_of, ring_geom


def _coverage_weights(geom, t: Affine, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices touched by ``geom`` and the exact fraction of each pixel's area inside it
    (polygon-pixel intersection areas, as exactextract computes them)."""
    x0, y0, x1, y1 = geom.bounds
    inv = ~t
    ca, ra = inv @ (x0, y1)
    cb, rb = inv @ (x1, y0)
    c0, r0 = max(int(np.floor(min(ca, cb))), 0), max(int(np.floor(min(ra, rb))), 0)
    c1, r1 = min(int(np.ceil(max(ca, cb))), w), min(int(np.ceil(max(ra, rb))), h)
    if c1 <= c0 or r1 <= r0:
        return np.empty(0, np.int64), np.empty(0)
    rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    rr, cc = rr.ravel(), cc.ravel()
    xa, ya = t @ (cc, rr)
    xb, yb = t @ (cc + 1, rr + 1)
    boxes = shapely.box(np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb), np.maximum(ya, yb))
    frac = shapely.area(shapely.intersection(boxes, geom)) / abs(t.a * t.e)
    keep = frac > 0
    return (rr[keep] * w + cc[keep]).astype(np.int64), frac[keep]


def _own_pixels(geom, t: Affine, h: int, w: int) -> np.ndarray:
    """Flat pixel indices (row-major) of pixel centres inside ``geom``, masked on its bounding box."""
    x0, y0, x1, y1 = geom.bounds
    inv = ~t
    c0, r0 = inv @ (x0, y1)
    c1, r1 = inv @ (x1, y0)
    c0, r0 = max(int(np.floor(min(c0, c1))), 0), max(int(np.floor(min(r0, r1))), 0)
    c1, r1 = min(int(np.ceil(max(c0, c1))), w), min(int(np.ceil(max(r0, r1))), h)
    if c1 <= c0 or r1 <= r0:
        return np.empty(0, np.int64)
    inside = geometry_mask([geom], out_shape=(r1 - r0, c1 - c0), transform=t @ Affine.translation(c0, r0), invert=True)
    rr, cc = np.nonzero(inside)
    return ((rr + r0) * w + (cc + c0)).astype(np.int64)


def _padded_length(lengths: np.ndarray) -> np.ndarray:
    """Row width for each plot: its pixel count rounded up to 1/8 of its power of two (at most
    12.5% padding, and few distinct widths). Depends only on the plot's own count (determinism)."""
    n = np.maximum(lengths, 1)
    step = np.maximum(1 << np.maximum(np.floor(np.log2(n)).astype(np.int64) - 3, 0), 1)
    return np.where(lengths > 0, -(-n // step) * step, 0)


def _reduce_rows(vals: np.ndarray, x: np.ndarray, nan: np.ndarray, out: dict[str, np.ndarray], mb: np.ndarray,
                 lengths: np.ndarray) -> None:
    """Reduce rows (plots, width) of NaN-padded values in place into ``out[..][mb]``; ``x`` (float64)
    and ``nan`` (bool) are work arrays of the same shape.

    Rows of float32 are sorted in place (NaN last) with numpy's SIMD sort; percentiles then follow
    np.percentile's default 'linear' method on the valid values, and sums run over the sorted row in
    float64."""
    width = vals.shape[-1]
    vals.sort(axis=-1)  # NaN sort last: each row is [valid ascending..., NaN...]
    np.isnan(vals, out=nan)
    count = width - nan.sum(axis=-1, dtype=np.int64)
    # p10, median, p90 at once from the sorted valid prefix, before the NaN tail is zeroed for the sums.
    last = np.maximum(count - 1, 0)
    pos = _QUANTILES[:, None] * last
    lo = np.floor(pos).astype(np.int64)
    row0 = np.arange(count.size, dtype=np.int64) * width  # row starts in the flat block
    flat = vals.reshape(-1)
    a = flat[row0 + lo].astype(np.float64)
    b = flat[row0 + np.minimum(lo + 1, last)].astype(np.float64)
    t = pos - lo
    diff = b - a
    q = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)  # numpy's _lerp
    q[:, count == 0] = np.nan
    out["p10"][mb], out["median"][mb], out["p90"][mb] = q
    # NaN -> +0.0 by multiplying the bit patterns by 0 (valid ones by 1): exact, and ~10x cheaper
    # than np.copyto(vals, 0.0, where=nan).
    bits = vals.view(np.uint32)
    np.multiply(bits, np.logical_not(nan, out=nan).view(np.uint8), out=bits)
    np.copyto(x, vals)
    s1 = x.sum(axis=-1)
    s2 = np.einsum("...i,...i->...", x, x)  # sum of squares without a temporary
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, s1 / count, np.nan)
        # One-pass variance in float64: NDVI lies in [-1, 1], so cancellation costs ~1e-12.
        std = np.where(count > 0, np.sqrt(np.maximum(s2 / count - mean * mean, 0.0)), np.nan)
    out["count"][mb] = count
    out["valid_fraction"][mb] = count / lengths
    out["mean"][mb] = mean
    out["std"][mb] = std
