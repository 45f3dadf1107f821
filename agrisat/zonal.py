"""Per-plot statistics of a (time, y, x) cube: the hot path.

Design: plots are batched by the grid block that holds their centre. One task per batch reads the
batch's window (all dates), rasterizes each plot *once* (pixel-centre rule) and reduces every date
from the same pixel index. A plot that crosses a chunk boundary is read whole inside its batch
window, so the result does not depend on chunking; overlapping plots are each read in full.
Statistics are accumulated in float64 so results are identical on any scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence

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
_FLOAT_STATS = ("valid_fraction", "mean", "std", "median", "p10", "p90")
# NDVI bytes the chunk-row streaming may hold at once (local schedulers); more dates than fit are
# reduced in groups of dates.
_STREAM_BYTES = 1 << 30
# Values per work block of the reduction (dates x plots x padded width): ~1 MB of float32, so every
# temporary stays in cache and is recycled by the allocator instead of being page-faulted afresh.
_BLOCK_VALUES = 1 << 20


def plot_timeseries(
    ndvi: xr.DataArray, plots: gpd.GeoDataFrame, group_px: int = 512, coverage: bool = False
) -> pd.DataFrame:
    """Statistics per plot and date: ``plot_id, date`` + STAT_COLUMNS.

    ``coverage=True`` adds ``cov_mean`` (pixels weighted by the exact fraction of their area inside
    the polygon) and ``cov_weight`` (the valid weight, in pixels): plots smaller than a pixel then keep
    a value instead of vanishing. It costs one polygon-pixel intersection per pixel of the plot's box.

    ``ndvi`` has dims (time, y, x) and attrs ``transform`` (its own window); ``plots`` are in the
    cube's CRS. Computes with the active dask scheduler. ``n_pixels`` counts pixel centres inside the
    polygon (0 for a plot smaller than a pixel or outside the grid: its stats are NaN, never invented).
    """
    transform = Affine(*ndvi.attrs["transform"])
    height, width = ndvi.sizes["y"], ndvi.sizes["x"]
    dates = pd.DatetimeIndex(ndvi["time"].values)
    data = ndvi.transpose("time", "y", "x").data
    n_t, n = len(dates), len(plots)

    inv = ~transform
    b = plots.geometry.bounds.to_numpy()
    # Pixel window of each plot: columns from x, rows from y (north-up: top row is max y).
    c0, r0 = inv @ (b[:, 0], b[:, 3])
    c1, r1 = inv @ (b[:, 2], b[:, 1])
    with np.errstate(invalid="ignore"):  # empty geometries have NaN bounds: they land in batch 0
        col0 = np.clip(np.nan_to_num(np.floor(np.minimum(c0, c1))), 0, width).astype(int)
        col1 = np.clip(np.nan_to_num(np.ceil(np.maximum(c0, c1))), 0, width).astype(int)
        row0 = np.clip(np.nan_to_num(np.floor(np.minimum(r0, r1))), 0, height).astype(int)
        row1 = np.clip(np.nan_to_num(np.ceil(np.maximum(r0, r1))), 0, height).astype(int)
    key = ((row0 + row1) // 2 // group_px) * (width // group_px + 1) + (col0 + col1) // 2 // group_px

    wkb_all = shapely.to_wkb(plots.geometry.values)
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(key[order]) != 0]) if n else np.empty(0, int)
    streamed = isinstance(data, da.Array) and not _on_distributed()
    if streamed:
        y_edges = np.cumsum((0,) + data.chunks[1])
        x_edges = np.cumsum((0,) + data.chunks[2])
    batches, tasks, specs = [], [], []
    for members in np.split(order, starts[1:]) if n else []:
        # Clipped to the grid; a batch of plots wholly outside still gets a 1-pixel window.
        wr0 = min(int(row0[members].min()), height - 1)
        wc0 = min(int(col0[members].min()), width - 1)
        wr1 = min(max(int(row1[members].max()), wr0 + 1), height)
        wc1 = min(max(int(col1[members].max()), wc0 + 1), width)
        wt = tuple(transform @ Affine.translation(wc0, wr0))[:6]
        batches.append(members)
        if streamed:
            iy0, iy1 = np.searchsorted(y_edges, wr0, "right") - 1, np.searchsorted(y_edges, wr1, "left")
            ix0, ix1 = np.searchsorted(x_edges, wc0, "right") - 1, np.searchsorted(x_edges, wc1, "left")
            crop = (wr0 - int(y_edges[iy0]), wc0 - int(x_edges[ix0]), wr1 - wr0, wc1 - wc0)
            specs.append((int(iy0), int(iy1), int(ix0), int(ix1), crop, wt, wkb_all[members]))
            continue
        block = data[:, wr0:wr1, wc0:wc1]
        if isinstance(block, da.Array):
            # Hand the batch its chunks as separate Delayed pieces on the *shared* graph: passing the
            # array itself makes dask optimise a private copy per batch and decode each file again.
            block = block.to_delayed(optimize_graph=False).tolist()
        # Geometries travel as one object array of WKB (dask does not walk it like a list).
        tasks.append(dask.delayed(_batch_stats, pure=True)(block, wt, wkb_all[members], coverage))

    if streamed:
        # Dates in groups small enough that the chunk rows held while streaming (about three: the
        # row being read and the two that straddling batches still need) fit in _STREAM_BYTES.
        # Statistics are per plot and date, so grouping changes no number; each group rasterizes
        # its batches again (cheap next to decoding).
        row_bytes = 3 * max(data.chunks[1]) * width * np.dtype(data.dtype).itemsize
        step = max(1, int(_STREAM_BYTES // max(row_bytes, 1)))
        t_edges = np.cumsum((0,) + data.chunks[0])
        cuts = [0]
        for e in t_edges[1:]:  # group edges on time-chunk edges
            if e - cuts[-1] >= step or e == t_edges[-1]:
                cuts.append(int(e))
        cuts = cuts if len(cuts) > 1 else [0, 0]
        parts = [_stream_chunk_rows(data[a:b], specs, coverage) for a, b in zip(cuts[:-1], cuts[1:])]
        results = [{k: (v if k == "n_pixels" else np.concatenate([p[i][k] for p in parts], axis=1))
                    for k, v in parts[0][i].items()} for i in range(len(specs))]
    else:
        # optimize_graph=False: graph optimisation would fuse a chunk's read into every batch that
        # slices it, decoding the same file once per batch instead of once.
        results = dask.compute(*tasks, optimize_graph=False)
    cols = {k: np.full((n, n_t), np.nan) for k in _FLOAT_STATS + (COVERAGE_COLUMNS if coverage else ())}
    cols["count"] = np.zeros((n, n_t), np.int64)
    n_pixels = np.zeros(n, np.int64)
    for members, res in zip(batches, results):
        n_pixels[members] = res["n_pixels"]
        for k, v in res.items():
            if k != "n_pixels":
                cols[k][members] = v
    # Long format in the plots' order, then date (deterministic whatever the batching).
    out = pd.DataFrame({"plot_id": np.repeat(plots["plot_id"].to_numpy(), n_t),
                        "date": np.tile(dates.to_numpy(), n)})
    out["n_pixels"] = np.repeat(n_pixels, n_t)
    for col in STAT_COLUMNS[1:] + (COVERAGE_COLUMNS if coverage else ()):
        out[col] = cols[col].ravel()
    return out


def _stream_chunk_rows(data: da.Array, specs: list[tuple], coverage: bool) -> list[dict[str, np.ndarray]]:
    """Local schedulers: walk the cube one chunk row at a time (all dates), so memory holds only the
    chunk rows that unfinished batches still need -- two rows for batches smaller than a chunk --
    instead of whatever the scheduler's ordering lets pile up (the whole cube, measured).

    Step k computes chunk row k together with the batches whose last chunk row is k - 1 (reads and
    statistics overlap on the worker threads), then drops rows no pending batch needs. Every chunk is
    decoded once; a batch gets the whole chunks it overlaps and crops them itself (no getitem tasks).
    On a cluster the single-graph path is used instead: there a whole chunk would travel to every
    batch that touches it.
    """
    n_rows, n_tc, n_xc = len(data.chunks[1]), len(data.chunks[0]), len(data.chunks[2])
    y_edges = np.cumsum((0,) + data.chunks[1])
    first = np.array([sp[0] for sp in specs], dtype=np.int64)
    last = np.array([sp[1] - 1 for sp in specs], dtype=np.int64)
    loaded: dict[int, list[list[np.ndarray]]] = {}  # chunk row -> [time chunk][x chunk] arrays
    results: list = [None] * len(specs)
    for k in range(n_rows + 1):
        reads = []
        if k < n_rows and ((first <= k) & (last >= k)).any():  # rows no plot touches are never read
            # to_delayed(optimize_graph=True) culls the graph to this row's reads (one decode each).
            reads = data[:, int(y_edges[k]):int(y_edges[k + 1]), :].to_delayed(optimize_graph=True).ravel().tolist()
        ready = np.flatnonzero(last == k - 1)
        calls = []
        for i in ready:
            iy0, iy1, ix0, ix1, crop, wt, wkb = specs[i]
            pieces = [[[loaded[r][tc][c] for c in range(ix0, ix1)] for r in range(iy0, iy1)] for tc in range(n_tc)]
            calls.append(dask.delayed(_batch_stats, pure=False)(pieces, wt, wkb, coverage, crop))
        out = dask.compute(*reads, *calls, optimize_graph=False)
        if reads:
            loaded[k] = [list(out[tc * n_xc:(tc + 1) * n_xc]) for tc in range(n_tc)]
        for i, res in zip(ready, out[len(reads):]):
            results[i] = res
        pending = last >= k  # batches that run at a later step
        keep_from = int(first[pending].min()) if pending.any() else n_rows
        for r in [r for r in loaded if r < keep_from]:
            del loaded[r]
    return results


def _on_distributed() -> bool:
    """True when the active dask scheduler is a distributed Client's."""
    sched = dask.base.get_scheduler()
    return type(getattr(sched, "__self__", None)).__module__.split(".")[0] == "distributed"


