"""The columnar growth stage (issue 17) against the per-plot implementation it replaced
(tests/oracle_growth.py): the sample's real series and seeded synthetic series with gaps, cloudy
dates, residual-cloud drops, winter crops across the new year, all-NaN plots, plots with no rows,
0 and 2 pixels, partial coverage, every crop, a cohort low enough for GROWTH_ANOMALY_LOW, own
history, the trained classifier, at as_of dates from before sowing to after harvest.

Metrics, observations and curves must be equal column by column: flags and details identical,
floats within 1e-9 (in practice they are the same bits), dates and dtypes equal.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import oracle_growth
from agrisat import growth
from agrisat.config import CropParams, CropTable, load_crops, load_policy
from agrisat.cropcheck import crop_template
from conftest import ROOT

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
POLICY = load_policy(ROOT / "configs" / "policy.yaml")
S0, S1 = dt.date(2020, 11, 1), dt.date(2021, 10, 31)
AS_OF = [dt.date(2020, 9, 15), dt.date(2020, 10, 20), dt.date(2020, 12, 15), dt.date(2021, 2, 20), dt.date(2021, 4, 20),
         dt.date(2021, 7, 15), S1]
ATOL = 1e-9


def assert_same(new: pd.DataFrame, old: pd.DataFrame, what: str) -> None:
    assert list(new.columns) == list(old.columns), what
    assert len(new) == len(old), what
    for col in old.columns:
        a, b = new[col], old[col]
        assert a.dtype == b.dtype, (what, col, a.dtype, b.dtype)
        if a.dtype.kind == "f":
            x, y = a.to_numpy(), b.to_numpy()
            assert (np.isnan(x) == np.isnan(y)).all(), (what, col)
            ok = ~np.isnan(y)
            assert np.abs(x[ok] - y[ok]).max(initial=0.0) <= ATOL, (what, col)
        else:
            diff = [(i, u, v) for i, (u, v) in enumerate(zip(a.tolist(), b.tolist()))
                    if not (u == v or (pd.isna(u) is True and pd.isna(v) is True))]
            assert not diff, (what, col, diff[:3])


def compare(series, plots, crops=CROPS, policy=POLICY.for_stage("harvest"), as_of=S1, season_end=S1, **kw):
    new = growth.growth_analysis(series, plots, crops, policy, as_of, season_end, **kw)
    old = oracle_growth.growth_analysis(series, plots, crops, policy, as_of, season_end, **kw)
    assert_same(new.metrics, old.metrics, "metrics")
    assert_same(new.observations, old.observations, "observations")
    assert_same(new.curves, old.curves, "curves")
    return new


# -- The sample's real series. --

def _config(tmp: Path, base: Path) -> Path:
    """The sample config with absolute paths, writing into ``tmp`` (as test_conservative_cases)."""
    cfg = yaml.safe_load(base.read_text())
    for key, value in cfg["inputs"].items():
        if isinstance(value, str) and value.startswith(".."):
            cfg["inputs"][key] = str((base.parent / value).resolve())
    cfg["run"]["output_dir"] = str(tmp / "runs")
    cfg["crops"] = str(base.parent / cfg["crops"])
    cfg["policy"] = str(base.parent / cfg["policy"])
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module", params=["sample_hesbaye", "sample_mol"])
def sample(request, tmp_path_factory):
    from agrisat import plots as plotmod
    from agrisat.config import load_run_config
    from agrisat.io import plots as plots_io
    from pipelines.seasonal import run_seasonal

    path = _config(tmp_path_factory.mktemp(request.param), ROOT / "configs" / f"{request.param}.yaml")
    res = run_seasonal(path, run_id="r")
    series = pd.read_parquet(res.path / "plot_timeseries.parquet").drop(columns=["ndvi_smooth", "is_outlier"])
    cfg = load_run_config(path)
    plots = plotmod.validate_plots(plots_io.read_plots(cfg.inputs.plots), CROPS, source="sample")
    return cfg, series, plots


@pytest.mark.parametrize("stage", ["planting", "mid_season", "harvest"])
def test_sample_series_equal_the_per_plot_stage(sample, stage):
    cfg, series, plots = sample
    for as_of in sorted({cfg.run.as_of, cfg.season.start, cfg.season.start + (cfg.season.end - cfg.season.start) / 2}):
        compare(series, plots, policy=POLICY.for_stage(stage), as_of=as_of, season_end=cfg.season.end,
                season_start=cfg.season.start)
    compare(series, plots, as_of=cfg.run.as_of, season_end=cfg.season.end)  # season_start from season_end


# -- Seeded synthetic series. --

SOUTH = CropParams(group="summer", peak_months=(1, 2), sowing="11-15", harvest="04-15", emergence_days=10,
                   base_temp_c=10, reference_yield_t_ha=3.0, reference_peak_ndvi=0.85, min_peak_ndvi=0.4,
                   relative_sd=0.2, price_per_t=400, max_limit_per_ha=800)
WITH_SOUTH = CropTable(version="t", currency="EUR", crops={**CROPS.crops, "soy_south": SOUTH})


def synthetic(seed: int, n: int = 60, crops: CropTable = CROPS, count: bool = True, grid: bool = True):
    """``n`` plots over every crop: profiles from each crop's calendar (some mis-declared, some bare),
    10-day revisits (a quarter of the plots on 5-day ones: the pivot takes the union), cloudy dates
    and cloudy months, residual-cloud drops, partial and no coverage, tiny plots, all-NaN plots, and
    registry plots without a single row. Cohorts of 8 per crop and region, one plot of each low."""
    rng = np.random.default_rng(seed)
    names = sorted(crops.crops)
    d10 = pd.date_range("2020-10-03", "2021-10-30", freq="10D")
    d5 = pd.date_range("2020-10-01", "2021-10-31", freq="5D")
    rows, reg = [], []
    for i in range(n):
        pid = f"P{seed}-{i:03d}"
        declared = names[(i // 8) % len(names)]
        region = f"r{(i // 8) % 3}"
        true = declared if rng.random() > 0.15 else names[rng.integers(len(names))]
        dates = d5 if i % 4 == 3 else d10
        amp = 0.65 if i % 8 else rng.uniform(0.1, 0.35)  # the cohort's first plot grows poorly
        mean = 0.15 + amp * crop_template(crops.crops[true], dates, S1, S0) + rng.normal(0, 0.02, len(dates))
        frac = np.where(rng.random(len(dates)) < 0.25, rng.uniform(0, 0.5, len(dates)), rng.uniform(0.5, 1, len(dates)))
        if rng.random() < 0.3:  # a cloudy month
            k = rng.integers(0, len(dates) - 4)
            frac[k: k + rng.integers(3, 8)] = 0.1
        drops = rng.random(len(dates)) < 0.08
        mean[drops] -= rng.uniform(0.2, 0.5, drops.sum())  # residual cloud the mask missed
        mean[rng.random(len(dates)) < 0.05] = np.nan
        n_grid = int(rng.integers(40, 400))
        n_pix = n_grid
        kind = i % 13
        if kind == 5:
            n_pix = 0
            mean[:], frac[:] = np.nan, 0.0
        elif kind == 6:
            n_pix = 2
        elif kind == 7:
            n_pix = int(n_grid * 0.6)  # partly off the tile
        elif kind == 8:
            mean[:] = np.nan  # seen, never valid
        elif kind == 9:
            mean = np.round(mean, 2)  # ties in the peak, in the drops, in the ranks
        elif kind == 10:
            n_grid = n_pix = 0
        cnt = np.floor(n_pix * frac).astype(int)
        if kind == 11:
            cnt = np.floor(cnt * 0.7).astype(int)  # clouds on the best date too
        reg.append({"plot_id": pid, "declared_crop": declared, "region": region, "farmer_id": f"F{i // 3}"})
        if kind == 12 and i % 2:
            continue  # registered, never in the series
        drop_rows = rng.random(len(dates)) < 0.1  # dates missing from the extraction
        row = pd.DataFrame({"plot_id": pid, "date": dates, "n_pixels": n_pix, "n_pixels_grid": n_grid, "count": cnt,
                            "valid_fraction": frac, "mean": mean})[~drop_rows]
        rows.append(row)
    series = pd.concat(rows, ignore_index=True)
    series = series.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # any row order
    if not count:
        series = series.drop(columns="count")
    if not grid:
        series = series.drop(columns="n_pixels_grid")
    return series, pd.DataFrame(reg)


def history_of(plots: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i, pid in enumerate(plots["plot_id"]):
        seasons = i % 5  # 0 .. 4 earlier seasons: some too few
        values = np.full(seasons, 0.8) if i % 7 == 0 else rng.uniform(0.75, 0.9, seasons)  # some without spread
        if i % 11 == 1:
            values = np.r_[values, np.nan]
        rows += [{"plot_id": pid, "season": f"{2015 + s}", "peak_ndvi": v} for s, v in enumerate(values)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("as_of", AS_OF)
def test_synthetic_series_equal_the_per_plot_stage(seed, as_of):
    series, plots = synthetic(seed)
    res = compare(series, plots, as_of=as_of, history=history_of(plots, seed), season_start=S0)
    if as_of == S1:
        flags = {f for fl in res.metrics["growth_flags"] for f in fl}
        assert {"GROWTH_ANOMALY_LOW", "NO_IMAGERY_COVERAGE", "PLOT_TOO_SMALL", "PARTIAL_IMAGERY_COVERAGE",
                "NOT_ENOUGH_CLEAR_OBSERVATIONS", "NO_CROP_SIGNAL", "CROP_MISMATCH", "GAP_TOO_LONG"} <= flags
        assert res.observations["is_outlier"].any() and len(res.curves)


@pytest.mark.parametrize("stage", ["planting", "mid_season", "after_harvest"])
def test_stages_and_missing_columns(stage):
    series, plots = synthetic(7, n=40, count=False, grid=False)
    for as_of in (dt.date(2021, 3, 1), dt.date(2021, 6, 30), S1):
        compare(series, plots, policy=POLICY.for_stage(stage), as_of=as_of)


def test_seasons_across_the_new_year_and_a_crop_of_its_own():
    series, plots = synthetic(11, n=56, crops=WITH_SOUTH)
    for as_of in (dt.date(2020, 12, 31), dt.date(2021, 1, 31), dt.date(2021, 4, 30), S1):
        compare(series, plots, crops=WITH_SOUTH, as_of=as_of, season_start=S0)
    assert (plots["declared_crop"] == "soy_south").any()


def test_edge_series():
    series, plots = synthetic(5, n=26)
    # Every plot registered but the series empty; a single plot; a single date; duplicated dates.
    compare(series.iloc[0:0], plots)
    one = series[series["plot_id"] == series["plot_id"].iloc[0]]
    compare(one, plots[plots["plot_id"] == one["plot_id"].iloc[0]])
    compare(series[series["date"] == series["date"].iloc[0]], plots)
    twice = pd.concat([one, one.iloc[:3].assign(mean=one["mean"].iloc[:3] - 0.3)], ignore_index=True)
    compare(twice, plots[plots["plot_id"] == one["plot_id"].iloc[0]])
    # Integer plot ids, dates in nanoseconds, a policy with other thresholds.
    ints = series.assign(plot_id=series["plot_id"].str.replace("P5-", "").astype(int),
                         date=series["date"].astype("datetime64[ns]"))
    compare(ints, plots.assign(plot_id=plots["plot_id"].str.replace("P5-", "").astype(int)))
    # Acquisition times on the dates: days are counted as the per-plot code counted them (floored).
    timed = series.assign(date=series["date"] + pd.Timedelta(hours=10, minutes=30))
    for as_of in (dt.date(2021, 5, 1), S1):
        compare(timed, plots, as_of=as_of)
    other = POLICY.model_copy(update={"min_valid_fraction": 0.3, "growth": POLICY.growth.model_copy(update={
        "outlier_drop": 0.05, "phenology_threshold": 0.35, "smoothing_lambda": 50.0, "max_gap_days": 20})})
    compare(series, plots, policy=other)


def test_an_unknown_crop_or_plot_fails_as_before():
    series, plots = synthetic(6, n=16)
    bad = plots.assign(declared_crop=np.where(plots.index == 9, "rye", plots["declared_crop"]))
    with pytest.raises(Exception) as old:
        oracle_growth.growth_analysis(series, bad, CROPS, POLICY, S1, S1)
    with pytest.raises(type(old.value), match=str(old.value).replace("(", r"\(").replace(")", r"\)")):
        growth.growth_analysis(series, bad, CROPS, POLICY, S1, S1)
    with pytest.raises(KeyError):
        growth.growth_analysis(series, plots.iloc[1:], CROPS, POLICY, S1, S1)


def test_the_trained_classifier_path():
    from test_crop_classifier import CLEAR, START, _profiles

    from pipelines import train_crops

    model = train_crops.train(_profiles(0, 20), validate=False)["model"]
    p = _profiles(4, 6, crops=(*CLEAR, "sugar_beet"))
    series = p.rename(columns={"ndvi": "mean"}).assign(valid_fraction=1.0, n_pixels=100, count=100)
    ids = p.drop_duplicates("plot_id")
    rng = np.random.default_rng(0)
    declared = np.where(rng.random(len(ids)) < 0.3, rng.choice(sorted(CROPS.crops), len(ids)), ids["crop"])
    plots = pd.DataFrame({"plot_id": ids["plot_id"], "declared_crop": declared, "region": "r"})
    for as_of in (dt.date(2021, 2, 1), S1):
        res = compare(series, plots, as_of=as_of, season_start=START, crop_model=model)
    assert set(res.metrics["crop_check_method"]) == {"classifier", "calendar"}


@pytest.mark.parametrize("seed", range(4))
def test_anomaly_functions_equal_the_per_group_loops(seed):
    from agrisat.anomaly import cohort_anomaly, own_history_anomaly

    rng = np.random.default_rng(seed)
    n = 400
    metrics = pd.DataFrame({"plot_id": [f"p{i}" for i in range(n)],
                            "peak_ndvi": np.where(rng.random(n) < 0.1, np.nan, np.round(rng.uniform(0.3, 0.9, n), 2))})
    plots = pd.DataFrame({"plot_id": metrics["plot_id"], "declared_crop": rng.choice(["a", "b", "c"], n),
                          "region": np.where(rng.random(n) < 0.05, None, rng.choice([f"r{k}" for k in range(25)], n))})
    history = pd.DataFrame({"plot_id": rng.choice(metrics["plot_id"].to_numpy(), 3 * n),
                            "peak_ndvi": np.where(rng.random(3 * n) < 0.05, np.nan, np.round(rng.uniform(0.3, 0.9, 3 * n), 2))})
    history.loc[history["plot_id"] == "p1", "peak_ndvi"] = 0.5  # no spread
    for min_cohort in (2, 5, 30):
        for p in (plots, plots.drop(columns="region")):
            assert_same(cohort_anomaly(metrics, p, "peak_ndvi", min_cohort),
                        oracle_growth.cohort_anomaly(metrics, p, "peak_ndvi", min_cohort), "cohort")
    for min_seasons in (2, 3, 5):
        for h in (history, history.iloc[0:0], None):
            assert_same(own_history_anomaly(metrics, h, "peak_ndvi", min_seasons),
                        oracle_growth.own_history_anomaly(metrics, h, "peak_ndvi", min_seasons), "history")
