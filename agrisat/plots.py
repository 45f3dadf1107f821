"""Validate, repair and reproject registered plots. Pure: no file access.

Rows are reported 1-based in file order ("feature 3"), the way a user counts them in QGIS.
"""

from __future__ import annotations

import functools

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from agrisat.config import CropTable
from agrisat.errors import InputDataError, PlotError

def validate_plots(plots: gpd.GeoDataFrame, crops: CropTable, *, source: str = "plots",
                   area_tolerance: float = 0.10) -> gpd.GeoDataFrame:
    """Return a clean copy of ``plots`` with ``area_ha`` and ``flags`` columns, or raise.

    Errors name the file and the feature (row) or plot id: missing ids, duplicate ids, empty or
    unrepairable geometries, non-polygon geometries and crops unknown to the crop table.
    Invalid but repairable geometries (self-intersections) are repaired with ``make_valid``.
    A declared area off the polygon's by more than ``area_tolerance`` (relative) flags AREA_MISMATCH,
    with the numbers in ``area_detail``.
    """
    gdf = plots.copy()
    for col in ("plot_id", "farmer_id", "declared_crop"):
        bad = gdf.index[gdf[col].isna() | (gdf[col].astype("string").str.strip() == "")]
        if len(bad):
            raise InputDataError(f"{source}: feature {bad[0] + 1}: empty {col}")
    dup = gdf["plot_id"][gdf["plot_id"].duplicated(keep=False)]
    if len(dup):
        rows = ", ".join(str(i + 1) for i in dup.index[:5])
        raise InputDataError(f"{source}: duplicate plot_id {dup.iloc[0]!r} (features {rows})")

    geoms = gdf.geometry.values
    for i, (pid, geom) in enumerate(zip(gdf["plot_id"], geoms)):
        where = f"{source}: feature {i + 1} (plot {pid})"
        if geom is None or geom.is_empty:
            raise PlotError(f"{where}: empty geometry")
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
            geoms[i] = _polygonal_part(geom)
        if geoms[i].geom_type not in ("Polygon", "MultiPolygon") or geoms[i].is_empty:
            raise PlotError(f"{where}: geometry is {geom.geom_type}, expected a polygon")
    gdf = gdf.set_geometry(gpd.GeoSeries(geoms, crs=gdf.crs, index=gdf.index))

    for pid, crop in zip(gdf["plot_id"], gdf["declared_crop"]):
        crops.get(str(crop), plot_id=f"{pid} ({source})")

    # Area in metres from a local UTM zone, whatever CRS the file declares.
    utm: CRS = utm_crs(gdf)
    gdf["area_ha"] = gdf.geometry.to_crs(utm).area.to_numpy() / 10_000.0
    flags: list[list[str]] = [[] for _ in range(len(gdf))]
    detail = [""] * len(gdf)
    if "declared_area_ha" in gdf.columns:
        declared = pd.to_numeric(gdf["declared_area_ha"], errors="coerce").to_numpy(dtype=float)
        rel = np.abs(declared - gdf["area_ha"].to_numpy()) / gdf["area_ha"].to_numpy()
        for i in np.flatnonzero(rel > area_tolerance):
            flags[i].append("AREA_MISMATCH")
            area = gdf["area_ha"].iloc[i]
            detail[i] = (f"declared {declared[i]:.2f} ha vs polygon {area:.2f} ha "
                         f"({(declared[i] - area) / area:+.0%}, tolerance {area_tolerance:.0%})")
    gdf["flags"] = flags
    gdf["area_detail"] = detail
    return gdf


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep the polygons of a repaired geometry (make_valid can return a collection)."""
    if geom.geom_type == "GeometryCollection":
        polys = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        return shapely.union_all(polys) if polys else shapely.Polygon()
    return geom


def to_grid_crs(plots: gpd.GeoDataFrame, crs: CRS | str) -> gpd.GeoDataFrame:
    """Reproject plots onto the imagery CRS (pyproj handles datum shifts)."""
    return plots.to_crs(crs)


def utm_crs(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> CRS:
    """``estimate_utm_crs()`` of the plots, remembered: it depends only on the CRS and the total
    bounds, and its pyproj database query (~0.1 s) was paid again by every stage that asked."""
    return _utm_for(gdf.crs.to_wkt(), tuple(float(v) for v in gdf.total_bounds))


@functools.lru_cache(maxsize=64)
def _utm_for(crs_wkt: str, bounds: tuple[float, float, float, float]) -> CRS:
    return gpd.GeoSeries([shapely.box(*bounds)], crs=crs_wkt).estimate_utm_crs()

