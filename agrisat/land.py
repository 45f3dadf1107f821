"""Land-transfer checks: does the farmer have the right to farm this plot this season, at what rent.

Pure: takes the plots and contracts frames, returns one row per plot. Owner-operated plots are
declared in the registry (``tenure == "owned"``) and need no contract.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from agrisat.errors import InputDataError

# Lease problems that take a plot out of the revenue base (the farmer cannot pledge that harvest).
EXCLUDING_LEASE_CODES = ("LEASE_MISSING", "LEASE_EXPIRED", "LEASE_LESSEE_MISMATCH")


def check_leases(
    plots: pd.DataFrame, contracts: pd.DataFrame | None, season_start: dt.date, season_end: dt.date
) -> pd.DataFrame:
    """Per plot: ``plot_id, tenure, contract_id, lease_code, rent_due``.

    ``lease_code`` is ``OWNED``, ``LEASE_OK`` or one of EXCLUDING_LEASE_CODES. Rent due is the
    annual rent pro rata to the days the contract overlaps the season (only for usable leases).
    """
    tenure = plots["tenure"].astype("string") if "tenure" in plots.columns else pd.Series("owned", index=plots.index)
    known = set(plots["plot_id"])
    if contracts is not None:
        unknown = contracts.index[~contracts["plot_id"].isin(known)]
        if len(unknown):
            i = int(unknown[0])
            raise InputDataError(
                f"{contracts.attrs.get('source', 'contracts')}: row {i + 2}: contract "
                f"{contracts['contract_id'].iloc[i]} names unknown plot {contracts['plot_id'].iloc[i]!r}"
            )
    s0, s1 = pd.Timestamp(season_start), pd.Timestamp(season_end)
    season_days = (s1 - s0).days + 1
    out = []
    for pid, fid, ten in zip(plots["plot_id"], plots["farmer_id"], tenure):
        row = {"plot_id": pid, "tenure": ten, "contract_id": None, "lease_code": "OWNED", "rent_due": 0.0}
        if ten != "owned":
            mine = contracts[contracts["plot_id"] == pid] if contracts is not None else pd.DataFrame()
            row.update(_lease_status(mine, str(fid), s0, s1, season_days))
        out.append(row)
    return pd.DataFrame(out)


def _lease_status(mine: pd.DataFrame, farmer_id: str, s0: pd.Timestamp, s1: pd.Timestamp, season_days: int) -> dict:
    if mine.empty:
        return {"lease_code": "LEASE_MISSING"}
    covering = mine[(mine["start_date"] <= s1) & (mine["end_date"] >= s0) & ~mine["status"].isin(["expired", "terminated"])]
    if covering.empty:
        c = mine.sort_values("end_date").iloc[-1]
        return {"contract_id": c["contract_id"], "lease_code": "LEASE_EXPIRED"}
    own = covering[covering["lessee_id"] == farmer_id]
    if own.empty:
        return {"contract_id": covering["contract_id"].iloc[0], "lease_code": "LEASE_LESSEE_MISMATCH"}
    c = own.sort_values("contract_id").iloc[0]
    overlap = (min(c["end_date"], s1) - max(c["start_date"], s0)).days + 1
    rent = float(c["annual_rent"]) * overlap / 365.0 if season_days else 0.0
    return {"contract_id": c["contract_id"], "lease_code": "LEASE_OK", "rent_due": float(np.round(rent, 2))}
