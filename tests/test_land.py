import datetime as dt

import pandas as pd
import pytest

from agrisat.errors import InputDataError
from agrisat.land import check_leases

S0, S1 = dt.date(2020, 11, 1), dt.date(2021, 10, 31)


def _plots():
    return pd.DataFrame({
        "plot_id": ["P1", "P2", "P3", "P4", "P5"],
        "farmer_id": ["F1", "F1", "F2", "F2", "F3"],
        "tenure": ["owned", "leased", "leased", "leased", "leased"],
    })


def _contracts(rows):
    df = pd.DataFrame(rows, columns=["contract_id", "plot_id", "lessor_id", "lessee_id", "start_date",
                                     "end_date", "annual_rent", "currency", "status"])
    df["start_date"] = pd.to_datetime(df["start_date"])
    df["end_date"] = pd.to_datetime(df["end_date"])
    return df


def test_each_lease_outcome_and_prorated_rent():
    contracts = _contracts([
        ("C2", "P2", "L1", "F1", "2019-10-01", "2028-09-30", 730.0, "EUR", "active"),   # covers season
        ("C3", "P3", "L1", "F2", "2018-10-01", "2020-09-30", 400.0, "EUR", "expired"),  # ended before
        ("C4", "P4", "L2", "F9", "2019-10-01", "2028-09-30", 400.0, "EUR", "active"),   # someone else
        ("C5", "P5", "L3", "F3", "2021-05-01", "2028-09-30", 365.0, "EUR", "active"),   # starts mid-season
    ])
    out = check_leases(_plots(), contracts, S0, S1).set_index("plot_id")
    assert out.loc["P1", "lease_code"] == "OWNED" and out.loc["P1", "rent_due"] == 0
    assert out.loc["P2", "lease_code"] == "LEASE_OK"
    assert out.loc["P2", "rent_due"] == pytest.approx(730.0 * 365 / 365)
    assert out.loc["P3", "lease_code"] == "LEASE_EXPIRED" and out.loc["P3", "contract_id"] == "C3"
    assert out.loc["P4", "lease_code"] == "LEASE_LESSEE_MISMATCH" and out.loc["P4", "contract_id"] == "C4"
    # 2021-05-01 .. 2021-10-31 is 184 days of the season.
    assert out.loc["P5", "rent_due"] == pytest.approx(365.0 * 184 / 365)


def test_leased_plot_without_contract():
    out = check_leases(_plots(), _contracts([]), S0, S1).set_index("plot_id")
    assert (out.loc[["P2", "P3", "P4", "P5"], "lease_code"] == "LEASE_MISSING").all()


def test_contract_for_unknown_plot_is_named():
    contracts = _contracts([("C9", "PX", "L1", "F1", "2019-10-01", "2028-09-30", 1.0, "EUR", "active")])
    contracts.attrs["source"] = "contracts.csv"
    with pytest.raises(InputDataError, match=r"contracts.csv: row 2: contract C9 names unknown plot 'PX'"):
        check_leases(_plots(), contracts, S0, S1)
