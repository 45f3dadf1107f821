"""The columnar farmer limits (agrisat/credit.py) equal the per-farmer implementation they replaced
(tests/oracle_credit.py): on the sample, with and without previous limits, and on the random
scenarios of the conservatism properties (every flag the chain raises, coverage, tenure, contracts,
debt, previous limits with and without reasons, stages). Limits are bit-identical; reason amounts
agree within 1e-9 (sums may group differently)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

import oracle_credit
from agrisat import credit, land
from pipelines.seasonal import decide
from test_conservatism import KNOWN, _evidence, scenario_st


def _both(ev, holds=None):
    results = decide(ev).results
    rent = land.rent_obligations(ev.contracts, set(ev.plots["farmer_id"].astype(str)), ev.season_start, ev.season_end)
    kw = dict(rent=rent, debt=ev.debt, previous=ev.previous, holds=holds)
    return (credit.farmer_limits(results, ev.policy, ev.as_of, **kw),
            oracle_credit.farmer_limits(results, ev.policy, ev.as_of, **kw))


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got["limit"].tolist() == want["limit"].tolist()  # bit for bit
    for col in got.columns:
        if col == "reasons":
            for a, b in zip(got[col], want[col]):
                assert [{**x, "amount": None} for x in a] == [{**x, "amount": None} for x in b]
                assert [x["amount"] for x in a] == pytest.approx([x["amount"] for x in b], abs=1e-9, rel=1e-12)
        elif got[col].dtype.kind == "f":
            np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-12, atol=1e-9)
        else:
            assert [list(x) if isinstance(x, (list, np.ndarray)) else x for x in got[col]] == \
                   [list(x) if isinstance(x, (list, np.ndarray)) else x for x in want[col]], col


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario_st)
def test_columnar_limits_equal_the_per_farmer_oracle(sc):
    _same(*_both(_evidence(sc)))


def test_columnar_limits_equal_the_oracle_on_known_cases():
    for kw in ({}, {"cloud_plot": 1}, {"coverage": 0.5}):
        _same(*_both(_evidence(KNOWN, **kw)))
    # A previous reason repeated (two FLAG_ rows of one plot) is one event.
    with_prev = {**KNOWN, "previous": 9_000.0, "weather": 0.1, "prev_flags": ["FLAG_WEATHER_DROUGHT", "FLAG_WEATHER_DROUGHT"]}
    _same(*_both(_evidence(with_prev, debt_more=50.0)))
    _same(*_both(_evidence(with_prev), holds={"F0": "debt row 3 quarantined: bad number"}))
