"""Land-transfer checks: does the farmer have the right to farm this plot this season, at what rent.

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
    pid = plots["plot_id"].to_numpy()
    n = len(plots)
    code = np.full(n, "OWNED", dtype=object)
    detail = np.full(n, "", dtype=object)
    cid = np.full(n, None, dtype=object)
    rent = np.zeros(n)
    ten = tenure.to_numpy()
    unknown_t = ten == "unknown"
    code[unknown_t] = "TENURE_UNKNOWN"
    detail[unknown_t] = [f"plot {p}: tenure not given in the registry and no contract names it" for p in pid[unknown_t]]
    leased = (ten != "owned") & ~unknown_t
    code[leased] = "LEASE_MISSING"
    detail[leased] = [f"plot {p} is declared leased but no contract names it" for p in pid[leased]]
    if contracts is not None and len(contracts) and leased.any():
        _columnar_leases(plots, leased, contracts, s0, s1, crop_windows, code, detail, cid, rent)
    return pd.DataFrame({"plot_id": pid, "contract_id": cid, "lease_code": code, "lease_detail": detail,
                         "tenure_used": ten, "rent_due": rent})


def _columnar_leases(plots: pd.DataFrame, leased: np.ndarray, contracts: pd.DataFrame, s0: pd.Timestamp,
                     s1: pd.Timestamp, crop_windows: pd.DataFrame | None, code: np.ndarray, detail: np.ndarray,
                     cid: np.ndarray, rent: np.ndarray) -> None:
    """The lease checks of every leased plot at once, written into the per-plot arrays, in the order
    of ``check_leases``' docstring. One row per (plot, contract); each check is a group operation."""
    lp = pd.DataFrame({"i": np.flatnonzero(leased), "plot_id": plots["plot_id"].to_numpy()[leased],
                       "farmer": plots["farmer_id"].astype(str).to_numpy()[leased]})
    c = contracts.reset_index(drop=True).assign(_row=lambda d: np.arange(len(d))).merge(lp, on="plot_id")
    if c.empty:
        return
    c = c.sort_values(["i", "_row"], kind="stable")
    live = (c["start_date"] <= s1) & (c["end_date"] >= s0) & ~c["status"].isin(INACTIVE)

    # EXPIRED: contracts, none active in the season; named after the one that ended last.
    has_live = live.groupby(c["i"]).any()
    expired = has_live.index[~has_live.to_numpy()]
    if len(expired):
        last = c[c["i"].isin(expired)].sort_values(["i", "end_date"], kind="stable").groupby("i").tail(1)
        ii = last["i"].to_numpy()
        code[ii] = "LEASE_EXPIRED"
        cid[ii] = last["contract_id"].to_numpy()
        detail[ii] = [f"contract {k} on plot {p} ended {e:%Y-%m-%d}{' (' + str(st) + ')' if st in INACTIVE else ''}; "
                      f"none active in the season" for k, p, e, st in
                      zip(last["contract_id"], last["plot_id"], last["end_date"], last["status"])]

    cov = c[live.to_numpy()].sort_values(["i", "start_date", "contract_id"], kind="stable")
    if cov.empty:
        return
    # OVERLAP: sorted by start, a contract overlaps a later one iff the next one starts before it ends,
    # so the first such pair of a plot is the first consecutive one.
    nxt = cov.groupby("i").shift(-1)
    first_clash = cov.index[(nxt["start_date"] <= cov["end_date"]).to_numpy()]
    first_clash = cov.loc[first_clash].groupby("i").head(1).index
    overlap = set()
    if len(first_clash):
        a, b = cov.loc[first_clash], nxt.loc[first_clash]
        ii = a["i"].to_numpy()
        overlap = set(ii.tolist())
        code[ii] = "LEASE_OVERLAP"
        cid[ii] = [f"{x}+{y}" for x, y in zip(a["contract_id"], b["contract_id"])]
        detail[ii] = [f"plot {p}: contracts {x} (lessee {lx}, {sx:%Y-%m-%d}..{ex:%Y-%m-%d}) and {y} "
                      f"(lessee {ly}, {sy:%Y-%m-%d}..{ey:%Y-%m-%d}) overlap" for p, x, lx, sx, ex, y, ly, sy, ey in
                      zip(a["plot_id"], a["contract_id"], a["lessee_id"], a["start_date"], a["end_date"],
                          b["contract_id"], b["lessee_id"], b["start_date"], b["end_date"])]
    cov = cov[~cov["i"].isin(overlap)]
    own = cov[cov["lessee_id"].astype(str) == cov["farmer"]]
    # LESSEE_MISMATCH: active contracts, none to the registered farmer; named after the first.
    other = cov[~cov["i"].isin(set(own["i"]))].groupby("i").head(1)
    if len(other):
        ii = other["i"].to_numpy()
        code[ii] = "LEASE_LESSEE_MISMATCH"
        cid[ii] = other["contract_id"].to_numpy()
        detail[ii] = [f"contract {k} leases plot {p} to {lessee}, not {f}" for k, p, lessee, f in
                      zip(other["contract_id"], other["plot_id"], other["lessee_id"], other["farmer"])]
    if own.empty:
        return
    # The lessee's contracts (a renewal is a second one) must cover the crop's sowing .. harvest.
    gi, cids = own["i"].to_numpy(), own["contract_id"].astype(str).to_numpy(object)
    starts = np.flatnonzero(np.r_[True, gi[1:] != gi[:-1]])
    ids = pd.Series(["+".join(cids[a:b]) for a, b in zip(starts, np.r_[starts[1:], len(gi)])], index=gi[starts])
    ii = ids.index.to_numpy()
    code[ii], cid[ii], detail[ii] = "LEASE_OK", ids.to_numpy(object), ""
    windowed = own
    if crop_windows is not None:
        w = crop_windows.drop_duplicates("plot_id").set_index("plot_id")
        windowed = own[own["plot_id"].isin(w.index)]
        gap = _first_uncovered(windowed, w) if len(windowed) else pd.Series(dtype="datetime64[ns]")
        if len(gap):
            sub = windowed[windowed["i"].isin(gap.index)]
            runs = sub.groupby("i").apply(lambda d: ", ".join(f"{x:%Y-%m-%d}..{y:%Y-%m-%d}"
                                                             for x, y in zip(d["start_date"], d["end_date"])))
            names = sub.groupby("i")["contract_id"].agg(lambda x: ", ".join(x.astype(str)))
            count = sub.groupby("i").size()
            gi = gap.index.to_numpy()
            code[gi] = "LEASE_PARTIAL_SEASON"
            pids = plots["plot_id"].to_numpy()
            detail[gi] = [
                (f"contract {ids[k]} on plot {pids[k]} runs" if count[k] == 1 else
                 f"contracts {names[k]} on plot {pids[k]} run")
                + f" {runs[k]}, not the crop's {w.at[pids[k], 'crop_start']:%Y-%m-%d}..{w.at[pids[k], 'crop_end']:%Y-%m-%d}"
                  f" (first day not covered {gap[k]:%Y-%m-%d})" for k in gi]
    ok = code[ii] == "LEASE_OK"
    # Rent of the usable lease: each contract's days in the season, summed in start order.
    part = pd.Series(_season_rent(own, s0, s1)[0], index=own.index)  # every usable lease, windowed or not
    total = part.groupby(own["i"]).cumsum().groupby(own["i"]).last()
    keep = ii[ok]
    rent[keep] = np.round(total.reindex(keep).to_numpy(), 2)