def _window(pieces: np.ndarray | list, crop: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, int, int]:
    """The batch window as one (n_t, h * w + 1) float32 array, pixels row-major, whose last column is
    NaN (the padding sentinel), built with one copy from dask's nested chunk pieces (t, y, x).
    ``crop`` = (row, col, h, w) of the window inside the pieces' mosaic (None: all of it)."""
    if not isinstance(pieces, list):
        pieces = [[[pieces]]]
    n_t = sum(tp[0][0].shape[0] for tp in pieces)
    if crop is None:
        crop = (0, 0, sum(row[0].shape[1] for row in pieces[0]), sum(p.shape[2] for p in pieces[0][0]))
    r0, c0, h, w = crop
    buf = np.empty((n_t, h * w + 1), np.float32)
    buf[:, -1] = np.nan
    grid = buf[:, : h * w].reshape(n_t, h, w)
    t0 = 0
    for tp in pieces:
        dt = tp[0][0].shape[0]
        y0 = 0  # piece origin in the mosaic
        for row in tp:
            ph = row[0].shape[1]
            ya, yb = max(y0, r0), min(y0 + ph, r0 + h)
            x0 = 0
            for p in row:
                pw = p.shape[2]
                xa, xb = max(x0, c0), min(x0 + pw, c0 + w)
                if ya < yb and xa < xb:
                    grid[t0:t0 + dt, ya - r0:yb - r0, xa - c0:xb - c0] = p[:, ya - y0:yb - y0, xa - x0:xb - x0]
                x0 += pw
            y0 += ph
        t0 += dt
    return buf, h, w


