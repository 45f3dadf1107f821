"""The per-plot implementation of agrisat/land.py, kept as the oracle of its columnar rewrite
(issue 17). Do not change it to match the new code.

Land-transfer checks: does the farmer have the right to farm this plot this season, at what rent.

Pure: takes the plots and contracts frames. Owner-operated plots are declared in the registry
(``tenure == "owned"``) and need no contract. A registry without a ``tenure`` column takes tenure
from the contracts (a plot a contract names is leased); a plot with no tenure and no contract is
``TENURE_UNKNOWN``, never "owned": the right to farm it is not established.

Rent is an obligation of the lessee, not a property of an eligible plot: ``rent_obligations`` charges
every active contract whose lessee is a registered farmer, whatever happens to the plot (cloudy,
bare, excluded, registered to someone else).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from agrisat.errors import InputDataError
from agrisat.land import plot_tenure  # unchanged by the rewrite

# Lease problems that take a plot out of the revenue base (the farmer cannot pledge that harvest).
EXCLUDING_LEASE_CODES = ("TENURE_UNKNOWN", "LEASE_MISSING", "LEASE_EXPIRED", "LEASE_LESSEE_MISMATCH",
                         "LEASE_OVERLAP", "LEASE_PARTIAL_SEASON")
LEASE_DISPUTE_CODES = ("LEASE_OVERLAP",)  # the right to farm is contested: a loan officer decides
INACTIVE = ("expired", "terminated")


def check_leases(
    plots: pd.DataFrame, contracts: pd.DataFrame | None, season_start: dt.date, season_end: dt.date,
    crop_windows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per plot: ``plot_id, contract_id, lease_code, lease_detail, tenure_used, rent_due`` (the
    registry's ``tenure`` column stays as given; ``tenure_used`` is what the check went on).

    ``lease_code`` is ``OWNED``, ``LEASE_OK`` or one of EXCLUDING_LEASE_CODES, checked in this order:
    no contract (MISSING); none active in the season (EXPIRED); two active contracts that overlap in
    time (OVERLAP: the right to farm is contested); the active one names another lessee
    (LESSEE_MISMATCH); the lessee's contracts (a back-to-back renewal counts) do not cover the crop's
    sowing .. harvest given in ``crop_windows`` (``plot_id, crop_start, crop_end``; PARTIAL_SEASON).
    ``rent_due`` is the registered farmer's rent on their usable lease of the plot (informational:
    the limit deducts ``rent_obligations``, which also counts leases of unusable plots).
    """
    tenure = plot_tenure(plots, contracts)
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
    windows = crop_windows.set_index("plot_id") if crop_windows is not None else None
    by_plot = {p: g for p, g in contracts.groupby("plot_id", sort=False)} if contracts is not None else {}
    out = []
    for pid, fid, ten in zip(plots["plot_id"], plots["farmer_id"], tenure):
        row = {"plot_id": pid, "contract_id": None, "lease_code": "OWNED", "lease_detail": "",
               "tenure_used": ten, "rent_due": 0.0}
        if ten == "unknown":
            row.update(lease_code="TENURE_UNKNOWN",
                       lease_detail=f"plot {pid}: tenure not given in the registry and no contract names it")
        elif ten != "owned":
            mine = by_plot.get(pid, pd.DataFrame(columns=list(contracts.columns) if contracts is not None else []))
            window = (windows.at[pid, "crop_start"], windows.at[pid, "crop_end"]) if windows is not None and pid in windows.index else None
            row.update(_lease_status(mine, str(pid), str(fid), s0, s1, window))
        out.append(row)
    return pd.DataFrame(out)


