"""Crop check, anomalies, gap flags and Landsat QA masking on small constructed cases."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from agrisat import growth, scenes
from agrisat.anomaly import cohort_anomaly, own_history_anomaly
from agrisat.config import load_crops, load_policy
from agrisat.cropcheck import check_crop, crop_template
from conftest import ROOT

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
POLICY = load_policy(ROOT / "configs" / "policy.yaml").for_stage("harvest")
END = dt.date(2021, 10, 31)
DATES = pd.date_range("2020-11-05", "2021-10-25", freq="10D")


def _profile(crop: str, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """A crop's own calendar template scaled to NDVI 0.15..0.85, with noise."""
    rng = np.random.default_rng(seed)
    return 0.15 + 0.7 * crop_template(CROPS.get(crop), DATES, END) + rng.normal(0, noise, len(DATES))


@pytest.mark.parametrize("crop", sorted(load_crops(ROOT / "configs" / "crops.yaml").crops))
def test_each_crop_is_recognised_from_its_own_calendar(crop):
    got = check_crop(DATES, _profile(crop), crop, CROPS, END, margin=0.5, min_obs=4)
    assert got["best_crop"] == crop and not got["crop_mismatch"]


def test_winter_crop_declared_as_maize_is_a_mismatch_with_confidence():
    got = check_crop(DATES, _profile("winter_wheat"), "maize", CROPS, END, margin=0.5, min_obs=4)
    assert got["crop_mismatch"] and got["best_crop"] in ("winter_wheat", "winter_barley")
    assert 0.25 < got["crop_mismatch_confidence"] <= 1.0


def test_too_few_dates_give_no_verdict():
    few = np.full(len(DATES), np.nan)
    few[[10, 20, 25]] = [0.3, 0.8, 0.4]
    got = check_crop(DATES, few, "maize", CROPS, END, margin=0.5, min_obs=4)
    assert got["best_crop"] is None and not got["crop_mismatch"]


def test_cohort_anomaly_needs_a_cohort_and_flags_the_low_plot():
    n = 8
    metrics = pd.DataFrame({"plot_id": [f"p{i}" for i in range(n)],
                            "peak_ndvi": [0.80, 0.82, 0.79, 0.81, 0.83, 0.80, 0.78, 0.45]})
    plots = pd.DataFrame({"plot_id": metrics["plot_id"], "declared_crop": "maize", "region": ["a"] * n})
    got = cohort_anomaly(metrics, plots, "peak_ndvi", min_cohort=5).set_index("plot_id")
    assert got.loc["p7", "cohort_z"] < -2 and got.loc["p7", "cohort_percentile"] == pytest.approx(100 * 0.5 / 8)
    assert (got["cohort_n"] == 8).all()
    small = cohort_anomaly(metrics.iloc[:4], plots.iloc[:4], "peak_ndvi", min_cohort=5)
    assert small["cohort_z"].isna().all() and (small["cohort_n"] == 4).all()


def test_own_history_z_score():
    metrics = pd.DataFrame({"plot_id": ["a", "b"], "peak_ndvi": [0.5, 0.8]})
    history = pd.DataFrame({"plot_id": ["a"] * 4 + ["b"] * 2, "season": ["17", "18", "19", "20", "19", "20"],
                            "peak_ndvi": [0.80, 0.82, 0.84, 0.82, 0.8, 0.8]})
    got = own_history_anomaly(metrics, history, "peak_ndvi", min_seasons=3).set_index("plot_id")
    hist = np.array([0.80, 0.82, 0.84, 0.82])
    assert got.loc["a", "history_z"] == pytest.approx((0.5 - hist.mean()) / hist.std(ddof=1))
    assert got.loc["b", "history_n"] == 2 and np.isnan(got.loc["b", "history_z"])  # too short a past


def _series(pid, dates, means, frac=1.0):
    return pd.DataFrame({"plot_id": pid, "date": pd.to_datetime(dates), "mean": means, "valid_fraction": frac,
                         "n_pixels": 100})


def test_growth_flags_low_anomaly_and_long_gaps_with_their_numbers():
    months = pd.date_range("2021-02-01", "2021-07-01", freq="MS")
    good = [0.3, 0.5, 0.75, 0.85, 0.8, 0.35]
    frames = [_series(f"w{i}", months, np.array(good) + 0.01 * i) for i in range(6)]
    frames.append(_series("low", months, [0.3, 0.4, 0.5, 0.55, 0.5, 0.3]))
    # Clear in February and July only: nothing seen while the crop grew.
    frames.append(_series("gap", months, good, [1, 0, 0, 0, 0, 1]))
    series = pd.concat(frames, ignore_index=True)
    ids = [f"w{i}" for i in range(6)] + ["low", "gap"]
    plots = pd.DataFrame({"plot_id": ids, "declared_crop": "winter_wheat", "region": "r"})
    g = growth.growth_analysis(series, plots, CROPS, POLICY, END, END).metrics.set_index("plot_id")
    assert "GROWTH_ANOMALY_LOW" in g.loc["low", "growth_flags"]
    assert "against its cohort (n = 7)" in g.loc["low", "growth_flag_details"]["GROWTH_ANOMALY_LOW"]
    assert not any("GROWTH_ANOMALY_LOW" in f for f in g.loc[[f"w{i}" for i in range(6)], "growth_flags"])
    assert "GAP_TOO_LONG" in g.loc["gap", "growth_flags"] and g.loc["gap", "critical_gap_days"] == 150
    assert "150 days" in g.loc["gap", "growth_flag_details"]["GAP_TOO_LONG"]
    assert "GAP_TOO_LONG" not in g.loc["w0", "growth_flags"]


def test_a_residual_cloud_drop_is_removed_before_the_peak_and_kept_in_the_record():
    dates = pd.date_range("2021-03-01", "2021-07-20", freq="10D")
    vals = np.interp(np.arange(len(dates)), [0, 6, 10, 14], [0.3, 0.85, 0.85, 0.3])
    vals[7] = 0.35  # a cloud the mask missed, in the middle of the peak
    plots = pd.DataFrame({"plot_id": ["p"], "declared_crop": ["winter_wheat"], "region": ["r"]})
    res = growth.growth_analysis(_series("p", dates, vals), plots, CROPS, POLICY, END, END)
    m = res.metrics.iloc[0]
    assert m["n_outliers"] == 1 and m["n_clear_obs"] == len(dates)
    obs = res.observations.set_index("date")
    assert obs.loc[dates[7], "is_outlier"] and obs.loc[dates[7], "ndvi_smooth"] > 0.7  # smoothed through it


def test_landsat_qa_pixel_bits():
    # 21824 = clear land, 21952 = clear water, 22280 = high-confidence cloud, 23888 = cloud shadow,
    # 1 = fill (values from the USGS Landsat 8-9 C2 L2 product guide).
    qa = np.array([21824, 21952, 22280, 23888, 1, 54596], dtype=np.uint16)
    assert scenes.qa_bits_clear(qa).tolist() == [True, True, False, False, False, False]
    assert scenes.qa_bits_clear(np.array([np.nan, 21824.0])).tolist() == [False, True]
