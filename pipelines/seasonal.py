"""Seasonal run: registered plots + imagery + weather + leases -> credit limit per farmer.

Reads top to bottom like the data flow in DESIGN.md. Stage functions live in ``agrisat/`` and are
pure; this module does the wiring, the I/O calls, the timings and the manifest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

import agrisat
from agrisat import credit, growth, land, plots as plotmod, weather, yields
from agrisat.config import CropTable, RunConfig, load_crops, load_policy, load_run_config
from agrisat.errors import RunStoreError
from agrisat.io import plots as plots_io
from agrisat.io import runstore, tables
from agrisat.io import weather as weather_io
from pipelines import extract, train_crops, train_yield

log = logging.getLogger("agrisat.run")


@dataclass
class StageTimer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.seconds[stage] = round(time.perf_counter() - t0, 4)
        log.info("stage %s done in %.2f s", stage, self.seconds[stage])


@dataclass(frozen=True)
class RunResult:
    run_id: str
    path: Path
    limits: pd.DataFrame


def run_seasonal(config_path: str | Path, *, run_id: str | None = None, scheduler: str | None = None,
                 incremental_from: str | None = None) -> RunResult:
    """Run the season described by ``config_path``; ``incremental_from`` names an earlier run whose
    statistics are reused for unchanged plots on byte-identical imagery dates."""
    cfg = load_run_config(config_path)
    crops = load_crops(cfg.crops)
    policy = load_policy(cfg.policy).for_stage(cfg.run.stage)
    as_of = cfg.run.as_of
    run_id = run_id or f"{cfg.run.name}-{as_of:%Y%m%d}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    if (cfg.run.output_dir / run_id).exists():  # fail before computing anything
        raise RunStoreError(f"{cfg.run.output_dir / run_id}: run folder already exists; choose another --run-id")
    timer = StageTimer()
    warnings: list[str] = []

    # 1. Plots: read, validate (errors name file, feature, plot), repair.
    with timer("plots"):
        plots = plotmod.validate_plots(plots_io.read_plots(cfg.inputs.plots), crops, source=str(cfg.inputs.plots),
                                       area_tolerance=policy.area_tolerance)

    # 2-3. Imagery -> cloud mask -> NDVI -> per-plot series, partition by partition (resumable).
    with timer("extract"):
        previous_run = extract.load_previous_run(runstore.find_run(cfg.run.output_dir, incremental_from)) if incremental_from else None
        plots["geometry_sha256"] = extract.geometry_sha256(plots)
        extraction = extract.extract_series(cfg, plots, run_id, scheduler, previous_run)
        series = extraction.series
        warnings += [f"scene {s['date']} skipped: {s['reason']}" for s in extraction.scene_report.skipped]

    # 4. Growth metrics and data sufficiency.
    with timer("growth"):
        history = tables.read_growth_history(cfg.inputs.growth_history) if cfg.inputs.growth_history else None
        crop_model = train_crops.load(cfg.crop_classifier) if cfg.crop_classifier else None
        grown = growth.growth_analysis(series, plots, crops, policy, as_of, cfg.season.end, history,
                                       season_start=cfg.season.start, crop_model=crop_model and crop_model["model"])
        metrics = grown.metrics
        # Raw statistics stay as extracted; the cleaned, smoothed value sits beside them.
        series = series.merge(grown.observations, on=["plot_id", "date"], how="left")
        series["is_outlier"] = series["is_outlier"].astype("boolean").fillna(False).astype(bool)
        extras: dict[str, pd.DataFrame] = {"plot_smoothed": grown.curves}

    # 5. Land transfer and weather: who may farm each plot this season, and what the season's
    #    weather did to its crop. Bad rows stop the run or are quarantined (inputs.on_bad_row).
    with timer("land_weather"):
        known_plots, known_farmers = set(plots["plot_id"]), set(plots["farmer_id"].astype(str))
        rejects: dict[str, pd.DataFrame] = {}
        contracts = None
        if cfg.inputs.contracts:
            contracts = tables.read_contracts(cfg.inputs.contracts, known_plots=known_plots,
                                              known_farmers=known_farmers, on_bad_row=cfg.inputs.on_bad_row)
            rejects["contracts"] = contracts.attrs["rejects"]
        windows = _crop_windows(plots, crops, cfg.season.start, cfg.season.end)
        leases = land.check_leases(plots, contracts, cfg.season.start, cfg.season.end, windows)
        regional: dict[str, dict[str, float]] = {}
        source = _read_weather(cfg)
        if source is not None:
            points, obs = source
            centroids = plots.to_crs(plots.estimate_utm_crs()).centroid.to_crs(4326)
            lonlat = pd.DataFrame({"plot_id": plots["plot_id"], "lon": centroids.x, "lat": centroids.y})
            match = weather.nearest_points(lonlat, points)
            wx = weather.season_features(match, plots, obs, crops, policy.weather, cfg.season.start, cfg.season.end, as_of)
            wx = wx.merge(weather.season_totals(match, obs, cfg.season.start, cfg.season.end), on="plot_id")
            extras["plot_weather"] = weather.monthly_series(match, obs, cfg.season.start, cfg.season.end)
            regional = weather.region_shocks(wx, plots, policy.weather)
            warnings += [f"plot {r.plot_id}: {r.weather_days_missing} of {r.weather_days} weather days missing"
                         for r in wx.itertuples() if r.weather_days_missing]
        else:
            wx = pd.DataFrame({"plot_id": plots["plot_id"], "weather_flags": [[] for _ in range(len(plots))],
                               "weather_flag_details": [{} for _ in range(len(plots))]})

    # 6. Yield with uncertainty -> revenue -> limits (stage rules, change rules vs previous limits).
    with timer("credit"):
        model_version = yields.model_version(crops)
        if policy.evidence == "prior":
            est = yields.prior_yield(plots, crops, policy.prior_relative_sd)
        else:
            est = yields.estimate_yield(metrics, plots, crops)
            if cfg.yield_model:
                artifact = train_yield.load(cfg.yield_model)
                crop_of = dict(zip(plots["plot_id"], plots["declared_crop"].astype(str)))
                feats = metrics.merge(wx, on="plot_id", how="left")
                feats["crop"] = feats["plot_id"].map(crop_of)
                est = yields.with_model(est, train_yield.predict(artifact, feats), artifact["version"])
                model_version = f"{artifact['version']}+{model_version}"
        results = _plot_results(plots, metrics, leases, wx, est)
        results = credit.plot_revenue(results, crops, policy)
        debt, holds = None, {}
        if cfg.inputs.debt:
            debt = tables.read_debt(cfg.inputs.debt, known_farmers=known_farmers, on_bad_row=cfg.inputs.on_bad_row)
            rejects["debt"] = debt.attrs["rejects"]
            # A farmer whose debt record was set aside owes an unknown amount: hold, do not lend.
            holds = {str(f): f"debt row {r} quarantined: {why}"
                     for f, r, why in zip(rejects["debt"]["farmer_id"], rejects["debt"]["row"], rejects["debt"]["reason"])
                     if str(f) in known_farmers}
        previous = tables.read_previous_limits(cfg.inputs.previous_limits) if cfg.inputs.previous_limits else None
        limits = credit.farmer_limits(results, debt, policy, as_of, previous, holds)
        limits = _add_lineage(limits, results, series, policy.version, model_version, run_id,
                              policy.min_valid_fraction, _inputs_digest(cfg, extraction))

    manifest = _manifest(cfg, run_id, extraction, timer, warnings, plots, series, limits,
                         crops.version, policy.version, model_version)
    manifest["stage"] = cfg.run.stage
    manifest["crop_classifier_version"] = crop_model["version"] if crop_model else None
    manifest["weather_shocks_by_region"] = regional
    manifest["rejects"] = {name: int(len(df)) for name, df in sorted(rejects.items())}
    extras |= {f"rejects_{name}": df.astype(str) for name, df in rejects.items() if len(df)}
    manifest["min_valid_fraction"] = policy.min_valid_fraction
    path = runstore.write_run(cfg.run.output_dir, run_id, _to_geoparquet(results), series, limits, manifest, extras)
    extract.finish(cfg, run_id)
    return RunResult(run_id, path, limits)


def _plot_results(plots: gpd.GeoDataFrame, metrics: pd.DataFrame, leases: pd.DataFrame,
                  wx: pd.DataFrame, est: pd.DataFrame) -> gpd.GeoDataFrame:
    """One row per plot: registry columns + metrics + lease + weather + yield, with one flag list."""
    out = plots.merge(metrics, on="plot_id", how="left").merge(leases, on="plot_id", how="left")
    out = out.merge(wx, on="plot_id", how="left").merge(est, on="plot_id", how="left")
    out["flags"] = [
        list(pf) + list(gf) + list(wf) + ([lc] if lc in land.EXCLUDING_LEASE_CODES else [])
        for pf, gf, wf, lc in zip(out["flags"], out["growth_flags"], out["weather_flags"], out["lease_code"])
    ]
    # Every flag's numbers in one JSON column: growth, weather, lease and area checks.
    details = []
    for gd, wd, lc, ld, ad in zip(out.pop("growth_flag_details"), out.pop("weather_flag_details"),
                                  out["lease_code"], out["lease_detail"], out["area_detail"]):
        d = {**gd, **wd}
        if lc in land.EXCLUDING_LEASE_CODES:
            d[lc] = ld
        if ad:
            d["AREA_MISMATCH"] = ad
        details.append(json.dumps(d, sort_keys=True))
    out["flag_details"] = details
    return gpd.GeoDataFrame(out.drop(columns=["growth_flags", "weather_flags"]), geometry="geometry", crs=plots.crs)


def _crop_windows(plots: pd.DataFrame, crops: CropTable, season_start: dt.date, season_end: dt.date) -> pd.DataFrame:
    """Sowing .. harvest of each plot's declared crop (a lease must cover it)."""
    rows = []
    for pid, crop in zip(plots["plot_id"], plots["declared_crop"].astype(str)):
        start, end = weather.crop_window(crops.get(crop, plot_id=str(pid)), season_end, season_start=season_start)
        rows.append({"plot_id": pid, "crop_start": start, "crop_end": end})
    return pd.DataFrame(rows)


