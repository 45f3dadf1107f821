"""A farmer's plot results (plots.parquet of a published run) as GeoJSON in WGS84."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import geopandas as gpd
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from shapely.geometry import mapping

from agrisat.api.deps import EngineDep, SettingsDep, require
from agrisat.api.models import PlotCollection
from agrisat.api.responses import AUTH_RESPONSES, etag_json
from agrisat.api.routers._params import FarmerId, RunIdQuery
from agrisat.store import queries
from agrisat.store.db import read_tx
from agrisat.store.records import to_json_value

router = APIRouter(tags=["plots"], dependencies=[Depends(require("plots:read"))], responses=AUTH_RESPONSES)


@router.get("/farmers/{farmer_id}/plots", response_model=PlotCollection,
            responses={404: {"description": "Farmer not in the run (or no published limit)."},
                       503: {"description": "The run folder is not readable on this server."}})
def farmer_plots(farmer_id: FarmerId, request: Request, engine: EngineDep, settings: SettingsDep,
                 run_id: RunIdQuery = None) -> Response:
    """Plots of the farmer in `run_id` (default: the run of the farmer's current limit)."""
    with read_tx(engine) as conn:
        if run_id is None:
            run_id = queries.current_run_of(conn, farmer_id)
        elif not queries.farmer_in_run(conn, farmer_id, run_id):
            run_id = None
    if run_id is None:
        raise HTTPException(404, "farmer not found in a published run")
    plots = _PLOTS.get(settings.output_dir / run_id / "plots.parquet")
    mine = plots[plots["farmer_id"].astype(str) == farmer_id]
    return etag_json(request, PlotCollection(farmer_id=farmer_id, run_id=run_id,
                                             features=[_feature(row) for _, row in mine.iterrows()]))


def _feature(row: Any) -> dict[str, Any]:
    props = {k: to_json_value(v) for k, v in row.items() if k != "geometry"}
    if isinstance(props.get("flag_details"), str):  # stored as JSON text in the run folder
        try:
            props["flag_details"] = json.loads(props["flag_details"])
        except ValueError:
            pass
    geom = row["geometry"]
    return {"type": "Feature", "id": str(row["plot_id"]), "properties": props,
            "geometry": mapping(geom) if geom is not None and not geom.is_empty else None}


class _PlotCache:
    """The last few plots.parquet files read, in WGS84. Run folders never change once written."""

    def __init__(self, size: int = 4) -> None:
        self.size, self._lock, self._items = size, threading.Lock(), OrderedDict[Path, gpd.GeoDataFrame]()

    def get(self, path: Path) -> gpd.GeoDataFrame:
        with self._lock:
            if path in self._items:
                self._items.move_to_end(path)
                return self._items[path]
        try:
            gdf = gpd.read_parquet(path)
        except (OSError, ValueError) as e:
            raise HTTPException(503, f"plots of run {path.parent.name} are not readable on this server") from e
        if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
            gdf = gdf.to_crs(4326)
        with self._lock:
            self._items[path] = gdf
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return gdf


_PLOTS = _PlotCache()
