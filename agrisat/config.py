"""Configuration: YAML files -> validated, frozen pydantic models.

A run config (e.g. ``configs/sample_hesbaye.yaml``) names its inputs and points at the crop table
(``crops.yaml``) and the credit policy (``policy.yaml``). Relative paths are resolved against the
directory of the file that contains them, so a config works from any working directory.
``AGRISAT_OUTPUT_DIR`` in the environment overrides ``run.output_dir`` (operations put runs on a
shared volume without editing configs). Secrets are never read from YAML: only from the environment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agrisat.errors import ConfigError, UnknownCropError

Stage = Literal["planting", "mid_season", "harvest", "after_harvest"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSection(_Frozen):
    name: str
    output_dir: Path
    as_of: dt.date  # evidence cut-off: imagery after this date is ignored; limits valid from here
    stage: Stage = "mid_season"


class SeasonSection(_Frozen):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> "SeasonSection":
        if self.end <= self.start:
            raise ValueError(f"season.end {self.end} must be after season.start {self.start}")
        return self


class InputsSection(_Frozen):
    plots: Path
    # Local imagery (imagery.source: local): an index CSV, or a folder scanned for GeoTIFFs laid out
    # as imagery_layout says. Remote sources (sentinelhub, stac) need neither.
    imagery_index: Path | None = None
    imagery_folder: Path | None = None
    imagery_layout: Literal["agrisat", "landsat"] = "agrisat"
    imagery_area: str = "fetched"
    contracts: Path | None = None
    weather: Path | None = None  # monthly cells: cell_id, lon, lat, month, precip_mm, tmean_c
    weather_stations: Path | None = None  # station_id, lon, lat [, name, path]: daily station series
    weather_daily: Path | None = None  # long daily table station_id, date, ... (else each station's path)
    weather_grid: Path | None = None  # gridded NetCDF/Zarr; variables in the run config's weather section
    debt: Path | None = None
    previous_limits: Path | None = None  # a previous run's limits.parquet (or CSV farmer_id,limit)
    growth_history: Path | None = None  # earlier seasons per plot: plot_id, season, peak_ndvi
    # Bad rows in contracts and debt: "error" stops the run naming the row; "quarantine" writes them
    # to <run>/rejects/ with the reason and goes on conservatively (see agrisat/io/tables.py).
    on_bad_row: Literal["error", "quarantine"] = "error"

    @model_validator(mode="after")
    def _one_weather_source(self) -> "InputsSection":
        given = [k for k in ("weather", "weather_stations", "weather_grid") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one weather source, not {' and '.join(given)}")
        if self.weather_daily is not None and self.weather_stations is None:
            raise ValueError("weather_daily needs weather_stations (the stations' coordinates)")
        return self


class WeatherGridVariable(_Frozen):
    name: str  # the variable's name in the store
    scale: float = 1.0
    offset: float = 0.0


class WeatherSection(_Frozen):
    """How to read a gridded weather store (inputs.weather_grid)."""

    grid_variables: dict[str, WeatherGridVariable] = Field(default_factory=dict)  # ours -> the store's
    grid_crs: str | None = None  # when the store's x/y carry no CF grid mapping
    grid_time_dim: str = "time"


class SentinelHubSection(_Frozen):
    """Sentinel Hub or the Copernicus Data Space Ecosystem. Credentials: AGRISAT_SH_CLIENT_ID and
    AGRISAT_SH_CLIENT_SECRET in the environment, never here."""

    deployment: Literal["sentinelhub", "cdse"] = "sentinelhub"
    base_url: str | None = None  # default: the deployment's
    token_url: str | None = None
    max_cloud_cover: float = Field(100.0, ge=0, le=100)  # catalog cloud cover above this: scene skipped
    max_attempts: int = Field(4, ge=1)
    backoff_s: float = Field(5.0, ge=0)
    timeout_s: float = Field(120.0, gt=0)


class StacSection(_Frozen):
    url: str = ""  # catalog.json of a static catalog, or a STAC API root
    collection: str = ""
    max_cloud_cover: float = Field(100.0, ge=0, le=100)


class ImagerySection(_Frozen):
    source: Literal["local", "sentinelhub", "stac"] = "local"
    # Band names and quality semantics of a product (agrisat/sources/local.py PROFILES); explicit
    # red/nir/quality/exclude_* below win over the profile's.
    profile: Literal["sentinel2_l2a", "landsat_c2_l2"] = "sentinel2_l2a"
    red: str = "B04"
    nir: str = "B08"
    quality: str | None = None  # e.g. "SCL"; None when composites carry only nodata
    # Sentinel-2 SCL classes treated as not clear: 0 no data, 1 saturated/defective,
    # 3 cloud shadow, 8/9 cloud medium/high probability, 10 thin cirrus, 11 snow.
    exclude_classes: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)
    exclude_bits: tuple[int, ...] | None = None  # bit-packed quality band (Landsat QA_PIXEL)
    # Target grid when tiles lie on several grids (UTM zones) or for remote sources: default the
    # first tile's CRS (local) or the plots' UTM zone (remote), and the finest pixel (or 10 m).
    grid_crs: str | None = None
    resolution: float | None = Field(None, gt=0)
    sentinelhub: SentinelHubSection = SentinelHubSection()
    stac: StacSection = StacSection()
    chunk_px: int = Field(1024, ge=16)  # rows per decoded strip (and cube chunk side for mosaics)
    plot_group_px: int = Field(512, ge=32)  # plots are gathered in blocks of this many columns (no number depends on it)
    partition_px: int = Field(4096, ge=16)  # resumable unit of work: plots by block of the grid

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("profile", "sentinel2_l2a") == "sentinel2_l2a":
            return data
        from agrisat.sources.local import PROFILES  # noqa: PLC0415 (profiles live with the reader)

        prof = PROFILES[data["profile"]]
        keys = ("red", "nir", "quality", "exclude_classes", "exclude_bits")
        return {**{k: prof[k] for k in keys}, **data}

    @model_validator(mode="after")
    def _grid_and_remote_settings(self) -> "ImagerySection":
        if self.grid_crs is not None:
            from pyproj import CRS
            from pyproj.exceptions import CRSError

            try:
                crs = CRS.from_user_input(self.grid_crs)
            except CRSError as e:
                raise ValueError(f"grid_crs {self.grid_crs!r} is not a CRS: {e}") from None
            if not crs.is_projected:
                raise ValueError(f"grid_crs {self.grid_crs} is not projected; pixels and plot areas need metres (a UTM zone)")
        if self.source == "stac" and not (self.stac.url and self.stac.collection):
            raise ValueError("source stac needs imagery.stac.url and imagery.stac.collection")
        return self


class DaskSection(_Frozen):
    scheduler: str = "threads"  # "threads", "synchronous", "processes" or a scheduler address
    num_workers: int | None = None


class RunConfig(_Frozen):
    run: RunSection
    season: SeasonSection
    inputs: InputsSection
    crops: Path
    policy: Path
    yield_model: Path | None = None  # artifact from `agrisat train-yield`; None: empirical relation only
    crop_classifier: Path | None = None  # artifact from `agrisat train-crops`; None: calendar templates only
    imagery: ImagerySection = ImagerySection()
    weather: WeatherSection = WeatherSection()
    dask: DaskSection = DaskSection()
    source_file: Path | None = None

    @model_validator(mode="after")
    def _as_of_in_season(self) -> "RunConfig":
        # A limit is valid from as_of: a date outside the season would lend on evidence of another one.
        if not self.season.start <= self.run.as_of <= self.season.end:
            raise ValueError(f"run.as_of {self.run.as_of} is outside the season {self.season.start} .. {self.season.end}")
        return self

    @model_validator(mode="after")
    def _local_imagery_named(self) -> "RunConfig":
        if self.imagery.source == "local" and (self.inputs.imagery_index is None) == (self.inputs.imagery_folder is None):
            raise ValueError("local imagery: give exactly one of inputs.imagery_index and inputs.imagery_folder")
        return self


class CropParams(_Frozen):
    group: Literal["winter", "spring", "summer"]
    peak_months: tuple[int, ...]  # calendar months in which a healthy crop of this kind peaks
    # Crop calendar as "MM-DD" (typical sowing and harvest dates; winter crops harvest the next year).
    sowing: str = Field(pattern=r"^\d{2}-\d{2}$")
    harvest: str = Field(pattern=r"^\d{2}-\d{2}$")
    emergence_days: int = Field(ge=0)  # days from sowing to emergence
    base_temp_c: float  # growing-degree-day base temperature
    heat_stress_c: float = 30.0  # a day with Tmax at or above this stresses the crop
    # "MM-DD" from which frost hurts a winter crop (hardiness lost); spring/summer crops: emergence.
    frost_sensitive_from: str | None = Field(None, pattern=r"^\d{2}-\d{2}$")
    reference_yield_t_ha: float = Field(gt=0)
    reference_peak_ndvi: float = Field(gt=0, le=1)
    min_peak_ndvi: float = Field(ge=0, le=1)  # below this there is no crop signal
    relative_sd: float = Field(gt=0, lt=1)  # yield uncertainty of the empirical relation
    price_per_t: float = Field(gt=0)
    max_limit_per_ha: float = Field(gt=0)


class CropTable(_Frozen):
    version: str
    currency: str
    crops: dict[str, CropParams]

    def get(self, crop: str, *, plot_id: str | None = None) -> CropParams:
        try:
            return self.crops[crop]
        except KeyError:
            where = f"plot {plot_id}: " if plot_id else ""
            raise UnknownCropError(
                f"{where}unknown crop {crop!r}; known crops: {', '.join(sorted(self.crops))}"
            ) from None


class StageRule(_Frozen):
    """What changes at one season stage; unset fields keep the policy's value."""

    evidence: Literal["prior", "imagery"] = "imagery"  # prior: reference yields, before the crop shows
    advance_rate: float | None = Field(None, gt=0, le=1)
    yield_quantile: Literal["p10", "p50", "p90"] | None = None
    min_clear_observations: int | None = Field(None, ge=0)
    prior_relative_sd: float = Field(0.35, gt=0, lt=1)  # uncertainty of a prior (no-imagery) estimate


