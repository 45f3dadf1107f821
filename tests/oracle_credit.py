"""The per-farmer implementation of agrisat/credit.py, kept as the oracle of its columnar rewrite
(issue 17). Do not change it to match the new code.

Credit policy: expected revenue per plot -> limit per farmer, with ordered reason codes.

    pledgeable revenue = area x yield quantile (policy.yield_quantile, P10 by default) x price
    advance            = advance_rate x pledgeable revenue x haircuts, capped per ha (of the area seen) by crop
    haircuts           = price haircut of the crop x flag multipliers x imaged fraction (partial coverage)
                         x the multipliers of every weather shock that could not be evaluated
    limit              = sum(advances) - rent due on every contract the farmer leases - existing debt,
                         capped per farmer, floored at 0, moved from the previous limit only as far as
                         the change rules allow, rounded down; below min_limit -> declined

The conservatism contract (DESIGN.md, "What a limit means" in the README): less evidence, less
coverage or more obligations never raise a limit. Every haircut is in [0, 1]; an unknown (a shock
not evaluated, tenure not given, debt not known) costs at least what the worst known value would.

Plots that cannot be pledged (no established right to farm; with imagery evidence, too few clear
dates, no crop signal, no pixel seen) leave the revenue base and carry a reason code. Every reason
carries the signed amount it moved the limit; the amounts add up to the limit, and reasons are
ordered by size.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from oracle_changes import (MISSING_EVIDENCE_CODES, Previous, apply_change_rules, change_driver, new_severe_events,
                             previous_record)
from agrisat.config import Policy
from agrisat.land import EXCLUDING_LEASE_CODES, LEASE_DISPUTE_CODES
from agrisat.reasons import REASON_TEXT, Reason, ordered  # noqa: F401  (REASON_TEXT re-exported)

# Flags that keep a plot in the base but send the decision to a loan officer.
REVIEW_FLAGS = ("PEAK_OUTSIDE_CROP_CALENDAR", "AREA_MISMATCH", "CROP_MISMATCH", "GROWTH_ANOMALY_LOW",
                "GAP_TOO_LONG", "WEATHER_DROUGHT", "WEATHER_FLOOD", "WEATHER_HEAT", "WEATHER_FROST",
                "WEATHER_DATA_GAP", "WEATHER_SOURCE_FAR", "WEATHER_RULES_NOT_EVALUATED", "PARTIAL_IMAGERY_COVERAGE")


def _haircut_reasons(r: pd.Series) -> list[Reason]:
    """Split a plot's haircut loss over its haircuts, applied in order (deterministic)."""
    out, remaining = [], float(r["advance_uncapped"])
    for h in r["haircuts"]:
        out.append(Reason(h["code"], -remaining * (1.0 - h["multiplier"]), plot_id=str(r["plot_id"]), detail=h["detail"]))
        remaining *= h["multiplier"]
    return out


