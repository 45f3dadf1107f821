"""Lease checks on the sample run: every outcome reaches the affected farmer as a reason code with
its plot and contract, checked against the registry files read independently."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import yaml

from conftest import ROOT
from pipelines.seasonal import run_seasonal

SAMPLE = ROOT / "sample_tiles" / "registry"
CONFIG = ROOT / "configs" / "sample_hesbaye.yaml"
S0, S1 = pd.Timestamp("2020-11-01"), pd.Timestamp("2021-10-31")


def _run(tmp: Path, run_id: str, contracts: Path | None = None):
    """The sample config with absolute paths (and another contracts file, if given)."""
    cfg = yaml.safe_load(CONFIG.read_text())
    for key, value in cfg["inputs"].items():
        if isinstance(value, str) and value.startswith(".."):
            cfg["inputs"][key] = str((CONFIG.parent / value).resolve())
    if contracts is not None:
        cfg["inputs"]["contracts"] = str(contracts)
    cfg["crops"], cfg["policy"] = str(CONFIG.parent / cfg["crops"]), str(CONFIG.parent / cfg["policy"])
    cfg["run"]["output_dir"] = str(tmp / "runs")
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res = run_seasonal(tmp / "cfg.yaml", run_id=run_id)
    plots = gpd.read_parquet(res.path / "plots.parquet").set_index("plot_id")
    reasons: dict[str, dict] = {}
    for f, rs in zip(res.limits["farmer_id"], res.limits["reasons"]):
        mine = reasons.setdefault(f, {})
        for r in rs:  # two contracts on one plot (a renewal): one entry, amounts summed
            key = (r["code"], r["plot_id"])
            mine[key] = {**r, "amount": mine[key]["amount"] + r["amount"]} if key in mine else r
    return plots, reasons


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("lease_demo"), "demo")


def _independent_rent(contracts: pd.DataFrame, registry: pd.DataFrame) -> dict[str, float]:
    """Rent per farmer: every active contract overlapping the season whose lessee is a registered
    farmer (whoever the plot is registered to, disputed or not), pro rata to its days in the season."""
    c = contracts.assign(start=pd.to_datetime(contracts["start_date"]), end=pd.to_datetime(contracts["end_date"]))
    c = c[(c["status"] == "active") & (c["start"] <= S1) & (c["end"] >= S0) & c["lessee_id"].isin(registry["farmer_id"])]
    days = (c["end"].clip(upper=S1) - c["start"].clip(lower=S0)).dt.days + 1
    return (c["annual_rent"].astype(float) * days / 365).groupby(c["lessee_id"]).sum().to_dict()


def _rent_reasons(rs: dict) -> float | None:
    got = [r["amount"] for (code, _), r in rs.items() if code == "RENT_DUE"]
    return sum(got) if got else None


def test_rent_due_reaches_each_lessee_and_nobody_else(demo):
    plots, reasons = demo
    registry = gpd.read_file(SAMPLE / "plots.geojson")
    want = _independent_rent(pd.read_csv(SAMPLE / "contracts.csv"), registry)
    assert set(want) == {"F01", "F02", "F03", "F05", "F06"}
    for farmer, rs in reasons.items():
        got = _rent_reasons(rs)
        if farmer in want:
            assert got == pytest.approx(-want[farmer], abs=0.02), farmer
        else:
            assert got is None, farmer


def test_owner_operated_plots_need_no_contract(demo):
    plots, _ = demo
    registry = gpd.read_file(SAMPLE / "plots.geojson").set_index("plot_id")
    owned = registry.index[registry["tenure"] == "owned"]
    assert len(owned) >= 5
    assert (plots.loc[owned, "lease_code"] == "OWNED").all() and (plots.loc[owned, "rent_due"] == 0).all()
    assert not any(f.startswith("LEASE_") for fl in plots.loc[owned, "flags"] for f in fl)
    assert "tenure" in plots.columns and "tenure_x" not in plots.columns  # one tenure column, the registry's


def test_area_mismatch_reaches_the_farmer_with_its_numbers(demo):
    plots, reasons = demo
    utm = gpd.read_file(SAMPLE / "plots.geojson").to_crs("EPSG:32631").set_index("plot_id")
    off = (utm["declared_area_ha"] / (utm.geometry.area / 10_000) - 1).abs()
    assert list(off.index[off > 0.10]) == ["P013"]  # the policy's 10% tolerance
    assert "AREA_MISMATCH" in plots.loc["P013", "flags"] and "AREA_MISMATCH" in json.loads(plots.loc["P013", "flag_details"])
    assert ("FLAG_AREA_MISMATCH", "P013") in reasons[plots.loc["P013", "farmer_id"]]


def test_missing_partial_and_renewed_leases_in_a_sample_run(tmp_path):
    c = pd.read_csv(SAMPLE / "contracts.csv", dtype=str)
    c = c[c["contract_id"] != "C003"]  # P005 (F02, leased) loses its only contract
    c.loc[c["contract_id"] == "C005", "end_date"] = "2021-05-31"  # P009 winter barley: harvest in July
    c.loc[c["contract_id"] == "C001", "end_date"] = "2020-12-31"  # P002 renewed back to back ...
    renewal = c[c["contract_id"] == "C001"].assign(contract_id="C008", start_date="2021-01-01", end_date="2028-09-30")
    pd.concat([c, renewal]).to_csv(tmp_path / "contracts.csv", index=False)
    plots, reasons = _run(tmp_path, "leases", tmp_path / "contracts.csv")

    missing = reasons["F02"][("PLOT_EXCLUDED_LEASE_MISSING", "P005")]
    assert "P005" in missing["detail"] and missing["amount"] < 0
    partial = reasons["F06"][("PLOT_EXCLUDED_LEASE_PARTIAL_SEASON", "P009")]
    assert "contract C005 on plot P009 runs 2019-10-01..2021-05-31" in partial["detail"]
    assert "C005" in json.loads(plots.loc["P009", "flag_details"])["LEASE_PARTIAL_SEASON"]
    # ... so F01 keeps P002 and owes the same year's rent, split over the two contracts.
    assert plots.loc["P002", "lease_code"] == "LEASE_OK" and plots.loc["P002", "contract_id"] == "C001+C008"
    assert _rent_reasons(reasons["F01"]) == pytest.approx(-129.5 * (61 + 304) / 365, abs=0.01)
    assert not any(code.startswith("PLOT_EXCLUDED") for code, _ in reasons["F01"])
    # A plot out of the revenue base still costs its rent: F06 owes C005 for its days of the season
    # (to 2021-05-31) and C006 on the disputed P012; F02 lost C003, so owes nothing.
    assert reasons["F06"][("RENT_DUE", "P009")]["amount"] == pytest.approx(-718.1 * 212 / 365, abs=0.01)
    assert reasons["F06"][("RENT_DUE", "P012")]["amount"] == pytest.approx(-846.0, abs=0.01)
    assert _rent_reasons(reasons["F02"]) is None
