"""Crop check, anomalies, gap flags and Landsat QA masking on small constructed cases."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

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
    assert got.loc["a", "history_percentile"] == 0.0  # below every earlier season
    assert got.loc["b", "history_n"] == 2 and np.isnan(got.loc["b", "history_z"])  # too short a past
    assert np.isnan(got.loc["b", "history_percentile"])


def test_percentiles_match_scipy():
    rng = np.random.default_rng(4)
    n = 12
    metrics = pd.DataFrame({"plot_id": [f"p{i}" for i in range(n)], "peak_ndvi": np.round(rng.uniform(0.5, 0.9, n), 2)})
    plots = pd.DataFrame({"plot_id": metrics["plot_id"], "declared_crop": "maize", "region": "a"})
    got = cohort_anomaly(metrics, plots, "peak_ndvi", min_cohort=5).set_index("plot_id")
    v = metrics["peak_ndvi"].to_numpy()
    for pid, x in zip(metrics["plot_id"], v):
        assert got.loc[pid, "cohort_percentile"] == pytest.approx(stats.percentileofscore(v, x, kind="mean"))
        assert got.loc[pid, "cohort_z"] == pytest.approx((x - v.mean()) / v.std(ddof=1))
    past = pd.DataFrame({"plot_id": np.repeat(metrics["plot_id"], 5), "peak_ndvi": np.round(rng.uniform(0.5, 0.9, 5 * n), 2)})
    hist = own_history_anomaly(metrics, past, "peak_ndvi", min_seasons=3).set_index("plot_id")
    for pid, x in zip(metrics["plot_id"], v):
        mine = past.loc[past["plot_id"] == pid, "peak_ndvi"].to_numpy()
        assert hist.loc[pid, "history_percentile"] == pytest.approx(stats.percentileofscore(mine, x, kind="mean"))
        assert hist.loc[pid, "history_z"] == pytest.approx((x - mine.mean()) / mine.std(ddof=1))


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


def _dlog(t, base=0.2, amp=0.6, up=0.0, down=0.0, s_up=8.0, s_down=10.0):
    return base + amp * (1 / (1 + np.exp(-(t - up) / s_up)) - 1 / (1 + np.exp(-(t - down) / s_down)))


@pytest.mark.parametrize("clouds, gap", [(False, False), (True, False), (False, True), (True, True)])
def test_a_season_across_the_new_year_through_growth_analysis(clouds, gap):
    """A southern-hemisphere summer crop: sown in November, peak in January, harvest in April. True
    start, middle and end are solved on the continuous curve (scipy brentq), not by our code."""
    from scipy.optimize import brentq

    from agrisat.config import CropParams, CropTable

    south = CropParams(group="summer", peak_months=(1, 2), sowing="11-15", harvest="04-15", emergence_days=10,
                       base_temp_c=10, reference_yield_t_ha=3.0, reference_peak_ndvi=0.85, min_peak_ndvi=0.4,
                       relative_sd=0.2, price_per_t=400, max_limit_per_ha=800)
    crops = CropTable(version="t", currency="EUR", crops={**CROPS.crops, "soy_south": south})
    end = dt.date(2022, 5, 31)
    epoch = pd.Timestamp("2021-11-15")  # the window opens at sowing; days below count from it
    shape = {"up": 30.0, "down": 115.0}  # green-up mid-December, senescence early March
    dates = pd.date_range("2021-11-17", "2022-05-14", freq="10D")
    t = (dates - epoch).days.to_numpy(float)
    rng = np.random.default_rng(1)
    vals = _dlog(t, **shape) + rng.normal(0, 0.01, len(t))
    frac = np.ones(len(t))
    if clouds:
        vals[[4, 11]] -= 0.4  # residual cloud the mask missed
        frac[[7, 14]] = 0.1  # cloudy dates the mask caught
    if gap:
        frac[8:11] = 0.0  # a cloudy month around the start of senescence
    series = _series("s", dates, vals, frac)
    plots = pd.DataFrame({"plot_id": ["s"], "declared_crop": ["soy_south"], "region": ["r"]})
    m = growth.growth_analysis(series, plots, crops, POLICY, end, end).metrics.iloc[0]

    window = np.arange(0, (pd.Timestamp("2022-05-15") - epoch).days + 1, dtype=float)
    c = _dlog(window, **shape)
    k = int(np.argmax(c))
    lo_l, lo_r, peak = c[: k + 1].min(), c[k:].min(), c.max()
    def rise(q):
        return brentq(lambda x: _dlog(x, **shape) - (lo_l + q * (peak - lo_l)), 0, k)
    def fall(q):
        return brentq(lambda x: _dlog(x, **shape) - (lo_r + q * (peak - lo_r)), k, window[-1])
    want = {"sos_date": rise(0.2), "mid_season_date": (rise(0.8) + fall(0.8)) / 2, "eos_date": fall(0.2)}
    seen = t[frac >= POLICY.min_valid_fraction]
    for col, day in want.items():
        interval = max(10.0, seen[seen >= day].min() - seen[seen <= day].max())
        assert abs((m[col] - epoch).days - day) <= interval, (col, m[col], epoch + pd.Timedelta(days=day))
    assert m["sos_date"].year == 2021 and m["eos_date"].year == 2022 and m["mid_season_date"].month in (1, 2)
    assert m["n_outliers"] == (2 if clouds else 0)
    assert "PEAK_OUTSIDE_CROP_CALENDAR" not in m["growth_flags"] and "CROP_MISMATCH" not in m["growth_flags"]
    assert m["season_length_days"] == pytest.approx(want["eos_date"] - want["sos_date"], abs=20)


def test_sufficiency_flags_carry_their_numbers():
    dates = pd.date_range("2021-03-01", "2021-07-20", freq="10D")
    vals = np.interp(np.arange(len(dates)), [0, 6, 10, 14], [0.3, 0.85, 0.85, 0.3])
    bare = np.full(len(dates), 0.2) + 0.01 * (np.arange(len(dates)) % 3)
    series = pd.concat([_series("ok", dates, vals), _series("tiny", dates, vals).assign(n_pixels=2),
                        _series("none", dates, np.nan, 0.0).assign(n_pixels=0, n_pixels_grid=100),
                        _series("bare", dates, bare)])
    plots = pd.DataFrame({"plot_id": ["ok", "tiny", "none", "bare"], "declared_crop": "winter_wheat", "region": "r"})
    g = growth.growth_analysis(series, plots, CROPS, POLICY, END, END).metrics.set_index("plot_id")
    assert g.loc["ok", "growth_flags"] == []
    assert g.loc["tiny", "growth_flag_details"]["PLOT_TOO_SMALL"] == f"2 pixels < {growth.MIN_PLOT_PIXELS}"
    # 100 pixel centres inside the polygon on the grid, none on the imagery (a plot off the tile); the
    # other plots lack n_pixels_grid (NaN after the concat) and fall back to n_pixels.
    assert g.loc["none", "growth_flag_details"]["NO_IMAGERY_COVERAGE"] == (
        "none of the 100 pixel centres inside the polygon lies on the imagery")
    assert g.loc["none", "imaged_fraction"] == 0.0 and g.loc["ok", "imaged_fraction"] == 1.0
    assert (g.loc[["ok", "tiny", "bare"], "n_pixels_grid"] == [100, 2, 100]).all()
    assert g.loc["none", "growth_flag_details"]["NOT_ENOUGH_CLEAR_OBSERVATIONS"].startswith("0 clear dates")
    assert g.loc["bare", "growth_flag_details"]["NO_CROP_SIGNAL"] == (
        f"peak NDVI {bare.max():.2f} < {CROPS.get('winter_wheat').min_peak_ndvi}")
    assert "CROP_MISMATCH" not in g.loc["bare", "growth_flags"]  # no crop is not the wrong crop
    assert all(f in growth.EXCLUDING_GROWTH_FLAGS for f in ("PLOT_TOO_SMALL", "NO_IMAGERY_COVERAGE", "NO_CROP_SIGNAL"))


def test_a_mid_season_run_watches_the_crop_now_in_the_field():
    # A run whose season ends in April, before the winter wheat's August harvest, must take the
    # cycle sown the autumn before, not the one harvested last summer; maize sown in late April
    # belongs to this year.
    from agrisat.cropcalendar import growing_window

    ww, mz = CROPS.get("winter_wheat"), CROPS.get("maize")
    sow, stop = growing_window(ww, dt.date(2023, 4, 30), dt.date(2023, 4, 1))
    assert sow.year == 2022 and stop.year == 2023 and sow <= pd.Timestamp("2023-04-01") <= stop
    sow, stop = growing_window(mz, dt.date(2023, 4, 30), dt.date(2023, 4, 1))
    assert sow.year == 2023
    # A full season November .. October keeps the harvest inside it, not the crop sown at its end.
    sow, stop = growing_window(ww, dt.date(2021, 10, 31), dt.date(2020, 11, 1))
    assert (sow.year, stop.year) == (2020, 2021)
    assert growing_window(ww, dt.date(2021, 10, 31)) == (sow, stop)
