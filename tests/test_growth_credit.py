import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from agrisat import credit, growth, yields
from agrisat.config import Policy, load_crops, load_policy
from conftest import ROOT

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
POLICY = Policy(version="test", currency="EUR", yield_quantile="p10", advance_rate=0.5,
                min_clear_observations=3, min_valid_fraction=0.5, max_limit_per_farmer=10_000,
                min_limit=500, rounding=100, validity_days=90)


def _series(pid, dates, means, fracs, n_pixels=100):
    return pd.DataFrame({"plot_id": pid, "date": pd.to_datetime(dates), "mean": means,
                         "valid_fraction": fracs, "n_pixels": n_pixels})


def test_growth_metrics_peak_integral_and_flags():
    dates = ["2021-03-01", "2021-04-01", "2021-05-01", "2021-06-01", "2021-07-01"]
    s = pd.concat([
        _series("W", dates, [0.3, 0.6, 0.8, 0.7, 0.3], [1, 1, 1, 1, 1]),
        _series("C", dates, [0.2, 0.9, 0.9, 0.2, 0.2], [1, 0.1, 0.2, 1, 1]),  # cloudy peak dates
        _series("S", dates, [0.2, 0.2, 0.3, 0.3, 0.3], [1, 1, 1, 1, 1]),       # bare soil
    ])
    plots = pd.DataFrame({"plot_id": ["W", "C", "S"], "declared_crop": ["winter_wheat", "winter_wheat", "maize"]})
    g = growth.growth_metrics(s, plots, CROPS, POLICY, dt.date(2021, 10, 31), dt.date(2021, 10, 31)).set_index("plot_id")
    assert g.loc["W", "peak_ndvi"] == pytest.approx(0.8)
    assert g.loc["W", "peak_date"] == pd.Timestamp("2021-05-01")
    days = np.array([0, 31, 61, 92, 122], float)
    assert g.loc["W", "season_integral"] == pytest.approx(np.trapezoid([0.3, 0.6, 0.8, 0.7, 0.3], days))
    assert g.loc["W", "growth_flags"] == []
    assert g.loc["C", "n_clear_obs"] == 3 and g.loc["C", "peak_ndvi"] == pytest.approx(0.2)
    assert "NO_CROP_SIGNAL" in g.loc["C", "growth_flags"]  # the peak was never seen clear
    assert "NO_CROP_SIGNAL" in g.loc["S", "growth_flags"]


def test_as_of_hides_later_imagery_and_flags_insufficient():
    dates = ["2021-03-01", "2021-04-01", "2021-05-01", "2021-06-01"]
    s = _series("W", dates, [0.3, 0.6, 0.8, 0.7], [1, 1, 1, 1])
    plots = pd.DataFrame({"plot_id": ["W"], "declared_crop": ["winter_wheat"]})
    g = growth.growth_metrics(s, plots, CROPS, POLICY, dt.date(2021, 4, 15), dt.date(2021, 10, 31)).iloc[0]
    assert g["n_clear_obs"] == 2
    assert "NOT_ENOUGH_CLEAR_OBSERVATIONS" in g["growth_flags"]
    y = yields.estimate_yield(pd.DataFrame([g]), plots, CROPS).iloc[0]
    assert np.isnan(y["yield_p50"]) and y["yield_method"] == "none"


def test_yield_quantiles_ordered_and_scaled_by_peak():
    g = pd.DataFrame({"plot_id": ["a", "b"], "peak_ndvi": [0.85, 0.425], "growth_flags": [[], []]})
    plots = pd.DataFrame({"plot_id": ["a", "b"], "declared_crop": ["winter_wheat", "winter_wheat"]})
    y = yields.estimate_yield(g, plots, CROPS).set_index("plot_id")
    assert y.loc["a", "yield_p50"] == pytest.approx(8.7)
    assert y.loc["b", "yield_p50"] == pytest.approx(4.35)
    assert (y["yield_p10"] < y["yield_p50"]).all() and (y["yield_p50"] < y["yield_p90"]).all()