def _lease_status(mine: pd.DataFrame, pid: str, farmer_id: str, s0: pd.Timestamp, s1: pd.Timestamp,
                  window: tuple[pd.Timestamp, pd.Timestamp] | None) -> dict:
    if mine.empty:
        return {"lease_code": "LEASE_MISSING", "lease_detail": f"plot {pid} is declared leased but no contract names it"}
    covering = mine[(mine["start_date"] <= s1) & (mine["end_date"] >= s0) & ~mine["status"].isin(INACTIVE)]
    covering = covering.sort_values(["start_date", "contract_id"])
    if covering.empty:
        c = mine.sort_values("end_date").iloc[-1]
        return {"contract_id": c["contract_id"], "lease_code": "LEASE_EXPIRED",
                "lease_detail": f"contract {c['contract_id']} on plot {pid} ended {c['end_date']:%Y-%m-%d}"
                                f"{' (' + str(c['status']) + ')' if c['status'] in INACTIVE else ''}; none active in the season"}
    clash = _first_overlap(covering)
    if clash is not None:
        a, b = clash
        return {"contract_id": f"{a['contract_id']}+{b['contract_id']}", "lease_code": "LEASE_OVERLAP",
                "lease_detail": f"plot {pid}: contracts {a['contract_id']} (lessee {a['lessee_id']}, "
                                f"{a['start_date']:%Y-%m-%d}..{a['end_date']:%Y-%m-%d}) and {b['contract_id']} "
                                f"(lessee {b['lessee_id']}, {b['start_date']:%Y-%m-%d}..{b['end_date']:%Y-%m-%d}) overlap"}
    own = covering[covering["lessee_id"] == farmer_id]
    if own.empty:
        c = covering.iloc[0]
        return {"contract_id": c["contract_id"], "lease_code": "LEASE_LESSEE_MISMATCH",
                "lease_detail": f"contract {c['contract_id']} leases plot {pid} to {c['lessee_id']}, not {farmer_id}"}
    # A renewal is a second contract to the same lessee: together they may cover the crop, and
    # each one's rent falls due for its own days of the season. (They cannot overlap: OVERLAP above.)
    own = own.sort_values(["start_date", "contract_id"])
    ids = "+".join(own["contract_id"].astype(str))
    if window is not None and (gap := _first_uncovered(own, *window)) is not None:
        runs = ", ".join(f"{s:%Y-%m-%d}..{e:%Y-%m-%d}" for s, e in zip(own["start_date"], own["end_date"]))
        what = f"contract {ids} on plot {pid} runs" if len(own) == 1 else \
            f"contracts {', '.join(own['contract_id'].astype(str))} on plot {pid} run"
        return {"contract_id": ids, "lease_code": "LEASE_PARTIAL_SEASON",
                "lease_detail": f"{what} {runs}, not the crop's {window[0]:%Y-%m-%d}..{window[1]:%Y-%m-%d}"
                                f" (first day not covered {gap:%Y-%m-%d})"}
    rent = 0.0
    for start, end, annual in zip(own["start_date"], own["end_date"], own["annual_rent"]):
        days = (min(end, s1) - max(start, s0)).days + 1
        rent += float(annual) * max(days, 0) / 365.0
    return {"contract_id": ids, "lease_code": "LEASE_OK", "rent_due": float(np.round(rent, 2))}


def _first_uncovered(own: pd.DataFrame, w0: pd.Timestamp, w1: pd.Timestamp) -> pd.Timestamp | None:
    """First day of ``w0`` .. ``w1`` that no contract of ``own`` (sorted by start) covers, or None."""
    day = w0
    for start, end in zip(own["start_date"], own["end_date"]):
        if start > day:
            break
        day = max(day, end + pd.Timedelta(days=1))
        if day > w1:
            return None
    return day if day <= w1 else None


def _first_overlap(active: pd.DataFrame) -> tuple[pd.Series, pd.Series] | None:
    """First pair of contracts (sorted by start) whose date ranges overlap each other."""
    rows = [r for _, r in active.iterrows()]
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if b["start_date"] <= a["end_date"] and a["start_date"] <= b["end_date"]:
                return a, b
    return None
