"""Spectral indices as pure array functions."""

from __future__ import annotations

import numpy as np
import xarray as xr


def ndvi(cube: xr.DataArray, red: str = "B04", nir: str = "B08") -> xr.DataArray:
    """(NIR - red) / (NIR + red); NaN where either band is masked or the sum is not positive."""
    r = cube.sel(band=red)
    n = cube.sel(band=nir)
    total = n + r
    out = ((n - r) / total.where(total > 0)).astype(np.float32)
    out = out.drop_vars("band", errors="ignore").rename("ndvi")
    out.attrs = dict(cube.attrs)  # keep crs/transform: zonal statistics need the grid
    return out