def _read_weather(cfg: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The configured weather source as (points, observations), or None when there is none."""
    i = cfg.inputs
    if i.weather:
        return weather_io.monthly_cells(tables.read_weather_monthly(i.weather))
    if i.weather_stations:
        return weather_io.read_stations(i.weather_stations, i.weather_daily)
    if i.weather_grid:
        variables = {k: v.model_dump() for k, v in cfg.weather.grid_variables.items()}
        return weather_io.read_grid(i.weather_grid, variables, crs=cfg.weather.grid_crs, time_dim=cfg.weather.grid_time_dim)
    return None


def _add_lineage(limits: pd.DataFrame, results: pd.DataFrame, series: pd.DataFrame, policy_version: str,
                 model_version: str, run_id: str, min_valid: float, inputs_sha256: str) -> pd.DataFrame:
    """Lineage on every limit; ``inputs_sha256`` digests every input file and tile the run read."""
    clear = series[series["valid_fraction"] >= min_valid]
    farmer_of = dict(zip(results["plot_id"], results["farmer_id"]))
    dates = clear.assign(farmer_id=clear["plot_id"].map(farmer_of)).groupby("farmer_id")["date"]
    per_farmer = {f: sorted({d.strftime("%Y-%m-%d") for d in g}) for f, g in dates}
    out = limits.copy()
    out["run_id"] = run_id
    out["policy_version"] = policy_version
    out["model_version"] = model_version
    out["imagery_dates"] = [per_farmer.get(f, []) for f in out["farmer_id"]]
    out["inputs_sha256"] = inputs_sha256
    return out


def _inputs_digest(cfg: RunConfig, extraction: extract.Extraction) -> str:
    h = hashlib.sha256()
    for p in _input_files(cfg).values():
        h.update(runstore.sha256_file(p).encode())
    for key in sorted(extraction.scene_sha256):
        h.update(extraction.scene_sha256[key].encode())
    return h.hexdigest()


def _input_files(cfg: RunConfig) -> dict[str, Path]:
    # Imagery files are hashed one by one (manifest "imagery"); a folder has no hash of its own.
    files = {k: v for k, v in cfg.inputs.model_dump().items() if isinstance(v, Path) and k != "imagery_folder"}
    files |= {"config": cfg.source_file, "crops": cfg.crops, "policy": cfg.policy}
    if cfg.yield_model:
        files["yield_model"] = cfg.yield_model
    if cfg.crop_classifier:
        files["crop_classifier"] = cfg.crop_classifier
    return {k: v for k, v in sorted(files.items()) if v}


def _to_geoparquet(results: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return results.to_crs(4326)  # WGS84 for QGIS/DuckDB users; area columns were computed in UTM


def _manifest(cfg: RunConfig, run_id: str, extraction: extract.Extraction, timer: StageTimer,
              warnings: list[str], plots: pd.DataFrame, series: pd.DataFrame, limits: pd.DataFrame,
              crops_version: str, policy_version: str, model_version: str) -> dict[str, Any]:
    inputs = {k: {"path": str(p), "sha256": runstore.sha256_file(p)} for k, p in _input_files(cfg).items()}
    scenes_used = extraction.scenes
    imagery = [{"date": d, "band": r.band, "path": r.path, "sha256": extraction.file_sha256[r.abspath],
                "scene_sha256": extraction.scene_sha256[(d, r.band)]}
               for r in scenes_used.itertuples() for d in [r.date.strftime("%Y-%m-%d")]]
    return {
        "run_id": run_id,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": cfg.model_dump(mode="json"),
        "versions": _versions(),
        "crops_version": crops_version,
        "policy_version": policy_version,
        "model_version": model_version,
        "scheduler": extraction.scheduler,
        "partitions": {"all": extraction.partitions, "computed": extraction.computed, "resumed": extraction.resumed},
        "dates": {"read": extraction.new_dates, "reused": extraction.reused_dates},
        "inputs": inputs,
        "imagery_source": cfg.imagery.source,
        "imagery": imagery,
        "scenes_used": extraction.scene_report.used,  # per date: source and its detail (STAC item id ...)
        "scenes_skipped": extraction.scene_report.skipped,
        "counts": {
            "plots": int(len(plots)),
            "farmers": int(limits["farmer_id"].nunique()),
            "scenes": int(scenes_used["date"].nunique()),
            "scenes_skipped": len(extraction.scene_report.skipped),
            "plot_dates": int(len(series)),
            "limits_by_status": {k: int(v) for k, v in limits["status"].value_counts().sort_index().items()},
        },
        "timings_s": timer.seconds,
        "warnings": warnings,
    }


def _versions() -> dict[str, str]:
    import dask
    import rasterio
    import shapely
    import xarray

    return {
        "agrisat": agrisat.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "xarray": xarray.__version__,
        "dask": dask.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "geopandas": gpd.__version__,
        "shapely": shapely.__version__,
    }