def _batch_stats(block: np.ndarray | list, transform: Sequence[float], wkb: np.ndarray,
                 coverage: bool = False, crop: tuple[int, int, int, int] | None = None) -> dict[str, np.ndarray]:
    """Rasterize the batch once, then reduce every date with the same pixel index.

    Every plot gets its own pixel list (``_centre_pixels``), so overlapping plots each keep all their
    pixels, and a plot's numbers depend only on its geometry and its pixels, not on the batch or the
    chunking. Returns arrays of shape (plots,) for ``n_pixels`` and (plots, dates) for the rest.
    """
    buf, h, w = _window(block, crop)
    t = Affine(*transform)
    geoms = shapely.from_wkb(wkb)
    pool, starts, lengths = _centre_pixels(geoms, t, h, w)
    out = _padded_stats(buf, pool, starts, lengths)
    out["n_pixels"] = lengths
    if coverage:
        flat = buf[:, : h * w]
        cov = [_coverage_mean(flat, *_coverage_weights(g, t, h, w)) for g in geoms]
        out["cov_mean"] = np.array([c[0] for c in cov]).reshape(len(geoms), buf.shape[0])
        out["cov_weight"] = np.array([c[1] for c in cov]).reshape(len(geoms), buf.shape[0])
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
    parts, part_of = shapely.get_parts(geoms[areal], return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    xy, vertex_of = shapely.get_coordinates(rings, return_index=True)
    inv = ~t
    px = inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c
    py = inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f
    # Edges between consecutive vertices of one ring (rings are closed: no wrap-around edge).
    same = vertex_of[1:] == vertex_of[:-1]
    xa, ya, xb, yb = px[:-1][same], py[:-1][same], px[1:][same], py[1:][same]
    edge_plot = areal[part_of[ring_of[vertex_of[:-1][same]]]]
    up = ya < yb
    y1, y2 = np.where(up, ya, yb), np.where(up, yb, ya)
    x1, x2 = np.where(up, xa, xb), np.where(up, xb, xa)
    keep = y1 != y2  # horizontal edges cross no centre line (but on it: see the docstring)
    y1, y2, x1, x2, edge_plot = y1[keep], y2[keep], x1[keep], x2[keep], edge_plot[keep]
    # Rows whose centre line r + 0.5 lies in [y1, y2), clipped to the window.
    r_lo = np.maximum(np.ceil(y1 - 0.5), 0).astype(np.int64)
    r_hi = np.minimum(np.ceil(y2 - 0.5) - 1, h - 1).astype(np.int64)
    k = np.maximum(r_hi - r_lo + 1, 0)
    e = np.repeat(np.arange(len(k)), k)
    rows = r_lo[e] + (np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k))
    dy = rows + 0.5
    x = (dy - y1[e]) * (x2[e] - x1[e]) / (y2[e] - y1[e]) + x1[e]
    col = np.clip(np.floor(x + 0.5), 0, w).astype(np.int64)  # clipping keeps the order and the fill
    key = np.sort((edge_plot[e] * h + rows) * (w + 1) + col)
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


