"""Credit policy: expected revenue per plot -> limit per farmer, with ordered reason codes.

    pledgeable revenue = area x yield quantile (policy.yield_quantile, P10 by default) x price
    advance            = advance_rate x pledgeable revenue x flag multipliers, capped per ha by crop
    limit              = sum(advances) - rent due - existing debt, capped per farmer, floored at 0,
                         moved from the previous limit only as far as the change rules allow,
                         rounded down; below min_limit -> declined

Plots that cannot be pledged (no usable lease; with imagery evidence, too few clear dates or no crop
signal) leave the revenue base and carry a reason code. Every reason carries the signed amount it
moved the limit; the amounts add up to the limit, and reasons are ordered by size.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from agrisat.changes import apply_change_rules
from agrisat.config import CropTable, Policy
from agrisat.growth import EXCLUDING_GROWTH_FLAGS
from agrisat.land import EXCLUDING_LEASE_CODES
from agrisat.reasons import REASON_TEXT, Reason, ordered  # noqa: F401  (REASON_TEXT re-exported)

EXCLUDING_CODES = tuple(EXCLUDING_LEASE_CODES) + tuple(EXCLUDING_GROWTH_FLAGS)
# Flags that keep a plot in the base but send the decision to a loan officer.
REVIEW_FLAGS = ("PEAK_OUTSIDE_CROP_CALENDAR", "AREA_MISMATCH", "CROP_MISMATCH", "GROWTH_ANOMALY_LOW",
                "GAP_TOO_LONG", "WEATHER_DROUGHT", "WEATHER_FLOOD", "WEATHER_HEAT", "WEATHER_FROST",
                "WEATHER_DATA_GAP", "WEATHER_SOURCE_FAR")


def excluding_codes(policy: Policy) -> tuple[str, ...]:
    """Flags that take a plot out of the base. Before the crop shows (prior evidence) only the
    right to farm the plot matters; imagery sufficiency cannot be asked for yet."""
    return tuple(EXCLUDING_LEASE_CODES) if policy.evidence == "prior" else EXCLUDING_CODES


def plot_revenue(plots: pd.DataFrame, crops: CropTable, policy: Policy) -> pd.DataFrame:
    """Add revenue, eligibility, multiplier and advance columns to per-plot results.

    Needs ``plot_id, declared_crop, area_ha, flags, yield_p10/p50/p90`` and optionally
    ``declared_area_ha``. ``flags`` holds every plot flag: validation, growth, weather and lease.
    The smaller of declared and measured area is used.
    """
    df = plots.copy()
    declared = pd.to_numeric(df.get("declared_area_ha", df["area_ha"]), errors="coerce")
    df["area_used_ha"] = np.fmin(df["area_ha"].to_numpy(float), declared.to_numpy(float))
    price = df["declared_crop"].map(lambda c: crops.get(str(c)).price_per_t).astype(float)
    per_ha_cap = df["declared_crop"].map(lambda c: crops.get(str(c)).max_limit_per_ha).astype(float)
    df["price_per_t"] = price
    df["expected_revenue"] = df["area_used_ha"] * df["yield_p50"] * price
    df["pledgeable_revenue"] = df["area_used_ha"] * df[f"yield_{policy.yield_quantile}"] * price
    excl = excluding_codes(policy)
    df["exclusion"] = [next((c for c in flags if c in excl), None) for flags in df["flags"]]
    df["eligible"] = df["exclusion"].isna()
    df["advance_uncapped"] = policy.advance_rate * df["pledgeable_revenue"].fillna(0.0)
    df["multiplier"] = [math.prod(policy.multipliers.get(f, 1.0) for f in sorted(set(flags))) for flags in df["flags"]]
    df["advance"] = np.minimum(df["advance_uncapped"] * df["multiplier"], per_ha_cap * df["area_used_ha"])
    return df


def _flag_reasons(r: pd.Series, policy: Policy) -> list[Reason]:
    """Split a plot's multiplier loss over its flags, applied in sorted order (deterministic)."""
    out, remaining = [], float(r["advance_uncapped"])
    for flag in sorted(set(r["flags"])):
        m = policy.multipliers.get(flag)
        if m is not None and m < 1.0:
            out.append(Reason(f"FLAG_{flag}", -remaining * (1.0 - m), plot_id=str(r["plot_id"]), detail=f"x{m}"))
            remaining *= m
    return out


