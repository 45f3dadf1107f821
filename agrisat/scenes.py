"""Cloud, shadow and nodata masking. Pure xarray: same answer on numpy- and dask-backed cubes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from agrisat.errors import MissingBandError


def mask_clouds(cube: xr.DataArray, quality_band: str | None, exclude_classes: Sequence[int]) -> xr.DataArray:
    """Set reflectance to NaN where the quality band is missing or in ``exclude_classes``.

    Nodata is already NaN in the cube (the reader honours each file's nodata). Without a quality
    band (cloud-free composites) only nodata is masked. The quality band is dropped from the result.
    """
    if quality_band is None:
        return cube
    bands = list(cube["band"].values)
    if quality_band not in bands:
        raise MissingBandError(f"quality band {quality_band!r} not in cube bands {bands}")
    q = cube.sel(band=quality_band)
    clear = q.notnull() & ~q.isin(np.asarray(exclude_classes, dtype=q.dtype))
    refl = cube.sel(band=[b for b in bands if b != quality_band])
    out = refl.where(clear)
    out.attrs = dict(cube.attrs)
    return out


def clear_fraction(masked: xr.DataArray, band: str) -> xr.DataArray:
    """Share of pixels per date with a valid value in ``band`` (scene-level, for the manifest)."""
    return masked.sel(band=band).notnull().mean(dim=("y", "x"))


# Landsat Collection 2 QA_PIXEL bits (USGS Landsat 8-9 C2 L2 Science Product Guide): 0 fill,
# 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water.
LANDSAT_QA_NOT_CLEAR_BITS = (0, 1, 2, 3, 4, 5)


def qa_bits_clear(qa: np.ndarray, exclude_bits: Sequence[int] = LANDSAT_QA_NOT_CLEAR_BITS) -> np.ndarray:
    """True where none of ``exclude_bits`` is set in a bit-packed quality band (Landsat QA_PIXEL);
    NaN (no quality value) is not clear."""
    q = np.asarray(qa)
    valid = ~np.isnan(q) if np.issubdtype(q.dtype, np.floating) else np.ones(q.shape, dtype=bool)
    bits = np.where(valid, q, 0).astype(np.uint32)
    mask = np.uint32(sum(1 << int(b) for b in exclude_bits))
    return valid & ((bits & mask) == 0)
