"""The trainable crop classifier: features, training, validation, and its use in a run."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from agrisat import growth
from agrisat.cli import main
from agrisat.config import load_crops, load_policy
from agrisat.cropclassifier import CropProfileClassifier, classify, feature_table, profile_features
from agrisat.cropcheck import crop_template
from agrisat.errors import InputDataError
from conftest import ROOT
from pipelines import train_crops
from pipelines.seasonal import run_seasonal

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
POLICY = load_policy(ROOT / "configs" / "policy.yaml")
START, END = dt.date(2020, 11, 1), dt.date(2021, 10, 31)
CLEAR = ("winter_wheat", "spring_barley", "maize", "potato")  # calendars far enough apart to tell


def _profiles(seed: int, n_per_crop: int, crops=CLEAR) -> pd.DataFrame:
    """Labelled plot-seasons: each crop's calendar curve, shifted up to +-12 days, scaled to a random
    canopy, with noise, seen on 40% of the 5-day revisits (the rest cloudy)."""
    rng = np.random.default_rng(seed)
    grid = pd.date_range(START, END, freq="5D")
    rows = []
    for crop in crops:
        for i in range(n_per_crop):
            shift = pd.Timedelta(days=int(rng.integers(-12, 13)))
            curve = crop_template(CROPS.get(crop), grid - shift, END, START)
            ndvi = 0.18 + rng.uniform(0.45, 0.7) * curve + rng.normal(0, 0.03, len(grid))
            seen = rng.random(len(grid)) < 0.4
            rows.append(pd.DataFrame({"plot_id": f"{crop}-{seed}-{i}", "crop": crop, "season_start": pd.Timestamp(START),
                                      "date": grid[seen], "ndvi": np.clip(ndvi[seen], -1, 1)}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def artifact():
    return train_crops.train(_profiles(0, 40))


def test_monthly_features_interpolate_and_leave_cloudy_months_unknown():
    dates = pd.DatetimeIndex(["2020-11-15", "2020-12-15", "2021-03-15"])
    x = profile_features(dates, np.array([0.2, 0.4, 0.8]), START)
    assert x[0] == pytest.approx(0.2) and x[1] == pytest.approx(0.4) and x[4] == pytest.approx(0.8)
    assert np.isnan(x[2]) and np.isnan(x[3])  # January, February: no clear date within 25 days
    assert np.isnan(x[5:]).all()
    near = profile_features(pd.DatetimeIndex(["2020-11-15", "2020-12-05"]), np.array([0.2, 0.4]), START)
    assert near[1] == pytest.approx(0.4)  # mid-December is 10 days from the last clear date: flat extrapolation


def test_classifier_recognises_held_out_profiles(artifact):
    X, y = feature_table(_profiles(1, 25))
    pred = artifact["model"].predict(X)
    accuracy = float((pred == y.to_numpy()).mean())
    assert accuracy >= 0.9
    cv = artifact["metrics"]["cross_validation"]
    assert cv["accuracy"] >= 0.9 and cv["baseline_majority_accuracy"] <= 0.3
    assert set(cv["recall_by_crop"]) == set(CLEAR)


def test_a_mis_declared_profile_is_flagged_with_confidence(artifact):
    p = _profiles(2, 1, crops=("winter_wheat",))
    dates, vals = pd.DatetimeIndex(p["date"]), p["ndvi"].to_numpy()
    wrong = classify(artifact["model"], dates, vals, "maize", START, margin=0.5, min_obs=4)
    assert wrong["crop_mismatch"] and wrong["best_crop"] == "winter_wheat" and wrong["crop_mismatch_confidence"] > 0.5
    right = classify(artifact["model"], dates, vals, "winter_wheat", START, margin=0.5, min_obs=4)
    assert not right["crop_mismatch"] and right["best_crop"] == "winter_wheat"
    unknown = classify(artifact["model"], dates, vals, "sugar_beet", START, margin=0.5, min_obs=4)
    assert unknown["best_crop"] is None  # not trained on it: no verdict, the caller falls back


def test_growth_uses_the_classifier_and_falls_back_to_calendars(artifact):
    p = _profiles(3, 1, crops=("winter_wheat", "maize"))
    series = p.rename(columns={"ndvi": "mean"}).assign(valid_fraction=1.0, n_pixels=100, count=100)
    plots = pd.DataFrame({"plot_id": p["plot_id"].unique(), "declared_crop": ["maize", "sugar_beet"],
                          "region": "r", "area_ha": 1.0})
    m = growth.growth_analysis(series, plots, CROPS, POLICY, END, END, season_start=START,
                               crop_model=artifact["model"]).metrics.set_index("plot_id")
    ww, mz = plots["plot_id"]
    assert m.loc[ww, "crop_check_method"] == "classifier" and "CROP_MISMATCH" in m.loc[ww, "growth_flags"]
    assert "classifier" in m.loc[ww, "growth_flag_details"]["CROP_MISMATCH"]
    assert m.loc[mz, "crop_check_method"] == "calendar"  # sugar beet: not among the trained crops


def test_training_is_deterministic_and_round_trips(tmp_path, artifact):
    again = train_crops.train(_profiles(0, 40), validate=False)
    X, _ = feature_table(_profiles(5, 5))
    assert again["version"] == artifact["version"]
    np.testing.assert_array_equal(again["model"].predict_proba(X), artifact["model"].predict_proba(X))
    path = train_crops.save(artifact, tmp_path)
    loaded = train_crops.load(path)
    np.testing.assert_array_equal(loaded["model"].predict_proba(X), artifact["model"].predict_proba(X))
    assert json.loads(path.with_suffix(".json").read_text())["crops"] == sorted(CLEAR)
    (tmp_path / "junk.joblib").write_bytes(b"nope")
    with pytest.raises(InputDataError, match="junk.joblib: cannot load crop classifier"):
        train_crops.load(tmp_path / "junk.joblib")
    with pytest.raises(ValueError, match="at least two crops"):
        CropProfileClassifier().fit(X.iloc[:3], ["maize"] * 3)


def test_bad_labelled_rows_are_named(tmp_path):
    p = _profiles(0, 1).astype({"date": str})
    p.loc[4, "date"] = "not a date"
    p.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputDataError, match=r"bad.csv: row 6: date 'not a date' is not a date"):
        train_crops.read_labelled(tmp_path / "bad.csv")
    p = _profiles(0, 1)
    p.loc[2, "ndvi"] = 3.0
    p.to_csv(tmp_path / "bad2.csv", index=False)
    with pytest.raises(InputDataError, match=r"bad2.csv: row 4: ndvi 3.0 is above 1"):
        train_crops.read_labelled(tmp_path / "bad2.csv")
    p.drop(columns="crop").to_csv(tmp_path / "bad3.csv", index=False)
    with pytest.raises(InputDataError, match="labelled profiles file lacks column\\(s\\) crop"):
        train_crops.read_labelled(tmp_path / "bad3.csv")


def test_cli_trains_and_a_run_uses_the_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("AGRISAT_OUTPUT_DIR", str(tmp_path / "runs"))
    _profiles(0, 40).to_parquet(tmp_path / "labelled.parquet")
    out = CliRunner().invoke(main, ["train-crops", str(tmp_path / "labelled.parquet"), "--out", str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    model = next((tmp_path / "m").glob("crops-*.joblib"))
    cfg = yaml.safe_load((ROOT / "configs" / "sample_hesbaye.yaml").read_text())
    base = ROOT / "configs"
    for key in ("plots", "imagery_index", "contracts", "weather", "debt"):
        cfg["inputs"][key] = str((base / cfg["inputs"][key]).resolve())
    cfg["crops"], cfg["policy"] = str(base / "crops.yaml"), str(base / "policy.yaml")
    cfg["crop_classifier"] = str(model)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    res = run_seasonal(tmp_path / "run.yaml", run_id="with-classifier")
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["crop_classifier_version"] == train_crops.load(model)["version"]
    assert manifest["inputs"]["crop_classifier"]["sha256"]
    plots = pd.read_parquet(res.path / "plots.parquet").set_index("plot_id")
    trained = plots["declared_crop"].isin(CLEAR)
    assert (plots.loc[trained, "crop_check_method"] == "classifier").all()
    assert (plots.loc[~trained, "crop_check_method"] == "calendar").all()
    # Retraining from that run's own declarations works too (the lender's path without labels).
    out = CliRunner().invoke(main, ["train-crops", "--from-run", str(res.path), "--out", str(tmp_path / "m2")])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output[: out.output.rindex("}") + 1])["n_profiles"] == len(plots)
