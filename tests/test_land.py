import datetime as dt

import pandas as pd
import pytest

from agrisat.errors import InputDataError
from agrisat.land import check_leases, plot_tenure, rent_obligations

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


def test_two_active_contracts_on_one_plot_overlap():
    contracts = _contracts([
        ("C2", "P2", "L1", "F1", "2019-10-01", "2028-09-30", 730.0, "EUR", "active"),
        ("C9", "P2", "L4", "F2", "2020-10-01", "2025-09-30", 900.0, "EUR", "active"),
    ])
    out = check_leases(_plots(), contracts, S0, S1).set_index("plot_id")
    assert out.loc["P2", "lease_code"] == "LEASE_OVERLAP" and out.loc["P2", "contract_id"] == "C2+C9"
    # The plot is excluded, but each lessee still owes its rent (a dispute does not cancel a lease).
    owed = rent_obligations(contracts, {"F1", "F2"}, S0, S1).set_index("contract_id")
    assert owed.loc["C2", "farmer_id"] == "F1" and owed.loc["C2", "rent_due"] == pytest.approx(730.0)
    assert owed.loc["C9", "farmer_id"] == "F2" and owed.loc["C9", "rent_due"] == pytest.approx(900.0)
    assert "contracts C2 (lessee F1, 2019-10-01..2028-09-30) and C9 (lessee F2" in out.loc["P2", "lease_detail"]


def test_successive_contracts_do_not_overlap_and_terminated_ones_do_not_count():
    contracts = _contracts([
        ("C2", "P2", "L1", "F1", "2016-10-01", "2020-12-31", 730.0, "EUR", "active"),
        ("C3", "P2", "L1", "F1", "2021-01-01", "2028-09-30", 730.0, "EUR", "active"),   # renewal, back to back
        ("C4", "P2", "L2", "F2", "2020-10-01", "2025-09-30", 900.0, "EUR", "terminated"),
    ])
    windows = pd.DataFrame({"plot_id": ["P2"], "crop_start": pd.to_datetime(["2020-10-15"]),
                            "crop_end": pd.to_datetime(["2021-08-01"])})
    out = check_leases(_plots(), contracts, S0, S1, windows).set_index("plot_id")
    # Together the two contracts cover the crop; each one's rent is due for its own days of the season.
    assert out.loc["P2", "lease_code"] == "LEASE_OK" and out.loc["P2", "contract_id"] == "C2+C3"
    days_c2 = (pd.Timestamp("2020-12-31") - pd.Timestamp(S0)).days + 1  # 61
    days_c3 = (pd.Timestamp(S1) - pd.Timestamp("2021-01-01")).days + 1  # 304
    assert out.loc["P2", "rent_due"] == pytest.approx(730.0 * (days_c2 + days_c3) / 365)


def test_a_renewal_with_a_hole_does_not_cover_the_crop():
    contracts = _contracts([
        ("C2", "P2", "L1", "F1", "2016-10-01", "2020-12-31", 730.0, "EUR", "active"),
        ("C3", "P2", "L1", "F1", "2021-02-01", "2028-09-30", 730.0, "EUR", "active"),   # January not leased
    ])
    windows = pd.DataFrame({"plot_id": ["P2"], "crop_start": pd.to_datetime(["2020-10-15"]),
                            "crop_end": pd.to_datetime(["2021-08-01"])})
    out = check_leases(_plots(), contracts, S0, S1, windows).set_index("plot_id")
    assert out.loc["P2", "lease_code"] == "LEASE_PARTIAL_SEASON" and out.loc["P2", "contract_id"] == "C2+C3"
    assert "first day not covered 2021-01-01" in out.loc["P2", "lease_detail"]
    # The lease does not cover the crop, so the plot is out; both contracts' rent is still owed.
    owed = rent_obligations(contracts, {"F1"}, S0, S1).set_index("contract_id")["rent_due"]
    assert owed.to_dict() == pytest.approx({"C2": round(730.0 * 61 / 365, 2), "C3": round(730.0 * 273 / 365, 2)})


