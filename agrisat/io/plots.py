"""Read a plot registry (GeoParquet, GeoPackage, GeoJSON, Shapefile) into a GeoDataFrame."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from agrisat.errors import InputDataError

REQUIRED_PLOT_COLUMNS = ("plot_id", "farmer_id", "declared_crop", "season", "geometry")


def read_plots(path: str | Path) -> gpd.GeoDataFrame:
    """Read plots; check the file opens, declares a CRS and has the contract's columns."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{path}: plot file not found")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path)
    except Exception as e:  # pyogrio/arrow raise many types; the user needs the file and the cause
        raise InputDataError(f"{path}: cannot read plot file: {e}") from e
    if gdf.crs is None:
        raise InputDataError(f"{path}: plot file declares no CRS")
    missing = [c for c in REQUIRED_PLOT_COLUMNS if c not in gdf.columns]
    if missing:
        raise InputDataError(f"{path}: missing column(s) {', '.join(missing)}")
    gdf = gdf.reset_index(drop=True)
    for col in ("plot_id", "farmer_id", "declared_crop", "season"):
        gdf[col] = gdf[col].astype("string")
    gdf.attrs["source"] = str(path)
    return gdf