def farmer_limits(
    plot_rev: pd.DataFrame,
    policy: Policy,
    as_of: dt.date,
    *,
    rent: pd.DataFrame | None = None,
    debt: pd.DataFrame | None = None,
    previous: pd.DataFrame | None = None,
    holds: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per farmer (sorted by id): limit, status, decided_by, ordered reasons, risk score.

    ``rent``: ``land.rent_obligations`` (one row per contract the farmer leases). ``debt``: the debt
    file's rows, or None when the run has no debt file (``policy.debt`` says what an unknown debt
    means). ``previous`` (optional) holds the farmer's last limits: ``farmer_id, limit`` and, when
    known, ``existing_debt, rent_due, valid_until, reasons`` (a previous ``limits.parquet`` has them).
    ``holds`` maps farmers whose records could not be trusted (a quarantined debt row) to why: their
    limit is 0, in review.
    """
    holds = holds or {}
    owed = dict(zip(debt["farmer_id"].astype(str), debt["outstanding"])) if debt is not None else {}
    debt_rule = policy.debt.file_missing if debt is None else policy.debt.farmer_absent
    rent_by = {f: g for f, g in rent.groupby("farmer_id", sort=False)} if rent is not None and len(rent) else {}
    prev = previous.set_index(previous["farmer_id"].astype(str)) if previous is not None else None
    severe_codes = set(policy.change_rules.severe_codes)
    rows = []
    for fid, fp in plot_rev.groupby(plot_rev["farmer_id"].astype(str), sort=True):
        reasons: list[Reason] = []
        ok = fp[fp["eligible"]]
        # Gross advance over every plot with an estimate; exclusions, haircuts and caps then subtract,
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
        cut = [reason for _, r in ok.iterrows() for reason in _haircut_reasons(r)]
        reasons += cut
        advance = float(ok["advance"].sum())
        after_cuts = float(ok["advance_uncapped"].sum()) + sum(r.amount for r in cut)
        if advance < after_cuts - 1e-9:
            reasons.append(Reason("CROP_CAP_PER_HA", advance - after_cuts))

        # Obligations: rent on every contract the farmer leases, and debt, in full and at once.
        mine = rent_by.get(fid)
        rent_amt = 0.0
        if mine is not None:
            for c in mine.itertuples():
                reasons.append(Reason("RENT_DUE", -float(c.rent_due), plot_id=str(c.plot_id),
                                      detail=f"contract {c.contract_id}"))
                rent_amt += float(c.rent_due)
        debt_known = fid in owed
        debt_amt = float(owed.get(fid, 0.0))
        if debt_amt > 0:
            reasons.append(Reason("EXISTING_DEBT", -debt_amt))
        debt_unknown = None if debt_known or fid in holds else debt_rule
        if debt_unknown is not None:
            why = "no debt file given" if debt is None else "farmer not in the debt file"
            reasons.append(Reason("DEBT_UNKNOWN", 0.0, detail=f"{why}; policy: {debt_unknown}"))

        limit = advance - rent_amt - debt_amt
        limit = _cap(limit, policy, reasons)
        if limit < 0:
            reasons.append(Reason("FLOOR_AT_ZERO", -limit))
            limit = 0.0

        # Change rules against the previous limit.
        before = _previous(prev, fid)
        flags_now = {(f, str(pid)) for pid, flags in zip(fp["plot_id"], fp["flags"]) for f in flags}
        new_severe = new_severe_events(flags_now, before, severe_codes)
        new_severe += _obligation_events(debt_amt, rent_amt, before, severe_codes)
        missing = any(f in MISSING_EVIDENCE_CODES for f, _ in flags_now)
        base = limit
        change = apply_change_rules(base, before, obligations=debt_amt + rent_amt, new_severe=sorted(new_severe),
                                    complete_evidence=len(ok) > 0 and not missing, as_of=as_of,
                                    rules=policy.change_rules)
        if change.reason is not None:
            reasons.append(change.reason)
        limit = _cap(change.limit, policy, reasons)

        rounded = math.floor(limit / policy.rounding) * policy.rounding
        if rounded < limit:
            reasons.append(Reason("ROUNDING", rounded - limit))
        limit = rounded
        # The minimum is asked of what the evidence supports: an increase held back by the cap keeps
        # its capped value instead of becoming a decline.
        if 0 < limit < policy.min_limit and not (change.direction == "INCREASE_CAPPED" and base >= policy.min_limit):
            reasons.append(Reason("BELOW_MINIMUM", -limit))
            limit = 0.0
        if fid in holds and limit > 0:
            reasons.append(Reason("DEBT_RECORD_REJECTED", -limit, detail=holds[fid]))
            limit = 0.0
        if debt_unknown == "hold" and limit > 0:
            reasons.append(Reason("DEBT_UNKNOWN_HOLD", -limit))
            limit = 0.0
        if policy.evidence == "prior":
            reasons.append(Reason("PRIOR_YIELD_ESTIMATE", 0.0, detail=f"relative sd {policy.prior_relative_sd}"))
        no_evidence = len(ok) == 0 and len(fp) > 0 and all(e in MISSING_EVIDENCE_CODES for e in fp["exclusion"])
        if no_evidence:
            reasons.append(Reason("NO_PLEDGEABLE_EVIDENCE", 0.0, detail=f"{len(fp)} plot(s), none could be measured"))

        status, decided_by = _status(limit, reasons, fp, policy, change.direction, no_evidence)
        if fid in holds:
            status, decided_by = "review", "DEBT_RECORD_REJECTED"
        elif debt_unknown in ("review", "hold") and status != "review":
            status, decided_by = "review", "DEBT_UNKNOWN"
        direction = change.direction
        if before is not None and limit == before.limit and direction in ("INCREASE", "DECREASE", "DECREASE_SEVERE"):
            direction = "UNCHANGED"  # rounding or the minimum brought it back where it was
        driver = change_driver(reasons, before, direction)
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
            "previous_limit": np.nan if before is None else before.limit,
            "change_reason": direction + (f":{driver}" if driver else ""),
            "severe_events": sorted(new_severe) if direction == "DECREASE_SEVERE" else [],
            "expected_revenue": expected,
            "pledgeable_revenue": float(ok["pledgeable_revenue"].sum()),
            "rent_due": rent_amt,
            "existing_debt": debt_amt,
            "debt_known": debt_known,
            "risk_score": risk_score(limit, debt_amt, rent_amt, expected),
            "n_plots": int(len(fp)),
            "n_plots_eligible": int(len(ok)),
            "valid_from": pd.Timestamp(as_of),
            "valid_until": pd.Timestamp(as_of) + pd.Timedelta(days=policy.validity_days),
        })
    return pd.DataFrame(rows)


def _cap(limit: float, policy: Policy, reasons: list[Reason]) -> float:
    """Clamp at the farmer cap, with a reason (so the reasons still add up to the limit)."""
    if limit > policy.max_limit_per_farmer:
        reasons.append(Reason("FARMER_CAP", policy.max_limit_per_farmer - limit))
        return float(policy.max_limit_per_farmer)
    return limit


def risk_score(limit: float, debt: float, rent: float, expected_revenue: float) -> float:
    """Share of the expected (P50) harvest revenue committed if the line is fully drawn, in [0, 1].

    Higher is riskier; 1 when nothing is expected. Transparent on purpose: the backtest reports how
    well it ranks defaults (KS, AUC) before anyone trusts a fitted score instead.
    """
    if not np.isfinite(expected_revenue) or expected_revenue <= 0:
        return 1.0
    return float(min(max((limit + debt + rent) / expected_revenue, 0.0), 1.0))


def _previous(prev: pd.DataFrame | None, fid: str) -> Previous | None:
    if prev is None or fid not in prev.index:
        return None
    return previous_record(prev.loc[fid])


def _obligation_events(debt: float, rent: float, before: Previous | None, severe: set[str]) -> list[str]:
    """More debt or rent than the previous run knew of (unknown previous amounts count as zero)."""
    if before is None:
        return []
    out = []
    if debt > (before.existing_debt or 0.0) and "EXISTING_DEBT_INCREASED" in severe:
        out.append("EXISTING_DEBT_INCREASED")
    if rent > (before.rent_due or 0.0) and "RENT_DUE_INCREASED" in severe:
        out.append("RENT_DUE_INCREASED")
    return out


def _status(limit: float, reasons: list[Reason], fp: pd.DataFrame, policy: Policy, direction: str,
            no_evidence: bool) -> tuple[str, str]:
    """declined / review / approved, and the rule that decided it.

    ``declined`` only when the evidence supports less than the minimum. A farmer whose plots could
    not be measured, or whose right to farm is disputed, goes to review: more evidence may lend."""
    excluded = [f"PLOT_EXCLUDED_{e}" for e in fp["exclusion"] if isinstance(e, str)]
    missing = [e for e in excluded if e.removeprefix("PLOT_EXCLUDED_") in MISSING_EVIDENCE_CODES]
    dispute = [e for e in excluded if e.removeprefix("PLOT_EXCLUDED_") in LEASE_DISPUTE_CODES]
    if no_evidence:
        return "review", "NO_PLEDGEABLE_EVIDENCE"
    if dispute:
        return "review", dispute[0]
    if limit <= 0:
        unseen = sorted({f for flags in fp["flags"] for f in flags if f in MISSING_EVIDENCE_CODES})
        if missing or unseen:
            return "review", missing[0] if missing else unseen[0]
        rule = next((r.code for r in reasons if r.code in ("BELOW_MINIMUM", "FLOOR_AT_ZERO")), "NO_PLEDGEABLE_REVENUE")
        return "declined", rule
    if direction == "DECREASE_DAMPED":
        return "review", "CHANGE_DECREASE_DAMPED"  # the limit is above what today's evidence supports
    flagged = sorted({f for flags in fp["flags"] for f in flags if f in REVIEW_FLAGS})
    if policy.review_on_flags and (excluded or flagged):
        return "review", excluded[0] if excluded else flagged[0]
    return "approved", "ADVANCE_ON_REVENUE"
