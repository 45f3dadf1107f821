"""Imagery -> cloud mask -> NDVI -> per-plot series, one partition at a time, resumable.

Plots are partitioned by a coarse block of the imagery grid (``imagery.partition_px``), never by an
attribute such as region whose plots interleave in space.
Each finished partition is written to ``<output_dir>/.work/<run_id>/part-<key>.parquet`` (atomically),
so a crashed run restarted with the same ``--run-id`` recomputes only unfinished partitions. The work
folder records a fingerprint of config and inputs; resuming with different inputs is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from agrisat import plots as plotmod, zonal
from agrisat.cluster import dask_scheduler
from agrisat.config import RunConfig
from agrisat.errors import RunStoreError
from agrisat.io import runstore, tiles
from agrisat.io.runstore import sha256_file
from agrisat.sources import SceneReport, fetch, local, snap_bbox
from agrisat.sources.local import LocalTiles

log = logging.getLogger("agrisat.extract")


@dataclass
class Extraction:
    series: pd.DataFrame
    scenes: pd.DataFrame
    scheduler: str
    partitions: list[str]
    scene_sha256: dict[tuple[str, str], str] = field(default_factory=dict)  # (date, band) -> hash
    file_sha256: dict[str, str] = field(default_factory=dict)  # path -> hash
    scene_report: SceneReport = field(default_factory=SceneReport)  # dates used and skipped, with reasons
    computed: list[str] = field(default_factory=list)  # partitions computed in this invocation
    resumed: list[str] = field(default_factory=list)  # partitions taken from an earlier attempt
    reused_dates: list[str] = field(default_factory=list)  # dates taken from the previous run
    new_dates: list[str] = field(default_factory=list)  # dates read from imagery in this run


GROWTH_COLUMNS = ("ndvi_smooth", "is_outlier")  # added to plot_timeseries by the growth stage


@dataclass(frozen=True)
class PreviousRun:
    """What an incremental run may reuse: the earlier run's series, scene hashes and plot hashes."""

    series: pd.DataFrame
    scene_sha256: dict[tuple[str, str], str]
    plot_sha256: dict[str, str]
    statistics_key: str | None = None  # None (a run from before the key): nothing is reused


def load_previous_run(run_dir: Path) -> PreviousRun:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    plots = pd.read_parquet(run_dir / "plots.parquet", columns=["plot_id", "geometry_sha256"])
    return PreviousRun(
        # Only the extracted statistics: smoothing columns belong to the growth stage and are recomputed.
        series=pd.read_parquet(run_dir / "plot_timeseries.parquet").drop(columns=list(GROWTH_COLUMNS), errors="ignore"),
        scene_sha256={(s["date"], s["band"]): s.get("scene_sha256", s["sha256"]) for s in manifest["imagery"]},
        plot_sha256=dict(zip(plots["plot_id"], plots["geometry_sha256"])),
        statistics_key=manifest.get("statistics_key"),
    )


# Bump when the pixel rule or the reduction changes a number: earlier runs' statistics are then stale.
STATISTICS_VERSION = "zonal-centre-v1"


def statistics_key(cfg: RunConfig) -> str:
    """Hash of every setting that changes a plot's statistics on the same files: bands, mask
    classes or bits, quality band and profile, grid and resolution, source, and the pixel rule.
    An incremental run reuses nothing from a run with another key."""
    im = cfg.imagery
    settings = {"version": STATISTICS_VERSION, "source": im.source, "profile": im.profile, "red": im.red, "nir": im.nir,
                "quality": im.quality, "exclude_classes": list(im.exclude_classes),
                "exclude_bits": None if im.exclude_bits is None else list(im.exclude_bits),
                "grid_crs": im.grid_crs, "resolution": im.resolution, "layout": cfg.inputs.imagery_layout}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def geometry_sha256(plots: gpd.GeoDataFrame) -> pd.Series:
    """Hash of each registered geometry and its CRS: an unchanged plot can reuse earlier statistics."""
    crs = plots.crs.to_string().encode()
    return pd.Series([hashlib.sha256(crs + g.wkb).hexdigest() for g in plots.geometry], index=plots.index)


def _reusable_dates(chosen: pd.DataFrame, hashes: dict[tuple[str, str], str], prev: PreviousRun | None,
                    key: str) -> set[str]:
    """Dates whose every band file is byte-identical to what the previous run read, under the same
    statistics settings (``statistics_key``)."""
    if prev is None or prev.statistics_key != key:
        return set()
    done = set(prev.series["date"].dt.strftime("%Y-%m-%d"))
    ok = set()
    for date, grp in chosen.groupby(chosen["date"].dt.strftime("%Y-%m-%d")):
        if date in done and all(prev.scene_sha256.get((date, b)) == hashes[(date, b)] for b in grp["band"]):
            ok.add(date)
    return ok


def work_dir(cfg: RunConfig, run_id: str) -> Path:
    return cfg.run.output_dir / ".work" / run_id