class ChangeRules(_Frozen):
    """How far a limit may move from the farmer's previous limit in one run."""

    max_increase_relative: float = Field(0.25, ge=0)  # of the previous limit ...
    max_increase_absolute: float = Field(5000, ge=0)  # ... or this amount, whichever is larger
    max_decrease_relative: float | None = Field(None, gt=0, le=1)  # None: decreases apply at once
    # Codes (plot flags or reasons) that make a decrease apply at once, whatever the damping.
    severe_codes: tuple[str, ...] = ()


# Season weather aggregates per plot (agrisat/weather.py computes them; shock rules refer to them).
# Daily data gives the daily metrics, monthly cells the monthly ones; gdd and rain_total_mm come from
# both. A metric the data's resolution cannot give is NaN, and a rule on it is not evaluated.
DAILY_WEATHER_FEATURES = ("longest_dry_spell_days", "heat_stress_days", "frost_days_after_emergence",
                          "heavy_rain_days", "max_3day_rain_mm", "rain_minus_et0_mm")
MONTHLY_WEATHER_FEATURES = ("rain_mm_per_30d", "driest_3_months_rain_mm", "wettest_month_rain_mm",
                            "warmest_month_tmean_c", "cold_months_after_frost_start")
WEATHER_FEATURES = ("gdd", "rain_total_mm") + DAILY_WEATHER_FEATURES + MONTHLY_WEATHER_FEATURES


