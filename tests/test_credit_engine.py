"""Credit engine: properties (hypothesis), stage rules, change rules, backtest."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agrisat import credit, yields
from agrisat.backtest import backtest
from agrisat.changes import apply_change_rules
from agrisat.config import ChangeRules, load_crops, load_policy
from agrisat.errors import InputDataError
from conftest import ROOT

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
BASE_POLICY = load_policy(ROOT / "configs" / "policy.yaml")
AS_OF = dt.date(2021, 10, 31)
CROP_NAMES = sorted(CROPS.crops)
FLAGS = ["PEAK_OUTSIDE_CROP_CALENDAR", "WEATHER_DROUGHT", "LEASE_EXPIRED", "NOT_ENOUGH_CLEAR_OBSERVATIONS"]

plot_strategy = st.fixed_dictionaries({
    "crop": st.sampled_from(CROP_NAMES),
    "area": st.floats(0.1, 60),
    "peak": st.floats(0.0, 1.0),
    "rent": st.floats(0, 5000),
    "flags": st.lists(st.sampled_from(FLAGS), max_size=2, unique=True),
})
farmer_strategy = st.fixed_dictionaries({
    "plots": st.lists(plot_strategy, min_size=1, max_size=4),
    "debt": st.floats(0, 200_000),
    "previous": st.one_of(st.none(), st.floats(0, 200_000)),
    "stage": st.sampled_from(["planting", "mid_season", "harvest", "after_harvest"]),
})


def _limit(farmer: dict, *, peak_delta: float = 0.0, debt_delta: float = 0.0, rent_delta: float = 0.0) -> pd.Series:
    """Run a farmer through yield -> revenue -> limit, as the pipeline does."""
    policy = BASE_POLICY.for_stage(farmer["stage"])
    ps = farmer["plots"]
    plots = pd.DataFrame({"plot_id": [f"p{i}" for i in range(len(ps))], "farmer_id": "F",
                          "declared_crop": [p["crop"] for p in ps], "area_ha": [p["area"] for p in ps],
                          "rent_due": [p["rent"] + rent_delta for p in ps], "flags": [p["flags"] for p in ps]})
    growth = pd.DataFrame({"plot_id": plots["plot_id"], "peak_ndvi": [min(p["peak"] + peak_delta, 1.0) for p in ps],
                           "growth_flags": [[f for f in p["flags"] if f == "NOT_ENOUGH_CLEAR_OBSERVATIONS"] for p in ps]})
    if policy.evidence == "prior":
        est = yields.prior_yield(plots, CROPS, policy.prior_relative_sd)
    else:
        est = yields.estimate_yield(growth, plots, CROPS)
    rev = credit.plot_revenue(plots.merge(est, on="plot_id"), CROPS, policy)
    debt = pd.DataFrame({"farmer_id": ["F"], "outstanding": [farmer["debt"] + debt_delta]})
    prev = None if farmer["previous"] is None else pd.DataFrame({"farmer_id": ["F"], "limit": [farmer["previous"]],
                                                                 "existing_debt": [farmer["debt"]]})
    return credit.farmer_limits(rev, debt, policy, AS_OF, prev).iloc[0]


@settings(max_examples=150, deadline=None)
@given(farmer_strategy, st.floats(0.0, 0.5))
def test_better_ndvi_never_lowers_a_limit(farmer, delta):
    assert _limit(farmer, peak_delta=delta)["limit"] >= _limit(farmer)["limit"]


@settings(max_examples=150, deadline=None)
@given(farmer_strategy, st.floats(0.0, 100_000), st.floats(0.0, 5_000))
def test_more_debt_or_rent_never_raises_a_limit(farmer, more_debt, more_rent):
    base = _limit(farmer)["limit"]
    assert _limit(farmer, debt_delta=more_debt)["limit"] <= base
    assert _limit(farmer, rent_delta=more_rent)["limit"] <= base


@settings(max_examples=200, deadline=None)
@given(farmer_strategy)
def test_limits_non_negative_caps_hold_reasons_add_up_and_deterministic(farmer):
    r = _limit(farmer)
    policy = BASE_POLICY.for_stage(farmer["stage"])
    assert 0 <= r["limit"] <= policy.max_limit_per_farmer
    assert r["limit"] == 0 or r["limit"] >= policy.min_limit
    assert r["limit"] % policy.rounding == 0
    assert sum(x["amount"] for x in r["reasons"]) == pytest.approx(r["limit"], abs=1e-6)
    amounts = [abs(x["amount"]) for x in r["reasons"]]
    assert amounts == sorted(amounts, reverse=True)
    again = _limit(farmer)
    assert again["limit"] == r["limit"] and again["reason_codes"] == r["reason_codes"]
    assert 0.0 <= r["risk_score"] <= 1.0


def test_per_hectare_crop_cap_holds_on_every_plot():
    plots = pd.DataFrame({"plot_id": ["a"], "farmer_id": ["F"], "declared_crop": ["potato"], "area_ha": [10.0],
                          "rent_due": [0.0], "flags": [[]], "yield_p10": [200.0], "yield_p50": [220.0], "yield_p90": [240.0]})
    rev = credit.plot_revenue(plots, CROPS, BASE_POLICY)
    assert rev["advance"].iloc[0] == pytest.approx(CROPS.crops["potato"].max_limit_per_ha * 10)
    lim = credit.farmer_limits(rev, None, BASE_POLICY, AS_OF).iloc[0]
    assert "CROP_CAP_PER_HA" in lim["reason_codes"]


def _one_farmer(stage: str, peak: float = 0.8, flags=()) -> pd.Series:
    return _limit({"plots": [{"crop": "winter_wheat", "area": 20.0, "peak": peak, "rent": 0.0, "flags": list(flags)}],
                   "debt": 0.0, "previous": None, "stage": stage})


def test_stage_rules_move_the_limit_as_evidence_arrives():
    planting, mid, harvest, after = (_one_farmer(s) for s in ("planting", "mid_season", "harvest", "after_harvest"))
    # Planting lends on reference yields (no imagery needed) with a low advance rate.
    assert "PRIOR_YIELD_ESTIMATE" in planting["reason_codes"] and planting["limit"] > 0
    assert planting["limit"] < mid["limit"] < harvest["limit"]
    assert after["limit"] < harvest["limit"]
    # At planting, missing imagery does not exclude a plot; at harvest it does.
    cloudy_planting = _one_farmer("planting", flags=["NOT_ENOUGH_CLEAR_OBSERVATIONS"])
    cloudy_harvest = _one_farmer("harvest", flags=["NOT_ENOUGH_CLEAR_OBSERVATIONS"])
    assert cloudy_planting["limit"] == planting["limit"]
    assert cloudy_harvest["limit"] == 0 and cloudy_harvest["status"] == "declined"


def test_flag_multiplier_lowers_and_is_explained():
    clean, drought = _one_farmer("harvest"), _one_farmer("harvest", flags=["WEATHER_DROUGHT"])
    assert drought["limit"] < clean["limit"]
    flag = next(r for r in drought["reasons"] if r["code"] == "FLAG_WEATHER_DROUGHT")
    assert flag["amount"] < 0 and flag["plot_id"] == "p0" and flag["text_zh"] == "本季干旱"
    assert drought["status"] == "review"


RULES = ChangeRules(max_increase_relative=0.25, max_increase_absolute=5000, max_decrease_relative=0.3,
                    severe_codes=("WEATHER_FLOOD",))


@pytest.mark.parametrize(
    "base, previous, severe, expected_limit, expected_reason",
    [
        (10_000, None, [], 10_000, "NO_PREVIOUS_LIMIT"),
        (12_000, 10_000, [], 12_000, "INCREASE"),
        (30_000, 10_000, [], 15_000, "INCREASE_CAPPED"),          # +max(2500, 5000)
        (90_000, 40_000, [], 50_000, "INCREASE_CAPPED"),          # +max(10000, 5000)
        (9_000, 10_000, [], 9_000, "DECREASE"),
        (2_000, 10_000, [], 7_000, "DECREASE_DAMPED"),            # at most -30% without a severe event
        (2_000, 10_000, ["WEATHER_FLOOD"], 2_000, "DECREASE_SEVERE:WEATHER_FLOOD"),
        (10_000, 10_000, [], 10_000, "UNCHANGED"),
    ],
)
def test_change_rules(base, previous, severe, expected_limit, expected_reason):
    c = apply_change_rules(base, previous, severe, RULES)
    assert c.limit == expected_limit and c.change_reason == expected_reason
    if c.reason is not None:
        assert c.reason.amount == pytest.approx(expected_limit - base)


def test_change_rules_in_the_engine_with_debt_increase_as_severe():
    farmer = {"plots": [{"crop": "winter_wheat", "area": 20.0, "peak": 0.8, "rent": 0.0, "flags": []}],
              "debt": 0.0, "previous": 60_000.0, "stage": "harvest"}
    base = _limit({**farmer, "previous": None})["limit"]
    damped = _limit(farmer)
    assert damped["change_reason"] == "DECREASE_DAMPED" and damped["limit"] == 42_000 > base
    assert "CHANGE_DECREASE_DAMPED" in damped["reason_codes"]
    more_debt = _limit(farmer, debt_delta=5_000)  # previous debt 0 -> new debt: severe, applied at once
    assert more_debt["change_reason"] == "DECREASE_SEVERE:EXISTING_DEBT_INCREASED"
    assert more_debt["limit"] == base - 5_000


def test_backtest_on_synthetic_book():
    rng = np.random.default_rng(7)
    n = 2000
    score = rng.uniform(0, 1, n)
    defaulted = (rng.uniform(0, 1, n) < 0.02 + 0.3 * score ** 2).astype(int)  # riskier score, more defaults
    limit = rng.uniform(1000, 50_000, n)
    rep = backtest(pd.DataFrame({"limit": limit, "risk_score": score, "defaulted": defaulted}))
    assert rep.n_loans == n and rep.n_defaults == defaulted.sum()
    assert 0.70 < rep.auc < 0.85 and 0.3 < rep.ks < 0.6
    rates = rep.by_score_band["default_rate"].to_numpy()
    assert (np.diff(rates) > 0).all()  # default rate rises band by band
    assert rep.by_limit_band["loans"].sum() == n
    # A random score ranks nothing.
    rand = backtest(pd.DataFrame({"limit": limit, "risk_score": rng.uniform(0, 1, n), "defaulted": defaulted}))
    assert abs(rand.auc - 0.5) < 0.05


def test_backtest_bad_input_names_row():
    df = pd.DataFrame({"limit": [1, 2], "risk_score": [0.1, "x"], "defaulted": [0, 1]})
    with pytest.raises(InputDataError, match=r"loans.csv: row 3: risk_score 'x' is not a number"):
        backtest(df, source="loans.csv")
