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
from agrisat.config import CropTable, Policy, RunConfig, load_crops, load_policy, load_run_config
from agrisat.cropcalendar import HARVEST_MARGIN_DAYS
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
    warnings: tuple[str, ...] = ()


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

    # 4-6. Growth, land and weather, yield, credit: one pure chain (``decide``) on what was read.
    history = tables.read_growth_history(cfg.inputs.growth_history) if cfg.inputs.growth_history else None
    crop_model = train_crops.load(cfg.crop_classifier) if cfg.crop_classifier else None
    known_plots, known_farmers = set(plots["plot_id"]), set(plots["farmer_id"].astype(str))
    rejects: dict[str, pd.DataFrame] = {}
    contracts = debt = None
    if cfg.inputs.contracts:
        contracts = tables.read_contracts(cfg.inputs.contracts, known_plots=known_plots,
                                          known_farmers=known_farmers, on_bad_row=cfg.inputs.on_bad_row)
        rejects["contracts"] = contracts.attrs["rejects"]
    if cfg.inputs.debt:
        debt = tables.read_debt(cfg.inputs.debt, known_farmers=known_farmers, on_bad_row=cfg.inputs.on_bad_row)
        rejects["debt"] = debt.attrs["rejects"]
    evidence = Evidence(
        series=series, plots=plots, crops=crops, policy=policy, stage=cfg.run.stage, as_of=as_of,
        season_start=cfg.season.start, season_end=cfg.season.end, contracts=contracts, weather=_read_weather(cfg),
        debt=debt, debt_rejects=rejects.get("debt"),
        previous=tables.read_previous_limits(cfg.inputs.previous_limits) if cfg.inputs.previous_limits else None,
        history=history, crop_model=crop_model and crop_model["model"],
        yield_artifact=train_yield.load(cfg.yield_model) if cfg.yield_model else None)
    decision = decide(evidence, timer)
    series, results, extras = decision.series, decision.results, decision.extras
    warnings += decision.warnings  # in the manifest; the CLI prints them under the limits
    model_version = decision.model_version
    limits = _add_lineage(decision.limits, results, series, policy.version, model_version, run_id,
                          policy.min_valid_fraction, _inputs_digest(cfg, extraction))
    regional = decision.regional

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
    return RunResult(run_id, path, limits, tuple(warnings))


@dataclass(frozen=True)
class Evidence:
    """Everything a season's decisions rest on, already read and validated: the input of ``decide``."""

    series: pd.DataFrame  # per plot x date statistics (extraction's output)
    plots: gpd.GeoDataFrame  # validated registry (plots.validate_plots)
    crops: CropTable
    policy: Policy  # in force at the stage (Policy.for_stage)
    stage: str
    as_of: dt.date
    season_start: dt.date
    season_end: dt.date
    contracts: pd.DataFrame | None = None
    weather: tuple[pd.DataFrame, pd.DataFrame] | None = None  # (points, observations)
    debt: pd.DataFrame | None = None  # None: no debt file (policy.debt.file_missing applies)
    debt_rejects: pd.DataFrame | None = None  # quarantined debt rows: their farmers are held
    previous: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    crop_model: Any = None
    yield_artifact: dict[str, Any] | None = None


@dataclass(frozen=True)
class Decision:
    series: pd.DataFrame  # the extracted series with ndvi_smooth and is_outlier beside it
    results: gpd.GeoDataFrame  # one row per plot
    limits: pd.DataFrame  # one row per farmer (before lineage)
    extras: dict[str, pd.DataFrame]
    warnings: list[str]
    regional: dict[str, dict[str, float]]
    model_version: str