def farmer_limits(
    plot_rev: pd.DataFrame,
    debt: pd.DataFrame | None,
    policy: Policy,
    as_of: dt.date,
    previous: pd.DataFrame | None = None,
    holds: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per farmer (sorted by id): limit, status, decided_by, ordered reasons, risk score.

    ``previous`` (optional) holds the farmer's last limits: ``farmer_id, limit`` and, when known,
    ``existing_debt, rent_due`` (a previous ``limits.parquet`` has them). ``holds`` maps farmers
    whose records could not be trusted (a quarantined debt row) to why: their limit is 0, in review.
    """
    holds = holds or {}
    owed = dict(zip(debt["farmer_id"], debt["outstanding"])) if debt is not None else {}
    prev = previous.set_index("farmer_id") if previous is not None else None
    rows = []
    for fid, fp in plot_rev.groupby("farmer_id", sort=True):
        reasons: list[Reason] = []
        ok = fp[fp["eligible"]]
        # Gross advance over every plot with an estimate; exclusions, flags and caps then subtract,
        # so the reasons add up to the limit and say what each problem cost.
        gross = float(fp["advance_uncapped"].sum())
        reasons.append(Reason("ADVANCE_ON_REVENUE", gross,
                              detail=f"{policy.advance_rate:.0%} of {fp['pledgeable_revenue'].sum():.0f} "
                                     f"({policy.yield_quantile} yield) on {len(fp)} plot(s)"))
        for r in fp[~fp["eligible"]].itertuples():
            lost = -float(r.advance_uncapped)
            detail = str(getattr(r, "lease_detail", "") or "") if r.exclusion in EXCLUDING_LEASE_CODES else ""
            reasons.append(Reason(f"PLOT_EXCLUDED_{r.exclusion}", lost, plot_id=str(r.plot_id),
                                  detail=detail or ("" if lost else "no yield estimate")))
        flag_losses = [reason for _, r in ok.iterrows() for reason in _flag_reasons(r, policy)]
        reasons += flag_losses
        advance = float(ok["advance"].sum())
        after_flags = float(ok["advance_uncapped"].sum()) + sum(r.amount for r in flag_losses)
        if advance < after_flags - 1e-9:
            reasons.append(Reason("CROP_CAP_PER_HA", advance - after_flags))
        rent = float(fp.loc[fp["eligible"], "rent_due"].sum())
        if rent > 0:
            reasons.append(Reason("RENT_DUE", -rent))
        debt_amt = float(owed.get(fid, 0.0))
        if debt_amt > 0:
            reasons.append(Reason("EXISTING_DEBT", -debt_amt))
        limit = advance - rent - debt_amt
        if limit > policy.max_limit_per_farmer:
            reasons.append(Reason("FARMER_CAP", policy.max_limit_per_farmer - limit))
            limit = policy.max_limit_per_farmer
        if limit < 0:
            reasons.append(Reason("FLOOR_AT_ZERO", -limit))
            limit = 0.0

        prev_limit = _previous(prev, fid, "limit")
        severe = _severe_events(fp, debt_amt, rent, prev, fid, policy)
        change = apply_change_rules(limit, prev_limit, severe, policy.change_rules)
        if change.reason is not None:
            reasons.append(change.reason)
        limit = min(change.limit, policy.max_limit_per_farmer)

        rounded = math.floor(limit / policy.rounding) * policy.rounding
        if rounded < limit:
            reasons.append(Reason("ROUNDING", rounded - limit))
        limit = rounded
        if 0 < limit < policy.min_limit:
            reasons.append(Reason("BELOW_MINIMUM", -limit))
            limit = 0.0
        if fid in holds and limit > 0:
            reasons.append(Reason("DEBT_RECORD_REJECTED", -limit, detail=holds[fid]))
            limit = 0.0
        if policy.evidence == "prior":
            reasons.append(Reason("PRIOR_YIELD_ESTIMATE", 0.0, detail=f"relative sd {policy.prior_relative_sd}"))

        status, decided_by = _status(limit, reasons, fp, policy)
        if fid in holds:
            status, decided_by = "review", "DEBT_RECORD_REJECTED"
        expected = float(ok["expected_revenue"].sum()) if len(ok) else np.nan
        ranked = ordered(reasons)
        rows.append({
            "farmer_id": fid,
            "limit": float(limit),
            "currency": policy.currency,
            "status": status,
            "decided_by": decided_by,
            "reason_codes": [r.code for r in ranked],
            "reasons": [r.as_dict() for r in ranked],
            "previous_limit": np.nan if prev_limit is None else prev_limit,
            "change_reason": change.change_reason,
            "expected_revenue": expected,
            "pledgeable_revenue": float(ok["pledgeable_revenue"].sum()),
            "rent_due": rent,
            "existing_debt": debt_amt,
            "risk_score": risk_score(limit, debt_amt, rent, expected),
            "n_plots": int(len(fp)),
            "n_plots_eligible": int(len(ok)),
            "valid_from": pd.Timestamp(as_of),
            "valid_until": pd.Timestamp(as_of) + pd.Timedelta(days=policy.validity_days),
        })
    return pd.DataFrame(rows)


def risk_score(limit: float, debt: float, rent: float, expected_revenue: float) -> float:
    """Share of the expected (P50) harvest revenue committed if the line is fully drawn, in [0, 1].

    Higher is riskier; 1 when nothing is expected. Transparent on purpose: the backtest reports how
    well it ranks defaults (KS, AUC) before anyone trusts a fitted score instead.
    """
    if not np.isfinite(expected_revenue) or expected_revenue <= 0:
        return 1.0
    return float(min(max((limit + debt + rent) / expected_revenue, 0.0), 1.0))


def _previous(prev: pd.DataFrame | None, fid: str, col: str) -> float | None:
    if prev is None or fid not in prev.index or col not in prev.columns:
        return None
    v = prev.at[fid, col]
    return float(v) if pd.notna(v) else None


def _severe_events(fp: pd.DataFrame, debt: float, rent: float, prev: pd.DataFrame | None, fid: str,
                   policy: Policy) -> list[str]:
    severe = set(policy.change_rules.severe_codes)
    events = sorted({f for flags in fp["flags"] for f in flags if f in severe})
    prev_debt, prev_rent = _previous(prev, fid, "existing_debt"), _previous(prev, fid, "rent_due")
    if prev_debt is not None and debt > prev_debt and "EXISTING_DEBT_INCREASED" in severe:
        events.append("EXISTING_DEBT_INCREASED")
    if prev_rent is not None and rent > prev_rent and "RENT_DUE_INCREASED" in severe:
        events.append("RENT_DUE_INCREASED")
    return events


def _status(limit: float, reasons: list[Reason], fp: pd.DataFrame, policy: Policy) -> tuple[str, str]:
    """declined / review / approved, and the rule that decided it."""
    if limit <= 0:
        rule = next((r.code for r in reasons if r.code in ("BELOW_MINIMUM", "FLOOR_AT_ZERO")), "NO_PLEDGEABLE_REVENUE")
        return "declined", rule
    excluded = [r.code for r in reasons if r.code.startswith("PLOT_EXCLUDED_")]
    flagged = sorted({f for flags in fp["flags"] for f in flags if f in REVIEW_FLAGS})
    if policy.review_on_flags and (excluded or flagged):
        return "review", excluded[0] if excluded else flagged[0]
    return "approved", "ADVANCE_ON_REVENUE"
