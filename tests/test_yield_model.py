"""Yield estimation with honest uncertainty, on SYNTHETIC yields derived from the real sample NDVI."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from agrisat.config import load_crops, load_policy
from agrisat.yieldgen import generate
from agrisat.yieldmodel import trend_baseline
from conftest import ROOT, SHARED
from pipelines import train_yield
from pipelines.seasonal import run_seasonal

CONFIG = ROOT / "configs" / "sample_hesbaye.yaml"
PARAMS = {"n_estimators": 100}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("AGRISAT_OUTPUT_DIR", str(out))
    try:
        yield run_seasonal(CONFIG, run_id="base")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def history(sample_run):
    import geopandas as gpd

    series = pd.read_parquet(sample_run.path / "plot_timeseries.parquet")
    plots = gpd.read_parquet(sample_run.path / "plots.parquet")
    crops = load_crops(ROOT / "configs" / "crops.yaml")
    policy = load_policy(ROOT / "configs" / "policy.yaml").for_stage("harvest")
    return generate(series, plots, crops, policy, dt.date(2021, 10, 31))


@pytest.fixture(scope="module")
def artifact(history):
    return train_yield.train(history, PARAMS)


def test_generator_is_deterministic_and_plausible(history, sample_run):
    import geopandas as gpd

    again = generate(pd.read_parquet(sample_run.path / "plot_timeseries.parquet"),
                     gpd.read_parquet(sample_run.path / "plots.parquet"), load_crops(ROOT / "configs" / "crops.yaml"),
                     load_policy(ROOT / "configs" / "policy.yaml").for_stage("harvest"), dt.date(2021, 10, 31))
    pd.testing.assert_frame_equal(history, again, check_exact=True)
    assert history["season"].nunique() == 10 and history["region"].nunique() == 3
    wheat = history[history["crop"] == "winter_barley"]["yield_t_ha"]
    assert 4 < wheat.median() < 12


def test_model_beats_naive_baselines_with_calibrated_intervals(artifact):
    loso = artifact["metrics"]["leave_one_season_out"]
    assert loso["model"]["rmse"] < loso["baseline_region_average"]["rmse"]
    assert loso["model"]["rmse"] < loso["baseline_trend"]["rmse"]
    assert loso["model"]["mape"] < loso["baseline_region_average"]["mape"]
    assert 0.70 <= loso["model"]["coverage_p10_p90"] <= 0.90, loso
    loro = artifact["metrics"]["leave_one_region_out"]
    assert loro["model"]["rmse"] < loro["baseline_region_average"]["rmse"]


def test_artifact_round_trips_with_version_and_hash(artifact, history, tmp_path):
    path = train_yield.save(artifact, tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["version"] == artifact["version"] and meta["training_data_sha256"] == train_yield.data_sha256(history)
    assert meta["features"] == list(train_yield.FEATURES)
    loaded = train_yield.load(path)
    a = train_yield.predict(artifact, history.head(40))
    b = train_yield.predict(loaded, history.head(40))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # Same data and parameters: same version; other data: another version.
    assert train_yield.train(history, PARAMS, validate=False)["version"] == artifact["version"]
    assert train_yield.train(history.iloc[5:], PARAMS, validate=False)["version"] != artifact["version"]


def test_run_with_model_uses_it_falls_back_for_untrained_crops_and_says_so(history, sample_run, tmp_path, monkeypatch):
    no_potato = train_yield.train(history[history["crop"] != "potato"], PARAMS, validate=False)
    path = train_yield.save(no_potato, tmp_path / "models")
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["yield_model"] = str(path)
    for key, value in cfg["inputs"].items():
        if key != "imagery_area":
            cfg["inputs"][key] = str((CONFIG.parent / value).resolve())
    cfg["crops"], cfg["policy"] = str(CONFIG.parent / cfg["crops"]), str(CONFIG.parent / cfg["policy"])
    cfg_path = tmp_path / "with_model.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("AGRISAT_OUTPUT_DIR", str(sample_run.path.parent))
    res = run_seasonal(cfg_path, run_id="with-model")

    import geopandas as gpd

    plots = gpd.read_parquet(res.path / "plots.parquet").set_index("plot_id")
    methods = plots["yield_method"]
    assert (methods[plots["declared_crop"] == "potato"] == "empirical_fallback").all()
    trained = methods[plots["declared_crop"].isin(no_potato["crops"])]
    assert trained.str.startswith(f"model:{no_potato['version']}").any()
    base = json.loads((sample_run.path / "manifest.json").read_text())["model_version"]
    mine = json.loads((res.path / "manifest.json").read_text())["model_version"]
    assert mine != base and mine.startswith(no_potato["version"])
    assert (pd.read_parquet(res.path / "limits.parquet")["model_version"] == mine).all()


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not beside the project")
def test_trend_baseline_on_real_nass_corn_beats_the_long_run_mean():
    nass = pd.read_csv(SHARED / "yield" / "agridat_nass.corn.txt", sep="\t")
    iowa = nass[nass["state"] == "Iowa"].rename(columns={"year": "season", "yield": "yield_t_ha"})
    iowa = iowa.assign(crop="corn", region="Iowa")
    train, test = iowa[(iowa["season"] >= 1960) & (iowa["season"] <= 2000)], iowa[iowa["season"] > 2000]
    trend = trend_baseline(train, test)
    mean = np.full(len(test), train["yield_t_ha"].mean())
    rmse = lambda p: float(np.sqrt(np.mean((test["yield_t_ha"].to_numpy() - p) ** 2)))  # noqa: E731
    # Iowa corn yields rose ~2 bu/acre a year: a trend extrapolation beats the 1960-2000 mean by far.
    assert rmse(trend) < 0.5 * rmse(mean)
    slope = np.polyfit(train["season"], train["yield_t_ha"], 1)[0]
    assert 1.0 < slope < 3.5


def test_a_corrupt_artifact_is_a_named_input_error(tmp_path):
    from agrisat.errors import InputDataError
    from pipelines import train_yield

    (tmp_path / "yield-x.joblib").write_bytes(b"nope")  # joblib raises KeyError on this, not OSError
    with pytest.raises(InputDataError, match="yield-x.joblib: cannot load yield model"):
        train_yield.load(tmp_path / "yield-x.joblib")
