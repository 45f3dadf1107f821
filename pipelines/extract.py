"""Imagery -> cloud mask -> NDVI -> per-plot series, one partition at a time, resumable.

Plots are partitioned by region and by a coarse block of the imagery grid (``imagery.partition_px``).
Each finished partition is written to ``<output_dir>/.work/<run_id>/part-<key>.parquet`` (atomically),
so a crashed run restarted with the same ``--run-id`` recomputes only unfinished partitions. The work
folder records a fingerprint of config and inputs; resuming with different inputs is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from agrisat import indices, plots as plotmod, scenes, zonal
from agrisat.cluster import dask_scheduler
from agrisat.config import RunConfig
from agrisat.errors import RunStoreError
from agrisat.io import tiles
from agrisat.io.runstore import sha256_file

log = logging.getLogger("agrisat.extract")


@dataclass
class Extraction:
    series: pd.DataFrame
    scenes: pd.DataFrame
    scheduler: str
    partitions: list[str]
    computed: list[str] = field(default_factory=list)  # partitions computed in this invocation
    resumed: list[str] = field(default_factory=list)  # partitions taken from an earlier attempt


def work_dir(cfg: RunConfig, run_id: str) -> Path:
    return cfg.run.output_dir / ".work" / run_id


def fingerprint(cfg: RunConfig) -> str:
    """Hash of the config and every input file the extraction reads."""
    h = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode())
    for p in (cfg.inputs.plots, cfg.inputs.imagery_index):
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def partition_keys(plots_grid: gpd.GeoDataFrame, grid: tiles.Grid, partition_px: int) -> pd.Series:
    """``<region>-<row block>-<col block>`` per plot, from the plot's centroid on the imagery grid."""
    c = plots_grid.geometry.centroid
    col, row = ~grid.transform @ (c.x.to_numpy(), c.y.to_numpy())
    rb = np.floor(np.asarray(row) / partition_px).astype(int)
    cb = np.floor(np.asarray(col) / partition_px).astype(int)
    region = plots_grid["region"].astype(str) if "region" in plots_grid.columns else pd.Series("all", index=plots_grid.index)
    return pd.Series([f"{r}-{a}-{b}" for r, a, b in zip(region, rb, cb)], index=plots_grid.index)


def extract_series(cfg: RunConfig, plots: gpd.GeoDataFrame, run_id: str, scheduler: str | None) -> Extraction:
    bands = [cfg.imagery.red, cfg.imagery.nir] + ([cfg.imagery.quality] if cfg.imagery.quality else [])
    index = tiles.read_index(cfg.inputs.imagery_index)
    end = min(cfg.season.end, cfg.run.as_of)
    chosen = tiles.select_scenes(index, cfg.inputs.imagery_area, bands, pd.Timestamp(cfg.season.start), pd.Timestamp(end))
    grid = tiles.common_grid(chosen)
    plots_grid = plotmod.to_grid_crs(plots, grid.crs)
    keys = partition_keys(plots_grid, grid, cfg.imagery.partition_px)

    wdir = work_dir(cfg, run_id)
    _claim(wdir, fingerprint(cfg))
    result = Extraction(pd.DataFrame(), chosen, "", sorted(keys.unique()))
    parts = []
    with dask_scheduler(scheduler or cfg.dask.scheduler, cfg.dask.num_workers) as sched:
        result.scheduler = sched
        for i, key in enumerate(result.partitions, 1):
            path = wdir / f"part-{key}.parquet"
            if path.exists():
                result.resumed.append(key)
                parts.append(pd.read_parquet(path))
                log.info("partition %s (%d/%d) resumed from %s", key, i, len(result.partitions), path)
                continue
            members = plots_grid[keys == key]
            window = tiles.window_for_bounds(grid, tuple(members.total_bounds))
            cube = tiles.open_cube(chosen, grid, window, chunk_px=cfg.imagery.chunk_px)
            masked = scenes.mask_clouds(cube, cfg.imagery.quality, cfg.imagery.exclude_classes)
            ndvi = indices.ndvi(masked, cfg.imagery.red, cfg.imagery.nir)
            series = zonal.plot_timeseries(ndvi, members, group_px=cfg.imagery.plot_group_px)
            _write_atomic(series, path)
            result.computed.append(key)
            parts.append(series)
            log.info("partition %s (%d/%d) done: %d plots, %d plot-dates", key, i, len(result.partitions),
                     len(members), len(series))
    # Back to the registry's plot order, whatever the partitioning: outputs do not depend on it.
    order = {pid: k for k, pid in enumerate(plots["plot_id"])}
    series = pd.concat(parts, ignore_index=True)
    series = series.sort_values(["plot_id", "date"], key=lambda s: s.map(order) if s.name == "plot_id" else s)
    result.series = series.reset_index(drop=True)
    return result


def finish(cfg: RunConfig, run_id: str) -> None:
    """Drop the work folder once the run folder is in place."""
    shutil.rmtree(work_dir(cfg, run_id), ignore_errors=True)


def _claim(wdir: Path, fp: str) -> None:
    meta = wdir / "fingerprint"
    if meta.exists():
        if meta.read_text() != fp:
            raise RunStoreError(f"{wdir}: an unfinished run with this id used other inputs or config; "
                                f"choose another --run-id or delete the folder")
        return
    wdir.mkdir(parents=True, exist_ok=True)
    meta.write_text(fp)


def _write_atomic(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