def decide(ev: Evidence, timer: StageTimer | None = None) -> Decision:
    """Growth -> land and weather -> yield -> credit on what was read. Pure: the property tests call
    exactly this, so what they prove holds for ``run_seasonal``."""
    timer = timer or StageTimer()
    plots, crops, policy, as_of = ev.plots, ev.crops, ev.policy, ev.as_of
    farmers = set(plots["farmer_id"].astype(str))
    windows = _crop_windows(plots, crops, ev.season_start, ev.season_end)  # sowing .. harvest per plot
    warnings = stage_warnings(ev.stage, windows, as_of)

    # 4. Growth metrics and data sufficiency.
    with timer("growth"):
        grown = growth.growth_analysis(ev.series, plots, crops, policy, as_of, ev.season_end, ev.history,
                                       season_start=ev.season_start, crop_model=ev.crop_model)
        metrics = grown.metrics
        # Raw statistics stay as extracted; the cleaned, smoothed value sits beside them.
        series = ev.series.merge(grown.observations, on=["plot_id", "date"], how="left")
        series["is_outlier"] = series["is_outlier"].astype("boolean").fillna(False).astype(bool)
        extras: dict[str, pd.DataFrame] = {"plot_smoothed": grown.curves}

    # 5. Land transfer and weather: who may farm each plot this season, what rent is owed, and what
    #    the season's weather did to its crop.
    with timer("land_weather"):
        leases = land.check_leases(plots, ev.contracts, ev.season_start, ev.season_end, windows)
        rent = land.rent_obligations(ev.contracts, farmers, ev.season_start, ev.season_end)
        regional: dict[str, dict[str, float]] = {}
        if ev.weather is not None:
            points, obs = ev.weather
            centroids = plots.to_crs(plotmod.utm_crs(plots)).centroid.to_crs(4326)
            lonlat = pd.DataFrame({"plot_id": plots["plot_id"], "lon": centroids.x, "lat": centroids.y})
            match = weather.nearest_points(lonlat, points)
            wx = weather.season_features(match, plots, obs, crops, policy.weather, ev.season_start, ev.season_end,
                                         as_of, points=points)
            wx = wx.merge(weather.season_totals(match, obs, ev.season_start, ev.season_end), on="plot_id")
            extras["plot_weather"] = weather.monthly_series(match, obs, ev.season_start, ev.season_end)
            regional = weather.region_shocks(wx, plots, policy.weather)
            warnings += [f"plot {r.plot_id}: {r.weather_days_missing} of {r.weather_days} weather days missing"
                         for r in wx.itertuples() if r.weather_days_missing]
        else:
            wx = weather.no_weather(plots, policy.weather)
            warnings.append("no weather source: no shock rule evaluated; every plot is charged as if each shock "
                            "had happened (WEATHER_RULES_NOT_EVALUATED) and sent to review")

    # 6. Yield with uncertainty -> revenue -> limits (stage rules, change rules vs previous limits).
    with timer("credit"):
        model_version = yields.model_version(crops)
        if policy.evidence == "prior":
            est = yields.prior_yield(plots, crops, policy.prior_relative_sd)
        else:
            est = yields.estimate_yield(metrics, plots, crops)
            if ev.yield_artifact:
                crop_of = dict(zip(plots["plot_id"], plots["declared_crop"].astype(str)))
                feats = metrics.merge(wx, on="plot_id", how="left")
                feats["crop"] = feats["plot_id"].map(crop_of)
                est = yields.with_model(est, train_yield.predict(ev.yield_artifact, feats), ev.yield_artifact["version"])
                model_version = f"{ev.yield_artifact['version']}+{model_version}"
        results = _plot_results(plots, metrics, leases, wx, est)
        results = credit.plot_revenue(results, crops, policy)
        holds = {}
        if ev.debt_rejects is not None and len(ev.debt_rejects):
            # A farmer whose debt record was set aside owes an unknown amount: hold, do not lend.
            r = ev.debt_rejects
            holds = {str(f): f"debt row {row} quarantined: {why}"
                     for f, row, why in zip(r["farmer_id"], r["row"], r["reason"]) if str(f) in farmers}
        warnings += _debt_warnings(ev.debt, farmers, holds, policy)
        limits = credit.farmer_limits(results, policy, as_of, rent=rent, debt=ev.debt, previous=ev.previous,
                                      holds=holds)
    return Decision(series, results, limits, extras, warnings, regional, model_version)


def stage_warnings(stage: str, windows: pd.DataFrame, as_of: dt.date) -> list[str]:
    """A ``harvest`` run before any registered crop's harvest or after all of them (with the calendar's
    margin), or an ``after_harvest`` run before any harvest, runs but says so. ``windows``: the plots'
    ``_crop_windows``."""
    if stage not in ("harvest", "after_harvest") or windows.empty:
        return []
    harvest0 = windows["crop_end"].min()  # crop_window ends at the calendar's harvest date
    last = windows["crop_end"].max() + pd.Timedelta(days=HARVEST_MARGIN_DAYS)
    t = pd.Timestamp(as_of)
    if t < harvest0:
        return [f"stage {stage} at {as_of}: before the first harvest of the registered crops ({harvest0:%Y-%m-%d})"]
    if stage == "harvest" and t > last:
        return [f"stage harvest at {as_of}: after every registered crop's harvest (the last, "
                f"{HARVEST_MARGIN_DAYS} days' margin included, {last:%Y-%m-%d}); after_harvest may be meant"]
    return []


def _debt_warnings(debt: pd.DataFrame | None, farmers: set[str], holds: dict[str, str], policy: Policy) -> list[str]:
    """What an unknown debt was taken to mean: never a silent zero."""
    if debt is None:
        return [f"no debt file: every farmer's debt is unknown (policy debt.file_missing: {policy.debt.file_missing})"]
    absent = sorted(farmers - set(debt["farmer_id"].astype(str)) - set(holds))
    if not absent:
        return []
    shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
    return [f"{len(absent)} farmer(s) not in the debt file ({shown}): policy debt.farmer_absent: "
            f"{policy.debt.farmer_absent}"]


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
    """Sowing .. harvest of each plot's declared crop (a lease must cover it); one window per crop."""
    crop = plots["declared_crop"].astype(str).reset_index(drop=True)
    first = plots["plot_id"].reset_index(drop=True).groupby(crop, sort=False).first()
    win = {c: weather.crop_window(crops.get(c, plot_id=str(first[c])), season_end, season_start=season_start)
           for c in crop.unique()}
    return pd.DataFrame({"plot_id": plots["plot_id"].to_numpy(), "crop_start": crop.map({c: w[0] for c, w in win.items()}),
                         "crop_end": crop.map({c: w[1] for c, w in win.items()})})


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
        "statistics_key": extract.statistics_key(cfg),  # incremental runs reuse statistics only under the same key
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