def test_lease_must_cover_the_crop_season_when_windows_are_given():
    contracts = _contracts([
        ("C2", "P2", "L1", "F1", "2019-10-01", "2028-09-30", 730.0, "EUR", "active"),
        ("C5", "P5", "L3", "F3", "2019-10-01", "2021-06-30", 365.0, "EUR", "active"),   # ends before harvest
    ])
    windows = pd.DataFrame({"plot_id": ["P2", "P5"], "crop_start": pd.to_datetime(["2020-10-15", "2021-04-25"]),
                            "crop_end": pd.to_datetime(["2021-08-01", "2021-10-15"])})
    out = check_leases(_plots(), contracts, S0, S1, windows).set_index("plot_id")
    assert out.loc["P2", "lease_code"] == "LEASE_OK"
    assert out.loc["P5", "lease_code"] == "LEASE_PARTIAL_SEASON" and out.loc["P5", "contract_id"] == "C5"
    assert "runs 2019-10-01..2021-06-30, not the crop's 2021-04-25..2021-10-15" in out.loc["P5", "lease_detail"]


def test_failed_checks_name_contract_and_plot():
    contracts = _contracts([
        ("C3", "P3", "L1", "F2", "2018-10-01", "2020-09-30", 400.0, "EUR", "expired"),
        ("C4", "P4", "L2", "F9", "2019-10-01", "2028-09-30", 400.0, "EUR", "active"),
    ])
    out = check_leases(_plots(), contracts, S0, S1).set_index("plot_id")
    assert out.loc["P3", "lease_detail"] == "contract C3 on plot P3 ended 2020-09-30 (expired); none active in the season"
    assert out.loc["P4", "lease_detail"] == "contract C4 leases plot P4 to F9, not F2"
    assert out.loc["P5", "lease_detail"] == "plot P5 is declared leased but no contract names it"


def test_an_active_contract_that_ended_before_the_season_is_expired():
    contracts = _contracts([("C3", "P3", "L1", "F2", "2017-10-01", "2020-10-31", 400.0, "EUR", "active")])
    out = check_leases(_plots(), contracts, S0, S1).set_index("plot_id")
    assert out.loc["P3", "lease_code"] == "LEASE_EXPIRED" and out.loc["P3", "rent_due"] == 0
    assert out.loc["P3", "lease_detail"] == "contract C3 on plot P3 ended 2020-10-31; none active in the season"


def test_rent_is_owed_by_the_lessee_whoever_registered_the_plot():
    contracts = _contracts([
        ("C4", "P4", "L2", "F9", "2019-10-01", "2028-09-30", 400.0, "EUR", "active"),   # P4 is F2's; F9 leases it
        ("C3", "P3", "L1", "F2", "2018-10-01", "2020-09-30", 400.0, "EUR", "expired"),  # over: nothing owed
        ("C6", "P1", "L1", "F2", "2021-08-01", "2021-12-31", 365.0, "EUR", "active"),   # 92 days in the season
        ("C7", "P1", "L1", "F2", "2020-01-01", "2022-12-31", 365.0, "EUR", "terminated"),
    ])
    owed = rent_obligations(contracts, {"F1", "F2", "F9"}, S0, S1)
    assert owed[["farmer_id", "contract_id", "plot_id"]].values.tolist() == [["F2", "C6", "P1"], ["F9", "C4", "P4"]]
    assert owed["rent_due"].tolist() == pytest.approx([92.0, 400.0])
    # A lessee the registry does not know has no limit to deduct from.
    assert rent_obligations(contracts, {"F2"}, S0, S1)["contract_id"].tolist() == ["C6"]


def test_tenure_is_never_assumed_owned():
    plots = _plots().drop(columns="tenure")
    contracts = _contracts([("C2", "P2", "L1", "F1", "2019-10-01", "2028-09-30", 730.0, "EUR", "active")])
    assert plot_tenure(plots, contracts).tolist() == ["unknown", "leased", "unknown", "unknown", "unknown"]
    out = check_leases(plots, contracts, S0, S1).set_index("plot_id")
    assert out.loc["P1", "lease_code"] == "TENURE_UNKNOWN" and out.loc["P2", "lease_code"] == "LEASE_OK"
    assert out.loc["P1", "lease_detail"] == "plot P1: tenure not given in the registry and no contract names it"
    # A blank value in a tenure column is unknown too, and "Owned" is owned.
    given = _plots().assign(tenure=["Owned", "", None, "leased", "leased"])
    assert plot_tenure(given, contracts).tolist() == ["owned", "leased", "unknown", "leased", "leased"]