def _plot_rows(**over):
    base = {"plot_id": ["p1", "p2"], "farmer_id": ["F1", "F1"], "declared_crop": ["winter_wheat", "maize"],
            "area_ha": [2.0, 3.0], "declared_area_ha": [2.0, 3.0], "flags": [[], []],
            "yield_p10": [6.0, 8.0], "yield_p50": [8.0, 10.0], "yield_p90": [10.0, 12.0]}
    base.update(over)
    return pd.DataFrame(base)


def _rent(amount: float = 300.0) -> pd.DataFrame:
    """F1 leases p2 under C2 (land.rent_obligations' shape)."""
    return pd.DataFrame({"farmer_id": ["F1"], "contract_id": ["C2"], "plot_id": ["p2"], "rent_due": [amount]})


NO_DEBT = pd.DataFrame({"farmer_id": ["F1"], "outstanding": [0.0]})


def test_limit_arithmetic_and_reason_order():
    rev = credit.plot_revenue(_plot_rows(), CROPS, POLICY)
    # p1: 2 ha x 6 t x 190 = 2280 -> advance 1140 (cap 1000/ha x 2 = 2000, not binding)
    # p2: 3 ha x 8 t x 180 = 4320 -> advance 2160 (cap 1200 x 3 = 3600)
    lim = credit.farmer_limits(rev, POLICY, dt.date(2021, 10, 31), rent=_rent(),
                               debt=pd.DataFrame({"farmer_id": ["F1"], "outstanding": [1000.0]})).iloc[0]
    assert lim["limit"] == 3300 - 300 - 1000 - 0  # 2000, already a multiple of 100
    assert lim["status"] == "approved"
    assert lim["reason_codes"] == ["ADVANCE_ON_REVENUE", "EXISTING_DEBT", "RENT_DUE"]
    amounts = {r["code"]: r["amount"] for r in lim["reasons"]}
    assert sum(amounts.values()) == pytest.approx(lim["limit"])
    assert lim["valid_until"] - lim["valid_from"] == pd.Timedelta(days=90)


def test_excluded_plot_floor_rounding_and_caps():
    rows = _plot_rows(flags=[["LEASE_EXPIRED"], []], area_ha=[2.0, 30.0], declared_area_ha=[2.0, 30.0])
    rev = credit.plot_revenue(rows, CROPS, POLICY)
    lim = credit.farmer_limits(rev, POLICY, dt.date(2021, 10, 31), rent=_rent()).iloc[0]
    # p2 alone: 30 ha x 8 x 180 x 0.5 = 21600 -> farmer cap 10000 after 300 rent.
    assert lim["limit"] == 10_000
    assert lim["status"] == "review" and lim["decided_by"] == "PLOT_EXCLUDED_LEASE_EXPIRED"
    codes = lim["reason_codes"]
    assert codes[0] == "ADVANCE_ON_REVENUE" and "FARMER_CAP" in codes
    excluded = next(r for r in lim["reasons"] if r["code"] == "PLOT_EXCLUDED_LEASE_EXPIRED")
    assert excluded["plot_id"] == "p1" and excluded["amount"] == pytest.approx(-1140.0)
    assert excluded["text_zh"] and excluded["text_en"]

    heavy = credit.farmer_limits(credit.plot_revenue(_plot_rows(), CROPS, POLICY), POLICY, dt.date(2021, 10, 31),
                                 rent=_rent(), debt=pd.DataFrame({"farmer_id": ["F1"], "outstanding": [50_000.0]})).iloc[0]
    assert heavy["limit"] == 0 and heavy["status"] == "declined" and "FLOOR_AT_ZERO" in heavy["reason_codes"]

    odd = credit.farmer_limits(credit.plot_revenue(_plot_rows(), CROPS, POLICY), POLICY, dt.date(2021, 10, 31),
                               rent=_rent(355.0), debt=NO_DEBT).iloc[0]
    assert odd["limit"] == 2900 and "ROUNDING" in odd["reason_codes"]  # 3300 - 355 = 2945 -> 2900