def fingerprint(cfg: RunConfig, scene_sha256: dict[tuple[str, str], str]) -> str:
    """Hash of the config, the plots and every imagery file the extraction reads."""
    h = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode())
    h.update(sha256_file(cfg.inputs.plots).encode())
    for key in sorted(scene_sha256):
        h.update(scene_sha256[key].encode())
    return h.hexdigest()


def open_imagery(cfg: RunConfig, plots: gpd.GeoDataFrame, bands: list[str]) -> tuple[LocalTiles, pd.DataFrame, SceneReport, tiles.Grid]:
    """The season's scenes as local files on one grid: an index, a folder scan, or what a remote
    source (Sentinel Hub, STAC) fetched into ``<output_dir>/.imagery/`` (agrisat/sources/fetch.py)."""
    start, end = pd.Timestamp(cfg.season.start), pd.Timestamp(min(cfg.season.end, cfg.run.as_of))
    im, area = cfg.imagery, cfg.inputs.imagery_area
    if im.source == "local":
        if cfg.inputs.imagery_index is not None:
            index = tiles.read_index(cfg.inputs.imagery_index)
        else:
            assert cfg.inputs.imagery_folder is not None
            index = local.scan_folder(cfg.inputs.imagery_folder, cfg.inputs.imagery_layout, im.profile)
    else:
        crs = im.grid_crs or plotmod.utm_crs(plots).to_string()
        res = im.resolution or 10.0
        bbox = snap_bbox(tuple(plots.to_crs(crs).total_bounds), res)
        bbox = (bbox[0] - res, bbox[1] - res, bbox[2] + res, bbox[3] + res)  # one pixel of margin
        folder = cfg.run.output_dir / ".imagery"  # fetched scenes and the Sentinel Hub response cache
        source, settings = _remote_source(cfg, res, folder)
        key = fetch.request_key(settings, bbox, crs, start, end, bands)
        index_path, fetched = fetch.fetch_to_folder(source, key, folder, bbox, crs, start, end, bands, area=area)
        index = tiles.read_index(index_path)
    src = local.LocalTiles(index, area, grid_crs=im.grid_crs, resolution=im.resolution)
    chosen, report = src.scenes(bands, start, end)
    if im.source != "local":
        report = SceneReport(used=fetched.used, skipped=fetched.skipped + report.skipped)
    return src, chosen, report, src.grid(chosen)


def _remote_source(cfg: RunConfig, resolution: float, folder: Path):
    im = cfg.imagery
    if im.source == "sentinelhub":
        from agrisat.sources.sentinelhub import SentinelHubSource

        sh = im.sentinelhub
        src = SentinelHubSource(folder / "sentinelhub-cache", base_url=sh.base_url,
                                token_url=sh.token_url, deployment=sh.deployment, resolution=resolution,
                                max_cloud_cover=sh.max_cloud_cover, max_attempts=sh.max_attempts,
                                backoff_s=sh.backoff_s, timeout_s=sh.timeout_s)
        return src, {"source": "sentinelhub", "base_url": src.config.sh_base_url, "max_cloud_cover": sh.max_cloud_cover}
    from agrisat.sources.stac import StacSource

    st = im.stac
    return (StacSource(st.url, st.collection, resolution=resolution, max_cloud_cover=st.max_cloud_cover),
            {"source": "stac", "url": st.url, "collection": st.collection, "max_cloud_cover": st.max_cloud_cover})


def scene_hashes(chosen: pd.DataFrame, cache_path: Path | None = None) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """SHA-256 per file, and per (date, band): the file's, or a digest of its tiles' in path order.

    With ``cache_path``, a file whose path, size and modification time are those of the cached entry
    is not read again (a national rerun would otherwise reread terabytes to hash them); any change of
    size or mtime rehashes it."""
    files = runstore.sha256_files(sorted(chosen["abspath"].unique()), cache_path)
    scenes = {}
    for (date, band), grp in chosen.groupby([chosen["date"].dt.strftime("%Y-%m-%d"), "band"]):
        paths = sorted(grp["abspath"])
        scenes[(date, band)] = files[paths[0]] if len(paths) == 1 else hashlib.sha256(
            "".join(files[p] for p in paths).encode()).hexdigest()
    return files, scenes


def partition_keys(plots_grid: gpd.GeoDataFrame, grid: tiles.Grid, partition_px: int) -> pd.Series:
    """``<row block>-<col block>`` per plot, from the plot's centroid on the imagery grid.

    Space only, never an attribute: a partition decodes the imagery window around its plots, so a
    key such as ``region``, whose plots interleave on the tile, made every region decode the same
    window again (7 regions on a 2048 px tile: 7 reads of it, BENCHMARKS.md "Whole season end to end").
    """
    c = plots_grid.geometry.centroid
    col, row = ~grid.transform @ (c.x.to_numpy(), c.y.to_numpy())
    rb = np.floor(np.asarray(row) / partition_px).astype(int)
    cb = np.floor(np.asarray(col) / partition_px).astype(int)
    return pd.Series([f"{a}-{b}" for a, b in zip(rb, cb)], index=plots_grid.index)