def _coverage_mean(flat: np.ndarray, pix: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals = flat[:, pix].astype(np.float64)
    valid = ~np.isnan(vals)
    wsum = (valid * weight).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(wsum > 0, np.where(valid, vals, 0.0) @ weight / wsum, np.nan)
    return mean, wsum


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


def _padded_stats(buf: np.ndarray, pool: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of every plot and date, shape (n_plots, n_t); NaN pixels are invalid.

    ``buf`` is (n_t, pixels + 1) with a NaN sentinel pixel last; plot i's pixels are
    ``pool[starts[i]:starts[i] + lengths[i]]``. Plots are grouped by their padded length
    (``_padded_length``); each group is gathered, a cache-sized block of (dates, plots) at a time, into
    a (date, plot, width) array padded with the sentinel, and every reduction runs along the last axis:
    a plot's row depends only on its own pixels and its own padded length, so its numbers are the same
    whatever else is in the batch, the chunk or the set of dates. Rows of float32 are sorted in place
    (NaN last) with numpy's SIMD sort; percentiles then follow np.percentile's default 'linear' method
    on the valid values, and sums run over the sorted row in float64.
    """
    n_t = buf.shape[0]
    n = len(lengths)
    out = {k: np.full((n, n_t), np.nan) for k in _FLOAT_STATS}
    out["count"] = np.zeros((n, n_t), np.int64)
    out["valid_fraction"][:] = 0.0
    if n == 0 or n_t == 0:
        return out
    sentinel = buf.shape[1] - 1
    padded = _padded_length(lengths)
    scratch = np.empty(max(_BLOCK_VALUES, int(padded.max(initial=0))), np.float32)
    scratch64 = np.empty(scratch.shape, np.float64)
    for width in np.unique(padded[padded > 0]):
        width = int(width)
        members = np.flatnonzero(padded == width)
        # Neighbours first (by first pixel): a block then gathers from a compact strip of each date.
        first = pool[np.minimum(starts[members], max(len(pool) - 1, 0))] if len(pool) else starts[members]
        members = members[np.argsort(first, kind="stable")]
        ln = lengths[members]
        idx = np.full((len(members), width), sentinel, dtype=np.int64)
        rows = np.repeat(np.arange(len(members)), ln)
        within = np.arange(int(ln.sum())) - np.repeat(np.cumsum(ln) - ln, ln)
        idx[rows, within] = pool[np.repeat(starts[members], ln) + within]
        # Blocks of whole rows: all dates for as many plots as fit, or fewer dates for one plot.
        per_plot = n_t * width
        if per_plot <= _BLOCK_VALUES:
            step_p, step_t = max(_BLOCK_VALUES // per_plot, 1), n_t
        else:
            step_p, step_t = 1, max(_BLOCK_VALUES // width, 1)
        for p0 in range(0, len(members), step_p):
            ix = idx[p0:p0 + step_p]
            mb = members[p0:p0 + step_p]
            for t0 in range(0, n_t, step_t):
                t1 = min(t0 + step_t, n_t)
                size = (t1 - t0) * len(mb) * width
                vals = scratch[:size].reshape(t1 - t0, len(mb), width)
                np.take(buf[t0:t1], ix, axis=1, out=vals, mode="wrap")  # indices are valid; wrap is the cheap mode
                _reduce_rows(vals, scratch64[:size].reshape(vals.shape), out, mb, t0, t1, lengths[mb])
    return out


def _reduce_rows(vals: np.ndarray, x: np.ndarray, out: dict[str, np.ndarray], mb: np.ndarray, t0: int, t1: int,
                 lengths: np.ndarray) -> None:
    """Reduce rows (date, plot, width) of NaN-padded values in place into ``out[..][mb, t0:t1]``."""
    width = vals.shape[-1]
    vals.sort(axis=-1)  # NaN sort last: each row is [valid ascending..., NaN...]
    nan = np.isnan(vals)
    count = width - nan.sum(axis=-1, dtype=np.int64)
    # Percentiles from the sorted valid prefix, before the NaN tail is zeroed for the sums.
    last = np.maximum(count - 1, 0)
    flat = vals.reshape(-1)
    row0 = (np.arange(count.size, dtype=np.int64) * width).reshape(count.shape)  # row starts in `flat`
    for name, q in (("p10", 0.10), ("median", 0.50), ("p90", 0.90)):
        pos = q * last
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, last)
        a = flat[row0 + lo].astype(np.float64)
        b = flat[row0 + hi].astype(np.float64)
        t = pos - lo
        diff = b - a
        val = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)  # numpy's _lerp
        out[name][mb, t0:t1] = np.where(count > 0, val, np.nan).T
    # NaN -> +0.0 by multiplying the bit patterns by 0 (valid ones by 1): exact, and ~10x cheaper
    # than np.copyto(vals, 0.0, where=nan).
    bits = vals.view(np.uint32)
    np.multiply(bits, np.logical_not(nan, out=nan).view(np.uint8), out=bits)
    x[...] = vals
    s1 = x.sum(axis=-1)
    s2 = np.einsum("...i,...i->...", x, x)  # sum of squares without a temporary
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, s1 / count, np.nan)
        # One-pass variance in float64: NDVI lies in [-1, 1], so cancellation costs ~1e-12.
        std = np.where(count > 0, np.sqrt(np.maximum(s2 / count - mean * mean, 0.0)), np.nan)
    out["count"][mb, t0:t1] = count.T
    out["valid_fraction"][mb, t0:t1] = (count / lengths[None, :]).T
    out["mean"][mb, t0:t1] = mean.T
    out["std"][mb, t0:t1] = std.T
