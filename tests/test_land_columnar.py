"""The columnar lease checks (agrisat/land.py) equal the per-plot implementation they replaced
(tests/oracle_land.py) on the sample and on random registries and contracts: every code, contract
id, detail text and rent, exactly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracle_land
from agrisat import land
from agrisat.io import plots as plots_io
from agrisat.io import tables
from conftest import ROOT

S0, S1 = dt.date(2020, 11, 1), dt.date(2021, 10, 31)
DAY0 = pd.Timestamp("2019-01-01")

contract_st = st.fixed_dictionaries({
    "plot": st.integers(0, 7),
    "lessee": st.integers(0, 3),
    "start": st.integers(0, 1400),  # days after 2019-01-01
    "length": st.integers(0, 1500),
    "rent": st.floats(0, 5000, allow_nan=False),
    "status": st.sampled_from(["active", "active", "expired", "terminated", "pending"]),
})


def _frames(tenures, contracts, windows):
    plots = pd.DataFrame({"plot_id": [f"P{i}" for i in range(len(tenures))],
                          "farmer_id": [f"F{i % 4}" for i in range(len(tenures))]})
    if any(t is not None for t in tenures):
        plots["tenure"] = tenures
    rows = [(f"C{k:02d}", f"P{c['plot'] % len(tenures)}", "L1", f"F{c['lessee']}",
             DAY0 + pd.Timedelta(days=c["start"]), DAY0 + pd.Timedelta(days=c["start"] + c["length"]),
             c["rent"], "EUR", c["status"]) for k, c in enumerate(contracts)]
    cdf = pd.DataFrame(rows, columns=["contract_id", "plot_id", "lessor_id", "lessee_id", "start_date", "end_date",
                                      "annual_rent", "currency", "status"])
    w = None
    if windows is not None:
        windows = windows[: len(plots)]
        w = pd.DataFrame({"plot_id": plots["plot_id"],
                          "crop_start": [pd.Timestamp("2020-09-01") + pd.Timedelta(days=a) for a, _ in windows],
                          "crop_end": [pd.Timestamp("2021-03-01") + pd.Timedelta(days=b) for _, b in windows]})
    return plots, cdf, w


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["owned", "leased", "Leased", "", None]), min_size=1, max_size=8),
       st.lists(contract_st, max_size=14),
       st.one_of(st.none(), st.lists(st.tuples(st.integers(0, 120), st.integers(0, 240)), min_size=8, max_size=8)))
def test_columnar_lease_checks_equal_the_per_plot_oracle(tenures, contracts, windows):
    plots, cdf, w = _frames(tenures, contracts, windows)
    got = land.check_leases(plots, cdf if len(cdf) else None, S0, S1, w)
    want = oracle_land.check_leases(plots, cdf if len(cdf) else None, S0, S1, w)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True)[got.columns],
                                  check_exact=True, check_dtype=False)


def test_columnar_lease_checks_equal_the_oracle_on_the_sample():
    reg = ROOT / "sample_tiles" / "registry"
    plots = plots_io.read_plots(reg / "plots.geojson")
    contracts = tables.read_contracts(reg / "contracts.csv")
    windows = pd.DataFrame({"plot_id": plots["plot_id"], "crop_start": pd.Timestamp("2020-10-15"),
                            "crop_end": pd.Timestamp("2021-08-01")})
    for p, c in ((plots, contracts), (plots.drop(columns="tenure"), contracts)):
        got = land.check_leases(p, c, S0, S1, windows)
        want = oracle_land.check_leases(p, c, S0, S1, windows)
        pd.testing.assert_frame_equal(got, want[got.columns], check_exact=True, check_dtype=False)
    assert np.isin(["LEASE_EXPIRED", "LEASE_LESSEE_MISMATCH", "LEASE_OVERLAP", "LEASE_OK"], got["lease_code"]).all()


def test_a_plot_without_a_crop_window_keeps_its_rent_as_in_the_oracle():
    contracts = [dict(plot=k, lessee=k, start=600, length=900, rent=365.0, status="active") for k in (0, 1)]
    plots, cdf, w = _frames(["leased", "leased"], contracts, [(0, 0), (0, 0)])
    w = w.iloc[:1]  # P1 has no window: its lease is not checked against a crop, its rent is still due
    got = land.check_leases(plots, cdf, S0, S1, w)
    want = oracle_land.check_leases(plots, cdf, S0, S1, w)
    pd.testing.assert_frame_equal(got, want[got.columns], check_exact=True, check_dtype=False)
    assert got["rent_due"].tolist() == [365.0, 365.0]  # 2020-11-01 .. 2021-10-31 inside both contracts