def extract_series(cfg: RunConfig, plots: gpd.GeoDataFrame, run_id: str, scheduler: str | None,
                   previous: PreviousRun | None = None) -> Extraction:
    """Per plot x date NDVI statistics; with ``previous``, unchanged plots reuse unchanged dates."""
    bands = [cfg.imagery.red, cfg.imagery.nir] + ([cfg.imagery.quality] if cfg.imagery.quality else [])
    source, chosen, report, grid = open_imagery(cfg, plots, bands)
    plots_grid = plotmod.to_grid_crs(plots, grid.crs)
    keys = partition_keys(plots_grid, grid, cfg.imagery.partition_px)

    file_hashes, hashes = scene_hashes(chosen, cfg.run.output_dir / ".sha256-cache.json")
    reusable = _reusable_dates(chosen, hashes, previous, statistics_key(cfg))
    geom_sha = geometry_sha256(plots)

    wdir = work_dir(cfg, run_id)
    _claim(wdir, fingerprint(cfg, hashes))
    result = Extraction(pd.DataFrame(), chosen, "", sorted(keys.unique()), scene_sha256=hashes,
                        file_sha256=file_hashes, scene_report=report)
    all_dates = sorted({d for d, _ in hashes})
    result.reused_dates = sorted(reusable)
    result.new_dates = [d for d in all_dates if d not in reusable]
    parts = []
    with dask_scheduler(scheduler or cfg.dask.scheduler, cfg.dask.num_workers) as sched:
        result.scheduler = sched
        for i, key in enumerate(result.partitions, 1):
            path = wdir / f"part-{key}.parquet"
            members = plots_grid[keys == key]
            if path.exists():
                result.resumed.append(key)
                parts.append(_with_grid_counts(pd.read_parquet(path), members, grid))
                log.info("partition %s (%d/%d) resumed from %s", key, i, len(result.partitions), path)
                continue
            unchanged = previous is not None and all(
                previous.plot_sha256.get(pid) == h for pid, h in zip(members["plot_id"], geom_sha[keys == key]))
            dates = result.new_dates if unchanged else all_dates
            todo = chosen[chosen["date"].dt.strftime("%Y-%m-%d").isin(dates)]
            with _progress(sched):
                series = _compute(cfg, source, grid, todo, members) if len(todo) else None
            if unchanged:
                assert previous is not None
                old = previous.series[previous.series["plot_id"].isin(members["plot_id"])
                                      & previous.series["date"].dt.strftime("%Y-%m-%d").isin(reusable)]
                series = pd.concat([old, series], ignore_index=True) if series is not None else old.reset_index(drop=True)
                series = _with_grid_counts(series, members, grid)
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


def _compute(cfg: RunConfig, source: LocalTiles, grid: tiles.Grid, scenes_todo: pd.DataFrame,
             members: gpd.GeoDataFrame) -> pd.DataFrame:
    window = tiles.window_within(grid, tuple(members.total_bounds))
    if window is None:
        # A partition wholly off the imagery (keys come from centroids): its plots get rows that say
        # "not seen" (n_pixels 0, NaN statistics), so growth flags them and the run goes on.
        log.warning("partition of %d plot(s) lies outside the imagery %s: no pixel read", len(members), grid.bounds)
        return zonal.outside_timeseries(pd.DatetimeIndex(sorted(scenes_todo["date"].unique())), members,
                                        grid.transform)
    ndvi = source.open_ndvi(scenes_todo, grid, window, cfg.imagery, chunk_px=cfg.imagery.chunk_px)
    return zonal.plot_timeseries(ndvi, members, group_px=cfg.imagery.plot_group_px)


def _with_grid_counts(series: pd.DataFrame, members: gpd.GeoDataFrame, grid: tiles.Grid) -> pd.DataFrame:
    """Rows written before ``n_pixels_grid`` existed (a previous run's series, an unfinished
    partition of older code) lack it. It depends only on the polygon and the grid, which reused dates
    share (same scene hashes), so it is recomputed from the polygons rather than assumed equal to
    n_pixels: a plot half off the tile must not look wholly seen."""
    col = zonal.GRID_COLUMN
    if col in series.columns and not series[col].isna().any():
        return series
    counts = pd.Series(zonal.grid_pixel_counts(members.geometry.values, grid.transform), index=members["plot_id"].to_numpy())
    fill = series["plot_id"].map(counts)
    out = series.copy()
    out[col] = (out[col].fillna(fill) if col in out.columns else fill).astype(np.int64)
    order = [c for c in out.columns if c != col]
    order.insert(order.index("n_pixels") + 1, col)  # where plot_timeseries puts it
    return out[order]


def _progress(scheduler: str):
    """A progress bar for local schedulers on a terminal; logs only otherwise (cron, CI, clusters)."""
    if sys.stderr.isatty() and scheduler in ("threads", "synchronous", "processes"):
        from dask.diagnostics import ProgressBar

        return ProgressBar(minimum=2.0)
    return contextlib.nullcontext()


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
