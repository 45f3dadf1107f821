"""Spectral indices as pure array functions."""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from agrisat.errors import MissingBandError
from agrisat.scenes import qa_bits_clear


def ndvi(cube: xr.DataArray, red: str = "B04", nir: str = "B08") -> xr.DataArray:
    """(NIR - red) / (NIR + red); NaN where either band is masked or the sum is not positive."""
    r = cube.sel(band=red)
    n = cube.sel(band=nir)
    total = n + r
    out = ((n - r) / total.where(total > 0)).astype(np.float32)
    out = out.drop_vars("band", errors="ignore").rename("ndvi")
    out.attrs = dict(cube.attrs)  # keep crs/transform: zonal statistics need the grid
    return out


def masked_ndvi(cube: xr.DataArray, red: str, nir: str, quality: str | None,
                exclude_classes: Sequence[int], exclude_bits: Sequence[int] | None = None) -> xr.DataArray:
    """``ndvi(mask_clouds(cube, ...))`` in one numpy pass per chunk: the same float32 operations in
    the same order (so the same bits), without the chain of xarray intermediates, each a task layer
    and a full pass over the pixels. Dims (time, y, x). With ``exclude_bits`` the quality band is
    bit-packed (Landsat QA_PIXEL): a pixel is clear when none of those bits is set."""
    bands = [str(b) for b in cube["band"].values]
    for name in (red, nir) + ((quality,) if quality else ()):
        if name not in bands:
            raise MissingBandError(f"band {name!r} not in cube bands {bands}")
    ir, inir = bands.index(red), bands.index(nir)
    iq = bands.index(quality) if quality else None
    classes = np.asarray(exclude_classes, dtype=np.float32)

    def fused(block: np.ndarray) -> np.ndarray:  # (time, band, y, x) -> (time, y, x)
        r, n = block[:, ir], block[:, inir]
        if iq is not None:
            q = block[:, iq]
            clear = qa_bits_clear(q, exclude_bits) if exclude_bits is not None else ~np.isnan(q) & ~np.isin(q, classes)
            r, n = np.where(clear, r, np.float32(np.nan)), np.where(clear, n, np.float32(np.nan))
        total = n + r
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((n - r) / np.where(total > 0, total, np.float32(np.nan))).astype(np.float32)

    data = cube.transpose("time", "band", "y", "x").data
    if isinstance(data, da.Array):
        data = data.rechunk({1: -1}).map_blocks(fused, drop_axis=1, dtype=np.float32)
    else:
        data = fused(data)
    out = xr.DataArray(data, dims=("time", "y", "x"),
                       coords={k: cube.coords[k] for k in ("time", "y", "x") if k in cube.coords}, name="ndvi")
    out.attrs = dict(cube.attrs)
    return out