def test_plot_without_estimate_gives_zero_not_invented_revenue():
    rows = _plot_rows(flags=[["NOT_ENOUGH_CLEAR_OBSERVATIONS"], ["NOT_ENOUGH_CLEAR_OBSERVATIONS"]],
                      yield_p10=[np.nan, np.nan], yield_p50=[np.nan, np.nan], yield_p90=[np.nan, np.nan])
    lim = credit.farmer_limits(credit.plot_revenue(rows, CROPS, POLICY), POLICY, dt.date(2021, 10, 31),
                               debt=NO_DEBT).iloc[0]
    # Nothing measured is not a "no": review, with the reason, never declined.
    assert lim["limit"] == 0 and lim["status"] == "review" and lim["decided_by"] == "NO_PLEDGEABLE_EVIDENCE"
    assert lim["n_plots_eligible"] == 0 and np.isnan(lim["expected_revenue"])


def test_growing_window_follows_the_crop_calendar():
    end = dt.date(2021, 10, 31)
    assert growth.growing_window(CROPS.crops["winter_wheat"], end) == (pd.Timestamp("2020-10-15"), pd.Timestamp("2021-08-31"))
    assert growth.growing_window(CROPS.crops["maize"], end) == (pd.Timestamp("2021-04-25"), pd.Timestamp("2021-11-09"))


def test_previous_crop_outside_the_window_is_ignored():
    # A green cover crop in November (previous season) must not become the potato's peak.
    dates = ["2020-11-01", "2021-05-01", "2021-06-01", "2021-07-01", "2021-08-01"]
    s = _series("P", dates, [0.85, 0.3, 0.7, 0.75, 0.3], [1] * 5)
    plots = pd.DataFrame({"plot_id": ["P"], "declared_crop": ["potato"]})
    g = growth.growth_metrics(s, plots, CROPS, POLICY, dt.date(2021, 10, 31), dt.date(2021, 10, 31)).iloc[0]
    assert g["peak_date"] == pd.Timestamp("2021-07-01") and g["n_clear_obs"] == 4


def test_weather_shock_lowers_the_advance_as_a_reason_and_drops_the_limit_at_once():
    policy = load_policy(ROOT / "configs" / "policy.yaml").for_stage("harvest")  # advance rate 0.5
    rows = _plot_rows(flags=[["WEATHER_DROUGHT"], []])
    rev = credit.plot_revenue(rows, CROPS, policy)
    # A previous limit still valid, with the obligations it knew: damping would apply but for the drought.
    prev = pd.DataFrame({"farmer_id": ["F1"], "limit": [5000.0], "existing_debt": [0.0], "rent_due": [300.0],
                         "valid_until": [pd.Timestamp("2021-12-31")]})
    lim = credit.farmer_limits(rev, policy, dt.date(2021, 10, 31), rent=_rent(), debt=NO_DEBT, previous=prev).iloc[0]
    drought = next(r for r in lim["reasons"] if r["code"] == "FLAG_WEATHER_DROUGHT")
    m = policy.multipliers["WEATHER_DROUGHT"]
    h1, h2 = (1 - policy.price_haircuts[c] for c in ("winter_wheat", "maize"))
    assert drought["plot_id"] == "p1" and drought["amount"] == pytest.approx(-1140.0 * h1 * (1 - m))
    assert lim["status"] == "review" and lim["decided_by"] == "WEATHER_DROUGHT"
    # A severe code new since the previous limit: the fall from 5,000 is not damped by the change rules.
    assert lim["limit"] == math.floor((1140.0 * h1 * m + 2160.0 * h2 - 300.0) / 100) * 100
    assert lim["change_reason"].startswith("DECREASE_SEVERE:") and "CHANGE_DECREASE_DAMPED" not in lim["reason_codes"]
    assert list(lim["severe_events"]) == ["WEATHER_DROUGHT"]
    assert sum(r["amount"] for r in lim["reasons"]) == pytest.approx(lim["limit"])
