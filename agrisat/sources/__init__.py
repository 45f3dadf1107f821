"""Imagery sources behind one interface: local tiles, Sentinel Hub (or Copernicus Data Space), STAC.

A source answers "these bands over this box and season" with a dask-backed cube (time, band, y, x)
on a stated grid, float32 reflectance with NaN where there is no data, the quality band among the
bands, attrs ``crs`` and ``transform``; and a ``SceneReport`` of the scenes used and skipped (with
the reason), which the run manifest records. One bad scene is skipped and counted; a request for a
band that does not exist, a CRS mismatch or an empty result raises a named error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd
import xarray as xr


@dataclass
class SceneReport:
    used: list[dict] = field(default_factory=list)  # {"date": "YYYY-MM-DD", "source": ..., "detail": ...}
    skipped: list[dict] = field(default_factory=list)  # {"date": "YYYY-MM-DD", "reason": ...}

    def skip(self, date: pd.Timestamp | str, reason: str) -> None:
        self.skipped.append({"date": pd.Timestamp(date).strftime("%Y-%m-%d"), "reason": reason})


class ImagerySource(Protocol):
    def cube(self, bbox: tuple[float, float, float, float], crs: str, start: pd.Timestamp, end: pd.Timestamp,
             bands: list[str]) -> tuple[xr.DataArray, SceneReport]:
        """Bands (the quality band included) over ``bbox`` (in ``crs``) for dates in [start, end]."""
        ...


def snap_bbox(bbox: tuple[float, float, float, float], resolution: float) -> tuple[float, float, float, float]:
    """Grow ``bbox`` outwards to whole pixels of ``resolution`` from the CRS origin, so every source
    puts pixel edges at the same coordinates (UTM tiles of Sentinel-2 are aligned this way)."""
    x0, y0, x1, y1 = bbox
    r = resolution
    return (math.floor(x0 / r) * r, math.floor(y0 / r) * r, math.ceil(x1 / r) * r, math.ceil(y1 / r) * r)