def _season_rent(c: pd.DataFrame, s0: pd.Timestamp, s1: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Per contract: (rent due in the season = annual rent x its days in the season / 365, the days)."""
    days = ((c["end_date"].clip(upper=s1) - c["start_date"].clip(lower=s0)).dt.days + 1).clip(lower=0).to_numpy()
    return c["annual_rent"].astype(float).to_numpy() * days / 365.0, days


def _first_uncovered(own: pd.DataFrame, windows: pd.DataFrame) -> pd.Series:
    """Per plot (``i``) whose own contracts (sorted by start) leave a day of the crop window uncovered:
    that first day. The sweep of the per-plot rule: a contract starting after the day reached so far
    leaves that day open; otherwise the day moves past its end."""
    w0 = own["plot_id"].map(windows["crop_start"]).to_numpy()
    w1 = own["plot_id"].map(windows["crop_end"]).to_numpy()
    step = (own["end_date"] + pd.Timedelta(days=1)).to_numpy()
    reach = pd.Series(step, index=own.index).groupby(own["i"]).cummax().to_numpy()
    before = pd.Series(reach, index=own.index).groupby(own["i"]).shift(1).to_numpy()
    day_in = np.where(pd.isna(before), w0, np.maximum(before.astype("datetime64[ns]"), w0))  # the day reached before this contract
    brk = own["start_date"].to_numpy() > day_in
    day_out = np.maximum(day_in, step)
    covered = ~brk & (day_out > w1)
    event = brk | covered
    frame = pd.DataFrame({"i": own["i"].to_numpy(), "event": event, "brk": brk, "day_in": day_in,
                          "day_out": day_out, "w1": w1})
    firsts = frame[frame["event"]].groupby("i").head(1).set_index("i")
    out = firsts.loc[firsts["brk"], "day_in"]
    # No event at all: the window runs past the last contract.
    none = frame.groupby("i").tail(1).set_index("i")
    none = none[~none.index.isin(firsts.index) & (none["day_out"] <= none["w1"])]["day_out"]
    return pd.concat([out, none]).sort_index().map(pd.Timestamp)


def plot_tenure(plots: pd.DataFrame, contracts: pd.DataFrame | None) -> pd.Series:
    """``owned``, ``leased`` (any other registry value is treated as leased) or ``unknown`` per plot.

    A missing value, or a registry without the column, is never "owned": a contract naming the plot
    makes it leased, and without one it is unknown."""
    named = set(contracts["plot_id"]) if contracts is not None else set()
    given = (plots["tenure"].astype("string").str.strip().str.lower() if "tenure" in plots.columns
             else pd.Series(pd.NA, index=plots.index, dtype="string"))
    given = given.mask(given == "", pd.NA)
    inferred = pd.Series(np.where(plots["plot_id"].isin(named), "leased", "unknown"), index=plots.index, dtype="string")
    return given.fillna(inferred).astype(str)


def rent_obligations(contracts: pd.DataFrame | None, farmers: set[str], season_start: dt.date,
                     season_end: dt.date) -> pd.DataFrame:
    """Rent due in the season per contract: ``farmer_id`` (the lessee), ``contract_id, plot_id, rent_due``.

    Every contract not expired or terminated whose lessee is one of ``farmers`` and that overlaps the
    season is charged pro rata to its days in the season (annual rent x days / 365), whether or not
    the plot is registered to the lessee or can be pledged: the rent is owed either way.
    """
    cols = ["farmer_id", "contract_id", "plot_id", "rent_due"]
    if contracts is None or contracts.empty:
        return pd.DataFrame(columns=cols).astype({"rent_due": float})
    s0, s1 = pd.Timestamp(season_start), pd.Timestamp(season_end)
    c = contracts[contracts["lessee_id"].astype(str).isin(farmers) & ~contracts["status"].isin(INACTIVE)]
    due, days = _season_rent(c, s0, s1)
    out = pd.DataFrame({"farmer_id": c["lessee_id"].astype(str), "contract_id": c["contract_id"].astype(str),
                        "plot_id": c["plot_id"].astype(str), "rent_due": np.round(due, 2)})
    out = out[days > 0]
    return out.sort_values(["farmer_id", "contract_id"]).reset_index(drop=True)