class ShockCondition(_Frozen):
    metric: str  # one of WEATHER_FEATURES
    op: Literal[">=", "<="]
    value: float

    def holds(self, x: float) -> bool:
        return x >= self.value if self.op == ">=" else x <= self.value


class WeatherRules(_Frozen):
    """Weather evidence rules: how gaps are handled and which season aggregates are shocks."""

    dry_day_mm: float = Field(1.0, ge=0)  # a day with less rain is dry
    heavy_rain_mm: float = Field(30.0, gt=0)  # a day with this much rain or more is heavy rain
    frost_tmin_c: float = -2.0  # Tmin at or below this after emergence is a damaging frost
    # Monthly cells: a frost-sensitive month with a mean temperature at or below this is a cold month
    # (cold_months_after_frost_start); monthly means cannot show single frost nights.
    cold_month_tmean_c: float = 4.0
    max_fill_days: int = Field(3, ge=0)  # longest temperature gap interpolated
    max_missing_fraction: float = Field(0.05, ge=0, le=1)  # more missing days: no aggregates
    max_distance_km: float = Field(50.0, gt=0)  # farther nearest station or cell: WEATHER_SOURCE_FAR
    region_share: float = Field(0.5, gt=0, le=1)  # share of a region's plots that makes a regional shock
    # Shock code -> conditions on season aggregates; any condition that holds raises the code. A shock
    # none of whose conditions has a value is not evaluated (weather_unevaluated), never "no shock".
    shocks: dict[str, tuple[ShockCondition, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_metrics(self) -> "WeatherRules":
        for code, conds in self.shocks.items():
            for c in conds:
                if c.metric not in WEATHER_FEATURES:
                    raise ValueError(f"weather.shocks.{code}: unknown metric {c.metric!r}; known: {', '.join(WEATHER_FEATURES)}")
        return self


class GrowthRules(_Frozen):
    """Cleaning, phenology, anomaly and crop-check settings (agrisat/growth.py and its helpers)."""

    outlier_drop: float = Field(0.15, gt=0)  # NDVI below the line through its neighbours: residual cloud
    smoothing_lambda: float = Field(1000.0, gt=0)  # Whittaker smoothness on a daily grid
    phenology_threshold: float = Field(0.2, gt=0, lt=1)  # start/end of season at this share of amplitude
    min_amplitude: float = Field(0.1, gt=0)  # a smaller rise and fall is not a season
    max_gap_days: int = Field(60, gt=0)  # longest gap between clear dates in the critical window
    gap_lead_days: int = Field(60, ge=0)  # the critical window opens this long before the first peak month
    anomaly_z_low: float = -1.5  # cohort z-score of peak NDVI below this: GROWTH_ANOMALY_LOW
    anomaly_min_cohort: int = Field(5, ge=2)  # fewer comparable plots: no z-score at all
    history_min_seasons: int = Field(3, ge=2)  # earlier seasons needed for the plot's own z-score
    crop_check_margin: float = Field(0.5, gt=0, le=2)  # correlation gap that makes a CROP_MISMATCH
    crop_check_min_obs: int = Field(4, ge=3)


class DebtRules(_Frozen):
    """What an unknown debt means. ``zero``: lend as if nothing were owed (a warning names the farmers);
    ``review``: the same limit, sent to a loan officer; ``hold``: limit 0, in review."""

    file_missing: Literal["zero", "review", "hold"] = "review"  # the run config names no debt file
    farmer_absent: Literal["zero", "review", "hold"] = "zero"  # a farmer the debt file does not list


class Policy(_Frozen):
    version: str
    currency: str
    yield_quantile: Literal["p10", "p50", "p90"] = "p10"
    advance_rate: float = Field(gt=0, le=1)
    min_clear_observations: int = Field(ge=0)
    min_valid_fraction: float = Field(gt=0, le=1)
    max_limit_per_farmer: float = Field(gt=0)
    min_limit: float = Field(ge=0)  # below this the line is not worth opening: declined
    rounding: float = Field(gt=0)  # limits are rounded down to a multiple of this
    validity_days: int = Field(gt=0)
    review_on_flags: bool = True
    evidence: Literal["prior", "imagery"] = "imagery"
    prior_relative_sd: float = Field(0.35, gt=0, lt=1)
    # Multiplier on a plot's advance for each flag it carries (growth anomaly, weather shock,
    # crop mismatch ...); 0 < m <= 1, so a flag can only lower a limit.
    multipliers: dict[str, float] = Field(default_factory=dict)
    stages: dict[Stage, StageRule] = Field(default_factory=dict)
    change_rules: ChangeRules = ChangeRules()
    weather: WeatherRules = WeatherRules()
    growth: GrowthRules = GrowthRules()
    area_tolerance: float = Field(0.10, ge=0)  # declared vs polygon area, relative: AREA_MISMATCH beyond
    # Share of a plot's pixel centres (on the imagery grid, from the polygon) seen on valid imagery
    # below which it is PARTIAL_IMAGERY_COVERAGE and lends only on the area seen.
    min_imaged_fraction: float = Field(0.9, gt=0, le=1)
    # Share of a crop's price the bank does not count on (price risk), 0 <= h < 1, by crop name.
    price_haircuts: dict[str, float] = Field(default_factory=dict)
    debt: DebtRules = DebtRules()

    @model_validator(mode="after")
    def _haircuts_in_range(self) -> "Policy":
        for crop, h in self.price_haircuts.items():
            if not 0 <= h < 1:
                raise ValueError(f"price_haircuts.{crop} = {h} must be within [0, 1)")
        return self

    @model_validator(mode="after")
    def _multipliers_lower_only(self) -> "Policy":
        for code, m in self.multipliers.items():
            if not 0 <= m <= 1:
                raise ValueError(f"multipliers.{code} = {m} must be within [0, 1]")
        return self

    def for_stage(self, stage: Stage) -> "Policy":
        """The policy in force at ``stage``: the stage's rule fields override the base values."""
        rule = self.stages.get(stage)
        if rule is None:
            return self
        update = {k: v for k, v in rule.model_dump().items() if v is not None}
        return self.model_copy(update=update)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _validate(model: type[_Frozen], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {loc}: {first['msg']} ({e.error_count()} error(s))") from None


def _resolve(base: Path, value: Any) -> Any:
    return None if value is None else (base / Path(value)).resolve()


def load_run_config(path: str | Path) -> RunConfig:
    path = Path(path).resolve()
    data = _read_yaml(path)
    base = path.parent
    try:
        run = dict(data["run"])
        inputs = dict(data["inputs"])
    except KeyError as e:
        raise ConfigError(f"{path}: missing section {e.args[0]!r}") from None
    env_out = os.environ.get("AGRISAT_OUTPUT_DIR")
    run["output_dir"] = Path(env_out).resolve() if env_out else _resolve(base, run.get("output_dir"))
    for key in ("plots", "imagery_index", "imagery_folder", "contracts", "weather", "weather_stations", "weather_daily",
                "weather_grid", "debt", "previous_limits", "growth_history"):
        if key in inputs:
            inputs[key] = _resolve(base, inputs[key])
    data = {**data, "run": run, "inputs": inputs, "source_file": path}
    for key in ("crops", "policy", "yield_model", "crop_classifier"):
        if data.get(key) is not None:
            data[key] = _resolve(base, data[key])
    return _validate(RunConfig, data, path)  # type: ignore[no-any-return]


def content_version(name: str, path: Path) -> str:
    """``name+<first 8 hex of the file's SHA-256>``: an edit without a new ``version:`` still shows."""
    return f"{name}+{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}"


def load_crops(path: str | Path) -> CropTable:
    path = Path(path)
    data = _read_yaml(path)
    table = _validate(CropTable, data, path)
    return table.model_copy(update={"version": content_version(table.version, path)})  # type: ignore[no-any-return]


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    policy = _validate(Policy, _read_yaml(path), path)
    return policy.model_copy(update={"version": content_version(policy.version, path)})  # type: ignore[no-any-return]
