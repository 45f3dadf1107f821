"""Credit engine units: caps, stage rules, haircuts, change rules, backtest (the chain's properties:
test_conservatism.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from agrisat import credit, yields
from agrisat.backtest import backtest
from agrisat.changes import Previous, apply_change_rules
from agrisat.config import ChangeRules, load_crops, load_policy
from agrisat.errors import InputDataError
from conftest import ROOT

CROPS = load_crops(ROOT / "configs" / "crops.yaml")
BASE_POLICY = load_policy(ROOT / "configs" / "policy.yaml")
AS_OF = dt.date(2021, 10, 31)
CROP_NAMES = sorted(CROPS.crops)

def _limit(farmer: dict, *, peak_delta: float = 0.0) -> pd.Series:
    """One farmer through yield -> revenue -> limit (unit level; the properties of the whole chain
    are in test_conservatism.py, through the pipeline's own ``decide``)."""
    policy = BASE_POLICY.for_stage(farmer["stage"])
    ps = farmer["plots"]
    plots = pd.DataFrame({"plot_id": [f"p{i}" for i in range(len(ps))], "farmer_id": "F",
                          "declared_crop": [p["crop"] for p in ps], "area_ha": [p["area"] for p in ps],
                          "flags": [p["flags"] for p in ps]})
    growth = pd.DataFrame({"plot_id": plots["plot_id"], "peak_ndvi": [min(p["peak"] + peak_delta, 1.0) for p in ps],
                           "growth_flags": [[f for f in p["flags"] if f == "NOT_ENOUGH_CLEAR_OBSERVATIONS"] for p in ps]})
    if policy.evidence == "prior":
        est = yields.prior_yield(plots, CROPS, policy.prior_relative_sd)
    else:
        est = yields.estimate_yield(growth, plots, CROPS)
    rev = credit.plot_revenue(plots.merge(est, on="plot_id"), CROPS, policy)
    debt = pd.DataFrame({"farmer_id": ["F"], "outstanding": [farmer["debt"]]})
    prev = None if farmer["previous"] is None else pd.DataFrame({
        "farmer_id": ["F"], "limit": [farmer["previous"]], "existing_debt": [farmer["debt"]], "rent_due": [0.0],
        "valid_until": [pd.Timestamp(AS_OF) + pd.Timedelta(days=30)]})
    return credit.farmer_limits(rev, policy, AS_OF, debt=debt, previous=prev).iloc[0]


def test_per_hectare_crop_cap_holds_on_every_plot():
    plots = pd.DataFrame({"plot_id": ["a"], "farmer_id": ["F"], "declared_crop": ["potato"], "area_ha": [10.0],
                          "rent_due": [0.0], "flags": [[]], "yield_p10": [200.0], "yield_p50": [220.0], "yield_p90": [240.0]})
    rev = credit.plot_revenue(plots, CROPS, BASE_POLICY)
    assert rev["advance"].iloc[0] == pytest.approx(CROPS.crops["potato"].max_limit_per_ha * 10)
    lim = credit.farmer_limits(rev, BASE_POLICY, AS_OF).iloc[0]
    assert "CROP_CAP_PER_HA" in lim["reason_codes"]


def _one_farmer(stage: str, peak: float = 0.8, flags=()) -> pd.Series:
    return _limit({"plots": [{"crop": "winter_wheat", "area": 20.0, "peak": peak, "flags": list(flags)}],
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
    # Unmeasured is not "no": the farmer goes to review, not to a decline.
    assert cloudy_harvest["limit"] == 0 and cloudy_harvest["status"] == "review"
    assert cloudy_harvest["decided_by"] == "NO_PLEDGEABLE_EVIDENCE"


def test_flag_multiplier_lowers_and_is_explained():
    clean, drought = _one_farmer("harvest"), _one_farmer("harvest", flags=["WEATHER_DROUGHT"])
    assert drought["limit"] < clean["limit"]
    flag = next(r for r in drought["reasons"] if r["code"] == "FLAG_WEATHER_DROUGHT")
    assert flag["amount"] < 0 and flag["plot_id"] == "p0" and flag["text_zh"] == "本季干旱"
    assert drought["status"] == "review"


RULES = ChangeRules(max_increase_relative=0.25, max_increase_absolute=5000, max_decrease_relative=0.3,
                    severe_codes=("WEATHER_FLOOD",))
VALID = pd.Timestamp(AS_OF) + pd.Timedelta(days=1)


@pytest.mark.parametrize(
    "base, previous, severe, complete, obligations, expected_limit, expected_direction",
    [
        (10_000, None, [], True, 0, 10_000, "NO_PREVIOUS_LIMIT"),
        (12_000, Previous(10_000, valid_until=VALID), [], True, 0, 12_000, "INCREASE"),
        (30_000, Previous(10_000, valid_until=VALID), [], True, 0, 15_000, "INCREASE_CAPPED"),  # +max(2500, 5000)
        (90_000, Previous(40_000, valid_until=VALID), [], True, 0, 50_000, "INCREASE_CAPPED"),  # +max(10000, 5000)
        (9_000, Previous(10_000, valid_until=VALID), [], True, 0, 9_000, "DECREASE"),
        (2_000, Previous(10_000, valid_until=VALID), [], True, 0, 7_000, "DECREASE_DAMPED"),  # at most -30%
        # ... and at most what the previous revenue supported minus today's obligations:
        (2_000, Previous(10_000, 1_000, 0, VALID), [], True, 5_000, 6_000, "DECREASE_DAMPED"),
        (0, Previous(3_000, valid_until=VALID), [], True, 60_000, 0, "DECREASE"),  # new debt: at once
        (2_000, Previous(10_000, valid_until=VALID), ["WEATHER_FLOOD"], True, 0, 2_000, "DECREASE_SEVERE"),
        (2_000, Previous(10_000), [], True, 0, 2_000, "DECREASE"),  # validity unknown: nothing held
        (2_000, Previous(10_000, valid_until=pd.Timestamp(AS_OF) - pd.Timedelta(days=1)), [], True, 0, 2_000, "DECREASE"),
        (2_000, Previous(10_000, valid_until=VALID), [], False, 0, 2_000, "DECREASE"),  # evidence missing
        (10_000, Previous(10_000, valid_until=VALID), [], True, 0, 10_000, "UNCHANGED"),
    ],
)
def test_change_rules(base, previous, severe, complete, obligations, expected_limit, expected_direction):
    c = apply_change_rules(base, previous, obligations=obligations, new_severe=severe, complete_evidence=complete,
                           as_of=AS_OF, rules=RULES)
    assert c.limit == expected_limit and c.direction == expected_direction
    if c.reason is not None:
        assert c.reason.amount == pytest.approx(expected_limit - base)


def test_change_rules_in_the_engine_with_debt_increase_as_severe():
    farmer = {"plots": [{"crop": "winter_wheat", "area": 20.0, "peak": 0.8, "flags": []}],
              "debt": 0.0, "previous": 60_000.0, "stage": "harvest"}
    base = _limit({**farmer, "previous": None})["limit"]
    damped = _limit(farmer)
    # Without the previous reasons, the driver named is the largest deduction (here the price haircut).
    assert damped["change_reason"] == "DECREASE_DAMPED:PRICE_HAIRCUT" and damped["limit"] == 42_000 > base
    assert "CHANGE_DECREASE_DAMPED" in damped["reason_codes"] and damped["status"] == "review"
    more_debt = _limit({**farmer, "debt": 5_000.0, "previous": None})
    prev = pd.DataFrame({"farmer_id": ["F"], "limit": [60_000.0], "existing_debt": [0.0], "rent_due": [0.0],
                         "valid_until": [VALID]})
    policy = BASE_POLICY.for_stage("harvest")
    plots = pd.DataFrame({"plot_id": ["p0"], "farmer_id": "F", "declared_crop": ["winter_wheat"], "area_ha": [20.0],
                          "flags": [[]]})
    est = yields.estimate_yield(pd.DataFrame({"plot_id": ["p0"], "peak_ndvi": [0.8], "growth_flags": [[]]}), plots, CROPS)
    rev = credit.plot_revenue(plots.merge(est, on="plot_id"), CROPS, policy)
    lim = credit.farmer_limits(rev, policy, AS_OF, debt=pd.DataFrame({"farmer_id": ["F"], "outstanding": [5_000.0]}),
                               previous=prev).iloc[0]
    # Previous debt 0 -> new debt: severe, applied at once; the driver is the reason that moved most.
    assert lim["change_reason"] == "DECREASE_SEVERE:EXISTING_DEBT" and list(lim["severe_events"]) == ["EXISTING_DEBT_INCREASED"]
    assert lim["limit"] == more_debt["limit"] == base - 5_000


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
