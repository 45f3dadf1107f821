"""Per-plot statistics of a (time, y, x) cube: the hot path.

Design: plots are batched by the grid block that holds their centre. One task per batch reads the
batch's window (all dates), rasterizes each plot *once* (pixel-centre rule) and reduces every date
from the same pixel index. A plot that crosses a chunk boundary is read whole inside its batch
window, so the result does not depend on chunking; overlapping plots are each read in full.
Statistics are accumulated in float64 so results are identical on any scheduler.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from rasterio.features import geometry_mask
from rasterio.transform import Affine

STAT_COLUMNS = ("n_pixels", "count", "valid_fraction", "mean", "std", "median", "p10", "p90")


def plot_timeseries(
    ndvi: xr.DataArray, plots: gpd.GeoDataFrame, group_px: int = 512
) -> pd.DataFrame:
    """Statistics per plot and date: ``plot_id, date`` + STAT_COLUMNS.

    ``ndvi`` has dims (time, y, x) and attrs ``transform`` (its own window); ``plots`` are in the
    cube's CRS. Computes with the active dask scheduler. ``n_pixels`` counts pixel centres inside the
    polygon (0 for a plot smaller than a pixel or outside the grid: its stats are NaN, never invented).
    """
    transform = Affine(*ndvi.attrs["transform"])
    height, width = ndvi.sizes["y"], ndvi.sizes["x"]
    dates = pd.DatetimeIndex(ndvi["time"].values)
    data = ndvi.transpose("time", "y", "x").data

    inv = ~transform
    b = plots.geometry.bounds.to_numpy()
    # Pixel window of each plot: columns from x, rows from y (north-up: top row is max y).
    c0, r0 = inv @ (b[:, 0], b[:, 3])
    c1, r1 = inv @ (b[:, 2], b[:, 1])
    col0 = np.clip(np.floor(np.minimum(c0, c1)).astype(int), 0, width)
    col1 = np.clip(np.ceil(np.maximum(c0, c1)).astype(int), 0, width)
    row0 = np.clip(np.floor(np.minimum(r0, r1)).astype(int), 0, height)
    row1 = np.clip(np.ceil(np.maximum(r0, r1)).astype(int), 0, height)
    key = ((row0 + row1) // 2 // group_px) * (width // group_px + 1) + (col0 + col1) // 2 // group_px

    tasks = []
    for k in np.unique(key):
        members = np.flatnonzero(key == k)
        # Clipped to the grid; a batch of plots wholly outside still gets a 1-pixel window.
        wr0 = min(int(row0[members].min()), height - 1)
        wc0 = min(int(col0[members].min()), width - 1)
        wr1 = min(max(int(row1[members].max()), wr0 + 1), height)
        wc1 = min(max(int(col1[members].max()), wc0 + 1), width)
        block = data[:, wr0:wr1, wc0:wc1]
        wt = transform @ Affine.translation(wc0, wr0)
        ids = plots["plot_id"].iloc[members].tolist()
        wkb = shapely.to_wkb(plots.geometry.values[members])
        tasks.append(dask.delayed(_batch_stats, pure=True)(block, tuple(wt)[:6], ids, list(wkb)))

    frames = dask.compute(*tasks)
    stats = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    per_plot = stats.set_index("plot_id").reindex(plots["plot_id"].tolist())
    # Broadcast per-date arrays to long format in the plots' order (deterministic whatever the batching).
    n_t = len(dates)
    out = pd.DataFrame(
        {
            "plot_id": np.repeat(per_plot.index.to_numpy(), n_t),
            "date": np.tile(dates.to_numpy(), len(per_plot)),
        }
    )
    for col in STAT_COLUMNS:
        if col == "n_pixels":
            out[col] = np.repeat(per_plot[col].to_numpy(), n_t).astype(np.int64)
        else:
            out[col] = np.concatenate(per_plot[col].to_list()) if len(per_plot) else []
    out["count"] = out["count"].astype(np.int64)
    return out


def _batch_stats(block: np.ndarray, transform: Sequence[float], ids: list[str], wkb: list[bytes]) -> pd.DataFrame:
    """Rasterize each plot once in the batch window, then reduce all dates with that pixel index."""
    n_t, h, w = block.shape
    flat = block.reshape(n_t, h * w)
    t = Affine(*transform)
    rows = []
    for pid, geom in zip(ids, shapely.from_wkb(wkb)):
        inside = geometry_mask([geom], out_shape=(h, w), transform=t, invert=True, all_touched=False)
        # C order: row sums are then pairwise per date, so rounding never depends on the layout.
        vals = np.ascontiguousarray(flat[:, np.flatnonzero(inside.ravel())], dtype=np.float64)
        rows.append({"plot_id": pid, "n_pixels": int(inside.sum()), **_reduce(vals)})
    return pd.DataFrame(rows)


def _reduce(vals: np.ndarray) -> dict[str, np.ndarray]:
    """Per-date statistics over the valid (non-NaN) pixels of one plot; NaN where none are valid.

    Sums are plain row reductions of zero-filled arrays, not masked (``where=``) reductions: numpy's
    masked reductions are buffered, so their rounding depends on how many dates are reduced together.
    Plain row sums make a date's statistics independent of the other dates (incremental runs rely on it).
    """
    vals = np.ascontiguousarray(vals, dtype=np.float64)
    n_t, n = vals.shape
    valid = ~np.isnan(vals)
    count = valid.sum(axis=1)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN dates are expected (clouds)
        filled = np.where(valid, vals, 0.0)
        mean = filled.sum(axis=1) / count
        dev = np.where(valid, vals - mean[:, None], 0.0)
        std = np.sqrt((dev * dev).sum(axis=1) / count)
        q = np.nanpercentile(vals, [10, 50, 90], axis=1) if n else np.full((3, n_t), np.nan)
        frac = count / n if n else np.zeros(n_t)
    return {
        "count": count,
        "valid_fraction": frac,
        "mean": mean,
        "std": std,
        "median": q[1],
        "p10": q[0],
        "p90": q[2],
    }
